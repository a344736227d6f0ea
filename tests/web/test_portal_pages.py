"""The customer portal without a browser: what each page shows, that its forms work without
JavaScript (preview, then save; review, then confirm), and that a customer only ever
reaches its own data — by URL, by form field, and through the API."""

import re
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from billing.auth.models import Role
from billing.auth.service import create_key
from tests.conftest import bearer
from tests.web.helpers import sign_in


@pytest.fixture
def acme_page(api, engine, seeded):
    """The api client signed in as acme; its CSRF token."""
    return sign_in(api, engine, "acme")


def invoice_ids(engine, customer):
    with engine.connect() as connection:
        return [
            row.id
            for row in connection.execute(
                text("SELECT id FROM invoice WHERE customer_id = :c ORDER BY number"),
                {"c": customer},
            )
        ]


def test_the_overview_shows_usage_caps_projection_alerts_credits_and_invoices(
    api, engine, catalog, acme_page, keys
):
    page = api.get("/portal").text
    quota = api.get("/v1/customers/acme/quota", headers=bearer(keys["admin"])).json()
    replay = next(p for p in quota["products"] if p["product"] == "session_replay")
    section = page[page.index('id="usage-session_replay"') :]
    section = section[: section.index("</section>")]
    assert "15,000 recordings" in section  # the limit: 15,000 recordings cost the $50 cap
    assert "50.00 USD = 15,000 recordings" in section
    assert 'class="badge limited"' in section
    assert replay["status"] == "limited"
    assert 'class="bar-cap"' in section  # the cap marked on the bar
    assert "5,000 (0 left)" in section  # the free allowance, used up
    analytics = page[page.index('id="usage-product_analytics"') :]
    assert "3,000,000 events" in analytics[: analytics.index("</section>")]

    # The projected total is the sum of the products' projected amounts shown.
    total = re.search(r'id="projected-total">([\d,.]+) USD', page).group(1)
    amounts = re.findall(r"<dt>Projected</dt><dd>[\d,.]+ \w+, ([\d,.]+) USD", page)
    assert len(amounts) == len(catalog.products)
    assert sum(D(a.replace(",", "")) for a in amounts) == D(total.replace(",", ""))
    assert D(total.replace(",", "")) >= D("84.30") + D("50.00")  # at least what is used so far
    assert "Session replay: the free allowance of 5,000" in page  # an alert fired
    assert 'id="credit-balance">0.00 USD' in page
    [old] = invoice_ids(engine, "acme")
    assert f'href="/portal/invoices/{old}"' in page
    detail = api.get(f"/portal/invoices/{old}")
    assert detail.status_code == 200
    assert "INV-000001" in detail.text
    assert "Amount due" in detail.text
    assert "1,000,000 – 2,000,000 at 0.00005" in detail.text  # the tier breakdown


