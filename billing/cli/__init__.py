"""The `billing` command line: serve the API, check tier files, quote prices.

One module per command group (keys.py, invoices.py, ...), the helpers they share in
common.py, assembled into one Typer app in app.py. The background jobs' twins (`billing
invoices close`, `billing alerts deliver`, `billing credits release`, `billing stripe sync`)
run the jobs of billing/jobs/registry.py through its runner, as the scheduler does.
"""

from billing.cli.app import app, main

__all__ = ["app", "main"]
