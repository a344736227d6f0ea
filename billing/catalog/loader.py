"""Load a tier directory as a whole: parse, validate everything, build the catalogue.

`load_catalog` either returns a complete `Catalog` or raises `CatalogError` listing every
problem with its file, key path and reason. Nothing is half-loaded.

A pathological file is a problem like any other, never a traceback or an exhausted
machine: over 1 MB; nested more than 32 levels (Python's TOML parser recurses, so 10,000
nested arrays were a RecursionError); a dotted key of more than 32 parts (the parser keeps
every prefix of a key, so one of 100,000 parts takes gigabytes); an integer outside the
64-bit range TOML allows (one of more than 4,300 digits cannot even be read). Files are
checked for these before they are parsed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from billing.catalog.models import (
    Catalog,
    LatePolicy,
    Override,
    Product,
    ProductVersion,
    Source,
)
from billing.catalog.rules import discounts_rules, override_rules, product_rules, sources_rules
from billing.catalog.schema import DiscountsFile, OverrideFile, ProductFile, SettingsFile, TierSpec
from billing.errors import CatalogError, Problem
from billing.money import MINOR_UNITS
from billing.pricing.commitments import Bracket, CommitmentSchedule
from billing.pricing.plan import PricePlan, Tier

DISCOUNTS_FILE = "discounts.toml"
SETTINGS_FILE = "settings.toml"
OVERRIDES = "overrides"  # the folder of customer override files
M = TypeVar("M", bound=BaseModel)
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
MAX_FILE_BYTES = 1024 * 1024  # the shipped files are about 1 KB
MAX_DEPTH = 32  # arrays and inline tables within one another; tier files need 3
MAX_KEY_PARTS = 32  # a.b.c is 3
_INT64 = range(-(2**63), 2**63)  # TOML's integers (https://toml.io/en/v1.0.0#integer)


def load_catalog(directory: Path | str) -> Catalog:
    """Load and validate a tier directory; raise CatalogError with every problem."""
    directory = Path(directory)
    problems, products, discounts, settings = _read(directory)
    overrides = _read_overrides(directory, products, problems)
    if problems:
        raise CatalogError(_unique(problems))
    catalog = _build(directory, products, discounts, settings or SettingsFile())
    return replace(catalog, overrides=_built_overrides(catalog, overrides))


def catalog_digest(directory: Path | str) -> str:
    """SHA-256 (hex) over a tier directory's canonical form: every tier file in it (regular,
    not hidden, ending in `.toml`), by name, then those of its `overrides/` folder by name
    (named `overrides/<file>`), each as its name, a NUL, its text with CRLF read as LF, and
    a NUL. The same files give the same digest on any machine and checkout
    (docs/pricing-changes.md, "Verifiable invoices")."""
    hashed = hashlib.sha256()
    directory = Path(directory)
    for name, path in [
        *((path.name, path) for path in _tier_files(directory)),
        *((f"{OVERRIDES}/{path.name}", path) for path in _tier_files(directory / OVERRIDES)),
    ]:
        hashed.update(name.encode() + b"\0")
        hashed.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return hashed.hexdigest()


def _tier_files(directory: Path) -> list[Path]:
    """The files a tier directory (or its `overrides/` folder) is made of: regular `*.toml`
    files, not hidden, by name; none when the folder does not exist."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix == ".toml"
    )


def validate_directory(directory: Path | str) -> list[Problem]:
    """Every problem in a tier directory (empty when it is valid), its customer overrides
    included."""
    problems, products, _, _ = _read(Path(directory))
    _read_overrides(Path(directory), products, problems)
    return _unique(problems)


