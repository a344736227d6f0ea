"""What a job run works with: the database, the settings, the catalogue, a Stripe client."""

from __future__ import annotations

from functools import cached_property

import stripe
from sqlalchemy import Engine

from billing.catalog import Catalog, load_catalog
from billing.settings import Settings
from billing.stripe_sync.sync import make_client


class JobContext:
    """The engine and settings a job runs with; the catalogue and the Stripe client are made
    on first use, so a job that needs neither (alert delivery) never loads them."""

    def __init__(self, *, engine: Engine, settings: Settings, catalog: Catalog | None = None):
        self.engine = engine
        self.settings = settings
        self._catalog = catalog

    @cached_property
    def catalog(self) -> Catalog:
        """The catalogue given, else the one in BILLING_TIERS_DIR; raises CatalogError."""
        return self._catalog if self._catalog is not None else load_catalog(self.settings.tiers_dir)

    @cached_property
    def stripe(self) -> stripe.StripeClient:
        """A Stripe client for BILLING_STRIPE_API_KEY; RuntimeError when no key is set."""
        if not self.settings.stripe_api_key:
            raise RuntimeError(f"Stripe sync is {self.settings.stripe_sync_state}")
        return make_client(self.settings.stripe_api_key, self.settings.stripe_api_base)
