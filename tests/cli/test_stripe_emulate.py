"""`billing stripe emulate`: the project's Stripe emulator served for people trying Stripe
sync without a Stripe account (docs/stripe.md, "Trying it locally"). Real processes: the
emulator, then `billing stripe sync` pointed at it, then what Stripe holds, over HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import urllib.request
from decimal import Decimal

import pytest

from tests.conftest import TIERS, free_port
from tests.servers import BILLING, billing_ok, wait_for

pytestmark = pytest.mark.slow


def stripe_get(base: str, path: str) -> dict:
    token = base64.b64encode(b"sk_test_emulator:").decode()
    request = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_the_demo_syncs_to_the_emulator_the_docs_describe(tmp_path):
    port = free_port()
    log = (tmp_path / "emulate.log").open("w+")
    emulator = subprocess.Popen(
        [str(BILLING), "stripe", "emulate", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: base in (tmp_path / "emulate.log").read_text())
        said = (tmp_path / "emulate.log").read_text()
        assert f"BILLING_STRIPE_API_BASE={base}" in said  # what to export, with this address

        env = {
            **os.environ,
            "BILLING_DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}",
            "BILLING_TIERS_DIR": str(TIERS),
            "BILLING_STRIPE_API_KEY": "sk_test_emulator",
            "BILLING_STRIPE_API_BASE": base,
        }
        billing_ok("db", "upgrade", env=env)
        billing_ok("demo", env=env)
        report = billing_ok("stripe", "sync", env=env)
        synced = int(report.split("stripe: ")[1].split(" synced")[0])
        assert synced > 0
        assert ", 0 failed, 0 mismatched" in report

        invoices = stripe_get(base, "/v1/invoices")["data"]
        assert len(invoices) == synced
        assert {i["status"] for i in invoices} == {"open"}
        ours = json.loads(billing_ok("report", "invoices", "--format", "json", env=env))
        due = {r["id"]: Decimal(r["amount_due"]) for r in ours}
        for invoice in invoices:  # Stripe holds our amounts, in cents
            ours_due = due[invoice["metadata"]["billing_invoice_id"]]
            assert Decimal(invoice["amount_due"]) == ours_due * 100
        again = billing_ok("stripe", "sync", env=env)
        assert again.startswith("stripe: 0 synced")  # nothing sent twice
        assert len(stripe_get(base, "/v1/invoices")["data"]) == synced
    finally:
        emulator.send_signal(signal.SIGINT)
        assert emulator.wait(timeout=10) == 0  # Ctrl-C stops it cleanly
        log.close()


def test_a_port_in_use_is_one_sentence(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(BILLING), "stripe", "emulate", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