def test_a_cap_is_previewed_in_words_then_saved_and_audited(api, engine, acme_page, keys):
    csrf = acme_page
    lower = {"csrf_token": csrf, "product": "session_replay", "amount": "20", "action": "preview"}
    preview = api.post("/portal/caps", data=lower)
    assert preview.status_code == 200
    effect = re.search(r'class="effect">([^<]+)<', preview.text).group(1)
    assert effect.startswith("Lowered below what this period already accrued (15,000 recordings")
    assert "applies in full from the next period" in effect
    assert 'class="qmax">9,000<' in preview.text  # what $20 buys
    admin = bearer(keys["admin"])
    caps = api.get("/v1/customers/acme/spend-caps", headers=admin).json()["spend_caps"]
    assert next(c for c in caps if c["product"] == "session_replay")["cap"] == "50.00"  # unsaved

    raised = {**lower, "amount": "1,250.00", "action": "save"}
    saved = api.post("/portal/caps", data=raised, follow_redirects=False)
    assert saved.status_code == 303
    page = api.get(saved.headers["location"])
    assert "Saved. Takes effect at once: up to 540,000 recordings" in page.text
    caps = api.get("/v1/customers/acme/spend-caps", headers=admin).json()["spend_caps"]
    replay = next(c for c in caps if c["product"] == "session_replay")
    assert (replay["cap"], replay["q_max"]) == ("1250.00", "540000")
    assert 'class="qmax-now">540,000<' in page.text
    changes = api.get("/v1/customers/acme/spend-caps/changes", headers=admin).json()["changes"]
    assert changes[0]["changed_by"] == "customer portal (sign-in link)"
    assert (changes[0]["old_amount"], changes[0]["new_amount"]) == ("50.00", "1250.00")

    removed = {**lower, "action": "remove"}
    api.post("/portal/caps", data=removed)
    caps = api.get("/v1/customers/acme/spend-caps", headers=admin).json()["spend_caps"]
    assert next(c for c in caps if c["product"] == "session_replay")["cap"] is None


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("ten", "an amount"),
        ("12.345", "at most 2 decimal places"),
        ("-5", ""),
        ("", "enter an amount"),
    ],
)
def test_a_bad_cap_says_why_next_to_the_field_and_saves_nothing(
    api, engine, acme_page, keys, amount, message
):
    form = {"csrf_token": acme_page, "product": "product_analytics", "amount": amount}
    answer = api.post("/portal/caps", data={**form, "action": "save"})
    assert answer.status_code == 422
    error = re.search(r'<p class="error" role="alert">([^<]+)<', answer.text).group(1)
    assert message in error
    assert 'aria-invalid="true"' in answer.text
    caps = api.get("/v1/customers/acme/spend-caps", headers=bearer(keys["admin"])).json()
    assert next(c for c in caps["spend_caps"] if c["product"] == "product_analytics")["cap"] is None


def test_the_live_preview_answers_the_same_words(api, acme_page):
    answer = api.get("/portal/caps/preview", params={"product": "session_replay", "amount": "20"})
    body = answer.json()
    assert (body["q_max"], body["cap"]) == ("9000", "20.00")
    assert body["effect"].startswith("Lowered below what this period already accrued")
    bad = api.get("/portal/caps/preview", params={"product": "nope", "amount": "20"}).json()
    assert bad["field"] == "product"


