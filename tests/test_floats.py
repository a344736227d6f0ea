"""Money is Decimal, never float: billing/ uses `float` only where a line says why.

Read with the parser, not grep, so words in strings, docstrings and comments never count:
the name `float` (a call, an annotation, an isinstance check) and every float or complex
literal must sit on a line marked `# float-ok: <reason>`, on the first line of the statement
that holds it, or under a comment line of its own just above that statement. A mark without
a reason does not count.
"""

import ast
import io
import tokenize
from pathlib import Path

import pytest

from tests.conftest import REPO

MARK = "# float-ok"
NO_REASON = "a float-ok mark needs a reason: # float-ok: <why this is not money>"


def _comments(source: str) -> dict[int, str]:
    return {
        token.start[0]: token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }


def _marked(comment: str) -> bool:
    _, found, reason = comment.partition(MARK)
    return bool(found) and reason.startswith(":") and bool(reason[1:].strip())


def float_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for each unmarked float in `source`, and each mark without a reason."""
    comments = _comments(source)
    lines = source.splitlines()
    alone = {n for n in comments if lines[n - 1].lstrip().startswith("#")}
    problems = [
        (line, NO_REASON)
        for line, comment in comments.items()
        if MARK in comment and not _marked(comment)
    ]

    def visit(node: ast.AST, statement_line: int) -> None:
        if isinstance(node, ast.stmt):
            statement_line = node.lineno
        what = None
        if isinstance(node, ast.Name) and node.id == "float":
            what = "the name float"
        elif isinstance(node, ast.Attribute) and node.attr == "float":
            what = f"the attribute .{node.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, float | complex):
            what = f"the float literal {node.value!r}"
        if what is not None:
            marks = {node.lineno, statement_line}
            if statement_line - 1 in alone:
                marks.add(statement_line - 1)
            if not any(_marked(comments.get(line, "")) for line in marks):
                problems.append((node.lineno, what))
        for child in ast.iter_child_nodes(node):
            visit(child, statement_line)

    visit(ast.parse(source), 0)
    return sorted(problems)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("amount = float(text)\n", [(1, "the name float")]),
        ("def f(x: float) -> None: ...\n", [(1, "the name float")]),
        ("price = 0.1\n", [(1, "the float literal 0.1")]),
        ("fee = 2e3\n", [(1, "the float literal 2000.0")]),
        ("kind = numpy.float\n", [(1, "the attribute .float")]),
        ("x = (\n    1,\n    2.5,\n)\n", [(3, "the float literal 2.5")]),
        ("# float-ok: seconds\n\nwait = 1.5\n", [(3, "the float literal 1.5")]),
        ("wait = 1  # float-ok: seconds\nmore = 1.5\n", [(2, "the float literal 1.5")]),
        (
            "timeout: float = 5.0  # float-ok\n",
            [(1, NO_REASON), (1, "the float literal 5.0"), (1, "the name float")],
        ),
    ],
)
def test_the_scan_finds_floats_in_code(source, found):
    assert float_uses(source) == found


@pytest.mark.parametrize(
    "source",
    [
        'message = "a float( is refused: 0.5"\n',
        '"""Docs may say float and 0.25."""\n',
        "# float(1.5) in a comment\nx = 1\n",
        "timeout: float = 5.0  # float-ok: seconds\n",
        "settings = Field(  # float-ok: seconds\n    2.0,\n)\n",
        "parse(text, parse_float=Exact)\n",
        "# float-ok: seconds\nwait: float = 1.5\n",
        "price = Decimal('0.1')\n",
    ],
)
def test_the_scan_passes_words_and_marked_lines(source):
    assert float_uses(source) == []


def _python_files() -> list[Path]:
    return sorted((REPO / "billing").rglob("*.py"))


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_billing_uses_no_unmarked_float(path):
    assert float_uses(path.read_text()) == []
