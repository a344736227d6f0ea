"""One way to reach the database: services take a SQLAlchemy `Connection` and return frozen
records; only the code that owns a unit of work holds an ORM session (docs/architecture.md,
"Reaching the database").

Read with the parser, so a word in a docstring never counts: `Session` (or `sessionmaker`,
`scoped_session`) imported from sqlmodel or sqlalchemy.orm, or reached as an attribute of
those modules, is allowed only in the modules below.
"""

import ast
from pathlib import Path

from tests.conftest import REPO

# The owners of a unit of work: the engine and session_scope (db.py), the request's session
# dependency (http/), the CLI's open_session (cli/), Alembic (migrations/), and the API's
# dependencies, which read through the request's session.
ALLOWED = (
    "billing/db.py",
    "billing/http/",
    "billing/cli/",
    "billing/migrations/",
    "billing/api/deps.py",
)
# Who holds one today: a new holder is a decision, made here on purpose.
# api/deps.py: the Idempotency-Key dependency claims and answers in the request's session.
HOLDERS = {
    "billing/db.py",
    "billing/http/deps.py",
    "billing/cli/common.py",
    "billing/api/deps.py",
}

ORM_MODULES = {"sqlmodel", "sqlmodel.orm.session", "sqlalchemy.orm", "sqlalchemy.orm.session"}
SESSION_NAMES = {"Session", "sessionmaker", "scoped_session"}


def session_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for each ORM session `source` imports or reaches through its module."""
    tree = ast.parse(source)
    aliases: set[str] = set()  # names bound to an ORM module: import sqlmodel, ... as orm
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name in ORM_MODULES:
                    aliases.add(name.asname or name.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy" and node.level == 0:
            aliases.update(n.asname or n.name for n in node.names if n.name == "orm")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ORM_MODULES and node.level == 0:
            found += [
                (node.lineno, f"from {node.module} import {name.name}")
                for name in node.names
                if name.name in SESSION_NAMES or name.name == "*"
            ]
        elif isinstance(node, ast.Attribute) and node.attr in SESSION_NAMES:
            owner = ast.unparse(node.value)
            if owner in aliases or owner in ORM_MODULES:
                found.append((node.lineno, f"{owner}.{node.attr}"))
    return found


def session_holders(root: Path) -> dict[str, list[tuple[int, str]]]:
    """Each module under `root/billing` that uses an ORM session, by path from `root`."""
    holders = {}
    for path in sorted((root / "billing").rglob("*.py")):
        uses = session_uses(path.read_text())
        if uses:
            holders[path.relative_to(root).as_posix()] = uses
    return holders


def outside(holders: dict[str, list[tuple[int, str]]]) -> dict[str, list[tuple[int, str]]]:
    return {path: uses for path, uses in holders.items() if not path.startswith(ALLOWED)}


def test_services_take_a_connection_and_never_hold_an_orm_session():
    holders = session_holders(REPO)
    assert outside(holders) == {}
    assert set(holders) == HOLDERS


def test_a_session_planted_in_a_service_is_found(tmp_path):
    (tmp_path / "billing" / "customers").mkdir(parents=True)
    (tmp_path / "billing" / "cli").mkdir()
    plants = {
        "billing/customers/a.py": "from sqlmodel import Session\n",
        "billing/customers/b.py": "from sqlalchemy.orm import Session as S, aliased\n",
        "billing/customers/c.py": "import sqlmodel\n\ndef f(e):\n    return sqlmodel.Session(e)\n",
        "billing/customers/d.py": "from sqlalchemy import orm\n\nmake = orm.sessionmaker()\n",
        "billing/customers/e.py": "def f():\n    from sqlalchemy.orm.session import Session\n",
        "billing/customers/clean.py": '"""Never a Session: a Connection."""\n\nSession = None\n',
        "billing/cli/ok.py": "from sqlmodel import Session\n",
    }
    for name, source in plants.items():
        (tmp_path / name).write_text(source)
    found = outside(session_holders(tmp_path))
    assert found == {
        "billing/customers/a.py": [(1, "from sqlmodel import Session")],
        "billing/customers/b.py": [(1, "from sqlalchemy.orm import Session")],
        "billing/customers/c.py": [(4, "sqlmodel.Session")],
        "billing/customers/d.py": [(3, "orm.sessionmaker")],
        "billing/customers/e.py": [(2, "from sqlalchemy.orm.session import Session")],
    }
