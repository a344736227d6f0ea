"""The finance pages without a browser: filters, the CSV matches the API's, the chart's
figures reconcile with the revenue report, caps hit, and the Stripe panel's retry."""

import csv
import io
import re
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from billing.app import create_app
from billing.db import table_of
from billing.settings import Settings
from billing.stripe_sync.models import InvoiceSync
from billing.stripe_sync.sync import make_client, sync_due
from tests.conftest import TIERS, bearer
from tests.web.helpers import csrf_of, sign_in


@pytest.fixture
def finance(api, engine, seeded):
    """The api client signed in to the finance pages; its CSRF token."""
    return sign_in(api, engine, None)


def test_the_invoice_table_filters_and_its_csv_is_the_apis(api, finance, keys):
    page = api.get("/finance/invoices", params={"customer": "acme"}).text
    assert re.search(r'id="count">1<', page)
    assert page.count('href="/finance/invoices/inv_') == 1
    csv_link = re.search(r'id="csv" href="([^"]+)"|href="([^"]+)" id="csv"', page)
    href = next(g for g in csv_link.groups() if g).replace("&amp;", "&")
    assert href == "/finance/invoices.csv?customer=acme"
    downloaded = api.get(href)
    assert downloaded.headers["content-type"].startswith("text/csv")
    assert "attachment" in downloaded.headers["content-disposition"]
    from_api = api.get(
        "/v1/reports/invoices",
        params={"customer": "acme", "format": "csv"},
        headers=bearer(keys["finance"]),
    )
    assert downloaded.text == from_api.text
    rows = list(csv.DictReader(io.StringIO(downloaded.text)))
    assert [r["customer"] for r in rows] == ["acme"]
    everything = api.get("/finance/invoices").text
    assert re.search(r'id="count">2<', everything)
    due = re.search(r'id="due-total">([\d,.]+) USD', everything).group(1)
    listed = api.get("/v1/reports/invoices", headers=bearer(keys["finance"])).json()["invoices"]
    assert D(due.replace(",", "")) == sum(D(i["amount_due"]) for i in listed)


def test_a_bad_filter_says_which_and_why(api, finance):
    answer = api.get("/finance/invoices", params={"from": "2026-13"})
    assert answer.status_code == 422
    assert "from: a month is YYYY-MM" in answer.text
    answer = api.get("/finance/invoices", params={"from": "2026-10", "to": "2026-09"})
    assert answer.status_code == 422
    assert "is before from" in answer.text


def test_the_revenue_chart_and_tables_reconcile_with_the_revenue_report(api, finance, keys):
    page = api.get("/finance/revenue").text
    assert "<svg" in page
    assert "<script" not in page[page.index('id="revenue-chart"') :]  # drawn by the server
    by_month = api.get(
        "/v1/reports/revenue", params={"group_by": "month"}, headers=bearer(keys["finance"])
    ).json()
    matrix = page[page.index('id="revenue-matrix"') :]
    matrix = matrix[: matrix.index("</table>")]
    months = re.findall(r'<th scope="col" class="num">(\d{4}-\d{2})</th>', matrix)
    assert months == [g["key"] for g in by_month["groups"]]
    body = matrix[matrix.index("<tbody>") : matrix.index("</tbody>")]
    rows = [re.findall(r'<td class="num">([\d,.-]+)</td>', r) for r in body.split("</tr>")[:-1]]
    cells = [c for row in rows for c in row[:-1]]  # the last cell of a row is its total
    assert sum(D(c.replace(",", "")) for c in cells) == D(by_month["total"]["amount_due"])
    # totals: each product's row, each month's column, and the whole, sums of their cells
    money = lambda text: D(text.replace(",", ""))  # noqa: E731
    for row in rows:
        assert sum(money(c) for c in row[:-1]) == money(row[-1])
    foot = re.findall(r'<td class="num"[^>]*>([\d,.-]+)</td>', matrix[matrix.index("<tfoot>") :])
    for index, month_total in enumerate(foot[:-1]):
        assert sum(money(row[index]) for row in rows) == money(month_total)
    assert money(foot[-1]) == D(by_month["total"]["amount_due"])
    assert "<h1>Billings</h1>" in page  # it says what it counts
    assert "not cash collected" in page
    bars = re.findall(
        r'<rect class="series-\d" x="[\d.]+" y="[\d.]+" width="[\d.]+" '
        r'height="([\d.]+)"><title>([^<]+)</title>',
        page,
    )
    assert len(bars) == sum(1 for c in cells if D(c.replace(",", "")) > 0)
    assert any(t.startswith("Product analytics, ") for _, t in bars)
    assert (
        re.search(r'id="total-due">([\d,.]+)<', page).group(1).replace(",", "")
        == (by_month["total"]["amount_due"])
    )


