"""The `billing` command line: serve the API, check tier files, quote prices."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlmodel import Session

from billing import quotes
from billing.auth import service as auth_service
from billing.auth.models import Role
from billing.catalog import Catalog, load_catalog, validate_directory
from billing.catalog.schema import DiscountsFile, ProductFile
from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate
from billing.customers.periods import period_for, period_from_label
from billing.db import (
    alembic_config,
    current_revision,
    make_engine,
    session_scope,
    table_of,
    upgrade,
)
from billing.errors import BillingError, CatalogError
from billing.metering import service as metering_service
from billing.money import format_amount, format_quantity, group_quantity
from billing.parsing import parse_amount, parse_date, parse_percent, parse_quantity, parse_years
from billing.settings import get_settings

if TYPE_CHECKING:
    from billing.jobs.registry import Job

T = TypeVar("T")
app = typer.Typer(help="Usage-based billing and pricing engine.", no_args_is_help=True)
tiers_app = typer.Typer(help="Tier files: validate them, print their JSON Schema.")
db_app = typer.Typer(help="The database: apply migrations.")
keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.")
customers_app = typer.Typer(help="Customers: create, list.")
app.add_typer(tiers_app, name="tiers")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(customers_app, name="customers")
alerts_app = typer.Typer(help="Alerts: deliver the webhook outbox.")
caps_app = typer.Typer(help="Spend caps: set, remove, show.")
commitments_app = typer.Typer(help="Commitments: options, start, show.")
credits_app = typer.Typer(help="Credits: release what is due, invoice contract years.")
app.add_typer(alerts_app, name="alerts")
app.add_typer(caps_app, name="caps")
invoices_app = typer.Typer(help="Invoices: close due periods.")
stripe_app = typer.Typer(help="Stripe: push finalized invoices.")
report_app = typer.Typer(help="Finance reports: invoices and revenue.")
app.add_typer(report_app, name="report")
app.add_typer(stripe_app, name="stripe")
app.add_typer(commitments_app, name="commitments")
app.add_typer(invoices_app, name="invoices")
app.add_typer(credits_app, name="credits")

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="act as at this instant, ISO 8601 with a zone (replays)"),
]
TiersOption = Annotated[
    Path | None,
    typer.Option("--tiers", help="tier directory (default: BILLING_TIERS_DIR or ./pricing_tiers)"),
]


def main() -> None:
    """Entry point of the `billing` console script."""
    app()


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _catalog(tiers: Path | None) -> Catalog:
    try:
        return load_catalog(tiers or get_settings().tiers_dir)
    except CatalogError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    tiers: TiersOption = None,
) -> None:
    """Start the HTTP API (refuses to start on an invalid tier directory)."""
    import uvicorn

    if tiers is not None:
        os.environ["BILLING_TIERS_DIR"] = str(tiers)
        get_settings.cache_clear()
    _catalog(tiers)
    settings = get_settings()
    if settings.migrate_on_start:
        upgrade(settings.database_url)
    else:
        _check_schema(settings.database_url)
    from billing.observability.logs import log_config

    uvicorn.run(
        "billing.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level, settings.log_format),
        access_log=False,  # one structured line per request comes from RequestContext
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # SIGTERM: stop accepting, let requests in flight finish (and their batches commit)
        timeout_graceful_shutdown=30,
    )


@app.command()
def worker(tiers: TiersOption = None) -> None:
    """Run the background jobs without the HTTP API (close periods, alerts, commitments)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from billing.jobs import scheduler
    from billing.jobs.context import JobContext
    from billing.observability.logs import configure

    catalog = _catalog(tiers)
    settings = get_settings()
    configure(settings.log_level, settings.log_format)
    if settings.migrate_on_start:
        upgrade(settings.database_url)
    else:
        _check_schema(settings.database_url)
    engine = make_engine(settings.database_url)
    context = JobContext(engine=engine, settings=settings, catalog=catalog)
    jobs = scheduler.schedule(BlockingScheduler(timezone="UTC"), context)
    typer.echo(f"worker: running {', '.join(job.id for job in jobs.get_jobs())}", err=True)
    try:
        jobs.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        engine.dispose()


