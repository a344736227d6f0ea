"""The customer portal (`/portal`): usage against caps, invoices, spend caps, and choosing a
discount. Pages read through the same functions as the API, as the signed-in customer's
principal, so they show the same figures and obey the same access rule; changes go through
the same services, audited as made in the portal."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic_core import PydanticCustomError

from billing.alerts import service as alerts_service
from billing.alerts import settings as alerts_settings
from billing.caps import service as caps_service
from billing.caps.public import spend_cap_public, spend_caps_public
from billing.catalog import Catalog
from billing.commitments import queries as commitment_queries
from billing.commitments import service as commitments
from billing.commitments.service import topup_window
from billing.customers import service as customers_service
from billing.customers.service import CustomerRow
from billing.errors import (
    BillingError,
    InvalidAmount,
    InvalidThreshold,
    MissingField,
    NoCommitmentSchedule,
    NotFound,
    UnknownAction,
)
from billing.http.deps import CatalogDep, ReadSessionDep, SessionDep
from billing.http.downloads import download
from billing.http.errors import status_of
from billing.idempotency import service as idempotency
from billing.invoicing import service as invoicing_service
from billing.invoicing.party import seller_of
from billing.invoicing.projection import project
from billing.metering import quota as quota_service
from billing.money import display_amount, format_amount, format_quantity
from billing.parsing import parse_amount, parse_percent
from billing.pricing.commitments import quote_commitment
from billing.public import PublicModel
from billing.quotes import commitment_public
from billing.web.access import CustomerPost, CustomerUser, now
from billing.web.signin import WebUser
from billing.web.templating import Area

router = APIRouter(include_in_schema=False)
NAV = (
    ("/portal", "Overview"),
    ("/portal/caps", "Spend caps"),
    ("/portal/discount", "Discount"),
    ("/portal/webhooks", "Webhooks"),
)
AREA = Area("Billing portal", "/portal", NAV)


def _customer(session: SessionDep, user: WebUser) -> CustomerRow:
    return customers_service.get_customer(connection=session.connection(), customer_id=_cid(user))


def _cid(user: WebUser) -> str:
    assert user.customer_id is not None
    return user.customer_id


def _shown(answer: PublicModel) -> dict[str, Any]:
    """An answer as the API sends it, for a template (keys as in the JSON)."""
    return answer.model_dump(mode="json", by_alias=True)


def _parse_money(raw: str, field: str) -> Decimal:
    """An amount typed by a person: "1,250.00", "$ 1250" and "1 250" all read as 1250."""
    cleaned = raw.strip().lstrip("$€£").replace(",", "").replace(" ", "").replace("_", "")
    if not cleaned:
        raise MissingField("enter an amount", field=field)
    try:
        return parse_amount(cleaned)
    except PydanticCustomError as error:
        raise InvalidAmount(error.message(), field=field) from None


def _percent_of(part: Decimal, whole: Decimal) -> str:
    """Display only: a bar length in percent of the bar, one decimal."""
    if whole <= 0:
        return "0"
    return format_quantity(min(part / whole * 100, Decimal(100)).quantize(Decimal("0.1")))


def _usage_rows(
    catalog: Catalog,
    caps: list[dict[str, Any]],
    projection: Any,
    period_start: dt.datetime,
    customer_id: str,
) -> list[dict[str, Any]]:
    """Each product's usage bar: accepted against the free allowance and the cap's limit."""
    projected = {line.product: line for line in projection.lines}
    rows = []
    for cap in caps:
        product = catalog.products[cap["product"]]
        plan = catalog.plan_for_period(product.key, period_start, customer_id)
        free = plan.free_allowance or Decimal(0)
        accepted = Decimal(cap["accepted_quantity"])
        limit = None if cap["limit_quantity"] is None else Decimal(cap["limit_quantity"])
        line = projected[product.key]
        scale = max(accepted, free, limit or Decimal(0), line.quantity, Decimal(1))
        rows.append(
            {
                **cap,
                "name": product.name,
                "free_allowance": format_quantity(free),
                "free_left": format_quantity(max(free - accepted, Decimal(0))),
                "bar_used": _percent_of(accepted, scale),
                "bar_free": _percent_of(free, scale),
                "bar_limit": None if limit is None else _percent_of(limit, scale),
                "bar_projected": _percent_of(line.quantity, scale),
                "projected_quantity": format_quantity(line.quantity),
                "projected_amount": format_amount(line.amount, catalog.currency),
                "projected_capped": line.capped,
            }
        )
    return rows


@router.get("/portal", response_class=HTMLResponse)
def overview(
    request: Request, user: CustomerUser, session: ReadSessionDep, catalog: CatalogDep
) -> HTMLResponse:
    """This period's usage per product against its cap and free allowance, the projected
    month-end cost, alerts fired, the credit balance, and recent invoices."""
    customer = _customer(session, user)
    connection = session.connection()
    at = now()
    views = quota_service.quotas(connection, catalog, _cid(user), at)  # read once, used twice
    projection = project(catalog, views, at, _cid(user))
    period = projection.period
    caps: dict[str, Any] = {
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "spend_caps": [_shown(spend_cap_public(view, catalog)) for view in views],
    }
    alerts = alerts_service.list_alerts(connection, _cid(user), period.start)
    credits = commitment_queries.credits(connection, catalog, _cid(user))
    invoices = invoicing_service.list_invoices(connection, _cid(user))
    broken_down: list[dict[str, Any]] = []
    if any(product.dimensions for product in catalog.products.values()):
        draft = _shown(invoicing_service.upcoming(connection, catalog, _cid(user), at))
        broken_down = [line for line in draft["lines"] if line.get("breakdown")]
    context = {
        "customer": customer,
        "currency": catalog.currency,
        "period": caps,
        "products": _usage_rows(catalog, caps["spend_caps"], projection, period.start, _cid(user)),
        "projected_total": format_amount(projection.total, catalog.currency),
        "elapsed_days": format_quantity(projection.elapsed_days),
        "alerts": [_shown(a) for a in alerts],
        "balance": credits.balance,
        "invoices": [_shown(i) for i in invoices[:6]],
        "broken_down": broken_down,
    }
    return AREA.page(request, user, "portal_overview.html", context, active="/portal")


def _own_invoice(session: SessionDep, user: WebUser, reference: str) -> str:
    """Our id of the signed-in customer's invoice `reference` (an id or a number); NotFound
    for an unknown one and for another customer's: the same answer, nothing leaks."""
    connection = session.connection()
    found = invoicing_service.resolve_invoice_id(connection, reference)
    if invoicing_service.customer_of(connection, found) != _cid(user):
        raise NotFound(f"no invoice {reference!r}", field="invoice")
    return found


