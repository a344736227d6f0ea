"""pricing_tiers/*.toml -> a validated, frozen catalogue of price plans."""

from billing.catalog.loader import load_catalog, validate_directory
from billing.catalog.models import Catalog, Product, ProductVersion

__all__ = ["Catalog", "Product", "ProductVersion", "load_catalog", "validate_directory"]