def _check_schema(url: str) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    if current != head:
        typer.echo(
            f"error: the database is at revision {current}, not {head}: run `billing db upgrade` "
            "(BILLING_MIGRATE_ON_START=0 is set, so serve does not migrate by itself)",
            err=True,
        )
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply database migrations (BILLING_DATABASE_URL)."""
    settings = get_settings()
    upgrade(settings.database_url, revision)
    engine = make_engine(settings.database_url)
    try:
        typer.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@contextmanager
def _session() -> Iterator[Session]:
    engine = make_engine(get_settings().database_url)
    try:
        with session_scope(engine) as session:
            yield session
    except BillingError as error:
        raise _fail(f"{error.field}: {error.message}" if error.field else error.message) from None
    finally:
        engine.dispose()


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="admin, finance, ingest or customer")],
    customer: Annotated[str | None, typer.Option(help="the customer a customer key is for")] = None,
    name: Annotated[str, typer.Option(help="a label, e.g. who uses it")] = "",
) -> None:
    """Create an API key and print it once; only its digest is stored."""
    with _session() as session:
        key, row = auth_service.create_key(
            session=session, role=role, customer_id=customer, name=name
        )
    typer.echo(key)
    typer.echo(f"({row.role} key {row.prefix}…: shown once, store it now)", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys by prefix (keys themselves are never stored)."""
    with _session() as session:
        for row in auth_service.list_keys(session=session):
            state = "revoked" if row.revoked_at else "active"
            owner = f" customer={row.customer_id}" if row.customer_id else ""
            typer.echo(f"{row.id}\t{row.prefix}…\t{row.role}{owner}\t{state}\t{row.name}")


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="key id or prefix")]) -> None:
    """Revoke a key at once."""
    with _session() as session:
        row = auth_service.revoke_key(session=session, prefix_or_id=key)
    typer.echo(f"revoked {row.prefix}…")