def _no_invoice(request: Request, user: WebUser, invoice_id: str) -> HTMLResponse:
    missing = {"title": "Invoice not found", "message": f"No invoice {invoice_id}."}
    return AREA.page(request, user, "message.html", missing, active="/portal", status=404)


@router.get("/portal/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice_page(
    invoice_id: str, request: Request, session: SessionDep, user: CustomerUser
) -> HTMLResponse:
    """One invoice (by id or number) with its lines and tier breakdown, its due date or when
    it was paid, and its PDF (another customer's: not found)."""
    days = request.app.state.settings.invoice_due_days
    try:
        found_id = _own_invoice(session, user, invoice_id)
        found = invoicing_service.get_invoice(session.connection(), found_id, due_days=days)
    except BillingError:
        return _no_invoice(request, user, invoice_id)
    pdf = f"/portal/invoices/{found.number}/pdf"
    context = {"invoice": _shown(found), "back": "/portal", "pdf": pdf}
    return AREA.page(request, user, "invoice.html", context, active="/portal")


@router.get("/portal/invoices/{invoice_id}/pdf", response_model=None)
def invoice_pdf(
    invoice_id: str, request: Request, session: SessionDep, user: CustomerUser
) -> Response:
    """The customer's own invoice (by id or number) as a PDF download (another customer's:
    not found)."""
    settings = request.app.state.settings
    try:
        made = invoicing_service.invoice_pdf(
            session.connection(),
            _own_invoice(session, user, invoice_id),
            due_days=settings.invoice_due_days,
            seller=seller_of(settings),
        )
    except BillingError:
        return _no_invoice(request, user, invoice_id)
    return download(made.content, made.filename, made.media_type)


