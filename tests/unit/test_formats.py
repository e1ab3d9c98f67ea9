"""The report formats (Markdown, annotations, SARIF, DOT/SVG, HTML) over a report made
from recorded captures, their escaping of hostile build text, and the outputs table."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from analyzer.errors import CachewhyError
from analyzer.explain import KINDS, explain
from analyzer.options import take_options
from analyzer.outputs import (
    FORMATS,
    OUTPUT_HELP,
    OUTPUT_OPTIONS,
    Outputs,
    github_hooks,
    stdout_carries_data,
    write_outputs,
)
from analyzer.deliver import deliver
from analyzer.pipeline import Outcome
from analyzer.report import annotations, dot, escape, html, markdown, sarif
from analyzer.report.model import build_report
from tests.conftest import PROJECTS, TESTDATA
from tests.unit.test_explain import record_of, snap

# pydot 4 still calls pyparsing's old camelCase names
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")

SARIF_SCHEMA = TESTDATA / "schemas" / "sarif-2.1.0.json"
ON_CI = os.environ.get("CI") == "true"

# Everything a hostile Dockerfile or file name could hold, in one string.
NASTY = ("<script>alert(1)</script> `tick` a|b\nsecond line\r\n%0A ::error::boom \"dq\" 'sq' \\back "
         "& &amp; [x](javascript:alert(2)) $m$ *em* _u_ ~s~ <img src=x onerror=alert(3)> -->")


def make_report(tmp: Path) -> tuple[dict, Path]:
    """The one-file change of the captures: src/b.txt modified, line 6 the root."""
    before = tmp / "before"
    shutil.copytree(PROJECTS / "multistage", before)
    after = tmp / "after"
    shutil.copytree(before, after)
    with open(after / "src" / "b.txt", "a") as f:
        f.write("gamma\n")
    prev = record_of("multistage-warm", before, snap=snap(before))
    cur = record_of("multistage-change", after, snap=snap(after))
    cur["project"] = prev["project"]  # the records are of different folders: the same project
    return build_report(explain(cur, prev)), before


@pytest.fixture
def change(tmp_path, monkeypatch):
    """(report, context folder); paths in the output are relative to the context."""
    report, ctx = make_report(tmp_path)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(ctx))
    return report, ctx


@pytest.fixture
def cold(monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(PROJECTS / "multistage"))
    return build_report(explain(record_of("multistage-cold"), None))


def nasty_report(report: dict, ctx: Path) -> dict:
    """The same report with hostile text wherever build text goes."""
    r = copy.deepcopy(report)
    root = next(m for m in r["misses"] if m["root"])
    root_step = next(s for s in r["steps"] if s["id"] == root["id"])
    for item in (root, root_step):
        item["instruction"] = "COPY " + NASTY
        item["stage"] = "st<age>|\"x\n"
    for s in r["steps"]:
        if s.get("stage") == "builder":
            s["stage"] = "st<age>|\"x\n"
    root["cause"]["detail"] = NASTY
    root["cause"]["files"]["modified"] = [NASTY, "ok,name:with.txt"]
    root["also"] = [{"kind": "instruction-changed", "detail": NASTY}]
    r["notes"] = [NASTY]
    failed = next(s for s in r["steps"] if s.get("line") == 13)
    failed["status"] = "failed"
    failed["error"] = NASTY
    # a Dockerfile path with the characters workflow command properties escape
    weird = ctx / "x,y:z"
    weird.mkdir(exist_ok=True)
    r["build"]["dockerfile"] = str(weird / "Docker file")
    return r


def sarif_validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SARIF_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def require_dot() -> None:
    if shutil.which("dot") is None:
        if ON_CI:
            pytest.fail("Graphviz's `dot` is required under CI=true (scripts/setup.sh installs it)")
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz)")


# --- Markdown --------------------------------------------------------------------

def test_markdown_headline_root_cause_row_and_folded_steps(change):
    report, _ = change
    md = markdown.render(report)
    assert md.startswith("### cachewhy: 38% cache hits, 1.1s lost, exit 0\n")
    row = next(line for line in md.splitlines() if line.startswith("| Dockerfile:6 "))
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
    assert cells[0] == "Dockerfile:6"
    assert cells[1] == "<code>COPY src/ ./src/</code>"
    assert "context changed" in cells[2] and "docs/causes/context-changed.md" in cells[2]
    assert cells[3] == "src/b.txt modified"
    assert cells[4] == "<code>src/b.txt</code> modified"
    assert cells[5] == "5 (lines 6-13)"
    assert cells[6] == "1.1s"
    # the step table is folded away, one row per Dockerfile line
    head, _, folded = md.partition("<details><summary>")
    assert "| 7 | builder | rebuilt |" not in head
    assert "</details>" in folded
    for line in (1, 2, 3, 6, 7, 9, 10, 11, 12, 13):
        assert re.search(rf"^\| {line} \| ", folded, re.MULTILINE), line


def test_markdown_renders_as_tables(change):
    pytest.importorskip("markdown_it")
    from markdown_it import MarkdownIt

    report, _ = change
    out = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown.render(report))
    assert out.count("<table>") == 2
    assert "<td>Dockerfile:6</td>" in out
    assert '<a href="https://github.com/cachewhy/cachewhy/blob/main/docs/causes/context-changed.md">' in out


def test_markdown_nothing_rebuilt_and_no_previous(cold):
    md = markdown.render(cold)
    assert "no previous build to compare with" in md
    assert "no previous build" in md and "Dockerfile:2" in md and "Dockerfile:10" in md
    warm = build_report(explain(record_of("multistage-warm"), record_of("multistage-warm")))
    assert "Nothing was rebuilt." in markdown.render(warm)


# --- GitHub workflow annotations ---------------------------------------------------

def test_annotations_exact(change):
    report, _ = change
    assert annotations.render(report) == (
        "::warning file=Dockerfile,line=6,title=cachewhy%3A context-changed::"
        "Dockerfile:6 COPY src/ ./src/ \u2014 context changed: src/b.txt modified (5 steps rebuilt, 1.1s lost)\n")


def test_annotations_notice_for_no_previous_build(cold):
    assert annotations.render(cold).splitlines() == [
        "::notice file=Dockerfile,line=2,title=cachewhy%3A no-previous-build::"
        "Dockerfile:2 WORKDIR /app \u2014 no previous build: no earlier build of this context, Dockerfile and "
        "target to compare with (7 steps rebuilt, 1.1s lost)",
        "::notice file=Dockerfile,line=10,title=cachewhy%3A no-previous-build::"
        "Dockerfile:10 WORKDIR /srv \u2014 no previous build: no earlier build of this context, Dockerfile and "
        "target to compare with (4 steps rebuilt, 0.0s lost)",
    ]


def test_annotation_outside_the_workspace_keeps_the_absolute_path(change, monkeypatch, tmp_path):
    report, ctx = change
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "elsewhere"))
    line = annotations.render(report)
    assert line.startswith(f"::warning file={escape.workflow_prop(str(ctx / 'Dockerfile'))},line=6,")


# --- SARIF ---------------------------------------------------------------------------

def test_sarif_validates_and_has_one_result_per_root(change):
    report, ctx = change
    log = json.loads(sarif.render(report))
    errors = sorted(sarif_validator().iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "cachewhy" and driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == list(KINDS)
    assert driver["rules"][1]["helpUri"] == \
        "https://github.com/cachewhy/cachewhy/blob/main/docs/causes/context-changed.md"
    assert len(run["results"]) == report["summary"]["root_causes"] == 1
    res = run["results"][0]
    assert res["ruleId"] == "context-changed" and res["level"] == "warning"
    assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "Dockerfile", "uriBaseId": "%SRCROOT%"}
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == ctx.as_uri() + "/"
    assert loc["region"]["startLine"] == loc["region"]["endLine"] == 6
    assert res["properties"]["files"] == {"added": [], "modified": ["src/b.txt"], "removed": []}
    assert res["properties"]["time_lost_s"] == pytest.approx(1.112)
    assert "src/b.txt modified" in res["message"]["text"]


def test_sarif_no_previous_build_is_a_note(cold):
    log = json.loads(sarif.render(cold))
    assert not list(sarif_validator().iter_errors(log))
    results = log["runs"][0]["results"]
    assert [(r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == \
        [("note", 2), ("note", 10)]


# --- DOT and SVG -------------------------------------------------------------------------

def test_dot_parses_back_with_a_node_per_step_and_the_edges(change, tmp_path):
    report, _ = change
    text = dot.render(report)
    path = tmp_path / "graph.dot"
    path.write_text(text)
    tiny_dot_check(text, report)
    nx_pydot = pytest.importorskip("networkx.drawing.nx_pydot")
    pytest.importorskip("pydot")  # in the test extra; tiny_dot_check above runs without it
    g = nx_pydot.read_dot(path)
    by_line = {s["line"]: s for s in report["steps"] if s.get("line")}
    for s in by_line.values():
        assert f"s_{s['id']}" in g, s
    context = next(s for s in report["steps"] if s["name"] == "[internal] load build context")
    assert f"s_{context['id']}" in g  # read by the COPY steps: drawn small
    assert not any(n.startswith("s_") and n[2:] not in {s["id"] for s in report["steps"]} for n in g)
    # edges follow the inputs
    assert g.has_edge(f"s_{by_line[6]['id']}", f"s_{by_line[7]['id']}")
    assert g.has_edge(f"s_{by_line[7]['id']}", f"s_{by_line[11]['id']}")
    # labels, status colours, the root's note (networkx keeps no attributes of nodes
    # inside clusters: read them with pydot)
    attrs = pydot_nodes(text)
    root = attrs[f"s_{by_line[6]['id']}"]
    assert root["label"] == '"6: COPY src/ ./src/"'
    assert root["fillcolor"] == '"#ffcdd2"' and "bold" in root["style"]
    assert attrs[f"s_{by_line[7]['id']}"]["fillcolor"] == '"#ffe0b2"'  # cascaded
    assert attrs[f"s_{by_line[2]['id']}"]["fillcolor"] == '"#d9f2d9"'  # cached
    assert attrs[f"s_{by_line[1]['id']}"]["fillcolor"] == '"#eeeeee"'  # source
    note = g.nodes[f"cause_{by_line[6]['id']}"]
    assert "context changed: src/b.txt modified" in note["label"]
    assert g.has_edge(f"cause_{by_line[6]['id']}", f"s_{by_line[6]['id']}")
    # one cluster per stage
    import pydot

    parsed = pydot.graph_from_dot_data(text)[0]
    assert sorted(sg.get_name().strip('"') for sg in parsed.get_subgraphs()) == \
        ["cluster_base", "cluster_builder", "cluster_final"]


def tiny_dot_check(text: str, report: dict) -> None:
    """Without a DOT parser: braces balance, one node statement per step, edges between nodes."""
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    assert outside_strings.count("{") == outside_strings.count("}") > 0
    nodes = re.findall(r'^\s*"(s_[0-9a-f]+)" \[', text, re.MULTILINE)
    assert len(nodes) == len(set(nodes))
    assert {f"s_{s['id']}" for s in report["steps"] if s.get("line")} <= set(nodes)
    edges = re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', text, re.MULTILINE)
    assert edges and all(src in nodes or src.startswith("cause_") for src, _ in edges)
    assert all(dst in nodes for _, dst in edges)


def pydot_nodes(text: str) -> dict[str, dict]:
    """Every node's attributes, clusters included, by unquoted name."""
    pydot = pytest.importorskip("pydot")
    out: dict[str, dict] = {}

    def walk(graph) -> None:
        for n in graph.get_node_list():
            out.setdefault(n.get_name().strip('"'), {}).update(n.get_attributes())
        for sg in graph.get_subgraph_list():
            walk(sg)

    walk(pydot.graph_from_dot_data(text)[0])
    out.pop("graph", None), out.pop("node", None), out.pop("edge", None)
    return out


