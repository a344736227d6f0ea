"""Nothing points outside the repository: a clone has every page the code, the docs and the
README refer to, and no file leans on a contract kept somewhere else."""

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

OUTSIDE = re.compile(rb"DESIGN\.md|\.\./shared\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS_PAGE = re.compile(r"\bdocs/[\w-]+\.md\b")
SHIPPED = ["billing", "docs", "tests", "pricing_tiers", "benchmarks"]
TOP_LEVEL = ["README.md", "Dockerfile", "Makefile", "pyproject.toml"]


def shipped_files() -> list[Path]:
    files = [REPO / name for name in TOP_LEVEL]
    for folder in SHIPPED:
        files += [p for p in (REPO / folder).rglob("*") if p.is_file()]
    here = Path(__file__).resolve()
    return sorted(p for p in files if "__pycache__" not in p.parts and p.resolve() != here)


def test_no_file_refers_to_a_contract_outside_the_repository():
    leaning = [p for p in shipped_files() if OUTSIDE.search(p.read_bytes())]
    assert [str(p.relative_to(REPO)) for p in leaning] == []


MARKDOWN = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: p.name)
def test_every_link_of_the_docs_reaches_a_file_of_the_repository(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or not path.is_relative_to(REPO):
            broken.append(target)
    assert broken == []


def test_every_docs_page_the_code_cites_exists():
    cited = {
        page
        for path in (REPO / "billing").rglob("*.py")
        for page in DOCS_PAGE.findall(path.read_text())
    }
    assert cited, "the code cites its docs pages"
    assert sorted(page for page in cited if not (REPO / page).exists()) == []
