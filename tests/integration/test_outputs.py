"""Every report output of a real build: Markdown, GitHub step summary and annotations,
SARIF, DOT, SVG and the HTML page opened in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TESTDATA, make_cold, run_cachewhy
from tests.unit.test_formats import HtmlParts

# pydot 4 still calls pyparsing's old camelCase names
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")

COMMON = ["--network=none", "--output=type=cacheonly"]
ON_CI = os.environ.get("CI") == "true"
# a job of cachewhy's own CI may run under GitHub Actions: the builds here set these themselves
GITHUB_VARS = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE")


def need(tool: str, package: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        if ON_CI:
            pytest.fail(f"`{tool}` is required under CI=true (scripts/setup.sh installs {package})")
        pytest.skip(f"`{tool}` is not installed (apt-get install {package})")
    return exe


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    exe = need("chromium", "chromium")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-2000:]
    return res


def dom_of(page: Path, tmp: Path) -> HtmlParts:
    """The page as Chromium built it (--dump-dom)."""
    dom = HtmlParts()
    dom.feed(chromium(tmp, "--dump-dom", page.as_uri()).stdout.decode("utf-8", "replace"))
    return dom


def screenshot(page: Path, png: Path, tmp: Path) -> None:
    chromium(tmp, f"--screenshot={png}", "--window-size=1280,900", page.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # a rendered page, not a blank one


def sarif_errors(log: dict) -> list[str]:
    import jsonschema

    schema = json.loads((TESTDATA / "schemas" / "sarif-2.1.0.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]


@pytest.mark.engine
def test_every_output_of_a_one_file_change(project, tmp_path):
    need("dot", "graphviz")
    ctx = project("multistage")
    make_cold(ctx / "Dockerfile")
    store = tmp_path / "store"
    quiet_env = {k: "" for k in GITHUB_VARS}
    cold = run_cachewhy("build", "--store", str(store), *COMMON, str(ctx), env=quiet_env)
    assert cold.returncode == 0, cold.stderr.decode()

    with open(ctx / "src" / "b.txt", "a") as f:
        f.write("gamma\n")
    out = tmp_path / "out"
    out.mkdir()
    summary = tmp_path / "step-summary.md"
    summary.write_text("## an earlier step's summary\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(tmp_path)}
    res = run_cachewhy("build", "--store", str(store), "--width", "200",
                       "--report-md", str(out / "report.md"), "--report-sarif", str(out / "report.sarif"),
                       "--dot", str(out / "graph.dot"), "--svg", str(out / "graph.svg"),
                       "--html", str(out / "report.html"), "--report-json", str(out / "report.json"),
                       *COMMON, str(ctx), env=env)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    assert "cachewhy:" not in err.replace("cachewhy: --progress", ""), err  # no output error
    assert "Dockerfile:6" in err and "context changed: src/b.txt modified" in err  # the terminal report
    report = json.loads((out / "report.json").read_text())
    root = next(m for m in report["misses"] if m["root"])
    assert (root["line"], root["cause"]["kind"]) == (6, "context-changed")

    # the step summary got the same Markdown as --report-md, after what was there
    md = (out / "report.md").read_text()
    assert summary.read_text() == "## an earlier step's summary\n" + md + "\n"
    assert md.startswith("### cachewhy: ")
    row = next(line for line in md.splitlines() if line.startswith("| multistage/Dockerfile:6 |"))
    assert "<code>src/b.txt</code> modified" in row and "<code>COPY src/ ./src/</code>" in row

    # one annotation per root, on stdout, relative to GITHUB_WORKSPACE
    lines = res.stdout.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "::warning file=multistage/Dockerfile,line=6,title=cachewhy%3A context-changed::"
        "multistage/Dockerfile:6 COPY src/ ./src/ \u2014 context changed: src/b.txt modified ("), lines[0]

    # SARIF: valid, one result at line 6
    log = json.loads((out / "report.sarif").read_text())
    assert sarif_errors(log) == []
    results = log["runs"][0]["results"]
    assert len(results) == 1
    loc = results[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "multistage/Dockerfile"
    assert loc["region"]["startLine"] == 6
    assert results[0]["properties"]["files"]["modified"] == ["src/b.txt"]

    # DOT parses back, one node per Dockerfile step
    from networkx.drawing import nx_pydot

    g = nx_pydot.read_dot(out / "graph.dot")
    for step in report["steps"]:
        if step.get("line"):
            assert f"s_{step['id']}" in g, step
    assert g.has_edge(f"cause_{root['id']}", f"s_{root['id']}")

    # SVG: the graph with the root's instruction
    svg = (out / "graph.svg").read_text()
    assert "<svg" in svg and "6: COPY src/ ./src/" in svg

    # HTML, as Chromium shows it
    page = out / "report.html"
    assert "<svg" in page.read_text()  # Graphviz was there: the graph is inline
    dom = dom_of(page, tmp_path)
    text = " ".join(" ".join(dom.text).split())
    assert "src/b.txt" in text and "context changed" in text and "Dockerfile:6" in text
    assert "script" not in {t for t, _ in dom.tags}
    png = Path(os.environ.get("CACHEWHY_SCREENSHOT") or tmp_path / "report.png")
    screenshot(page, png, tmp_path)


@pytest.mark.engine
def test_an_output_error_keeps_the_build_exit_code_and_the_other_outputs(project, tmp_path):
    ctx = project("failing")
    make_cold(ctx / "Dockerfile")
    env = {k: "" for k in GITHUB_VARS}
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), "--width", "200",
                       "--report-md", str(tmp_path / "missing" / "report.md"),
                       "--report-sarif", str(tmp_path / "report.sarif"), *COMMON, str(ctx), env=env)
    err = res.stderr.decode()
    assert res.returncode == 1  # the failed build's own code, not cachewhy's 2
    errors = [line for line in err.splitlines() if line.startswith("cachewhy: --report-md")]
    assert len(errors) == 1 and "cannot write" in errors[0], err
    assert "cache hits" in err  # the terminal report was shown
    log = json.loads((tmp_path / "report.sarif").read_text())
    assert sarif_errors(log) == []


def test_a_hostile_page_in_chromium(tmp_path, monkeypatch):
    """Build text full of markup, opened in a real browser: shown as text, nothing runs."""
    from analyzer.report import html
    from tests.unit.test_formats import make_report, nasty_report

    report, ctx = make_report(tmp_path)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(ctx))
    page = tmp_path / "hostile.html"
    page.write_text(html.render(nasty_report(report, ctx)))
    dom = dom_of(page, tmp_path)
    tags = {t for t, _ in dom.tags}
    assert "script" not in tags and "img" not in tags
    assert "<script>alert(1)</script>" in " ".join(dom.text)
    png = tmp_path / "hostile.png"
    screenshot(page, png, tmp_path)