def test_dot_renders_to_svg(change):
    require_dot()
    report, _ = change
    svg = dot.render_svg(report)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "6: COPY src/ ./src/" in svg
    assert "7: RUN cat config.txt src/*.txt &gt; /build.txt &amp;&amp;" in svg


def test_svg_without_graphviz_says_how_to_install_it(change, monkeypatch):
    report, _ = change
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(CachewhyError, match="apt-get install graphviz"):
        dot.render_svg(report)
    page = html.render(report)
    assert "apt-get install graphviz" in page and "<svg" not in page
    assert "Dockerfile:6" in page


# --- HTML --------------------------------------------------------------------------------

class HtmlParts(HTMLParser):
    """The tags and the text of an HTML page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse_html(page: str) -> HtmlParts:
    p = HtmlParts()
    p.feed(page)
    p.close()
    return p


def test_html_page_is_self_contained(change):
    report, _ = change
    page = html.render(report)
    parsed = parse_html(page)
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    assert not any(a.get("src") for _, a in parsed.tags)  # nothing loaded
    assert not any(k.startswith("on") for _, a in parsed.tags for k in a)
    text = " ".join(parsed.text)
    assert "Dockerfile:6" in text and "src/b.txt" in text and "context changed" in text
    csp = next(a for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp["content"]
    if shutil.which("dot"):
        assert "<svg" in page and "6: COPY src/ ./src/" in page


# --- hostile build text, every format --------------------------------------------------------

def test_hostile_text_is_escaped_in_every_format(change, monkeypatch):
    report, ctx = change
    r = nasty_report(report, ctx)

    # Markdown: no raw HTML, the root row stays one row of 7 cells
    md = markdown.render(r)
    for raw in ("<script", "<img", "-->", "`tick`", "[x](javascript"):
        assert raw not in md, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    row = next(line for line in md.splitlines() if line.startswith("| x,y:z/Docker file:6 "))
    assert len(re.findall(r"(?<!\\)\|", row)) == 8
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        pass
    else:
        out = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
        assert "<script" not in out and "<img" not in out and 'href="javascript' not in out
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out

    # annotations: one line per root; properties escaped; the message can't start a line
    ann = annotations.render(r)
    assert ann.count("\n") == 1 and "\r" not in ann and ann.endswith("\n")
    line = ann[:-1]
    assert line.startswith("::warning file=x%2Cy%3Az/Docker file,line=6,title=cachewhy%3A context-changed::")
    # the runner splits at the first "::" after the command: properties can't hold one
    head, _, data = line[2:].partition("::")
    assert head == "warning file=x%2Cy%3Az/Docker file,line=6,title=cachewhy%3A context-changed"
    assert "%250A" in data and "%0A" not in data.replace("%250A", "")  # a literal %0A stays literal
    unescaped = data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
    assert "<script>alert(1)</script>" in unescaped and "%0A ::error::boom" in unescaped

    # SARIF: valid JSON, valid SARIF, the text intact
    log = json.loads(sarif.render(r))
    assert not list(sarif_validator().iter_errors(log))
    res = log["runs"][0]["results"][0]
    assert "<script>alert(1)</script>" in res["message"]["text"]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "x%2Cy%3Az/Docker%20file"

    # DOT: parses, every step still one node, no raw markup
    text = dot.render(r)
    assert "<script" not in text and "<img" not in text
    tiny_dot_check(text, r)
    pydot = pytest.importorskip("pydot")
    assert len(pydot.graph_from_dot_data(text)) == 1
    nodes = pydot_nodes(text)
    assert {f"s_{s['id']}" for s in r["steps"] if s.get("line")} <= set(nodes)
    root_id = next(m["id"] for m in r["misses"] if m["root"])
    assert nodes[f"s_{root_id}"]["label"].startswith('"6: COPY &lt;script&gt;alert(1)&lt;/script&gt; `tick` a|b')
    if shutil.which("dot") or ON_CI:
        svg = dot.render_svg(r)
        assert "<script" not in svg and "<img" not in svg
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg

    # HTML: no markup from the build, the text shown as text
    page = html.render(r)
    parsed_html = parse_html(page)
    assert "script" not in {t for t, _ in parsed_html.tags}
    assert "img" not in {t for t, _ in parsed_html.tags}
    assert not any(k.startswith("on") for _, a in parsed_html.tags for k in a)
    assert not any((a.get("href") or "").startswith("javascript") for _, a in parsed_html.tags)
    assert "<script>alert(1)</script>" in " ".join(parsed_html.text)


def test_escape_functions():
    assert escape.md("a|b `c` <d> & *e* \\") == r"a\|b \`c\` &lt;d&gt; &amp; \*e\* \\"
    assert escape.md("one\ntwo\r\nthree") == "one two three"
    assert escape.html("<a href='x'>&\"") == "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;"
    assert escape.dot_str('a"b\\c\nd<e>&') == r'"a\"b\\c\nd&lt;e&gt;&amp;"'
    assert escape.workflow_data("50% a\r\nb::c") == "50%25 a%0D%0Ab::c"
    assert escape.workflow_prop("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert escape.clean("a\x1b[31mb\x00") == "a[31mb"


# --- determinism -------------------------------------------------------------------------------

def test_every_format_is_deterministic(change):
    report, _ = change
    for fmt in FORMATS:
        if fmt.attr == "svg" and shutil.which("dot") is None and not ON_CI:
            continue
        render = fmt.render()
        first = render(copy.deepcopy(report))
        assert first == render(copy.deepcopy(report)), fmt.option
    assert annotations.render(report) == annotations.render(copy.deepcopy(report))


# --- the outputs table --------------------------------------------------------------------------

def test_every_format_has_a_renderer_and_an_option():
    fields = set(Outputs.__dataclass_fields__)
    assert len({f.option for f in FORMATS}) == len({f.attr for f in FORMATS}) == len(FORMATS)
    for fmt in FORMATS:
        assert callable(fmt.render()), fmt
        assert fmt.option.startswith("--") and OUTPUT_OPTIONS[fmt.option] == fmt.attr
        assert fmt.attr in fields
        assert re.search(rf"^  {re.escape(fmt.option)} FILE", OUTPUT_HELP, re.MULTILINE), fmt.option
        found, rest = take_options([fmt.option, "out.x", "-t", "img", "."], OUTPUT_OPTIONS)
        assert rest == ["-t", "img", "."]
        assert getattr(Outputs.from_options(found), fmt.attr) == "out.x"
    assert {f.option for f in FORMATS} >= {"--report-json", "--report-md", "--report-sarif", "--dot", "--svg",
                                           "--html"}


def test_write_outputs_writes_every_format_and_reports_failures_together(change, tmp_path):
    report, _ = change
    require_dot()
    dests = {f.attr: str(tmp_path / f"out.{f.attr}") for f in FORMATS}
    write_outputs(report, Outputs(**dests))
    for fmt in FORMATS:
        assert Path(dests[fmt.attr]).read_text() == fmt.render()(report), fmt.option
    bad = Outputs(report_md=str(tmp_path / "missing" / "r.md"), html=str(tmp_path / "r.html"))
    with pytest.raises(CachewhyError, match=r"^--report-md: cannot write .*missing/r\.md"):
        write_outputs(report, bad)
    assert (tmp_path / "r.html").exists()  # the failure did not stop the others


# --- GitHub Actions hooks and deliver -----------------------------------------------------------

def test_github_hooks_append_the_summary_and_print_annotations(change, tmp_path, monkeypatch, capsys):
    report, _ = change
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert github_hooks(report) == []
    assert summary.read_text() == "earlier step\n" + markdown.render(report) + "\n"
    out = capsys.readouterr()
    assert out.out == annotations.render(report) and out.err == ""
    # stdout carrying an image tarball: the annotations go to stderr (the runner reads both)
    assert github_hooks(report, stdout_busy=True) == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == annotations.render(report)
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "nope" / "summary.md"))
    errors = github_hooks(report)
    assert len(errors) == 1 and "GITHUB_STEP_SUMMARY" in errors[0]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("argv", "busy"), [
    (["-t", "x", "."], False),
    (["-o", "-", "."], True),
    (["--output=type=tar,dest=-", "."], True),
    (["--output", "type=local,dest=out", "."], False),
    (["-q", "."], True),
    (["--call=check", "."], True),
    (["--call", "build", "."], False),
])
def test_stdout_carries_data(argv, busy):
    assert stdout_carries_data(argv) is busy
    assert stdout_carries_data(["."], Outputs(report_json="-")) is True


def test_deliver_shows_the_report_and_keeps_going_when_an_output_fails(change, tmp_path, monkeypatch, capsys):
    report, _ = change
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)  # no Graphviz
    outputs = Outputs(svg=str(tmp_path / "g.svg"), report_md=str(tmp_path / "r.md"),
                      html=str(tmp_path / "r.html"))
    outcome = Outcome(record={"invocation": {"argv": ["."]}}, analysis=None, report=report)  # type: ignore[arg-type]
    with pytest.raises(CachewhyError) as err:
        deliver(outcome, outputs, None, 100)
    assert str(err.value).startswith("--svg: Graphviz's `dot` is not installed")
    assert "\n" not in str(err.value)
    assert (tmp_path / "r.md").exists() and (tmp_path / "r.html").exists() and not (tmp_path / "g.svg").exists()
    out = capsys.readouterr()
    assert "Why: 1 root cause" in out.err  # the terminal report was still shown
    assert out.out.startswith("::warning file=Dockerfile,line=6,")
