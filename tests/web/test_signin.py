"""Signing in to the pages: single-use expiring links, signed HttpOnly session cookies,
sign-out that really ends the session, finance keys, and CSRF on every form post."""

import datetime as dt
import threading

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlmodel import Session

from billing.app import create_app
from billing.auth.models import Role
from billing.auth.service import create_key, revoke_key
from billing.settings import Settings
from billing.web import signin
from billing.web.access import SESSION_COOKIE
from tests.conftest import TIERS, bearer, run_together
from tests.metering.helpers import add_customer
from tests.web.helpers import csrf_of, make_link, sign_in, use_link


@pytest.fixture
def acme(engine):
    with Session(engine) as session:
        add_customer(session, "acme")
        add_customer(session, "globex")
    return "acme"


def test_a_link_signs_in_once_with_a_safe_session_cookie(api, engine, acme):
    token = make_link(engine, "acme")
    page = api.get("/portal/signin", params={"token": token})
    assert page.status_code == 200
    assert "Customer acme" in page.text  # whose portal, before pressing anything
    assert page.headers["referrer-policy"] == "no-referrer"  # the token never leaks on
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    answer = api.post(
        "/portal/signin",
        data={"csrf_token": csrf_of(page.text), "token": token},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/portal")
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # plain http here; https below
    overview = api.get("/portal")
    assert overview.status_code == 200
    assert overview.headers["cache-control"] == "no-store"
    assert "<h1>Customer acme</h1>" in overview.text

    api.cookies.clear()
    again = api.get("/portal/signin", params={"token": token})
    assert again.status_code == 400
    assert "already been used" in again.text


def test_opening_the_link_does_not_use_it_up(api, engine, acme):
    """Link previews (chat apps, mail scanners) fetch the page; only the button signs in."""
    token = make_link(engine, "acme")
    for _ in range(3):
        assert api.get("/portal/signin", params={"token": token}).status_code == 200
    assert use_link(api, token).status_code == 303


def test_expired_forged_and_wrong_area_links_are_refused(api, engine, acme):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    expired = make_link(engine, "acme", ttl=dt.timedelta(minutes=15), now=past)
    page = api.get("/portal/signin", params={"token": expired})
    assert (page.status_code, "has expired" in page.text) == (400, True)

    token = make_link(engine, "acme")
    random_part, expires, signature = token.split(".")
    for forged in (
        f"{random_part}.{int(expires) + 86400}.{signature}",  # a longer life
        f"{random_part}.{expires}.{'0' * 64}",
        "not-a-token",
        "",
    ):
        page = api.get("/portal/signin", params={"token": forged})
        assert (page.status_code, "not valid" in page.text) == (400, True), forged
    # A customer's link does not open the finance pages.
    assert "not valid" in api.get("/finance/signin", params={"token": token}).text
    assert use_link(api, token).status_code == 303  # and it still works where it belongs


def test_a_link_is_used_once_even_when_two_presses_race(engine, acme):
    token = make_link(engine, "acme")
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        secret = signin.load_secret(connection, None, now)
    outcomes = []
    barrier = threading.Barrier(4)

    def press():
        barrier.wait()
        with engine.begin() as connection:
            check = signin.check_link(connection, secret, token, now, consume=True)
        outcomes.append(check.problem)

    run_together(press, [()] * 4)
    assert outcomes.count(None) == 1
    assert all("already been used" in p for p in outcomes if p is not None)


def test_signing_out_ends_the_session_even_for_a_copied_cookie(api, engine, acme):
    csrf = sign_in(api, engine, "acme")
    copied = api.cookies.get(SESSION_COOKIE)
    answer = api.post("/portal/signout", data={"csrf_token": csrf})
    assert answer.status_code == 200
    assert "signed out" in answer.text
    assert api.get("/portal").status_code == 401
    thief = TestClient(api.app)
    thief.cookies.set(SESSION_COOKIE, copied)
    assert thief.get("/portal").status_code == 401


def test_sessions_expire(api, engine, acme):
    sign_in(api, engine, "acme")
    assert api.get("/portal").status_code == 200
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=8, minutes=1)  # BILLING_SESSION_TTL
    with freeze_time(later):
        page = api.get("/portal")
    assert page.status_code == 401
    assert "Sign in to your billing portal" in page.text
    # an end customer is told what to do, not which command their vendor runs
    assert "ask your billing contact for a new one" in page.text
    assert "billing portal-link" not in page.text


