"""Every shell example in README.md and docs/*.md marked `# runnable` (its first line) runs
against a fresh served process, on today's date: it exits 0, and what it sends is accepted."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TIERS
from tests.servers import Server, cli_database

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"```bash\n(# runnable.*?)```", re.DOTALL)


def runnable():
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text()):
            yield pytest.param(block, id=f"{doc.name}:{block.splitlines()[1][:40]}")


EXAMPLES = list(runnable())


def test_the_readme_has_a_runnable_example():
    assert any("README.md" in example.id for example in EXAMPLES)


@pytest.mark.parametrize("block", EXAMPLES)
def test_a_runnable_shell_example_works_today(block, tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    env = cli_database(url)
    server = Server(TIERS, url)
    server.env.update({"BILLING_SCHEDULER": "0"})
    server.start()
    try:
        # a 4xx or 5xx answer fails the example, as its reader would see it fail
        # (an example that says -f itself keeps it: curl takes one of the two)
        wrapper = (
            'curl() { case " $* " in *" -f"*) command curl "$@";; '
            '*) command curl --fail-with-body "$@";; esac; }\n'
        )
        script = wrapper + block.replace("localhost:8000", server.base.removeprefix("http://"))
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"},
            timeout=120,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    if "/v1/events" in script:
        answer = done.stdout.replace(" ", "")
        assert re.search(r'"accepted":[1-9]', answer), done.stdout
        assert '"rejected":[]' in answer, done.stdout


def test_the_docs_send_usage_and_change_money_in_runnable_examples():
    """The examples a newcomer copies first (sending usage, a cap, a commitment, a report)
    are among the runnable ones, so they keep working on any date."""
    ran = " ".join(str(example.id) for example in EXAMPLES)
    for doc in ("README.md", "metering.md", "spend-caps.md", "discounts.md", "finance.md"):
        assert f"{doc}:" in ran, doc
