"""Signing in and out of the pages: link sign-in (customers and finance), the finance key
form, sign-out, and what a page answers to someone not signed in or a forged form post."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from billing.auth.models import Role
from billing.auth.service import authenticate
from billing.customers import service as customers_service
from billing.errors import NotFound
from billing.http.deps import SessionDep
from billing.web import signin
from billing.web.access import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    CsrfRejected,
    CustomerPost,
    FinancePost,
    PresessionForm,
    SecretDep,
    SignInRequired,
    clear_cookie,
    now,
    presession,
    set_cookie,
)
from billing.web.signin import CUSTOMER, FINANCE
from billing.web.templating import render

router = APIRouter(include_in_schema=False)
HOME = {CUSTOMER: "/portal", FINANCE: "/finance"}
NOT_VALID = "This sign-in link is not valid. Ask for a new one."


def _with_presession(
    request: Request, secret: bytes, template: str, context: dict[str, Any], status: int
) -> HTMLResponse:
    """A sign-in page whose form carries a CSRF token bound to the pre-sign-in cookie."""
    binding, new = presession(request)
    context = {**context, "csrf": signin.presession_csrf(secret, binding)}
    response = render(request, template, context, status=status)
    if new:
        set_cookie(request, response, PRESESSION_COOKIE, binding, max_age=3600)
    return response


def _link_page(
    request: Request, session: SessionDep, secret: bytes, kind: str, token: str
) -> HTMLResponse:
    check = signin.check_link(session.connection(), secret, token, now(), consume=False)
    problem = check.problem
    if problem is None and check.kind != kind:
        problem = NOT_VALID
    name = None
    if problem is None and check.customer_id:
        try:
            name = customers_service.get_customer(
                connection=session.connection(), customer_id=check.customer_id
            ).name
        except NotFound:
            name = check.customer_id
    context = {"kind": kind, "token": token, "problem": problem, "customer_name": name}
    return _with_presession(request, secret, "signin.html", context, 200 if not problem else 400)


def _use_link(
    request: Request, session: SessionDep, secret: bytes, kind: str, token: str
) -> Response:
    check = signin.check_link(session.connection(), secret, token, now(), consume=True)
    problem = check.problem or (NOT_VALID if check.kind != kind else None)
    if problem is not None:
        session.rollback()  # a link of the other area (portal, finance) stays unused
        context = {"kind": kind, "token": "", "problem": problem, "customer_name": None}
        return _with_presession(request, secret, "signin.html", context, 400)
    return _start(request, session, secret, kind, check.customer_id, None, "sign-in link")


def _start(
    request: Request,
    session: SessionDep,
    secret: bytes,
    kind: str,
    customer_id: str | None,
    key_id: int | None,
    via: str,
) -> Response:
    ttl = request.app.state.settings.session_ttl
    cookie = signin.start_session(
        session.connection(),
        secret,
        kind=kind,
        customer_id=customer_id,
        key_id=key_id,
        via=via,
        ttl=ttl,
        now=now(),
    )
    response = RedirectResponse(HOME[kind], status_code=303)
    set_cookie(request, response, SESSION_COOKIE, cookie, max_age=int(ttl.total_seconds()))
    clear_cookie(request, response, PRESESSION_COOKIE)
    return response


TokenQuery = Annotated[str, Query(max_length=300)]


@router.get("/portal/signin", response_class=HTMLResponse)
def portal_link(
    request: Request, session: SessionDep, secret: SecretDep, token: TokenQuery = ""
) -> HTMLResponse:
    """A customer's sign-in link: a page with a button, so link previews do not use it up."""
    return _link_page(request, session, secret, CUSTOMER, token)


@router.post("/portal/signin")
def portal_signin(
    request: Request, session: SessionDep, secret: SecretDep, form: PresessionForm
) -> Response:
    return _use_link(request, session, secret, CUSTOMER, str(form.get("token") or ""))


@router.get("/finance/signin", response_class=HTMLResponse)
def finance_link(
    request: Request, session: SessionDep, secret: SecretDep, token: TokenQuery = ""
) -> HTMLResponse:
    return _link_page(request, session, secret, FINANCE, token)


@router.post("/finance/signin")
def finance_signin(
    request: Request, session: SessionDep, secret: SecretDep, form: PresessionForm
) -> Response:
    return _use_link(request, session, secret, FINANCE, str(form.get("token") or ""))


@router.get("/finance/login", response_class=HTMLResponse)
def finance_login_form(request: Request, secret: SecretDep) -> HTMLResponse:
    """Sign in to the finance pages with a finance (or admin) API key."""
    return _with_presession(request, secret, "finance_login.html", {"problem": None}, 200)


@router.post("/finance/login")
def finance_login(
    request: Request, session: SessionDep, secret: SecretDep, form: PresessionForm
) -> Response:
    client = request.client.host if request.client else "unknown"
    wait = request.app.state.signin_limiter.allow(client)
    if wait:
        problem = f"Too many attempts. Try again in {wait} seconds."
        response = _with_presession(
            request, secret, "finance_login.html", {"problem": problem}, 429
        )
        response.headers["Retry-After"] = str(wait)
        return response
    key = authenticate(connection=session.connection(), key=str(form.get("key") or "").strip())
    if key is None or key.role not in (Role.FINANCE, Role.ADMIN):
        problem = "That key is not a live finance or admin API key."
        return _with_presession(request, secret, "finance_login.html", {"problem": problem}, 401)
    via = f"{key.role.value} key {key.key_id}"
    return _start(request, session, secret, FINANCE, None, key.key_id, via)


def _sign_out(request: Request, session: SessionDep, secret: bytes, kind: str) -> Response:
    signin.end_session(session.connection(), secret, request.cookies.get(SESSION_COOKIE), now())
    response = render(request, "message.html", _signed_out(kind))
    clear_cookie(request, response, SESSION_COOKIE)
    return response


def _signed_out(kind: str) -> dict[str, object]:
    again = "with a new link" if kind == CUSTOMER else "again at /finance/login"
    return {"title": "Signed out", "message": f"You are signed out. Sign in {again}."}


@router.post("/portal/signout")
def portal_signout(
    request: Request, session: SessionDep, secret: SecretDep, posted: CustomerPost
) -> Response:
    return _sign_out(request, session, secret, CUSTOMER)


@router.post("/finance/signout")
def finance_signout(
    request: Request, session: SessionDep, secret: SecretDep, posted: FinancePost
) -> Response:
    return _sign_out(request, session, secret, FINANCE)


def install(app: FastAPI) -> None:
    """How pages answer someone not signed in, and a form post without its CSRF token."""

    async def sign_in_required(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)
        if error.kind == FINANCE:
            return RedirectResponse("/finance/login", status_code=303)
        context = {
            "title": "Sign in to your billing portal",
            "message": "Open the sign-in link you were sent. Links work once and expire "
            "after a few minutes; if yours has, ask your billing contact for a new one.",
        }
        return render(request, "message.html", context, status=401)

    async def csrf_rejected(request: Request, error: Exception) -> Response:
        context = {
            "title": "Form expired",
            "message": "This form was not sent from a page of this site, or it has expired. "
            "Nothing was changed. Go back, reload the page, and try again.",
        }
        return render(request, "message.html", context, status=403)

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
