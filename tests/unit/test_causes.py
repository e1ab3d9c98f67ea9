"""The cause-kind table (analyzer/causes.py) is the one list of kinds: every
kind the explain engine can give is in it, every output reads it, and every
kind's page exists."""

from __future__ import annotations

import ast
import re

import pytest

from analyzer import causes, explain
from analyzer.gates import GATE_HELP, Gates
from analyzer.report import annotations, html, markdown, sarif, text
from tests.conftest import REPO

_KIND_NAME = re.compile(r"^[a-z]+(?:-[a-z]+)+$")


def _emitted_kinds() -> set[str]:
    """Every kind the analysis can put in a Cause, wherever it is made under
    analyzer/: the string first arguments of `Cause(...)` calls, and the
    kind-like strings a kind is picked from (`kind = "build-arg-changed" if …
    else "env-changed"`)."""
    found: set[str] = set()
    for path in sorted((REPO / "analyzer").rglob("*.py")):
        found |= _kinds_in(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _kinds_in(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Cause" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "kind" for t in node.targets):
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and _KIND_NAME.match(sub.value):
                    found.add(sub.value)
    return found


def test_every_kind_the_engine_gives_is_in_the_table():
    emitted = _emitted_kinds()
    assert len(emitted) >= 12, emitted  # the walk found the Cause(...) calls
    assert emitted <= set(causes.KINDS), emitted - set(causes.KINDS)


def test_a_kind_outside_the_table_is_refused_when_made():
    with pytest.raises(ValueError, match="not-a-kind"):
        explain.Cause("not-a-kind", "")


def test_the_table_has_each_kind_once_with_its_fields():
    names = [k.name for k in causes.TABLE]
    assert len(names) == len(set(names)) == 13
    assert explain.KINDS == causes.KINDS
    for k in causes.TABLE:
        assert _KIND_NAME.match(k.name) or k.name == "unknown"
        assert k.label and k.summary and "\n" not in k.summary
        assert k.summary[0].islower() or k.summary.startswith("--"), k  # it finishes "the step missed because …"
        assert k.sarif_level in ("note", "warning", "error")


@pytest.mark.parametrize("kind", causes.KINDS)
def test_every_kind_links_a_page_that_exists(kind):
    k = causes.BY_NAME[kind]
    assert (REPO / k.doc_page).is_file(), k.doc_page
    assert k.doc_url.endswith("/" + k.doc_page)


def _report(kind: str) -> dict:
    return {"build": {"dockerfile": "/nowhere/Dockerfile", "ref": "r"}, "summary": {},
            "steps": [{"id": "a", "line": 2, "status": "rebuilt", "instruction": "RUN x", "duration_s": 1.0}],
            "misses": [{"id": "a", "line": 2, "instruction": "RUN x", "root": True, "followers": [],
                        "caused_by": [], "time_lost_s": 1.0, "cause": {"kind": kind, "detail": "d"}, "also": []}],
            "notes": []}


@pytest.mark.parametrize("kind", causes.KINDS)
def test_every_output_says_the_tables_words(kind):
    k = causes.BY_NAME[kind]
    report = _report(kind)
    assert f"{k.label}: d" in text.root_causes(report, width=200)
    assert f"[{k.label}]({k.doc_url})" in markdown.render(report)
    assert f'href="{k.doc_url}"' in html.render(report)
    log = sarif.sarif_log(report)
    run = log["runs"][0]
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == kind)
    assert k.summary in rule["fullDescription"]["text"] and rule["helpUri"] == k.doc_url
    assert rule["defaultConfiguration"]["level"] == run["results"][0]["level"] == k.sarif_level
    line = annotations.render(report)
    assert line.startswith({"note": "::notice ", "warning": "::warning ", "error": "::error "}[k.sarif_level])
    assert k.label in line


def test_gate_help_and_gate_check_take_every_kind():
    assert " ".join(GATE_HELP.split()).count(", ".join(causes.KINDS)) == 1
    gates = Gates.from_options({"fail_on": [",".join(causes.KINDS)]})
    assert gates.fail_on == list(causes.KINDS)


def test_docs_index_rows_are_the_tables():
    index = (REPO / "docs" / "causes" / "README.md").read_text(encoding="utf-8")
    for k in causes.TABLE:
        assert f"| [`{k.name}`]({k.name}.md) | {k.label} | {k.summary} |" in index
