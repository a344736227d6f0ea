"""Keeping the Stripe emulator honest: the same calls against localstripe (PyPI) and the
emulator, over real HTTP through the official SDK, answer with the same shapes wherever
both support the call. (localstripe has no finalize, drops invoice metadata and refuses
invoices for customers without a subscription: those rules are the emulator's alone.)"""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import stripe

from billing.stripe_emulator import StripeEmulator
from billing.stripe_sync.sync import make_client
from tests.conftest import free_port

LOCALSTRIPE = shutil.which("localstripe", path=str(Path(sys.executable).parent))


@pytest.fixture
def both():
    assert LOCALSTRIPE, "localstripe is a dev dependency (pyproject.toml)"
    port = free_port()
    process = subprocess.Popen(
        [LOCALSTRIPE, "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("localstripe did not start") from None
            time.sleep(0.1)
    emulator = StripeEmulator()
    try:
        yield {
            "localstripe": make_client("sk_test_contract", f"http://127.0.0.1:{port}"),
            "emulator": make_client("sk_test_contract", emulator.base),
        }
    finally:
        emulator.close()
        process.kill()
        process.wait(timeout=10)


def shape(obj, keys):
    data = obj.to_dict()
    return {key: type(data.get(key)).__name__ for key in keys}, {
        key: data.get(key) for key in keys if key not in ("id", "customer")
    }


def test_customers_items_lists_and_errors_agree(both):
    answers = {}
    for name, client in both.items():
        customer = client.v1.customers.create(
            params={"name": "cust_1", "metadata": {"billing_customer_id": "cust_1"}},
            options={"idempotency_key": f"contract-{name}"},
        )
        again = client.v1.customers.retrieve(customer.id)
        item = client.v1.invoice_items.create(
            params={
                "customer": customer.id,
                "currency": "usd",
                "amount": -250,
                "description": "Prepaid credits applied",
                "metadata": {"billing_invoice_id": "inv_1", "billing_line": "3"},
            }
        )
        listed = client.v1.invoices.list(params={"customer": customer.id, "limit": 100})
        with pytest.raises(stripe.InvalidRequestError) as missing:
            client.v1.customers.retrieve("cus_missing")
        answers[name] = {
            "customer": shape(customer, ("id", "object", "name", "metadata")),
            "retrieved": again.id == customer.id,
            "item": shape(
                item, ("id", "object", "amount", "currency", "description", "metadata", "customer")
            ),
            "list": (listed.object, list(listed.data), listed.has_more),
            # localstripe leaves out Stripe's documented code ("resource_missing"): status only
            "missing": (missing.value.http_status, type(missing.value).__name__),
        }
    assert answers["localstripe"] == answers["emulator"]