def _duration(text: str) -> dt.timedelta:
    """ "90s", "15m", "2h", "1d" -> a timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if match is None:
        raise _fail(f"--ttl: a duration like 90s, 15m, 2h or 1d, got {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return dt.timedelta(**{unit: int(match.group(1))})


@app.command("portal-link")
def portal_link(
    customer: Annotated[
        str | None, typer.Argument(help="the customer to sign in (omit with --finance)")
    ] = None,
    finance: Annotated[
        bool, typer.Option("--finance", help="a link to the finance pages instead")
    ] = False,
    ttl: Annotated[
        str | None, typer.Option(help="how long the link works: 90s, 15m, 2h, 1d (default 15m)")
    ] = None,
) -> None:
    """Print a single-use sign-in link to a customer's portal (or to the finance pages).

    The link's host is BILLING_PUBLIC_URL. It works once, until it expires; the session it
    opens lasts BILLING_SESSION_TTL.
    """
    from billing.web import signin

    if finance == (customer is not None):
        raise _fail("give a CUSTOMER, or --finance for a finance link (not both)")
    settings = get_settings()
    lifetime = settings.portal_link_ttl if ttl is None else _duration(ttl)
    now = dt.datetime.now(dt.UTC)
    kind = signin.FINANCE if finance else signin.CUSTOMER
    with _session() as session:
        connection = session.connection()
        secret = signin.load_secret(connection, settings.secret_key, now)
        token, expires = signin.create_link(
            connection, secret, kind=kind, customer_id=customer, ttl=lifetime, now=now
        )
    path = "finance" if finance else "portal"
    typer.echo(f"{settings.public_url.rstrip('/')}/{path}/signin?token={token}")
    typer.echo(f"(works once, until {expires:%Y-%m-%d %H:%M} UTC)", err=True)


@customers_app.command("create")
def customers_create(
    customer_id: Annotated[str, typer.Argument(help="customer id")],
    name: Annotated[str, typer.Option(help="display name")],
    email: Annotated[str | None, typer.Option()] = None,
    anchor_day: Annotated[int, typer.Option(help="billing anchor day, 1-28")] = 1,
) -> None:
    """Create a customer."""
    catalog = _catalog(None)
    try:
        data = CustomerCreate(id=customer_id, name=name, email=email, billing_anchor_day=anchor_day)
    except ValidationError as error:
        first = error.errors()[0]
        raise _fail(f"{first['loc'][0]}: {first['msg']}") from None
    with _session() as session:
        customers_service.create_customer(session=session, data=data, currency=catalog.currency)
    typer.echo(f"created customer {customer_id}")


@app.command()
def usage(
    customer: Annotated[str, typer.Argument(help="customer id")],
    period: Annotated[str | None, typer.Option(help="YYYY-MM (default: current)")] = None,
) -> None:
    """Print a customer's usage per product in one period."""
    with _session() as session:
        found = customers_service.get_customer(session=session, customer_id=customer)
        try:
            chosen = (
                period_from_label(period, found.billing_anchor_day)
                if period
                else period_for(found.billing_anchor_day, dt.datetime.now(dt.UTC))
            )
        except ValueError as error:
            raise _fail(f"period: {error}") from None
        rows = metering_service.usage_for(session=session, customer=found, period=chosen)
    typer.echo(f"{customer} {chosen.label} ({chosen.start:%Y-%m-%d} .. {chosen.end:%Y-%m-%d})")
    if not rows:
        typer.echo("  no usage")
    for row in rows:
        typer.echo(
            f"  {row.product:<20} {_n(format_quantity(row.quantity)):>20}  "
            f"{row.events} events, {row.duplicates} duplicates, {row.rejected} rejected"
        )


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="only into an empty database")
    ] = False,
) -> None:
    """Seed demo customers with this month's usage (BILLING_DEMO_DATA=0 turns --if-empty off)."""
    from billing import demo as demo_data

    settings = get_settings()
    if if_empty and not settings.demo_data:
        typer.echo("demo data is off (BILLING_DEMO_DATA=0)")
        return
    catalog = _catalog(None)
    engine = make_engine(settings.database_url)
    try:
        if if_empty and not demo_data.is_empty(engine):
            typer.echo("the database has customers already: no demo data added")
            return
        sent = demo_data.seed(engine=engine, catalog=catalog, now=dt.datetime.now(dt.UTC))
    except BillingError as error:
        raise _fail(error.message) from None
    finally:
        engine.dispose()
    ids = ", ".join(c[0] for c in demo_data.DEMO_CUSTOMERS)
    typer.echo(f"demo data: customers {ids}; {sent:,} events")


@tiers_app.command("validate")
def tiers_validate(
    directory: Annotated[Path | None, typer.Argument(help="tier directory")] = None,
) -> None:
    """Report every problem in a tier directory (file, key path, reason); exit 1 if any."""
    directory = directory or get_settings().tiers_dir
    problems = validate_directory(directory)
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(problems)} problem(s) in {directory}", err=True)
        raise typer.Exit(1)
    catalog = load_catalog(directory)
    brackets = len(catalog.schedule.brackets) if catalog.schedule else 0
    typer.echo(f"ok: {len(catalog.products)} products, {brackets} commitment brackets")


@tiers_app.command("schema")
def tiers_schema(
    kind: Annotated[str, typer.Argument(help="product or discounts")] = "product",
) -> None:
    """Print the JSON Schema of a product file or of discounts.toml."""
    models: dict[str, Any] = {"product": ProductFile, "discounts": DiscountsFile}
    if kind not in models:
        raise _fail(f"kind must be 'product' or 'discounts', got {kind!r}")
    typer.echo(json.dumps(TypeAdapter(models[kind]).json_schema(), indent=2))