# --- spend caps --------------------------------------------------------------------------


def _caps_page(
    request: Request,
    session: SessionDep,
    catalog: Catalog,
    user: WebUser,
    *,
    preview: dict[str, Any] | None = None,
    error: BillingError | None = None,
    form: dict[str, str] | None = None,
    alert_form: dict[str, str] | None = None,
) -> HTMLResponse:
    views = quota_service.quotas(session.connection(), catalog, _cid(user), now())
    caps = _shown(spend_caps_public(_cid(user), views, catalog))
    names = {key: product.name for key, product in catalog.products.items()}
    changes = caps_service.cap_changes(session.connection(), _cid(user))[:10]
    currency = catalog.currency
    context = {
        "caps": caps,
        "names": names,
        "preview": preview,
        "error": None if error is None else {"field": error.field, "message": error.message},
        "form": form or {},
        "changed": request.query_params.get("changed"),
        "changes": [
            {
                "product": c.product,
                "name": names.get(c.product, c.product),
                "old": None if c.old_amount is None else format_amount(c.old_amount, currency),
                "new": None if c.new_amount is None else format_amount(c.new_amount, currency),
                "by": c.changed_by,
                "at": c.changed_at.isoformat(),
                "effect": c.effect,
            }
            for c in changes
        ],
        "csrf": user.csrf,
        "alerts": _alert_settings(session, user, alert_form),
        "alerts_saved": request.query_params.get("alerts") == "saved",
    }
    status = 200 if error is None else status_of(error)
    return AREA.page(
        request, user, "portal_caps.html", context, active="/portal/caps", status=status
    )


def _alert_settings(
    session: SessionDep, user: WebUser, shown: dict[str, str] | None
) -> dict[str, Any]:
    """The customer's alert settings as the form shows them (or as last submitted)."""
    customer = customers_service.get_customer(
        connection=session.connection(), customer_id=_cid(user)
    )
    thresholds = sorted(
        (Decimal(t) for t in customer.alert_thresholds.split(",") if t), key=Decimal
    )
    return shown or {
        "thresholds": ", ".join(f"{t.normalize():f}" for t in thresholds),
        "free_allowance": "on" if customer.alert_free_allowance else "",
        "webhook_url": customer.alert_webhook_url or "",
    }


@router.post("/portal/alerts", response_model=None)
def alerts_post(
    request: Request, session: SessionDep, catalog: CatalogDep, posted: CustomerPost
) -> Response:
    """Save the customer's alert settings: thresholds (percentages of a cap, comma-separated),
    the free-allowance alert, the webhook URL (checked as the API checks it; empty: none)."""
    user = posted.user
    form = {
        "thresholds": posted.text("thresholds"),
        "free_allowance": posted.text("free_allowance"),
        "webhook_url": posted.text("webhook_url"),
    }
    try:
        thresholds = []
        for index, part in enumerate(p for p in form["thresholds"].split(",") if p.strip()):
            try:
                thresholds.append(parse_percent(part.strip().removesuffix("%")))
            except PydanticCustomError as problem:
                raise InvalidThreshold(
                    f"threshold {index + 1}: {problem.message()}", field=f"thresholds.{index}"
                ) from None
        alerts_settings.update_settings(
            connection=session.connection(),
            customer_id=_cid(user),
            changes={
                "thresholds": thresholds,
                "free_allowance": form["free_allowance"] == "on",
                "webhook_url": form["webhook_url"] or None,
            },
            allow_private=request.app.state.settings.webhook_allow_private,
        )
    except BillingError as error:
        session.rollback()
        return _caps_page(request, session, catalog, user, error=error, alert_form=form)
    return RedirectResponse("/portal/caps?alerts=saved#alerts", status_code=303)


