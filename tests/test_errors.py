"""The error tree stays whole: every error class is drawn in billing/errors.py under its
parent with its code, listed in docs/errors.md with the status the API answers, and raised
by its specific class (never InputError or Conflict themselves)."""

import ast
import re

import pytest

from billing import errors
from billing.http.errors import STATUS_BY_ERROR
from tests.conftest import REPO

DRAWN = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)\s+(?P<code>[a-z_]+)\b")
DOC_ROW = re.compile(r"^\|\s*`(?P<code>[a-z_]+)`\s*\|\s*(?P<status>[^|]+?)\s*\|")
GENERIC = {"BillingError", "InputError", "Conflict"}


def every_error_class() -> list[type[errors.BillingError]]:
    found, todo = [], [errors.BillingError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


CLASSES = every_error_class()


def drawing() -> dict[str, tuple[str, str | None]]:
    """Class name -> (code, parent name) as the module docstring draws them."""
    drawn: dict[str, tuple[str, str | None]] = {}
    parents: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = DRAWN.match(line)
        if not match or not match["indent"].startswith("    "):
            continue
        depth = (len(match["indent"]) - 4) // 4
        parents[depth:] = [match["name"]]
        drawn[match["name"]] = (match["code"], parents[depth - 1] if depth else None)
    return drawn


def documented() -> dict[str, str]:
    """Code -> status as the tables of docs/errors.md give them."""
    rows = {}
    for line in (REPO / "docs" / "errors.md").read_text().splitlines():
        match = DOC_ROW.match(line)
        if match and match["code"] != "code":
            rows[match["code"]] = match["status"]
    return rows


def status_of(cls: type[errors.BillingError]) -> str:
    if issubclass(cls, errors.CatalogError):
        return "—"  # never an HTTP answer: the service refuses to start
    return str(next(status for kind, status in STATUS_BY_ERROR if issubclass(cls, kind)))


def test_the_walk_finds_the_whole_tree():
    assert len(CLASSES) > 40
    assert {errors.CustomerExists, errors.WebhookUrlNotAllowed, errors.RateLimited} <= set(CLASSES)


def test_no_error_class_is_defined_outside_the_tree():
    names = {cls.__name__ for cls in CLASSES}
    elsewhere = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
        for path in sorted((REPO / "billing").rglob("*.py"))
        if path != REPO / "billing" / "errors.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id in names for base in node.bases)
    ]
    assert elsewhere == []


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_drawn_under_its_parent_with_its_code(cls):
    parent = None if cls is errors.BillingError else cls.__base__.__name__
    assert drawing().get(cls.__name__) == (cls.code, parent)


def test_the_drawing_holds_nothing_that_is_not_an_error_class():
    assert set(drawing()) == {cls.__name__ for cls in CLASSES}


def test_every_code_belongs_to_one_class():
    codes = [cls.code for cls in CLASSES]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize(
    "cls", [c for c in CLASSES if c is not errors.BillingError], ids=lambda cls: cls.__name__
)
def test_every_error_code_is_in_the_docs_with_its_status(cls):
    assert documented().get(cls.code) == status_of(cls), f"docs/errors.md: {cls.code}"


def test_the_engine_raises_specific_errors_not_the_generic_ones():
    """InputError and Conflict answer `invalid` and `conflict`: a cause gets its own class."""
    generic = []
    for path in sorted((REPO / "billing").rglob("*.py")):
        if path == REPO / "billing" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in GENERIC
            ):
                generic.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert generic == []
