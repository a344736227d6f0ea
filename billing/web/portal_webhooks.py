"""The portal's webhook endpoints (`/portal/webhooks`): a customer lists, adds, tests,
rotates, disables, enables and deletes its own endpoints, and reads and replays their
deliveries (docs/webhooks.md, docs/portal.md). Every change goes through the same service
as `POST /v1/webhook-endpoints` and its siblings, with the same checks (the URL's rules, the
event types, the limits); deliveries show the reason a customer may read, never the
detail of an internal address. Another customer's endpoint is "not found", like an unknown
one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from billing.alerts.webhooks import check_url
from billing.errors import BillingError, MissingField, NotFound, UnknownAction
from billing.http.deps import SessionDep
from billing.http.errors import status_of
from billing.notifications import endpoints
from billing.notifications.endpoints import DEFAULT_OVERLAP, MAX_DESCRIPTION
from billing.notifications.events import EVENT_TYPES
from billing.notifications.public import delivery_public, endpoint_public
from billing.web.access import CustomerPost, CustomerUser, now
from billing.web.portal import AREA
from billing.web.signin import WebUser

router = APIRouter(include_in_schema=False)
HOME = "/portal/webhooks"
# What a customer's endpoint can receive: every type but the test ping (sent on request)
# and the operators' own (an endpoint disabled reaches admin endpoints only).
CUSTOMER_TYPES = tuple(t for t in EVENT_TYPES if t not in ("ping", "webhook_endpoint.disabled"))
ACTIONS = ("test", "rotate", "disable", "enable", "delete", "delete_confirmed", "replay")


def _cid(user: WebUser) -> str:
    assert user.customer_id is not None
    return user.customer_id


def _own(session: SessionDep, user: WebUser, endpoint_id: str) -> Any:
    """The signed-in customer's endpoint; NotFound for another customer's or an admin's."""
    row = endpoints.get(session.connection(), endpoint_id)
    if row.customer_id != _cid(user):
        raise NotFound(f"no webhook endpoint {endpoint_id!r}", field="endpoint")
    return row


def _shown(row: Any, secret: str | None = None) -> dict[str, Any]:
    return endpoint_public(row, secret).model_dump(mode="json")


def _list_page(
    request: Request,
    session: SessionDep,
    user: WebUser,
    *,
    error: BillingError | None = None,
    form: dict[str, Any] | None = None,
    made: dict[str, Any] | None = None,
) -> HTMLResponse:
    rows = endpoints.listed(session.connection(), _cid(user), everyone=False)
    context = {
        "csrf": user.csrf,
        "endpoints": [_shown(r) for r in rows],
        "types": [(name, EVENT_TYPES[name]) for name in CUSTOMER_TYPES],
        "form": form or {"events": []},
        "error": None if error is None else {"field": error.field, "message": error.message},
        "made": made,
        "max_description": MAX_DESCRIPTION,
        "done": request.query_params.get("done"),
    }
    status = 200 if error is None else status_of(error)
    return AREA.page(request, user, "portal_webhooks.html", context, active=HOME, status=status)


@router.get(HOME, response_class=HTMLResponse)
def webhooks_page(request: Request, session: SessionDep, user: CustomerUser) -> HTMLResponse:
    """The customer's endpoints, each with its status and actions, and a form to add one."""
    return _list_page(request, session, user)


@router.post(HOME, response_model=None)
def add_endpoint(request: Request, session: SessionDep, posted: CustomerPost) -> Response:
    """Add an endpoint: its URL (checked as the API checks it), a description and the event
    types ticked ("All events" or some). The page shows its signing secret once."""
    user = posted.user
    form: dict[str, Any] = {"url": "", "description": "", "events": []}
    try:
        form = {
            "url": posted.text("url"),
            "description": posted.text("description"),
            "events": posted.texts("events"),
        }
        if not form["url"]:
            raise MissingField("enter the URL events are sent to", field="url")
        if not form["events"]:
            raise MissingField("tick at least one event type, or All events", field="events")
        url = check_url(form["url"], request.app.state.settings.webhook_allow_private)
        row, secret = endpoints.create(
            session.connection(),
            url=url,
            events=form["events"],
            customer=_cid(user),
            description=form["description"],
            actor=user.actor,
            now=now(),
        )
    except BillingError as error:
        session.rollback()
        # The message is for a person, next to its field: no field path in front of it.
        if error.field:
            error.message = error.message.removeprefix(f"{error.field}: ")
        if error.field == "webhook_url":  # check_url names the alert setting's field
            error.field = "url"
        if error.field and error.field.startswith("events"):
            error.field = "events"
        return _list_page(request, session, user, error=error, form=form)
    made = {**_shown(row, secret), "what": "added"}
    return _list_page(request, session, user, made=made)