def _cap_amount(raw: str) -> Decimal | None:
    return None if raw.strip().lower() in ("", "none") else _parse_money(raw, "amount")


def _preview_json(change: quota_service.CapChange, catalog: Catalog) -> dict[str, Any]:
    view = spend_cap_public(change.quota, catalog)
    return {
        "product": view.product,
        "cap": view.cap,
        "q_max": view.q_max,
        "unit": view.unit,
        "accepted_quantity": view.accepted_quantity,
        "effect": change.effect,
    }


@router.get("/portal/caps", response_class=HTMLResponse)
def caps_page(
    request: Request, session: SessionDep, catalog: CatalogDep, user: CustomerUser
) -> HTMLResponse:
    """Set, change or remove each product's cap; see what it buys before saving."""
    return _caps_page(request, session, catalog, user)


@router.get("/portal/caps/preview")
def caps_preview(
    session: SessionDep,
    catalog: CatalogDep,
    user: CustomerUser,
    product: Annotated[str, Query(max_length=64)],
    amount: Annotated[str, Query(max_length=40)] = "",
) -> JSONResponse:
    """What a cap would buy and do, for the form's live preview (nothing is saved)."""
    try:
        change = quota_service.preview_cap(
            connection=session.connection(),
            catalog=catalog,
            customer_id=_cid(user),
            product=product,
            amount=_cap_amount(amount),
            now=now(),
        )
    except BillingError as error:
        return JSONResponse({"error": error.message, "field": error.field}, status_code=200)
    return JSONResponse(_preview_json(change, catalog), headers={"Cache-Control": "no-store"})


@router.post("/portal/caps", response_model=None)
def caps_post(
    request: Request, session: SessionDep, catalog: CatalogDep, posted: CustomerPost
) -> Response:
    """`action=preview` shows what the cap would do; `save` sets it; `remove` removes it."""
    user = posted.user
    product, raw, action = posted.text("product"), posted.text("amount"), posted.text("action")
    form = {"product": product, "amount": raw}
    try:
        amount = None if action == "remove" else _cap_amount(raw)
        if action == "save" and amount is None:
            raise MissingField("enter an amount, or use Remove cap", field="amount")
        if action in ("save", "remove"):
            quota_service.set_cap(
                connection=session.connection(),
                catalog=catalog,
                customer_id=_cid(user),
                product=product,
                amount=amount,
                actor=user.actor,
                now=now(),
            )
            request.app.state.limited_list.invalidate()
            return RedirectResponse(f"/portal/caps?changed={product}#cap-{product}", 303)
        change = quota_service.preview_cap(
            connection=session.connection(),
            catalog=catalog,
            customer_id=_cid(user),
            product=product,
            amount=amount,
            now=now(),
        )
    except BillingError as error:
        session.rollback()
        return _caps_page(request, session, catalog, user, error=error, form=form)
    preview = _preview_json(change, catalog)
    return _caps_page(request, session, catalog, user, preview=preview, form=form)


# --- discount ----------------------------------------------------------------------------


