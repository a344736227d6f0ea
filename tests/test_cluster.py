"""A short run of benchmarks/cluster.py: replicas and workers on PostgreSQL under load, one
of each SIGKILLed and restarted, then every invariant checked (its PASS/FAIL table)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_a_short_cluster_run_passes_every_check(postgres_url):
    env = {**os.environ, "BILLING_TEST_POSTGRES_URL": postgres_url}
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/cluster.py",
            "--seconds",
            "12",
            "--replicas",
            "2",
            "--workers",
            "2",
            "--clients",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    report = done.stdout
    assert done.returncode == 0, report + done.stderr[-3000:]
    rows = [line for line in report.splitlines() if "  PASS  " in line or "  FAIL  " in line]
    assert len(rows) == 7, report
    assert all("  PASS  " in row for row in rows), report
    assert "SIGKILL replica 0 and worker 0" in report
    assert "0 missing, 0 unexpected" in report