def test_billings_by_issue_month_put_this_months_invoices_in_this_month(api, finance, keys):
    """By service month the running month is empty (its usage is not invoiced yet) and the
    page says why; by issue month the invoices issued this month are there. Page and API
    agree either way, and an unknown basis is refused on both."""
    import datetime as dt

    this_month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    service = api.get("/finance/revenue").text
    assert 'id="this-month"' in service
    issued_page = api.get("/finance/revenue", params={"basis": "issued"}).text
    issued = api.get(
        "/v1/reports/revenue",
        params={"group_by": "month", "basis": "issued"},
        headers=bearer(keys["finance"]),
    ).json()
    assert issued["basis"] == "issued"
    assert this_month in [g["key"] for g in issued["groups"]]
    assert f'<th scope="col" class="num">{this_month}</th>' in issued_page
    total = re.search(r'id="total-due">([\d,.]+)<', issued_page).group(1).replace(",", "")
    assert total == issued["total"]["amount_due"]
    refused = api.get("/finance/revenue", params={"basis": "paid"})
    assert refused.status_code == 422
    assert "basis: service or issued" in refused.text
    api_refused = api.get(
        "/v1/reports/revenue", params={"basis": "paid"}, headers=bearer(keys["finance"])
    )
    assert api_refused.status_code == 422


def test_caps_hit_lists_the_limited_pairs(api, finance):
    page = api.get("/finance/caps").text
    table = page[page.index('id="caps-hit"') :]
    # a person reads names and money: the product's name (its key beside it) and the cap in
    # the catalogue's currency, to the cent
    row = re.search(r"<tr><td>acme</td>(.*?)</tr>", table).group(1)
    assert '<span class="product-name">Session replay</span>' in row
    assert '<span class="subtle">session_replay</span>' in row
    assert '<td class="num">50.00 USD</td>' in row
    assert "globex" not in table


def set_sync(engine, invoice_id, status, error=None):
    with engine.begin() as connection:
        connection.execute(
            update(table_of(InvoiceSync))
            .where(table_of(InvoiceSync).c.invoice_id == invoice_id)
            .values(status=status, last_error=error)
        )


def test_the_stripe_panel_shows_failures_first_and_retries_now(
    engine, catalog, database_url, seeded, stripe_api
):
    client = make_client("sk_test_emulator", stripe_api.base)
    sync_due(engine, client)  # both invoices reach Stripe
    with engine.connect() as connection:
        ids = [r.id for r in connection.execute(text("SELECT id FROM invoice ORDER BY number"))]
    set_sync(engine, ids[1], "sync_failed", "InvalidRequestError: No such customer")
    settings = Settings(
        tiers_dir=TIERS,
        database_url=database_url,
        scheduler=False,
        stripe_api_key="sk_test_emulator",
        stripe_api_base=stripe_api.base,
    )
    with TestClient(create_app(settings, catalog, engine)) as pages:
        csrf = sign_in(pages, engine, None)
        panel = pages.get("/finance/stripe").text
        table = panel[panel.index('id="sync-table"') :]
        statuses = re.findall(r'<span class="badge (\w+)">', table)
        assert statuses[0] == "sync_failed"  # failures first
        assert "No such customer" in table
        assert table.count("Retry now</button>") == 1
        no_token = pages.post("/finance/stripe/retry", data={"invoice": ids[1]})
        assert no_token.status_code == 403
        answer = pages.post("/finance/stripe/retry", data={"csrf_token": csrf, "invoice": ids[1]})
        assert answer.status_code == 200
        assert re.search(
            r'id="retry-outcome">Retry of INV-\d{6}: 1 synced, 0 to retry, 0 failed', answer.text
        )
        with engine.connect() as connection:
            state = connection.execute(
                text("SELECT status, last_error FROM invoice_sync WHERE invoice_id = :i"),
                {"i": ids[1]},
            ).one()
        assert (state.status, state.last_error) == ("synced", None)
        assert len(stripe_api.invoices) == 2  # found again, not sent twice

        # Retry all: every failed or mismatched invoice at once, one sync run
        set_sync(engine, ids[0], "sync_failed", "APIError: boom (POST /v1/invoices)")
        set_sync(engine, ids[1], "mismatch", "Stripe's amount due is 3000")
        panel = pages.get("/finance/stripe").text
        assert "Retry all 2 failed or waiting" in panel
        assert "(POST /v1/invoices)" in panel  # which call failed
        refused = pages.post("/finance/stripe/retry-all", data={})
        assert refused.status_code == 403
        everything = pages.post("/finance/stripe/retry-all", data={"csrf_token": csrf})
        assert 'id="retry-outcome">Retry of 2 invoices: 2 synced' in everything.text
        assert 'id="retry-all"' not in everything.text  # nothing left to retry
    assert len(stripe_api.invoices) == 2