@app.command()
def quote(
    usage: Annotated[list[str], typer.Argument(help="PRODUCT=QUANTITY pairs", metavar="USAGE...")],
    discount: Annotated[str | None, typer.Option(help="percentage discount, e.g. 20")] = None,
    cap: Annotated[list[str] | None, typer.Option(help="PRODUCT=AMOUNT spend cap")] = None,
    credit: Annotated[str | None, typer.Option(help="annual commitment credit")] = None,
    years: Annotated[int | None, typer.Option(help="commitment term in years")] = None,
    tiers: TiersOption = None,
    at: Annotated[str | None, typer.Option(help="price date YYYY-MM-DD (default today)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    options: Annotated[bool, typer.Option("--options", help="price every bracket")] = False,
) -> None:
    """Price a month of usage, exactly as POST /v1/quote does."""
    catalog = _catalog(tiers)
    try:
        parsed_usage = _pairs(usage, "usage", parse_quantity)
        caps = _pairs(cap or [], "spend_caps", parse_amount)
        percent = _field("discount_percent", parse_percent, discount) if discount else Decimal(0)
        day = _field("at", parse_date, at) if at else dt.datetime.now(dt.UTC).date()
        commitment = None
        if (credit is None) != (years is None):
            raise _fail("--credit and --years go together")
        if credit is not None and years is not None:
            commitment = (
                _field("commitment.credit", parse_amount, credit),
                _field("commitment.years", parse_years, years),
            )
        result = quotes.quote(
            catalog=catalog,
            usage=parsed_usage,
            at=day,
            discount_percent=percent,
            spend_caps=caps,
            commitment=commitment,
            include_options=options,
        )
    except BillingError as error:
        raise _fail(f"{error.field}: {error.message}" if error.field else error.message) from None
    document = quotes.quote_json(result, catalog=catalog, at=day)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(render_quote(document))


def _field(name: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except PydanticCustomError as error:
        raise _fail(f"{name}: {error.message()}") from None


def _pairs(items: list[str], name: str, parse: Any) -> dict[str, Decimal]:
    parsed: dict[str, Decimal] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"{name}: expected PRODUCT=VALUE, got {item!r}")
        if key.strip() in parsed:
            raise _fail(f"{name}.{key.strip()}: given twice")
        parsed[key.strip()] = _field(f"{name}.{key.strip()}", parse, value.strip().replace("_", ""))
    return parsed


def render_quote(q: dict[str, Any]) -> str:
    """A quote as a readable text table."""
    cur = q["currency"]
    out = [f"Quote at {q['at']} ({cur})", ""]
    for line in q["lines"]:
        capped = f"  capped at {_n(line['billable_quantity'])}" if line["capped"] else ""
        out.append(f"{line['name']}: {_n(line['quantity'])} {line['unit']}s{capped}")
        for t in line["tiers"]:
            span = f"{_n(t['from'])} – {_n(t['up_to'])}"
            fee = f" + {t['flat_fee']}" if Decimal(t["flat_fee"]) else ""
            out.append(
                f"  {span:<28} {_n(t['quantity']):>16} × {t['unit_price']:<14}{fee} "
                f"= {t['amount']:>14}"
            )
        out.append(
            f"  subtotal {line['subtotal']}  discount {line['discount']}  total {line['total']}"
        )
        out.append("")
    out.append(f"Subtotal {q['subtotal']:>14} {cur}")
    out.append(f"Discount {q['discount']:>14} {cur}")
    out.append(f"Total    {q['total']:>14} {cur}")
    c = q.get("commitment")
    if c:
        out += [
            "",
            f"Commitment: {c['credit']} {cur} a year for {c['years']} year(s), "
            f"{c['discount_percent']}% off",
            f"  price per year {c['price_per_year']}, monthly credit {c['monthly_credit']}, "
            f"monthly overage {c['monthly_overage']}",
            f"  a year paying as you go {c['annual_cost_without_commitment']}, "
            f"committed {c['annual_cost_with_commitment']}, saving {c['saving']}",
        ]
    for o in q.get("commitment_options") or []:
        mark = "  ← recommended" if o["recommended"] else ""
        out.append(
            f"  {o['years']} yr from {o['bracket']['min_credit']:>10} {o['discount_percent']:>3}% "
            f"credit {o['credit']:>12} saves {o['saving']:>12} a year{mark}"
        )
    return "\n".join(out)


def _n(text: str) -> str:
    if text == "inf":
        return "∞"
    whole, _, fraction = text.partition(".")
    grouped = f"{int(whole):,}"
    return f"{grouped}.{fraction}" if fraction else grouped


if __name__ == "__main__":  # pragma: no cover
    main()


def _as_of(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"--as-of: not an ISO 8601 date-time: {value!r}") from None
    if at.tzinfo is None:
        raise _fail(f"--as-of: needs a time zone (Z or +00:00): {value!r}")
    return at.astimezone(dt.UTC)


@alerts_app.command("deliver")
def alerts_deliver(
    as_of: AsOfOption = None,
) -> None:
    """Send the alert webhooks that are due (the scheduler runs this every 30 s)."""
    from billing.jobs.registry import DELIVER_ALERTS

    report = _run_job(DELIVER_ALERTS, as_of)
    typer.echo(f"webhooks: {report}")


@caps_app.command("set")
def caps_set(
    customer: Annotated[str, typer.Argument(help="customer id")],
    product: Annotated[str, typer.Argument(help="product key")],
    amount: Annotated[str, typer.Argument(help='the cap, e.g. 250.00; "none" removes it')],
    tiers: TiersOption = None,
) -> None:
    """Set or remove a spend cap (as an admin would); prints what it does this period."""
    from billing.caps import service as caps_service

    catalog = _catalog(tiers)
    value = None if amount.lower() == "none" else _field("amount", parse_amount, amount)
    with _session() as session:
        change = caps_service.set_cap(
            connection=session.connection(),
            catalog=catalog,
            customer_id=customer,
            product=product,
            amount=value,
            actor="cli",
            now=dt.datetime.now(dt.UTC),
        )
    typer.echo(change.effect)


@caps_app.command("show")
def caps_show(
    customer: Annotated[str, typer.Argument(help="customer id")],
    tiers: TiersOption = None,
) -> None:
    """Each product's cap, limit, accepted quantity and status this period."""
    from billing.caps import service as caps_service

    catalog = _catalog(tiers)
    with _session() as session:
        views = caps_service.quotas(
            session.connection(), catalog, customer, dt.datetime.now(dt.UTC)
        )
    typer.echo(f"{customer}, period {views[0].period.label} ({catalog.currency})")
    for view in views:
        cap = "-" if view.cap is None else format_amount(view.cap, catalog.currency)
        limit = "-" if view.limit_quantity is None else group_quantity(view.limit_quantity)
        accrued = format_amount(view.accrued, catalog.currency)
        typer.echo(
            f"  {view.product:<20} cap {cap:>10}  limit {limit:>16}  "
            f"accepted {view.accepted:>16,f}  accrued {accrued:>10}  {view.status}"
        )


@commitments_app.command("options")
def commitments_options(
    customer: Annotated[str, typer.Argument(help="customer id")],
    usage: Annotated[
        str | None, typer.Option(help="monthly usage at list price, instead of the run rate")
    ] = None,
    tiers: TiersOption = None,
) -> None:
    """Every bracket priced for the customer's run rate; the largest saver marked."""
    from billing.commitments.projection import project
    from billing.pricing.commitments import commitment_options

    catalog = _catalog(tiers)
    if catalog.schedule is None:
        raise _fail("this catalogue offers no commitments (no discounts.toml)", 1)
    with _session() as session:
        found = customers_service.get_customer(session=session, customer_id=customer)
        if usage is not None:
            monthly, basis = _field("usage", parse_amount, usage), "your --usage"
        else:
            projection = project(
                session.connection(),
                catalog,
                customer,
                found.billing_anchor_day,
                dt.datetime.now(dt.UTC),
                found.created_at,
            )
            monthly = projection.monthly
            basis = f"{projection.basis.replace('_', ' ')} {', '.join(projection.periods)}"
    currency = catalog.currency
    typer.echo(f"{customer}: {format_amount(monthly, currency)} {currency} a month ({basis})")
    for option in commitment_options(catalog.schedule, monthly):
        q = option.quote
        mark = "  <- recommended" if option.recommended else ""
        credit, price = format_amount(q.credit, currency), format_amount(q.price_per_year, currency)
        typer.echo(
            f"  {q.years}y {credit:>12} credit {q.discount_percent.normalize():>3f}% off: "
            f"{price:>12} a year, saves {format_amount(q.saving, currency):>10} a year{mark}"
        )


@commitments_app.command("start")
def commitments_start(
    customer: Annotated[str, typer.Argument(help="customer id")],
    credit: Annotated[str, typer.Option(help="annual credit, e.g. 30000")],
    years: Annotated[int, typer.Option(help="term length in years")] = 1,
    tiers: TiersOption = None,
) -> None:
    """Start a commitment: invoice its first contract year and grant its credit."""
    from billing.commitments import ledger
    from billing.commitments import service as commitments

    catalog = _catalog(tiers)
    amount = _field("credit", parse_amount, credit)
    with _session() as session:
        outcome = commitments.start(
            session.connection(), catalog, customer, amount, years, dt.datetime.now(dt.UTC)
        )
        left = ledger.balance(session.connection(), customer)
    for issued in outcome.invoices:
        typer.echo(f"invoice {issued.number}: {format_amount(issued.total, catalog.currency)}")
    typer.echo(f"credit available now: {format_amount(left, catalog.currency)}")


@commitments_app.command("show")
def commitments_show(
    customer: Annotated[str, typer.Argument(help="customer id")],
    tiers: TiersOption = None,
) -> None:
    """The customer's commitments and credit ledger."""
    from billing.commitments import ledger
    from billing.commitments.models import Commitment

    catalog = _catalog(tiers)
    currency = catalog.currency
    with _session() as session:
        customers_service.get_customer(session=session, customer_id=customer)
        connection = session.connection()
        table = table_of(Commitment)
        rows = list(
            connection.execute(
                select(table).where(table.c.customer_id == customer).order_by(table.c.created_at)
            )
        )
        entries = ledger.entries(connection, customer)
    if not rows:
        typer.echo(f"{customer}: no commitment")
    for row in rows:
        typer.echo(
            f"{row.id} {row.status}: {format_amount(row.credit, currency)} {currency} a year for "
            f"{row.years}y at {row.discount_percent.normalize():f}% off, "
            f"{row.starts_at.date()} to {row.ends_at.date()}, release {row.release}"
        )
    for entry in entries:
        amount = format_amount(entry.amount, currency)
        typer.echo(
            f"  {entry.created_at:%Y-%m-%d} {entry.kind:<13} {amount:>12}"
            f"  balance {format_amount(entry.balance_after, currency):>12}  {entry.note}"
        )


@credits_app.command("release")
def credits_release(
    as_of: AsOfOption = None,
    tiers: TiersOption = None,
) -> None:
    """Release credit, invoice contract years and end terms, as far as now (hourly job)."""
    from billing.jobs.registry import RUN_COMMITMENTS

    catalog = _catalog(tiers)
    run = _run_job(RUN_COMMITMENTS, as_of, catalog)
    typer.echo(f"credits: {run}, {run.invoices} invoices, {run.entries} entries")


def _run_job(job: Job[T], as_of: str | None, catalog: Catalog | None = None) -> T:
    """A job's command twin: run it once as at `--as-of` under the job's lock, waiting for a
    run elsewhere (the scheduler on another replica) to end rather than skipping; its report.
    Exits 1 when the job is off under these settings."""
    from billing.jobs import runner
    from billing.jobs.context import JobContext

    settings = get_settings()
    reason = job.off_reason(settings)
    if reason is not None:
        raise _fail(reason, 1)
    at = _as_of(as_of)
    engine = make_engine(settings.database_url)
    try:
        context = JobContext(engine=engine, settings=settings, catalog=catalog)
        return runner.run_waiting(job, context, at)
    finally:
        engine.dispose()


@invoices_app.command("close")
def invoices_close(
    as_of: AsOfOption = None,
    tiers: TiersOption = None,
) -> None:
    """Close every period that ended more than BILLING_CLOSE_GRACE ago (the scheduler's job)."""
    from billing.jobs.registry import CLOSE_PERIODS

    catalog = _catalog(tiers)
    report = _run_job(CLOSE_PERIODS, as_of, catalog)
    typer.echo(
        f"closed: {report} ({format_amount(report.amount_due, catalog.currency)} "
        f"{catalog.currency} due)"
    )


@stripe_app.command("sync")
def stripe_sync(
    as_of: AsOfOption = None,
) -> None:
    """Push finalized invoices to Stripe and void there what was voided (the scheduler's job)."""
    from billing.jobs.registry import SYNC_STRIPE

    report = _run_job(SYNC_STRIPE, as_of)
    typer.echo(f"stripe: {report}")


FromOption = Annotated[str | None, typer.Option("--from", help="first month, YYYY-MM")]
ToOption = Annotated[str | None, typer.Option("--to", help="last month, YYYY-MM")]
FormatOption = Annotated[str, typer.Option("--format", help="table | csv | json")]


def _print_rows(
    rows: list[dict[str, str]], columns: tuple[str, ...], form: str, title: str
) -> None:
    if form == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif form == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif form == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="left" if column in columns[:2] else "right")
        for row in rows:
            table.add_row(*(row[column] for column in columns))
        # NOTE: piped output gets a wide table rather than one folded to 80 columns.
        Console(width=None if sys.stdout.isatty() else 200).print(table)
    else:
        raise _fail(f"--format: table, csv or json, not {form!r}")


@report_app.command("invoices")
def report_invoices(
    from_: FromOption = None, to: ToOption = None, form: FormatOption = "table"
) -> None:
    """Invoices whose period starts between --from and --to."""
    from billing.reports import service as reports

    engine = make_engine(get_settings().database_url)
    try:
        try:
            start, end = reports.months(from_, to)
        except BillingError as error:
            raise _fail(error.message) from None
        rows = list(reports.stream_invoices(engine, reports.InvoiceFilter(start, end)))
    finally:
        engine.dispose()
    columns = (
        "number",
        "customer",
        "kind",
        "status",
        "period_start",
        "subtotal",
        "discount_total",
        "credits_applied",
        "amount_due",
        "sync_status",
    )
    shown = columns if form == "table" else reports.COLUMNS
    _print_rows(rows, shown, form, "Invoices")


@report_app.command("revenue")
def report_revenue(
    group_by: Annotated[str, typer.Option(help="product | customer | month")] = "product",
    from_: FromOption = None,
    to: ToOption = None,
    form: FormatOption = "table",
    tiers: TiersOption = None,
) -> None:
    """Revenue of finalized invoices, grouped; the last row is the total."""
    from billing.reports import service as reports

    if group_by not in ("product", "customer", "month"):
        raise _fail(f"--group-by: product, customer or month, not {group_by!r}")
    currency = _catalog(tiers).currency
    with _session() as session:
        try:
            start, end = reports.months(from_, to)
        except BillingError as error:
            raise _fail(error.message) from None
        groups, total = reports.revenue(session.connection(), group_by, start, end)

    def row(key: str, item: reports.Revenue) -> dict[str, str]:
        return {
            group_by: key,
            "list": format_amount(item.list_amount, currency),
            "discounts": format_amount(item.discounts, currency),
            "commitments": format_amount(item.commitments, currency),
            "credits_applied": format_amount(item.credits_applied, currency),
            "amount_due": format_amount(item.amount_due, currency),
        }

    rows = [row(key, item) for key, item in groups.items()] + [row("TOTAL", total)]
    columns = (group_by, "list", "discounts", "commitments", "credits_applied", "amount_due")
    _print_rows(rows, columns, form, f"Revenue by {group_by} ({currency})")