def _read(
    directory: Path,
) -> tuple[list[Problem], list[ProductFile], DiscountsFile | None, SettingsFile | None]:
    problems: list[Problem] = []
    if not directory.is_dir():
        return [Problem(str(directory), "", "tier directory not found")], [], None, None
    every = [p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
    files = _tier_files(directory)
    for odd in sorted(p for p in every if p.suffix.lower() == ".toml" and p.suffix != ".toml"):
        problems.append(Problem(odd.name, "", "tier files end in lowercase .toml: rename it"))
    products: list[ProductFile] = []
    discounts: DiscountsFile | None = None
    settings: SettingsFile | None = None
    raw_products: list[tuple[str, dict[str, Any]]] = []
    raw_discounts: dict[str, Any] | None = None
    for path in files:
        raw = _parse(path, problems)
        if raw is None:
            continue
        if path.name == SETTINGS_FILE:
            settings = _validate(SettingsFile, raw, path.name, problems)
        elif path.name == DISCOUNTS_FILE:
            raw_discounts = raw
            discounts = _validate(DiscountsFile, raw, path.name, problems)
            problems.extend(Problem(path.name, p, m) for p, m in discounts_rules(raw))
        else:
            raw_products.append((path.name, raw))
            product = _validate(ProductFile, raw, path.name, problems)
            problems.extend(Problem(path.name, p, m) for p, m in product_rules(raw, path.stem))
            if product is not None:
                products.append(product)
    if not any(p.name not in (DISCOUNTS_FILE, SETTINGS_FILE) for p in files):
        problems.append(Problem(str(directory), "", "no product files (*.toml) in the directory"))
    problems.extend(_directory_rules(raw_products, raw_discounts))
    if settings is not None and settings.properties:
        problems.extend(_property_rules(raw_products, settings.properties))
    problems.extend(
        Problem(file, path, message) for file, (path, message) in sources_rules(raw_products)
    )
    return _unique(problems), products, discounts, settings


def _read_overrides(
    directory: Path, products: list[ProductFile], problems: list[Problem]
) -> list[OverrideFile]:
    """The valid override files of `directory/overrides/` (docs/pricing-changes.md,
    "Customer overrides"); each problem appended to `problems`, blamed on
    `overrides/<file>`."""
    known = {
        product.key: min((v.effective_from for v in product.versions), default=None)
        for product in products
    }
    found: list[OverrideFile] = []
    folder = directory / OVERRIDES
    if not folder.is_dir():
        return found
    for path in _tier_files(folder):
        label = f"{OVERRIDES}/{path.name}"
        raw = _parse(path, problems, label)
        if raw is None:
            continue
        problems.extend(Problem(label, p, m) for p, m in override_rules(raw, path.stem, known))
        override = _validate(OverrideFile, raw, label, problems)
        if override is not None:
            found.append(override)
    return found


def _built_overrides(
    catalog: Catalog, files: list[OverrideFile]
) -> dict[str, dict[str, tuple[Override, ...]]]:
    """customer -> product -> Override, by effective_from, priced in the product's model,
    currency and package size."""
    built: dict[str, dict[str, list[Override]]] = {}
    for spec in files:
        for item in spec.products:
            product = catalog.products[item.key]
            plan = PricePlan(
                model=product.model,
                tiers=_tiers(item.tiers),
                currency=product.currency,
                package_size=product.package_size,
            )
            built.setdefault(spec.customer, {}).setdefault(item.key, []).append(
                Override(
                    spec.customer,
                    item.key,
                    item.effective_from,
                    item.effective_to,
                    plan,
                    f"{OVERRIDES}/{spec.customer}.toml",
                )
            )
    return {
        customer: {
            key: tuple(sorted(items, key=lambda o: o.effective_from)) for key, items in by.items()
        }
        for customer, by in built.items()
    }


def _tiers(specs: Iterable[TierSpec]) -> tuple[Tier, ...]:
    return tuple(
        Tier(
            up_to=None if t.up_to == "inf" else Decimal(t.up_to),
            unit_price=t.unit_price,
            flat_fee=t.flat_fee or Decimal(0),
        )
        for t in specs
    )


def _parse(path: Path, problems: list[Problem], label: str | None = None) -> dict[str, Any] | None:
    """The TOML data of a tier file, or None with its problems (blamed on `label`, the
    file's name in the directory by default)."""
    name = label or path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(
                Problem(
                    name,
                    "",
                    f"the file is {size:,} bytes; a tier file is at most {MAX_FILE_BYTES:,} "
                    "bytes (1 MB)",
                )
            )
            return None
        text = path.read_bytes().decode("utf-8")
        # NOTE: some editors save a byte-order mark; it is not TOML, but harmless to drop.
        text = text.removeprefix("\ufeff")
        odd = _pathological(text)
        if odd is not None:
            problems.append(Problem(name, f"line {odd[0]}", f"cannot be read: {odd[1]}"))
            return None
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        position = _TOML_POSITION.search(message)
        reason = _TOML_POSITION.sub("", message).strip()
        where = f"line {position[1]}, column {position[2]}" if position else ""
        problems.append(Problem(name, where, f"not valid TOML: {reason}"))
        return None
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(name, "", f"cannot read the file: {error}"))
        return None
    except (ValueError, RecursionError, MemoryError) as error:
        # NOTE: what the checks above should have caught (an integer of more than 4,300
        # digits is a ValueError); still a problem of the file, never a traceback.
        reason = (
            "a number too large to read"
            if isinstance(error, ValueError)
            else "nested too deeply to read"
            if isinstance(error, RecursionError)
            else "too large to read"
        )
        problems.append(Problem(name, "", f"not valid TOML: {reason}"))
        return None
    outside = _out_of_range(raw)
    if outside is not None:
        problems.append(
            Problem(
                name,
                outside,
                "not valid TOML: an integer outside the 64-bit range TOML allows",
            )
        )
        return None
    return raw