def test_choosing_a_discount_reviews_then_confirms_then_tops_up(api, engine, acme_page, keys):
    csrf = acme_page
    page = api.get("/portal/discount").text
    options = api.get("/v1/customers/acme/commitment/options", headers=bearer(keys["admin"]))
    expected = [o["recommended"] for o in options.json()["options"]]
    assert page.count('<tr class="recommended">') == expected.count(True)
    assert page.count("</tr>") >= len(expected)

    choice = {"csrf_token": csrf, "credit": "30,000", "years": "1"}
    review = api.post("/portal/discount", data={**choice, "action": "review"})
    assert review.status_code == 200
    assert 'id="live-bracket">20 % off<' in review.text
    assert 'id="live-price">24,000.00 USD<' in review.text
    assert 'id="confirm"' in review.text

    # Changing the amount after the review goes back to a review, never straight to a charge.
    changed = {**choice, "credit": "60000", "reviewed_credit": "30,000", "reviewed_years": "1"}
    again = api.post("/portal/discount", data={**changed, "action": "confirm"})
    assert 'id="live-bracket">25 % off<' in again.text
    admin = bearer(keys["admin"])
    assert api.get("/v1/customers/acme/commitment", headers=admin).json()["commitments"] == []

    reviewed = {
        **choice,
        "reviewed_credit": "30,000",
        "reviewed_years": "1",
        "form_token": form_token(review.text),
    }
    # 30,000 a year is more than this usage costs paying as you go: said in words, with the
    # figures, and nothing starts until the customer ticks the box that names the extra cost
    assert 'id="loss"' in review.text
    assert re.search(r"costs [\d,]+\.\d\d USD more a year than paying as you go", review.text)
    unaccepted = api.post("/portal/discount", data={**reviewed, "action": "confirm"})
    assert unaccepted.status_code == 422
    assert 'id="loss-error"' in unaccepted.text
    assert 'name="accept_extra_cost"' in unaccepted.text
    assert api.get("/v1/customers/acme/commitment", headers=admin).json()["commitments"] == []
    reviewed["accept_extra_cost"] = "yes"
    done = api.post("/portal/discount", data={**reviewed, "action": "confirm"})
    assert done.status_code == 200
    started = re.search(
        r'id="done">Commitment started: <a href="/portal/invoices/(INV-\d{6})">INV-\d{6}</a>',
        done.text,
    )
    assert started
    assert api.get(f"/portal/invoices/{started.group(1)}").status_code == 200
    assert "<h1>Your discount</h1>" in done.text
    assert "Best for your usage" not in done.text
    assert '<tr class="recommended">' not in done.text
    # The same form sent again (a double click, the back button): the first result, once
    resent = api.post("/portal/discount", data={**reviewed, "action": "confirm"})
    assert (resent.status_code, started.group(0) in resent.text) == (200, True)
    [commitment] = api.get("/v1/customers/acme/commitment", headers=admin).json()["commitments"]
    assert (commitment["credit"], commitment["years"], commitment["status"]) == (
        "30000.00",
        1,
        "active",
    )
    assert commitment["discount_percent"] == "20"
    assert 'id="ledger"' in done.text
    assert "Top up" in done.text
    assert 'id="commit-form"' not in done.text  # one running commitment at a time

    topup = {"csrf_token": csrf, "topup": "6000"}
    checked = api.post("/portal/discount", data={**topup, "action": "topup_review"})
    assert "Add 6,000.00 USD of credit at 20 % off?" in checked.text
    topup["form_token"] = form_token(checked.text)
    added = api.post("/portal/discount", data={**topup, "action": "topup"})
    assert 'Credit added: <a href="/portal/invoices/INV-' in added.text
    credits = api.get("/v1/customers/acme/credits", headers=admin).json()
    assert credits["balance"] == "8500.00"  # 2,500.00 released this month + 6,000.00
    assert 'id="balance">8,500.00 USD' in added.text
    # the top-up shows in the year's credit: 30,000 chosen + 6,000 added
    year = "+ 6,000.00 USD topped up this contract year = <strong>36,000.00 USD</strong>"
    assert year in added.text
    for _ in range(2):  # resubmitted: nothing new, the first result again
        readded = api.post("/portal/discount", data={**topup, "action": "topup"})
        assert 'Credit added: <a href="/portal/invoices/INV-' in readded.text
    assert api.get("/v1/customers/acme/credits", headers=admin).json()["balance"] == "8500.00"
    changed_topup = api.post("/portal/discount", data={**topup, "topup": "7000", "action": "topup"})
    assert changed_topup.status_code == 422  # the token was used for another amount
    assert api.get("/v1/customers/acme/credits", headers=admin).json()["balance"] == "8500.00"

    reviewed["form_token"] = form_token(added.text)  # a new form: a second commitment
    twice = api.post("/portal/discount", data={**reviewed, "action": "confirm"})
    assert twice.status_code == 409
    assert len(api.get("/v1/customers/acme/commitment", headers=admin).json()["commitments"]) == 1


def test_a_choice_below_the_minimum_is_refused_with_the_reason(api, acme_page):
    choice = {"csrf_token": acme_page, "credit": "100", "years": "1", "action": "review"}
    answer = api.post("/portal/discount", data=choice)
    assert answer.status_code == 422
    assert "3000" in answer.text.replace(",", "")


