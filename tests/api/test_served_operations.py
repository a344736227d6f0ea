"""The served process: JSON log lines tied to answers by request id, no secret in the logs
of a full run (keys, tokens, cookies, an invoice synced to Stripe, a signed alert webhook
delivered, a signed Stripe webhook received), and a SIGTERM that lets the batch in flight
finish and commit."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import time

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from billing.alerts.signing import HEADER, verify
from tests.conftest import TIERS
from tests.metering.helpers import recent
from tests.servers import Server, billing_ok, cli_database, wait_for
from tests.stripe_sync.test_webhook import signed
from tests.web.helpers import CSRF

pytestmark = pytest.mark.slow
SECRET_KEY = "s3cr3t-signing-key-for-the-log-test-0123456789"
STRIPE_KEY = "sk_test_never_in_the_logs_4242"
STRIPE_WEBHOOK_SECRET = "whsec_stripe_endpoint_never_in_the_logs"
METRICS_TOKEN = "metrics-token-never-in-the-logs-77"


def log_of(server: Server) -> str:
    """What the server printed (after `stop`)."""
    return server.output


def test_a_full_run_logs_json_lines_with_request_ids_and_no_secret(tmp_path, receiver, stripe_api):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    env = cli_database(url, BILLING_SECRET_KEY=SECRET_KEY, BILLING_WEBHOOK_ALLOW_PRIVATE="1")
    admin = billing_ok("keys", "create", "--role", "admin", env=env)
    ingest = billing_ok("keys", "create", "--role", "ingest", env=env)
    finance = billing_ok("keys", "create", "--role", "finance", env=env)
    server = Server(TIERS, url)
    server.env.update(
        {
            "BILLING_SECRET_KEY": SECRET_KEY,
            "BILLING_STRIPE_API_KEY": STRIPE_KEY,
            "BILLING_STRIPE_API_BASE": stripe_api.base,
            "BILLING_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
            "BILLING_STRIPE_SYNC_EVERY_SECONDS": "0.5",
            "BILLING_ALERT_DELIVERY_SECONDS": "0.5",
            "BILLING_LOG_LEVEL": "info",
            "BILLING_WEBHOOK_ALLOW_PRIVATE": "1",
            "BILLING_METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    env["BILLING_PUBLIC_URL"] = server.base
    server.start()
    secrets_seen = [admin, ingest, finance, SECRET_KEY, STRIPE_KEY, STRIPE_WEBHOOK_SECRET]
    secrets_seen.append(METRICS_TOKEN)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            admin_auth = {"Authorization": f"Bearer {admin}"}
            settings = http.put(
                "/v1/customers/acme/alert-settings",
                json={"webhook_url": receiver.url},
                headers=admin_auth,
            ).json()
            signing_secret = settings["signing_secret"]
            secrets_seen.append(signing_secret)
            auth = {"Authorization": f"Bearer {ingest}"}
            at = recent().isoformat()
            events = [
                {
                    "id": f"e{i}",
                    "customer": "acme",
                    "product": "product_analytics",
                    "quantity": 1000 if i else 1_000_000,  # the free allowance is used up
                    "timestamp": at,
                }
                for i in range(5)
            ]
            answer = http.post(
                "/v1/events",
                json={"events": events},
                headers={**auth, "X-Request-ID": "trace-events-0001"},
            )
            assert answer.status_code == 200
            assert answer.json()["accepted"] == 5
            http.put(
                "/v1/customers/acme/spend-caps/session_replay",
                json={"amount": "5.00"},
                headers=admin_auth,
            )
            # A commitment is invoiced at once: the scheduler syncs that invoice to Stripe.
            started = http.post(
                "/v1/customers/acme/commitment",
                json={"credit": "30000", "years": 1},
                headers=admin_auth,
            )
            assert started.status_code == 201, started.text
            [invoice] = started.json()["invoices"]
            assert wait_for(lambda: len(stripe_api.invoices_of(invoice["id"])) == 1)
            [stripe_invoice] = stripe_api.invoices_of(invoice["id"])
            assert wait_for(lambda: stripe_invoice["status"] == "open")  # finalized in Stripe
            assert wait_for(lambda: synced_as(url, invoice["id"]) == stripe_invoice["id"])
            # Stripe tells us it was paid, signed with the endpoint's secret; like Stripe's
            # events, it carries the whole invoice (our id in its metadata).
            body, headers = signed(
                {
                    "id": "evt_served_1",
                    "object": "event",
                    "type": "invoice.paid",
                    "created": int(time.time()),
                    "data": {"object": {**stripe_invoice, "status": "paid"}},
                },
                secret=STRIPE_WEBHOOK_SECRET,
            )
            hooked = http.post("/v1/stripe/webhook", content=body, headers=headers)
            assert (hooked.status_code, hooked.json()["outcome"]) == (200, "recorded")
            http.get("/v1/customers/acme/quota", headers={"Authorization": "Bearer bk_wrong"})
            link = billing_ok("portal-link", "acme", env=env)
            token = link.split("token=")[1]
            secrets_seen.append(token.split(".")[0])
            page = http.get(link)
            signed_in = http.post(
                "/portal/signin",
                data={"csrf_token": CSRF.search(page.text).group(1), "token": token},
            )
            assert signed_in.status_code == 303
            secrets_seen.append(http.cookies["billing_session"].split(".")[0])
            assert http.get("/portal").status_code == 200
            login = http.get("/finance/login")
            http.post(
                "/finance/login",
                data={"csrf_token": CSRF.search(login.text).group(1), "key": finance},
            )
            assert http.get("/finance/invoices").status_code == 200
            scraped = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert "billing_http_requests_total" in scraped.text  # as a scraper would
            assert http.get("/metrics").status_code == 401
            # The free-allowance alert went out, signed, to the customer's receiver.
            assert wait_for(lambda: len(receiver.requests) == 1)
            [(delivered, alert)] = receiver.requests
            assert b'"kind":"free_allowance"' in alert
            assert verify(signing_secret, delivered[HEADER], alert, now=int(time.time()))
    finally:
        server.stop()
    engine = create_engine(url)
    with engine.connect() as connection:
        recorded = connection.execute(
            text("SELECT status FROM invoice_sync WHERE invoice_id = :id"), {"id": invoice["id"]}
        ).scalar_one()
    engine.dispose()
    assert recorded == "paid"  # the signed Stripe webhook was taken
    log = log_of(server)
    assert "job sync_stripe" in log  # both jobs ran in this run, and said so
    assert "job deliver_alerts" in log
    for secret in secrets_seen:
        assert secret not in log, f"a secret ({secret[:6]}…) reached the log"
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    [events_line] = [x for x in lines if x.get("request_id") == "trace-events-0001"]
    assert (events_line["path"], events_line["status"], events_line["method"]) == (
        "/v1/events",
        200,
        "POST",
    )
    assert events_line["level"] == "info"
    assert events_line["duration_ms"] >= 0
    signin_lines = [x for x in lines if x.get("path") == "/portal/signin"]
    assert signin_lines
    assert all("token" not in json.dumps(x) for x in signin_lines)


def test_sigterm_lets_the_batch_in_flight_finish_and_commit(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    env = cli_database(url)
    ingest = billing_ok("keys", "create", "--role", "ingest", env=env)
    server = Server(TIERS, url)
    server.start()
    # NOTE: dated by the real clock, as the served process judges it (acme's billing starts
    # in the real clock's period: a fixed date would be refused once that month is over)
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    events = [
        {
            "id": f"g{i}",
            "customer": "acme",
            "product": "product_analytics",
            "quantity": 1,
            "timestamp": at,
        }
        for i in range(5000)
    ]
    body = json.dumps({"events": events}).encode()
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ingest}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(head + body[: len(body) // 2])  # the request is in flight
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)  # shutdown starts mid-request
            time.sleep(0.3)
            sock.sendall(body[len(body) // 2 :])
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        assert status == 200, answer[:300]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["accepted"] == 5000
        # ...and then it exits (uvicorn re-raises the SIGTERM once it has shut down cleanly)
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM event")).scalar()
    engine.dispose()
    assert stored == 5000


def synced_as(url: str, invoice_id: str) -> str | None:
    """The Stripe invoice id our sync recorded for `invoice_id` (None until it has)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT stripe_invoice_id FROM invoice_sync WHERE invoice_id = :id"),
                {"id": invoice_id},
            ).scalar()
    finally:
        engine.dispose()
    return None if found is None else str(found)