def test_retry_without_a_stripe_key_queues_and_says_sync_is_off(api, engine, finance):
    import datetime as dt

    from billing.stripe_sync.sync import _enqueue

    _enqueue(engine, dt.datetime.now(dt.UTC))
    with engine.connect() as connection:
        invoice = connection.execute(text("SELECT invoice_id FROM invoice_sync LIMIT 1")).scalar()
    set_sync(engine, invoice, "sync_failed", "boom")
    answer = api.post("/finance/stripe/retry", data={"csrf_token": finance, "invoice": invoice})
    assert "queued; Stripe sync is off" in answer.text
    assert "off: BILLING_STRIPE_API_KEY is not set" in answer.text
    synced = api.post("/finance/stripe/retry", data={"csrf_token": finance, "invoice": "inv_nope"})
    assert "not retried" in synced.text


def test_a_customer_session_does_not_open_the_finance_pages(api, engine, seeded):
    sign_in(api, engine, "acme")
    for path in ("/finance/invoices", "/finance/invoices.csv", "/finance/revenue"):
        answer = api.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/finance/login"), path


def test_the_finance_invoice_page_shows_any_customers_invoice(api, engine, finance):
    with engine.connect() as connection:
        invoice = connection.execute(
            text("SELECT id FROM invoice WHERE customer_id = 'globex'")
        ).scalar()
    page = api.get(f"/finance/invoices/{invoice}")
    assert page.status_code == 200
    assert "Session replay: 500,000 recordings" in page.text
    assert csrf_of(page.text)  # the sign-out form