def _detail_page(
    request: Request,
    session: SessionDep,
    user: WebUser,
    row: Any,
    *,
    secret: str | None = None,
    done: str | None = None,
    error: BillingError | None = None,
) -> HTMLResponse:
    rows = endpoints.deliveries(session.connection(), row.id)
    context = {
        "csrf": user.csrf,
        "endpoint": _shown(row, secret),
        "deliveries": [delivery_public(r, detail=False).model_dump(mode="json") for r in rows],
        "types": EVENT_TYPES,
        "done": done or request.query_params.get("done"),
        "error": None if error is None else {"field": error.field, "message": error.message},
        "overlap_hours": int(DEFAULT_OVERLAP / dt.timedelta(hours=1)),
    }
    status = 200 if error is None else status_of(error)
    return AREA.page(request, user, "portal_webhook.html", context, active=HOME, status=status)


def _not_found(request: Request, user: WebUser, endpoint_id: str) -> HTMLResponse:
    missing = {"title": "Webhook endpoint not found", "message": f"No endpoint {endpoint_id}."}
    return AREA.page(request, user, "message.html", missing, active=HOME, status=404)


@router.get(HOME + "/{endpoint_id}", response_class=HTMLResponse)
def endpoint_page(
    endpoint_id: str, request: Request, session: SessionDep, user: CustomerUser
) -> HTMLResponse:
    """One endpoint: its settings, its actions and its latest 100 deliveries (newest first),
    each with what became of it and a Replay button."""
    try:
        row = _own(session, user, endpoint_id)
    except NotFound:
        return _not_found(request, user, endpoint_id)
    return _detail_page(request, session, user, row)


@router.post(HOME + "/{endpoint_id}", response_model=None)
def endpoint_action(
    endpoint_id: str, request: Request, session: SessionDep, posted: CustomerPost
) -> Response:
    """`action` is test (a ping to this endpoint only), rotate (a new secret, shown once;
    the old one signs beside it for 24 hours), disable, enable, delete (asks to confirm;
    delete_confirmed deletes), or replay (`delivery`: one of this endpoint's deliveries,
    due now)."""
    user = posted.user
    try:
        row = _own(session, user, endpoint_id)
    except NotFound:
        return _not_found(request, user, endpoint_id)
    connection = session.connection()
    at = now()
    action = ""
    try:
        action = posted.text("action")
        if action not in ACTIONS:
            raise UnknownAction(f"unknown action {action!r}", field="action")
        if action == "delete":  # asks first: its deliveries go with it
            return _detail_page(request, session, user, row, done="confirm_delete")
        if action == "delete_confirmed":
            endpoints.remove(connection, row.id)
            return RedirectResponse(f"{HOME}?done=deleted", status_code=303)
        if action == "rotate":
            row, secret = endpoints.rotate(connection, row.id, DEFAULT_OVERLAP, at)
            return _detail_page(request, session, user, row, secret=secret, done="rotate")
        if action == "test":
            endpoints.test_event(connection, row.id, at)
        elif action in ("disable", "enable"):
            endpoints.set_status(connection, row.id, action == "enable")
        else:
            delivery = posted.text("delivery")
            if not delivery.isdigit():
                raise NotFound(f"no delivery {delivery!r} of this endpoint", field="delivery")
            endpoints.replay(connection, row.id, int(delivery), at)
    except BillingError as error:
        session.rollback()
        return _detail_page(request, session, user, _own(session, user, endpoint_id), error=error)
    return RedirectResponse(f"{HOME}/{row.id}?done={action}#done", status_code=303)
