"""The examples in docs/ are run: each `$ billing ...` console block must print exactly what
the doc shows, and each `$ curl ...` block must be answered with the JSON block after it."""

import json
import os
import re
import shlex
import subprocess

import pytest

from tests.conftest import REPO
from tests.servers import BILLING

DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)


def examples():
    for doc in DOCS:
        blocks = FENCE.findall(doc.read_text())
        for index, (kind, body) in enumerate(blocks):
            if kind != "console" or not body.startswith("$ "):
                continue
            lines = body.replace("\\\n", " ").splitlines()
            command, expected = lines[0][2:], "\n".join(lines[1:]).strip()
            if command.startswith("curl"):
                following = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
                yield pytest.param(doc.name, command, following, id=f"{doc.name}:{command[:60]}")
            elif command.startswith("billing "):
                yield pytest.param(doc.name, command, expected, id=f"{doc.name}:{command[:60]}")


ALL = list(examples())


def test_the_docs_have_runnable_examples():
    assert sum(1 for p in ALL if p.values[1].startswith("billing ")) >= 5
    assert sum(1 for p in ALL if p.values[1].startswith("curl")) >= 3


@pytest.mark.parametrize(("doc", "command", "expected"), ALL)
def test_doc_example_output_is_what_the_code_prints(doc, command, expected, client, tmp_path):
    args = shlex.split(command)
    if args[0] == "billing":
        env = {**os.environ, "BILLING_DATABASE_URL": f"sqlite:///{tmp_path / 'docs.db'}"}
        result = subprocess.run(
            [str(BILLING), *args[1:]], capture_output=True, text=True, cwd=REPO, timeout=60, env=env
        )
        assert (result.stdout + result.stderr).strip() == expected
        return
    kind, body = expected
    assert kind == "json", f"{doc}: a curl example must be followed by its ```json answer"
    url = next(a for a in args if "localhost:8000" in a)
    path = url.split("localhost:8000", 1)[1]
    payload = json.loads(args[args.index("-d") + 1])
    assert client.post(path, json=payload).json() == json.loads(body)
