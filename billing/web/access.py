"""Who is signed in to the pages, and CSRF checks on every form post (FastAPI glue over
`billing.web.signin`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from billing.errors import InvalidText
from billing.http.deps import EngineDep, SessionDep
from billing.parsing import UNSTORABLE, storable
from billing.web import signin
from billing.web.signin import CUSTOMER, FINANCE, WebUser

SESSION_COOKIE = "billing_session"
PRESESSION_COOKIE = "billing_presession"


class SignInRequired(Exception):
    """No live session of `kind`: the pages answer with a way to sign in."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class CsrfRejected(Exception):
    """A form post without the right CSRF token: 403, nothing changed."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def get_secret(request: Request, engine: EngineDep) -> bytes:
    """The signing key: configured, or generated once and kept in the database.

    Loaded in a transaction of its own, committed before this process remembers the key:
    a request that fails later must not leave a key in memory that the database lacks.
    """
    secret: bytes | None = getattr(request.app.state, "web_secret", None)
    if secret is None:
        configured = request.app.state.settings.secret_key
        with engine.begin() as connection:
            secret = signin.load_secret(connection, configured, now())
        request.app.state.web_secret = secret
    return secret


SecretDep = Annotated[bytes, Depends(get_secret)]


def _user(kind: str) -> Any:
    def signed_in(request: Request, session: SessionDep, secret: SecretDep) -> WebUser:
        cookie = request.cookies.get(SESSION_COOKIE)
        user = signin.session_user(session.connection(), secret, cookie, now())
        if user is None or user.kind != kind:
            raise SignInRequired(kind)
        return user

    return signed_in


CustomerUser = Annotated[WebUser, Depends(_user(CUSTOMER))]
FinanceUser = Annotated[WebUser, Depends(_user(FINANCE))]


@dataclass(frozen=True, slots=True)
class Posted:
    """A form post that carried the session's CSRF token."""

    user: WebUser
    form: FormData

    def text(self, name: str) -> str:
        """The field's text, stripped ("" when absent); InvalidText(field=name) for text no
        database can store (a NUL, a lone surrogate), so it never reaches one."""
        value = self.form.get(name)
        return _storable(name, value.strip() if isinstance(value, str) else "")

    def texts(self, name: str) -> list[str]:
        """Every value of a repeated field (ticked checkboxes), checked as `text` checks."""
        values = self.form.getlist(name)
        return [_storable(name, v.strip()) for v in values if isinstance(v, str)]


def _storable(name: str, text: str) -> str:
    """`text` of the form field `name`; InvalidText when no database can store it."""
    if not storable(text):
        raise InvalidText(f"{name}: {UNSTORABLE}", field=name)
    return text


def _posted(kind: str) -> Any:
    signed_in = Depends(_user(kind))

    async def checked(request: Request, user: WebUser = signed_in) -> Posted:
        form = await request.form()
        token = form.get("csrf_token")
        if not signin.csrf_matches(user.csrf, token if isinstance(token, str) else None):
            raise CsrfRejected()
        return Posted(user, form)

    return checked


CustomerPost = Annotated[Posted, Depends(_posted(CUSTOMER))]
FinancePost = Annotated[Posted, Depends(_posted(FINANCE))]


def presession(request: Request) -> tuple[str, bool]:
    """The pre-sign-in cookie's value binding a sign-in form's CSRF token, and whether it is
    new (then the page must set it with `set_cookie`)."""
    value = request.cookies.get(PRESESSION_COOKIE)
    if value:
        return value, False
    return signin.new_presession(), True


async def presession_form(request: Request, secret: SecretDep) -> FormData:
    """A sign-in form post, checked against the pre-sign-in cookie's CSRF token."""
    form = await request.form()
    value = request.cookies.get(PRESESSION_COOKIE)
    token = form.get("csrf_token")
    expected = signin.presession_csrf(secret, value) if value else None
    if not signin.csrf_matches(expected, token if isinstance(token, str) else None):
        raise CsrfRejected()
    return form


PresessionForm = Annotated[FormData, Depends(presession_form)]


def secure_cookies(request: Request) -> bool:
    """Secure cookies when people reach us over https (directly or through BILLING_PUBLIC_URL)."""
    public: str = request.app.state.settings.public_url
    return request.url.scheme == "https" or public.startswith("https://")


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=secure_cookies(request)
    )