def _string_end(text: str, at: int) -> int:
    """Where the TOML string opening at `at` ends (just past it; the end of the text when
    it is not closed: tomllib then says what is wrong)."""
    quote = text[at]
    delimiter = quote * 3 if text.startswith(quote * 3, at) else quote
    at += len(delimiter)
    while at < len(text):
        if quote == '"' and text[at] == "\\":  # an escape in a basic string
            at += 2
        elif text.startswith(delimiter, at):
            at += len(delimiter)
            extra = 0  # a multi-line string may end with up to two more quotes: a""""
            while len(delimiter) == 3 and extra < 2 and text.startswith(quote, at):
                at, extra = at + 1, extra + 1
            return at
        elif len(delimiter) == 1 and text[at] == "\n":
            return at  # a one-line string does not cross lines
        else:
            at += 1
    return at


def _out_of_range(raw: Any) -> str | None:
    """The key path of an integer outside TOML's 64-bit range in a parsed file, if any."""
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), raw)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
            return _path(where)
        if isinstance(value, dict):
            stack.extend(((*where, key), inner) for key, inner in value.items())
        elif isinstance(value, list):
            stack.extend(((*where, index), inner) for index, inner in enumerate(value))
    return None


def _pathological(text: str) -> tuple[int, str] | None:
    """(line, why) when `text` nests arrays and inline tables more than MAX_DEPTH deep or
    has a dotted key of more than MAX_KEY_PARTS parts; None otherwise. One pass over the
    text that skips strings and comments, so that tomllib never recurses too deep or holds
    every prefix of a huge key."""
    depth = dots = 0
    line, at, end = 1, 0, len(text)
    while at < end:
        char = text[at]
        if char in "\"'":
            start, at = at, _string_end(text, at)
            line += text.count("\n", start, at)  # multi-line strings
            continue
        if char == "#":
            newline = text.find("\n", at)
            at = end if newline < 0 else newline
            continue
        if char == "\n":
            line += 1
            dots = 0
        elif char in "[{":
            depth, dots = depth + 1, 0
            if depth > MAX_DEPTH:
                return line, f"nested more than {MAX_DEPTH} levels deep (arrays or inline tables)"
        elif char in "]}":
            depth, dots = max(depth - 1, 0), 0
        elif char in "=,":
            dots = 0
        elif char == ".":
            dots += 1
            if dots >= MAX_KEY_PARTS:
                return line, f"a dotted key of more than {MAX_KEY_PARTS} parts"
        at += 1
    return None


def _validate(model: type[M], raw: dict[str, Any], file: str, problems: list[Problem]) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        for item in error.errors():
            loc = item["loc"]
            problems.append(Problem(file, _path(loc), _message(model, item)))
        return None


def _path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


_FRIENDLY = {
    "model_type": 'must be a table, like { up_to = 100, unit_price = "0.5" }',
    "model_attributes_type": "must be a table of keys and values",
    "tuple_type": "must be an array ([...] or [[...]] tables)",
    "string_type": "must be a string in quotes",
    "enum": None,
}


def _message(model: type[BaseModel], item: Any) -> str:
    kind = item["type"]
    loc = item["loc"]
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "key":
        return (
            f"key must be a slug: lowercase letters, digits and _, starting with a letter; "
            f"got {item['input']!r}"
        )
    if _FRIENDLY.get(kind):
        return f"{_FRIENDLY[kind]}; got {type(item['input']).__name__} {_short(item['input'])}"
    if kind == "extra_forbidden":
        allowed = list(_model_at(model, loc[:-1]).model_fields)
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        return f"unknown key {loc[-1]!r}{hint}; allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    return str(item["msg"])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _model_at(model: type[BaseModel], loc: Iterable[int | str]) -> type[BaseModel]:
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation
        model = next(a for a in _flatten(annotation) if _is_model(a))
    return model


