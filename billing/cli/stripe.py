"""`billing stripe`: push finalized invoices to Stripe (the `sync_stripe` job's twin)."""

from __future__ import annotations

from typing import Annotated

import typer

from billing.cli.common import AsOfOption, fail, run_job

app = typer.Typer(help="Stripe: push finalized invoices, or serve a local Stripe emulator.")


@app.command("sync")
def stripe_sync(
    as_of: AsOfOption = None,
) -> None:
    """Push finalized invoices to Stripe and void there what was voided (the scheduler's job)."""
    from billing.jobs.registry import SYNC_STRIPE

    report = run_job(SYNC_STRIPE, as_of)
    typer.echo(f"stripe: {report}")


@app.command("emulate")
def stripe_emulate(
    port: Annotated[
        int, typer.Option(help="port to serve on (127.0.0.1)", min=0, max=65535)
    ] = 12111,
) -> None:
    """Serve the project's Stripe emulator on 127.0.0.1, to see Stripe sync work without a
    Stripe account (docs/stripe.md, "Trying it locally"). It keeps everything in memory,
    follows Stripe's documented rules for the calls the sync makes, and stops with Ctrl-C."""
    import time

    from billing.stripe_emulator import StripeEmulator

    try:
        emulator = StripeEmulator(port=port)
    except OSError as error:
        raise fail(f"cannot serve on 127.0.0.1:{port}: {error.strerror}") from None
    typer.echo(
        f"Stripe emulator at {emulator.base} (in memory; Ctrl-C stops it).\n"
        "Point the engine at it, in another terminal:\n"
        "  export BILLING_STRIPE_API_KEY=sk_test_emulator "
        f"BILLING_STRIPE_API_BASE={emulator.base}\n"
        "  billing stripe sync      # or `billing serve`: its scheduler syncs every 5 minutes\n"
        "See what arrived:\n"
        f"  curl -s -u sk_test_emulator: {emulator.base}/v1/invoices"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.close()