def _discount_page(
    request: Request,
    session: SessionDep,
    catalog: Catalog,
    user: WebUser,
    *,
    review: dict[str, Any] | None = None,
    error: BillingError | None = None,
    form: dict[str, str] | None = None,
    done: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
) -> HTMLResponse:
    customer_id = _cid(user)
    context: dict[str, Any] = {
        "csrf": user.csrf,
        # NOTE: a single-use token per form shown: a resubmitted form (the back button, a
        # double click) creates nothing new and shows the first result (docs/portal.md).
        "form_token": secrets.token_urlsafe(18),
        "review": review,
        "error": None if error is None else {"field": error.field, "message": error.message},
        "form": form or {},
        "done": done,
        "schedule": catalog.schedule,
        "currency": catalog.currency,
    }
    if catalog.schedule is not None:
        connection = session.connection()
        if options is None:  # a review has just read them
            options = _options(session, catalog, user)
        current = _shown(commitment_queries.commitments(connection, catalog, customer_id))
        active = next((c for c in current["commitments"] if c["status"] == "active"), None)
        context.update(options=options, commitment=active, history=current["commitments"])
        if active is not None:
            starts = dt.datetime.fromisoformat(active["starts_at"])
            year, year_start, window_end = topup_window(
                starts, catalog.schedule.topup_months, now()
            )
            context["window"] = {
                "year": year + 1,
                "year_start": year_start.isoformat(),
                "ends": window_end.isoformat(),
                "open": now() < window_end,
            }
            credits = commitment_queries.credits(connection, catalog, customer_id)
            context["ledger"] = _shown(credits)
            added = commitment_queries.topped_up(connection, active["id"], year_start)
            if added > 0:
                chosen = Decimal(active["credit"])
                context["topped_up"] = display_amount(added, catalog.currency)
                context["credit_this_year"] = display_amount(chosen + added, catalog.currency)
    status = 200 if error is None else status_of(error)
    return AREA.page(
        request, user, "portal_discount.html", context, active="/portal/discount", status=status
    )


def _options(session: SessionDep, catalog: Catalog, user: WebUser) -> dict[str, Any]:
    """Every bracket priced for this customer's run rate, as the API answers it."""
    customer = _customer(session, user)
    return _shown(commitment_queries.options(session.connection(), catalog, customer, now()))


def _review(
    session: SessionDep, catalog: Catalog, user: WebUser, credit_raw: str, years_raw: str
) -> tuple[Decimal, int, dict[str, Any], dict[str, Any]]:
    """The chosen credit and term priced for this customer's run rate (nothing saved), and
    the options answer it was priced from."""
    if catalog.schedule is None:
        raise NoCommitmentSchedule("this catalogue offers no commitments", field="credit")
    credit = _parse_money(credit_raw, "credit")
    if not years_raw.isdigit():
        raise MissingField("choose a term", field="years")
    years = int(years_raw)
    options = _options(session, catalog, user)
    monthly = Decimal(options["monthly_usage"])
    try:
        quote = quote_commitment(catalog.schedule, credit, years, monthly)
    except BillingError as error:
        raise type(error)(error.message, field=error.field or "credit") from None
    shown = _shown(commitment_public(quote, catalog.currency))
    shown.update(_verdict(Decimal(shown["saving"]), catalog.currency))
    return credit, years, shown, options


def _verdict(saving: Decimal, currency: str) -> dict[str, str | None]:
    """A commitment's saving a year in words, for the review and the live preview; `loss` is
    the extra cost a year (display text) a customer must accept explicitly, or None."""
    if saving > 0:
        text = f"saves {display_amount(saving, currency)} a year against paying as you go"
        return {"verdict": text, "loss": None}
    if saving == 0:
        return {"verdict": "costs the same as paying as you go", "loss": None}
    extra = display_amount(-saving, currency)
    return {"verdict": f"costs {extra} more a year than paying as you go", "loss": extra}


@router.get("/portal/discount", response_class=HTMLResponse)
def discount_page(
    request: Request, session: SessionDep, catalog: CatalogDep, user: CustomerUser
) -> HTMLResponse:
    """The brackets priced for this customer, the recommended one highlighted, a form to
    commit; a running commitment with its ledger and top-up window."""
    return _discount_page(request, session, catalog, user)


@router.get("/portal/discount/preview")
def discount_preview(
    session: SessionDep,
    catalog: CatalogDep,
    user: CustomerUser,
    credit: Annotated[str, Query(max_length=40)] = "",
    years: Annotated[str, Query(max_length=4)] = "",
) -> JSONResponse:
    """The bracket and price of a credit amount and term, for the form's live update."""
    try:
        _, _, quote, _ = _review(session, catalog, user, credit, years)
    except BillingError as error:
        return JSONResponse({"error": error.message, "field": error.field})
    return JSONResponse(quote, headers={"Cache-Control": "no-store"})