def _flatten(annotation: Any) -> Iterable[Any]:
    yield annotation
    for arg in get_args(annotation):
        yield from _flatten(arg)


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _directory_rules(
    raw_products: list[tuple[str, dict[str, Any]]], raw_discounts: dict[str, Any] | None
) -> Iterable[Problem]:
    seen: dict[str, str] = {}
    currencies: dict[str, str] = {}
    for file, raw in raw_products:
        key = raw.get("key")
        if isinstance(key, str):
            if key in seen:
                yield Problem(file, "key", f"duplicate product key {key!r}: also in {seen[key]}")
            else:
                seen[key] = file
        if isinstance(raw.get("currency"), str):
            currencies[file] = raw["currency"]
    if raw_discounts is not None and isinstance(raw_discounts.get("currency"), str):
        currencies[DISCOUNTS_FILE] = raw_discounts["currency"]
    known = {file: c for file, c in currencies.items() if c in MINOR_UNITS}
    if len(set(known.values())) > 1:
        # The catalogue's currency is discounts.toml's, else the one most files use; only
        # the files that differ from it are at fault.
        counts = Counter(known.values())
        reference = known.get(DISCOUNTS_FILE) or max(sorted(counts), key=counts.__getitem__)
        for file, currency in known.items():
            if currency != reference:
                yield Problem(
                    file,
                    "currency",
                    f"a catalogue prices in one currency: {currency} here, {reference} in "
                    f"{counts[reference]} other file(s)",
                )


def _property_rules(
    raw_products: list[tuple[str, dict[str, Any]]], declared: Iterable[str]
) -> Iterable[Problem]:
    """Every property a product file names (where, dimensions, unique_property) is one
    settings.toml declares in `properties`."""
    known = list(declared)

    def unknown(file: str, path: str, name: Any) -> Problem | None:
        if not isinstance(name, str) or name in known:
            return None
        guess = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        return Problem(
            file,
            path,
            f"unknown property {name!r}{hint}; settings.toml declares: {', '.join(known)}",
        )

    for file, raw in raw_products:
        found: list[Problem | None] = []
        where = raw.get("where")
        if isinstance(where, dict):
            found += [unknown(file, f"where.{name}", name) for name in where]
        dimensions = raw.get("dimensions")
        if isinstance(dimensions, list):
            found += [unknown(file, f"dimensions[{i}]", n) for i, n in enumerate(dimensions)]
        if "unique_property" in raw:
            found.append(unknown(file, "unique_property", raw["unique_property"]))
        yield from (problem for problem in found if problem is not None)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _build(
    directory: Path,
    files: list[ProductFile],
    discounts: DiscountsFile | None,
    settings: SettingsFile,
) -> Catalog:
    products = {}
    for spec in files:
        versions = tuple(
            ProductVersion(
                effective_from=version.effective_from,
                plan=PricePlan(
                    model=spec.model,
                    tiers=_tiers(version.tiers),
                    currency=spec.currency,
                    package_size=spec.package_size,
                ),
            )
            for version in spec.versions
        )
        products[spec.key] = Product(
            key=spec.key,
            name=spec.name,
            unit=spec.unit,
            currency=spec.currency,
            model=spec.model,
            package_size=spec.package_size,
            versions=versions,
            sources=tuple(Source(s.event, s.multiplier) for s in spec.sources or ()),
            where={name: frozenset(values) for name, values in (spec.where or {}).items()},
            dimensions=spec.dimensions or (),
            aggregation=spec.aggregation,
            unique_property=spec.unique_property,
            max_dimension_values=spec.max_dimension_values,
        )
    schedule = None
    if discounts is not None:
        schedule = CommitmentSchedule(
            currency=discounts.currency,
            min_purchase=discounts.min_purchase,
            release=discounts.release,
            rollover_percent=discounts.rollover_percent,
            topup_months=discounts.topup_months,
            brackets=tuple(
                Bracket(b.years, b.min_credit, b.discount_percent) for b in discounts.brackets
            ),
        )
    currency = next(iter(products.values())).currency
    late = settings.late_usage
    policy = LatePolicy(late.policy == "amend", dt.timedelta(days=late.window_days))
    return Catalog(
        str(directory), currency, products, schedule, policy, digest=catalog_digest(directory)
    )