def test_a_customer_never_reaches_another_customers_data(api, engine, acme_page, keys):
    [theirs] = invoice_ids(engine, "globex")
    for path in (f"/portal/invoices/{theirs}", f"/v1/invoices/{theirs}"):
        answer = api.get(path)
        assert answer.status_code in (401, 404), path
        assert "500,000" not in answer.text
        assert "globex" not in answer.text.lower()
    # A form field naming another customer is ignored: the session says who you are.
    form = {
        "csrf_token": acme_page,
        "product": "product_analytics",
        "amount": "7",
        "action": "save",
        "customer": "globex",
        "customer_id": "globex",
    }
    api.post("/portal/caps", data=form)
    admin = bearer(keys["admin"])
    for customer, expected in (("acme", "7.00"), ("globex", None)):
        caps = api.get(f"/v1/customers/{customer}/spend-caps", headers=admin).json()["spend_caps"]
        assert next(c for c in caps if c["product"] == "product_analytics")["cap"] == expected
    # Query parameters naming another customer change nothing either.
    preview = api.get(
        "/portal/caps/preview",
        params={"product": "session_replay", "amount": "9", "customer": "globex"},
    ).json()
    assert preview["accepted_quantity"] == "15000"  # acme's usage, not globex's
    # And through the API, with acme's own key.
    with Session(engine) as session:
        acme_key, _ = create_key(
            connection=session.connection(), role=Role.CUSTOMER, customer_id="acme"
        )
        session.commit()
    for method, path in (
        ("GET", "/v1/customers/globex/quota"),
        ("GET", "/v1/customers/globex/invoices"),
        ("GET", f"/v1/invoices/{theirs}"),
        ("GET", "/v1/customers/globex/credits"),
        ("PUT", "/v1/customers/globex/spend-caps/product_analytics"),
        ("POST", "/v1/customers/globex/commitment"),
    ):
        body = {"amount": "1.00"} if method == "PUT" else {"credit": "30000", "years": 1}
        answer = api.request(method, path, headers=bearer(acme_key), json=body)
        assert answer.status_code == 403, (path, answer.text)


def test_pages_need_a_session_and_say_how_to_get_one(api, seeded):
    anonymous = TestClient(api.app)
    for path in ("/portal", "/portal/caps", "/portal/discount", "/portal/caps/preview?product=x"):
        answer = anonymous.get(path)
        assert answer.status_code == 401, path
        assert "ask your billing contact for a new one" in answer.text
        assert "billing portal-link" not in answer.text  # no vendor command for an end customer


def form_token(page: str) -> str:
    """The single-use token of the forms on a portal page."""
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    assert found, "the page has no form token"
    return found.group(1)


def test_a_customer_sets_its_alerts_in_the_portal(api, acme_page, keys):
    """Thresholds, the free-allowance alert and the webhook, CSRF-protected and checked as
    the API checks them; what is saved is what the API then reads."""
    page = api.get("/portal/caps").text
    assert 'id="alert-settings"' in page
    form = {
        "csrf_token": acme_page,
        "thresholds": "80, 50%",
        "free_allowance": "on",
        "webhook_url": "https://hooks.example.com/billing",
    }
    saved = api.post("/portal/alerts", data=form, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (
        303,
        "/portal/caps?alerts=saved#alerts",
    )
    shown = api.get(saved.headers["location"]).text
    assert 'id="alerts-saved"' in shown
    assert 'value="50, 80"' in shown  # sorted as numbers
    stored = api.get("/v1/customers/acme/alert-settings", headers=bearer(keys["admin"])).json()
    assert stored["thresholds"] == ["50", "80"]
    assert stored["webhook_url"] == "https://hooks.example.com/billing"
    for bad, says in (
        ({"thresholds": "150"}, "threshold"),
        ({"thresholds": "x"}, "threshold 1"),
        ({"webhook_url": "http://127.0.0.1/hook"}, "webhook"),
    ):
        refused = api.post("/portal/alerts", data={**form, **bad})
        assert refused.status_code == 422, bad
        assert says in refused.text.split('id="alerts-error">')[1].split("<")[0], bad
        assert 'id="alert-settings"' in refused.text
    forged = api.post("/portal/alerts", data={**form, "csrf_token": "forged"})
    assert forged.status_code == 403
    after = api.get("/v1/customers/acme/alert-settings", headers=bearer(keys["admin"])).json()
    assert after == stored  # nothing refused changed anything