def _first_result(
    session: SessionDep, user: WebUser, token: str, action: str, form: dict[str, str]
) -> dict[str, str] | None:
    """The result this form token already produced (a resubmitted form), or None once the
    token is claimed for this submission (in the request's transaction). A token sent again
    with other figures is IdempotencyError."""
    if not token:
        raise MissingField("the form is out of date: review again", field="form_token")
    stored = idempotency.claim(
        session.connection(),
        f"portal:{_cid(user)}",
        f"form:{token}",
        idempotency.fingerprint("POST", "/portal/discount", {"action": action, **form}),
        now(),
    )
    if stored is None:
        return None
    done = stored.body["done"]
    return done if isinstance(done, dict) else {"before": str(done), "number": "", "after": ""}


def _notice(before: str, number: str, after: str) -> dict[str, str]:
    """A notice naming an invoice: the page shows `number` as a link to the invoice."""
    return {"before": before, "number": number, "after": after}


def _remember(session: SessionDep, user: WebUser, token: str, done: dict[str, str]) -> None:
    """Store what this form token did, with the change it made."""
    idempotency.complete(
        session.connection(), f"portal:{_cid(user)}", f"form:{token}", 200, {"done": done}, now()
    )


@router.post("/portal/discount", response_model=None)
def discount_post(
    request: Request, session: SessionDep, catalog: CatalogDep, posted: CustomerPost
) -> Response:
    """`review` prices the choice; `confirm` starts the commitment; `topup_review` and
    `topup` add credit to the running one."""
    user = posted.user
    action = posted.text("action")
    form = {k: posted.text(k) for k in ("credit", "years", "topup")}
    try:
        if action in ("review", "confirm"):
            credit, years, quote, options = _review(
                session, catalog, user, form["credit"], form["years"]
            )
            reviewed = (posted.text("reviewed_credit"), posted.text("reviewed_years"))
            if action == "confirm" and reviewed != (form["credit"], form["years"]):
                action = "review"  # changed since it was reviewed: show the new figures first
            refused: BillingError | None = None
            if action == "confirm" and quote["loss"] and posted.text("accept_extra_cost") != "yes":
                # NOTE: a commitment dearer than paying as you go starts only when the customer
                # ticks the box that names the extra cost (docs/portal.md)
                refused = MissingField(
                    f"This commitment costs {quote['loss']} more a year than paying as you go "
                    "at your projected usage. Tick the box to accept that, or choose another.",
                    field="accept_extra_cost",
                )
                action = "review"
            if action == "review":
                return _discount_page(
                    request,
                    session,
                    catalog,
                    user,
                    review=quote,
                    form=form,
                    options=options,
                    error=refused,
                )
            first = _first_result(session, user, posted.text("form_token"), action, form)
            if first is not None:
                return _discount_page(request, session, catalog, user, done=first)
            outcome = commitments.start(
                session.connection(), catalog, _cid(user), credit, years, now()
            )
            done = _notice("Commitment started: ", outcome.invoices[0].number, " is its invoice.")
            _remember(session, user, posted.text("form_token"), done)
        elif action in ("topup_review", "topup"):
            amount = _parse_money(form["topup"], "topup")
            if action == "topup_review":
                review = {"topup": format_amount(amount, catalog.currency)}
                return _discount_page(request, session, catalog, user, review=review, form=form)
            first = _first_result(session, user, posted.text("form_token"), action, form)
            if first is not None:
                return _discount_page(request, session, catalog, user, done=first)
            outcome = commitments.topup(session.connection(), catalog, _cid(user), amount, now())
            done = _notice("Credit added: ", outcome.invoices[0].number, " is its invoice.")
            _remember(session, user, posted.text("form_token"), done)
        else:
            raise UnknownAction("unknown action", field="action")
    except BillingError as error:
        session.rollback()
        if error.field == "credit" and action in ("topup_review", "topup"):
            error.field = "topup"
        return _discount_page(request, session, catalog, user, error=error, form=form)
    return _discount_page(request, session, catalog, user, done=done)