def test_a_tampered_session_cookie_is_not_a_session(api, engine, acme):
    sign_in(api, engine, "acme")
    value = api.cookies.get(SESSION_COOKIE)
    random_part, signature = value.split(".")
    api.cookies.clear()
    api.cookies.set(SESSION_COOKIE, f"{random_part[:-1]}x.{signature}")
    assert api.get("/portal").status_code == 401


def test_cookies_are_secure_behind_https(engine, catalog, database_url, acme):
    settings = Settings(
        tiers_dir=TIERS,
        database_url=database_url,
        scheduler=False,
        public_url="https://billing.example.com",
    )
    app = create_app(settings, catalog, engine)
    with TestClient(app, base_url="https://billing.example.com") as client:
        answer = use_link(client, make_link(engine, "acme"))
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "secure" in cookie.lower()


def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(api, engine, acme, keys):
    csrf = sign_in(api, engine, "acme")
    form = {"product": "product_analytics", "amount": "10", "action": "save"}
    assert api.post("/portal/caps", data=form).status_code == 403
    assert api.post("/portal/caps", data={**form, "csrf_token": "x" * 64}).status_code == 403
    other = TestClient(api.app)  # a real token, but of another session
    other_csrf = sign_in(other, engine, "globex")
    assert api.post("/portal/caps", data={**form, "csrf_token": other_csrf}).status_code == 403
    for path, data in (
        ("/portal/signout", {}),
        ("/portal/discount", {"credit": "30000", "years": "1", "action": "confirm"}),
    ):
        answer = api.post(path, data=data)
        assert answer.status_code == 403, path
        assert "Nothing was changed" in answer.text
    caps = api.get("/v1/customers/acme/spend-caps", headers=bearer(keys["admin"])).json()
    assert all(c["cap"] is None for c in caps["spend_caps"])
    assert api.get("/portal").status_code == 200  # still signed in: sign-out needed its token
    assert api.post("/portal/caps", data={**form, "csrf_token": csrf}).status_code == 200


def test_sign_in_forms_carry_a_csrf_token_too(api, engine, acme, keys):
    token = make_link(engine, "acme")
    answer = api.post("/portal/signin", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 403
    assert api.post("/finance/login", data={"key": keys["finance"]}).status_code == 403
    assert use_link(api, token).status_code == 303  # the refused post did not use it up


def test_finance_signs_in_with_a_finance_or_admin_key_only(api, engine, acme, keys):
    form = api.get("/finance/login")
    csrf = csrf_of(form.text)
    with Session(engine) as session:
        customer_key, _ = create_key(
            connection=session.connection(), role=Role.CUSTOMER, customer_id="acme"
        )
        session.commit()
    for key in (keys["ingest"], customer_key, "bk_nonsense"):
        refused = api.post("/finance/login", data={"csrf_token": csrf, "key": key})
        assert refused.status_code == 401
        assert "not a live finance or admin API key" in refused.text
    assert api.get("/finance/invoices", follow_redirects=False).headers["location"] == (
        "/finance/login"
    )
    answer = api.post(
        "/finance/login", data={"csrf_token": csrf, "key": keys["finance"]}, follow_redirects=False
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/finance")
    assert api.get("/finance/invoices").status_code == 200
    # A customer session is not a finance session, and the other way round.
    assert api.get("/portal").status_code == 401
    with Session(engine) as session:
        revoke_key(connection=session.connection(), prefix_or_id=keys["finance"][:12])
        session.commit()
    gone = api.get("/finance/invoices", follow_redirects=False)
    assert (gone.status_code, gone.headers["location"]) == (303, "/finance/login")


def test_a_session_cookie_is_not_an_api_key(api, engine, acme):
    sign_in(api, engine, "acme")
    assert api.get("/v1/customers/acme/quota").status_code == 401


def test_the_generated_signing_key_is_made_once_and_shared(engine):
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        first = signin.load_secret(connection, None, now)
    with engine.begin() as connection:
        assert signin.load_secret(connection, None, now) == first
        assert signin.load_secret(connection, "k" * 40, now) == b"k" * 40
    assert len(first) >= 32


def test_a_secret_key_shorter_than_32_characters_is_refused():
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings(secret_key="short")
