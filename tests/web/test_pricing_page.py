"""/pricing as the server renders it (the page without JavaScript, and what the live page
swaps in): starting volumes, the query string as its state, human messages, the commitment
table's words. The Chromium tests are in test_pricing_browser.py; the browser fixtures
below are shared with the other browser tests of tests/web."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal as D
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient

from billing import quotes
from billing.app import create_app
from billing.pricing import Model, PricePlan, Tier
from billing.settings import Settings
from tests.conftest import TIERS
from tests.servers import running_server

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """`billing serve` over real HTTP, for the Chromium tests."""
    with running_server() as base:
        yield base


@pytest.fixture
def page(chromium_path, base_url):
    """A headless Chromium page, 1200 x 900."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def client(catalog) -> Iterator[TestClient]:
    """The app in process, without the per-address quote limit (tested on its own below),
    which these many quick page loads would otherwise share with the rest of the session."""
    settings = Settings(
        tiers_dir=TIERS, database_url="sqlite://", scheduler=False, quote_rate_per_minute=0
    )
    with TestClient(create_app(settings, catalog)) as test_client:
        yield test_client


# --- reading the served HTML -----------------------------------------------------------

VOID = {"input", "meta", "link", "br", "img", "hr", "source", "col", "wbr"}


class Parsed(HTMLParser):
    """The page's text by element id (whitespace collapsed), its inputs, its table rows."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.texts: dict[str, list[str]] = {}
        self.inputs: list[dict[str, str | None]] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "input":
            self.inputs.append(found)
        if tag in VOID:
            return
        self.stack.append((tag, found.get("id")))
        if found.get("id"):
            self.texts.setdefault(found["id"], [])
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            table = next((i for t, i in reversed(self.stack) if t == "table"), None)
            self.rows.setdefault(table or "", []).append(self.row)
            self.row = None

    def handle_data(self, data):
        for _, ident in self.stack:
            if ident:
                self.texts[ident].append(data)
        if self.cell is not None:
            self.cell.append(data)

    def text(self, ident: str) -> str:
        return " ".join("".join(self.texts[ident]).split())

    def value(self, name: str) -> str | None:
        [found] = [i for i in self.inputs if i.get("name") == name]
        return found.get("value")


def priced(client, query: dict[str, str] | None = None) -> Parsed:
    answer = client.get("/pricing", params=query or {})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    return Parsed(answer.text)


def body_rows(page: Parsed, table: str) -> list[list[str]]:
    return page.rows[table][1:]  # without the header row


def money(text: str) -> D:
    return D(text.replace(",", ""))


TODAY = dt.datetime.now(dt.UTC).date()


# --- starting volumes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tiers", "model", "package", "expected"),
    [
        # the top of the first paid tier: free allowance plus one whole paid tier
        ([("1000", "0"), ("5000", "0.01"), (None, "0.001")], Model.GRADUATED, None, "5000"),
        ([("1000", "0.02"), (None, "0.01")], Model.VOLUME, None, "1000"),  # no free tier
        ([("10", "0"), ("50", "1"), (None, "0.5")], Model.PACKAGE, 100, "5000"),  # packages
        ([("2000", "0"), (None, "0.01")], Model.GRADUATED, None, "4000"),  # paid tier unbounded
        ([(None, "0.01")], Model.GRADUATED, None, "1000"),  # one price for every unit
        ([("300", "0"), (None, "0")], Model.GRADUATED, None, "300"),  # free at any volume
    ],
)
def test_the_starting_volume_is_the_top_of_the_first_paid_tier(tiers, model, package, expected):
    plan = PricePlan(
        model=model,
        tiers=tuple(Tier(None if up is None else D(up), D(price)) for up, price in tiers),
        currency="USD",
        package_size=package,
    )
    assert quotes.starting_quantity(plan) == D(expected)


def test_the_page_opens_priced_at_the_starting_volumes(client, catalog):
    page = priced(client)
    starting = quotes.starting_usage(catalog, TODAY)
    assert set(starting) == set(catalog.products)
    expected = quotes.quote(catalog=catalog, usage=starting, at=TODAY)
    assert expected.total > 0
    assert money(page.text("total")) == expected.total
    assert "starting volumes" in page.text("defaults-note")
    assert "top of its first paid tier" in page.text("defaults-note")
    for key, quantity in starting.items():
        assert money(page.value(key) or "") == quantity
        assert page.text(f"line-{key}").endswith("USD a month")
    # The breakdown shows every tier priced: a row per product, one per tier, the total.
    tiers = sum(len(line.charge.tiers) for line in expected.lines)
    assert len(body_rows(page, "breakdown")) == len(expected.lines) + tiers + 1
    # The commitment table prices every bracket: nothing asks to "enter usage".
    options = body_rows(page, "options")
    assert len(options) == len(catalog.schedule.brackets)
    assert "enter usage" not in page.text("commitments").lower()


def test_the_starting_volumes_show_a_free_tier_and_a_paid_one_per_product(client):
    page = priced(client)
    rows = body_rows(page, "breakdown")
    assert ["Product analytics: 2,000,000 events", "50.00"] in rows
    assert ["0 – 1,000,000", "1,000,000 free", "0.00"] in rows
    assert ["1,000,000 – 2,000,000", "1,000,000 × 0.00005", "50.00"] in rows


# --- the query string is the state -----------------------------------------------------


def test_quantities_and_caps_in_the_query_are_priced_without_javascript(client):
    page = priced(
        client,
        {"product_analytics": "3,000,000", "session_replay": "40000", "cap.session_replay": "100"},
    )
    assert page.text("total") == "184.30"  # 84.30 + a 100.00 cap on 150.00
    assert page.value("cap.session_replay") == "100"
    assert "Capped: 27,500 of 40,000 recordings priced" in page.text("line-session_replay")
    assert "within the 100.00 USD cap" in page.text("line-session_replay")
    # Products the query leaves out are not priced, and the starting volumes do not return.
    assert page.text("line-surveys") == "Not included"
    assert page.text("defaults-note") == ""


def test_a_cap_alone_keeps_the_starting_volumes_and_caps_them(client):
    page = priced(client, {"cap.session_replay": "20"})
    assert "starting volumes" in page.text("defaults-note")
    assert "Capped: 9,000 of 15,000 recordings" in page.text("line-session_replay")


def test_empty_quantities_price_nothing_rather_than_the_starting_volumes(client, catalog):
    page = priced(client, dict.fromkeys(catalog.products, ""))
    assert page.text("total") == "0.00"
    assert page.text("defaults-note") == ""
    assert "Enter a monthly volume" in page.text("breakdown-section")


def test_the_link_to_the_quote_reopens_it(client):
    query = {"product_analytics": "3_000_000", "surveys": "2500", "cap.surveys": "40"}
    first = client.get("/pricing", params=query).text
    link = re.search(r'id="share-link" href="([^"]+)"', first)
    assert link
    href = link.group(1).replace("&amp;", "&")
    pairs = parse_qsl(urlsplit(href).query, keep_blank_values=True)
    # Every quantity (empty ones too, so the starting volumes stay away), cleaned; set caps.
    assert ("product_analytics", "3000000") in pairs
    assert ("surveys", "2500") in pairs
    assert ("session_replay", "") in pairs
    assert ("cap.surveys", "40") in pairs
    assert not any(k.startswith("cap.") and not v for k, v in pairs)
    again = Parsed(client.get(href).text)
    assert again.text("total") == Parsed(first).text("total")
    assert again.value("cap.surveys") == "40"


def test_the_form_submits_every_input_it_shows_and_has_no_discount_box(client, catalog):
    answer = client.get("/pricing")
    page = Parsed(answer.text)
    assert "discount_percent" not in answer.text
    assert "Percentage discount" not in answer.text
    for found in page.inputs:
        if "hidden" in found:  # the slider: shown and wired only with JavaScript
            assert found.get("class") == "slider"
            continue
        assert found.get("name"), found
    names = {i["name"] for i in page.inputs if i.get("name")}
    assert names == set(catalog.products) | {f"cap.{k}" for k in catalog.products}
    assert '<form id="calculator" method="get" action="/pricing">' in answer.text
    assert '<noscript><p class="submit"><button type="submit">Calculate' in answer.text


# --- human messages ---------------------------------------------------------------------

FIELD_PATH = re.compile(r"\b(usage|spend_caps)\.\w+|invalid_\w+|Value error|pydantic", re.I)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "Enter a number of responses, like 2,000"),
        ("-5", "A volume cannot be negative: enter 0 or more responses, like 2,000"),
        ("1e20", "The calculator prices at most 1,000,000,000,000,000 responses a month"),
        ("1.0000000000001", "at most 12 decimal places"),
        ("NaN", "Enter a number of responses, like 2,000"),
    ],
)
def test_a_bad_quantity_is_explained_next_to_it_and_the_rest_is_priced(client, value, message):
    page = priced(client, {"surveys": value, "product_analytics": "3000000"})
    assert message in page.text("err-qty-surveys")
    assert not FIELD_PATH.search(page.text("err-qty-surveys"))
    assert page.value("surveys") == value
    assert page.text("total") == "84.30"
    assert "Leaves out Surveys" in page.text("summary")
    assert page.text("line-surveys") == "Left out of the total until its input is fixed"
    assert len(body_rows(page, "options")) == 12  # the table is still priced


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fifty", "A spend cap is an amount in USD, like 50 or 50.00"),
        ("-1", "A spend cap cannot be negative"),
        ("12.345", "A spend cap in USD has at most 2 decimal places, like 50.25"),
        ("1e13", "A spend cap is at most 1,000,000,000 USD"),
    ],
)
def test_a_bad_cap_is_explained_next_to_it_and_the_product_priced_without_it(
    client, value, message
):
    page = priced(client, {"session_replay": "40000", "cap.session_replay": value})
    assert message in page.text("err-cap-session_replay")
    assert not FIELD_PATH.search(page.text("err-cap-session_replay"))
    assert page.text("err-qty-session_replay") == ""
    assert page.text("total") == "150.00"
    assert "Priced without a cap until the cap is fixed" in page.text("line-session_replay")
    assert "without a spend cap" in page.text("summary")


def test_no_page_text_names_an_api_field(client):
    answer = client.get(
        "/pricing", params={"surveys": "x", "session_replay": "-1", "cap.surveys": "y"}
    )
    text = re.sub(r"<[^>]+>", " ", answer.text)
    assert not FIELD_PATH.search(text)


# --- the commitment table ---------------------------------------------------------------


def test_a_commitment_that_costs_more_says_so_in_words(client):
    page = priced(client)  # 496.00 a month at the starting volumes
    rows = {(r[0], r[1]): r for r in body_rows(page, "options")}
    dear = rows[("1 year", "20,000.00")]
    assert dear[5] == (
        "Not worth it at this usage: costs 10,048.00 USD more a year than paying as you go"
    )
    assert dear[6] == "1,333.33 USD a month"
    assert not any("-" in cell for row in rows.values() for cell in row[3:])
    best = rows[("3 years", "3,000.00")]
    assert best[5].startswith("Best for your usage: saves 1,190.40 USD a year")
    assert "the best choice is 3 years at 20 % off" in page.text("commitment-advice")
    assert rows[("1 year", "3,000.00")][5] == "Saves 595.20 USD a year"
    assert rows[("1 year", "3,000.00")][6] == "225.00 USD a month"


def test_a_bracket_the_usage_has_outgrown_shows_no_odd_credit(client):
    # 2,618.40 a month: 31,420.80 a year, past the 3,000 bracket (it tops out at 19,999.99).
    page = priced(client, {"product_analytics": "100000000"})
    assert page.text("total") == "2,618.40"
    rows = {(r[0], r[1]): r for r in body_rows(page, "options")}
    outgrown = rows[("1 year", "3,000.00")]
    assert outgrown[3] == (
        "Past this bracket: at your usage the next one (from 20,000.00 USD, 20 % off) saves more."
    )
    assert "19,999.99" not in page.text("commitments")
    assert rows[("1 year", "20,000.00")][3:5] == ["31,420.80", "25,136.64"]


def test_the_quote_api_carries_each_options_break_even(client):
    answer = client.post(
        "/v1/quote",
        json={"usage": {"product_analytics": 100000000}, "include_commitment_options": True},
    )
    options = answer.json()["commitment_options"]
    first = options[0]
    assert (first["years"], first["bracket"]["min_credit"]) == (1, "3000.00")
    assert first["break_even_annual_usage"] == "2700.00"
    assert first["break_even_monthly_usage"] == "225.00"
    assert first["outgrown"] is True
    assert first["credit"] == "19999.99"  # the API's answer is unchanged
    assert options[1]["break_even_monthly_usage"] == "1333.33"
    assert options[1]["outgrown"] is False


# --- the quote budget ---------------------------------------------------------------------


def test_the_page_shares_the_quote_budget_of_its_address(catalog):
    settings = Settings(
        tiers_dir=TIERS, database_url="sqlite://", scheduler=False, quote_rate_per_minute=3
    )
    query = {"product_analytics": "3000000", "cap.product_analytics": "50"}
    with TestClient(create_app(settings, catalog)) as limited:
        assert limited.post("/v1/quote", json={"usage": {"surveys": 1}}).status_code == 200
        assert [limited.get("/pricing", params=query).status_code for _ in range(2)] == [200] * 2
        refused = limited.get("/pricing", params=query)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        page = Parsed(refused.text)
        assert "Too many quotes from your address. Try again in" in page.text("summary")
        assert page.text("total") == "—"
        assert page.value("product_analytics") == "3000000"  # the inputs are kept
        assert page.value("cap.product_analytics") == "50"
        assert "Not priced" in page.text("breakdown-section")
        assert limited.post("/v1/quote", json={"usage": {"surveys": 1}}).status_code == 429