def form_token(page: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    assert found, "the page has no form token"
    return found.group(1)


def test_finance_issues_a_credit_note_from_the_invoice_page_once(api, engine, finance, keys):
    with engine.connect() as connection:
        invoice = connection.execute(
            text("SELECT id FROM invoice WHERE customer_id = 'globex'")
        ).scalar()
    page = api.get(f"/finance/invoices/{invoice}").text
    assert 'id="no-credit-notes"' in page
    assert 'id="credit-note-form"' in page
    before = api.get(f"/v1/invoices/{invoice}", headers=bearer(keys["finance"])).json()
    form = {
        "csrf_token": finance,
        "form_token": form_token(page),
        "line": "1",
        "amount": "1.50",
        "outcome": "reduce_due",
        "reason": "recordings of a test project",
    }
    issued = api.post(f"/finance/invoices/{invoice}/credit-notes", data=form)
    assert issued.status_code == 200  # followed the redirect back to the invoice
    assert re.search(r"<th scope=\"row\">CN-\d{6}</th>", issued.text)
    assert "recordings of a test project" in issued.text
    resent = api.post(f"/finance/invoices/{invoice}/credit-notes", data=form)
    assert resent.status_code == 200
    after = api.get(f"/v1/invoices/{invoice}", headers=bearer(keys["finance"])).json()
    assert len(after["credit_notes"]) == 1  # the resubmitted form issued nothing new
    assert D(after["credited_total"]) == D("1.50")
    assert D(after["amount_remaining"]) == D(before["amount_remaining"]) - D("1.50")
    assert f'id="amount-remaining">{after["amount_remaining"]}' in resent.text.replace(",", "")
    # too much, or no CSRF token: refused, nothing issued
    too_much = api.post(
        f"/finance/invoices/{invoice}/credit-notes",
        data={**form, "form_token": form_token(resent.text), "amount": "1000000"},
    )
    assert too_much.status_code == 409
    assert 'id="credit-note-error"' in too_much.text
    forged = api.post(
        f"/finance/invoices/{invoice}/credit-notes",
        data={**form, "csrf_token": "forged", "form_token": "x"},
    )
    assert forged.status_code == 403
    final = api.get(f"/v1/invoices/{invoice}", headers=bearer(keys["finance"])).json()
    assert len(final["credit_notes"]) == 1


def test_the_customer_sees_its_credit_notes_in_the_portal(api, engine, seeded, keys):
    with engine.connect() as connection:
        invoice = connection.execute(
            text("SELECT id FROM invoice WHERE customer_id = 'globex'")
        ).scalar()
    note = {"reason": "goodwill", "outcome": "reduce_due", "lines": [{"line": 1, "amount": "2"}]}
    made = api.post(
        f"/v1/invoices/{invoice}/credit-notes", json=note, headers=bearer(keys["finance"])
    )
    assert made.status_code == 201, made.text
    sign_in(api, engine, "globex")
    page = api.get(f"/portal/invoices/{invoice}").text
    assert f'<th scope="row">{made.json()["number"]}</th>' in page
    assert "goodwill" in page
    assert 'id="credit-note-form"' not in page  # customers read notes; finance issues them


def test_every_filter_takes_exactly_what_its_column_shows(api, engine, finance, keys):
    """The Stripe-sync filter selects not_synced and nothing_due, which the table shows;
    a value it never shows is refused (page and API), naming every refused filter, and the
    form keeps its options after the error."""
    page = api.get("/finance/invoices").text
    shown = set(re.findall(r'<span class="badge (\w+)">\1</span></td></tr>', page))
    for state in shown | {"not_synced", "nothing_due"}:
        assert f'<option value="{state}"' in page, state
    listed = api.get("/v1/reports/invoices", headers=bearer(keys["finance"])).json()["invoices"]
    for state in ("not_synced", "nothing_due"):
        expected = sorted(i["number"] for i in listed if i["sync_status"] == state)
        api_rows = api.get(
            "/v1/reports/invoices", params={"sync_status": state}, headers=bearer(keys["finance"])
        ).json()["invoices"]
        assert sorted(i["number"] for i in api_rows) == expected
        on_page = api.get("/finance/invoices", params={"sync_status": state}).text
        assert re.search(rf'id="count">{len(expected)}<', on_page)
    refused = api.get(
        "/v1/reports/invoices",
        params={"sync_status": "bogus", "status": "bogus"},
        headers=bearer(keys["finance"]),
    )
    assert refused.status_code == 422
    body = refused.json()
    assert (body["code"], body["field"]) == ("unknown_status", "status")
    assert "got 'bogus'" in body["message"]
    assert "sync_status is one of" in body["message"]  # both refused filters named
    bad_page = api.get("/finance/invoices", params={"sync_status": "bogus"})
    assert bad_page.status_code == 422
    assert "sync_status is one of" in bad_page.text
    assert '<option value="not_synced"' in bad_page.text  # the form keeps its options


def test_a_void_invoice_shows_nothing_due_and_its_replacement_links_back(
    api, engine, finance, keys
):
    with engine.connect() as connection:
        invoice = connection.execute(
            text("SELECT id FROM invoice WHERE customer_id = 'globex'")
        ).scalar()
    voided = api.post(
        f"/v1/invoices/{invoice}/void",
        json={"reason": "wrong meter", "reissue": True},
        headers=bearer(keys["finance"]),
    )
    assert voided.status_code == 200, voided.text
    replacement = voided.json()["reissued"]["id"]
    void_page = api.get(f"/finance/invoices/{invoice}").text
    assert 'id="amount-due">nothing: this invoice is void<' in void_page
    new_page = api.get(f"/finance/invoices/{replacement}").text
    assert f'<a href="{invoice}" id="replaces">' in new_page
    assert api.get(f"/finance/invoices/{invoice}").status_code == 200  # where the link leads


def test_the_invoice_page_totals_are_the_sum_of_the_rows_shown(api, engine, finance):
    """No figure twice: the lines (usage, discounts, credits) add up to the amount due shown
    under them; tier amounts, exact before the line is rounded, say so."""
    with engine.connect() as connection:
        invoice = connection.execute(
            text("SELECT id FROM invoice WHERE customer_id = 'globex'")
        ).scalar()
    page = api.get(f"/finance/invoices/{invoice}").text
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    line_row = r'<tr class="line-\w+"><td>.*?</td><td class="num">.*?</td>'
    lines = re.findall(line_row + r'<td class="num">(-?[\d,.]+)</td>', body)
    due_row = r'<tr class="due"><th scope="row">Amount due.*?<td class="num">'
    due = re.search(due_row + r"(-?[\d,.]+) USD", page)
    assert len(lines) >= 1
    assert sum(D(x.replace(",", "")) for x in lines) == D(due.group(1).replace(",", ""))
    assert "Credits applied" not in page
    assert ">exact</abbr>" in body
