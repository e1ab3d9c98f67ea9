"""The cause-kind docs cannot drift from the code: every kind of
`analyzer.explain.KINDS` has its page (docs/causes/<kind>.md), a row in the
index and in docs/report-json.md, a "Why:" example that says the kind in the
terminal's words, and a scenario in the engine tests. Fast, no engine: the
pages are read as files (docs/causes/generate.py writes them from real builds).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys

import pytest

from analyzer.causes import BY_NAME
from analyzer.explain import KINDS
from tests.conftest import REPO

_KIND_TEXT = {name: kind.label for name, kind in BY_NAME.items()}  # what the terminal says
DOCS = REPO / "docs"
CAUSES = DOCS / "causes"
CAUSE_TESTS = REPO / "tests" / "integration" / "test_causes.py"

# stage-changed is only ever a cascade: its page's "Why:" section shows the
# root it follows from, a context-changed miss in the builder stage
ROOT_KIND = {"stage-changed": "context-changed"}


def _page(kind: str) -> str:
    path = CAUSES / f"{kind}.md"
    assert path.is_file(), f"{path.relative_to(REPO)} is missing (run docs/causes/generate.py)"
    return path.read_text(encoding="utf-8")


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def _table_kinds(text: str) -> list[str]:
    """The kinds named in the first cell of the Markdown table rows of `text`."""
    return re.findall(r"^\|\s*\[?`([a-z-]+)`", text, flags=re.MULTILINE)


def _why_roots(why: str) -> dict[int, str]:
    """Each root entry of a "Why:" section by Dockerfile line: its row and the
    lines under it (a long cause wraps there), whitespace folded."""
    roots: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in why.splitlines()[1:]:
        m = re.match(r"^  \S+:(\d+)\s", line)
        if m:
            current = roots.setdefault(int(m.group(1)), [])
        elif line.lstrip().startswith(("\u2192", "also:", "note:")):
            current = None
        if current is not None:
            current.append(line)
    return {n: " ".join(" ".join(parts).split()) for n, parts in roots.items()}


@functools.cache
def _generator():
    """docs/causes/generate.py as a module (importing it runs no build)."""
    name = "cachewhy_docs_generate"
    spec = importlib.util.spec_from_file_location(name, CAUSES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------- (a) pages and table rows

@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_page(kind):
    text = _page(kind)
    assert text.startswith(f"# `{kind}`\n"), text[:200]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_row_in_the_index(kind):
    index = (CAUSES / "README.md").read_text(encoding="utf-8")
    assert kind in _table_kinds(index), f"docs/causes/README.md has no table row for {kind}"
    assert f"]({kind}.md)" in index, f"docs/causes/README.md does not link {kind}.md"


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_row_in_report_json_doc(kind):
    text = (DOCS / "report-json.md").read_text(encoding="utf-8")
    section = text.split("## Cause kinds", 1)
    assert len(section) == 2, "docs/report-json.md has no '## Cause kinds' section"
    assert kind in _table_kinds(section[1]), f"docs/report-json.md's kind table has no row for {kind}"


def test_no_page_or_row_for_a_kind_the_code_does_not_have():
    pages = {p.stem for p in CAUSES.glob("*.md")} - {"README"}
    assert pages == set(KINDS)
    index = (CAUSES / "README.md").read_text(encoding="utf-8")
    assert sorted(_table_kinds(index)) == sorted(KINDS)
    table = (DOCS / "report-json.md").read_text(encoding="utf-8").split("## Cause kinds", 1)[1]
    assert sorted(_table_kinds(table)) == sorted(KINDS)


# ----------------------------------------- (b) the examples say their kind

@pytest.mark.parametrize("kind", KINDS)
def test_page_example_says_the_kind_as_the_terminal_does(kind):
    text = _page(kind)
    whys = [b for b in _blocks(text, "text") if b.startswith("Why:")]
    assert len(whys) == 1, f"{kind}.md should have one ```text block with the \"Why:\" section"
    roots = _why_roots(whys[0])
    assert roots, f"{kind}.md: the Why section lists no root\n{whys[0]}"
    root_kind = ROOT_KIND.get(kind, kind)
    words = _KIND_TEXT[root_kind]
    assert any(f"{words}:" in entry for entry in roots.values()), \
        f"{kind}.md: no root entry of the Why section says {words!r} (analyzer/causes.py)\n{whys[0]}"

    jsons = _blocks(text, "json")
    assert len(jsons) == 1, f"{kind}.md should have one ```json block with the miss"
    miss = json.loads(jsons[0])
    assert miss["cause"]["kind"] == kind
    assert miss["root"] is (kind not in ROOT_KIND), miss
    if miss["root"]:
        # the JSON miss is one of the roots on the terminal, at its line, with its detail
        assert miss["line"] in roots, f"{kind}.md: JSON line {miss['line']}, Why lines {sorted(roots)}"
        # (whitespace dropped: the terminal wraps long causes, also after hyphens)
        assert "".join(miss["cause"]["detail"].split()) in "".join(roots[miss["line"]].split())
    else:
        # a cascade names its root, and the Why section lists that root
        assert miss["cause"].get("root"), miss
        assert re.search(r"root: line (\d+)", miss["cause"]["detail"]).group(1) in {str(n) for n in roots}


def test_terminal_words_cover_every_kind():
    assert set(_KIND_TEXT) == set(KINDS)


# ---------------------------------------- the pages are generate.py's output

def test_generator_has_a_scenario_and_text_for_every_kind():
    gen = _generator()
    assert set(gen.SCENARIOS) == set(KINDS)
    assert set(gen.DOCS) == set(KINDS)


def test_index_is_what_the_generator_writes():
    assert (CAUSES / "README.md").read_text(encoding="utf-8") == _generator().index(), \
        "docs/causes/README.md differs from generate.py's index(): run docs/causes/generate.py"


@pytest.mark.parametrize("kind", KINDS)
def test_page_text_is_the_generators(kind):
    doc = _generator().DOCS[kind]
    text = _page(kind)
    for part in [doc.about, *doc.todo, *doc.not_a_cause]:
        assert part in text, f"{kind}.md is older than generate.py's text for it: run docs/causes/generate.py"


# ------------------------------------- (c) every kind has an engine scenario

@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_an_integration_scenario(kind):
    text = CAUSE_TESTS.read_text(encoding="utf-8")
    assert f'"{kind}"' in text, f"tests/integration/test_causes.py has no scenario that produces {kind!r}"
