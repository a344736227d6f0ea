"""The receiver's checks in docs/webhooks.md, in Python and in Node.js, run on a request the
engine really sent, signed during a rotation's overlap (two v1 values): both accept it with
either secret, and refuse it with another secret or a changed body."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import shutil
import subprocess
from decimal import Decimal as D

import pytest

from billing.notifications import endpoints
from billing.notifications.delivery import deliver_due
from billing.notifications.signing import HEADER
from billing.webhooks_out.send import send
from tests.caps.helpers import set_cap
from tests.conftest import REPO
from tests.metering.helpers import add_customer
from tests.servers import Receiver

DOC = (REPO / "docs" / "webhooks.md").read_text()
PYTHON = re.search(r"```python\n(.*?)```", DOC, re.DOTALL).group(1)
NODE = re.search(r"```javascript\n(.*?)```", DOC, re.DOTALL).group(1)


@pytest.fixture
def sent(engine, session, catalog):
    """(header, body, old secret, new secret) of a request the engine sent just now."""
    receiver = Receiver()
    now = dt.datetime.now(dt.UTC)
    try:
        add_customer(session)
        with engine.begin() as connection:
            row, old = endpoints.create(
                connection,
                url=receiver.url,
                events=["*"],
                customer="cust_1",
                description="",
                actor="test",
                now=now,
            )
            _, new = endpoints.rotate(connection, row.id, dt.timedelta(hours=1), now)
        set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(10), now)
        session.commit()
        deliver_due(engine, functools.partial(send, deadline=5, allow_private=True))
        [(headers, body)] = receiver.requests
        yield headers[HEADER], body, old, new
    finally:
        receiver.close()


def test_the_python_check_accepts_what_we_sign(sent):
    header, body, old, new = sent
    namespace: dict = {}
    exec(compile(PYTHON, "docs/webhooks.md", "exec"), namespace)
    verify = namespace["verify"]
    assert verify(new, header, body)
    assert verify(old, header, body)  # the rotation's overlap
    assert not verify("whsec_someone_else", header, body)
    assert not verify(new, header, body + b" ")
    assert not verify(new, header, body, tolerance=-1)
    assert json.loads(body)["type"] == "spend_cap.changed"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_node_check_accepts_what_we_sign(sent, tmp_path):
    header, body, old, new = sent
    (tmp_path / "verify.js").write_text(NODE)
    (tmp_path / "body.bin").write_bytes(body)
    script = (
        "const { verify } = require('./verify.js');"
        "const body = require('fs').readFileSync('body.bin');"
        "const [header, ...secrets] = process.argv.slice(1);"
        "console.log(JSON.stringify(secrets.map((s) => verify(s, header, body))));"
    )
    done = subprocess.run(
        ["node", "-e", script, header, new, old, "whsec_someone_else"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, True, False]
