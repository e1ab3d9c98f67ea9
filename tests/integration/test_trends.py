"""`cachewhy trends` over real builds: a project built through a scripted series of edits,
one of which (a .dockerignore that stops excluding a folder a tool rewrites before every
build) turns two lines into a recurring miss. The trends must find that regression, its
first build and its cause; the HTML page is opened in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cachewhy
from tests.integration.test_outputs import dom_of, screenshot

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]

DOCKERFILE = """\
FROM local/busybox:latest
WORKDIR /app-{nonce}
COPY deps/ ./deps/
RUN cat deps/list.txt > deps.lock && sleep 2
COPY src/ ./src/
RUN cat src/*.txt > app.bin
"""
SCREENSHOT = REPO / "docs" / "img" / "trends-html.png"


def make_project(root: Path) -> Path:
    ctx = root / "shop"
    (ctx / "deps" / "cache").mkdir(parents=True)
    (ctx / "src").mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(nonce=uuid.uuid4().hex[:10]))  # cold: a path no cache has
    (ctx / "deps" / "list.txt").write_text("left-pad 1.3.0\n")
    (ctx / "src" / "app.txt").write_text("v0\n")
    (ctx / ".dockerignore").write_text("deps/cache\n")
    return ctx


def tool_runs(ctx: Path, i: int) -> None:
    """What a package manager does before each build: rewrite its cache folder."""
    (ctx / "deps" / "cache" / "stamp").write_text(f"run {i} {time.time_ns()}\n")


def test_trends_find_a_regression_its_first_build_and_cause(tmp_path, monkeypatch):
    ctx = make_project(tmp_path)
    store = tmp_path / "store"
    ids = []
    for i in range(10):
        tool_runs(ctx, i) if i != 8 else None  # build 8: the tool did not run, the cache folder is unchanged
        if i > 0:
            (ctx / "src" / "app.txt").write_text(f"v{i}\n")  # every build: a source edit
        if i == 5:
            (ctx / ".dockerignore").write_text("# deps/cache is needed in the image now\n")  # the regression
        res = run_cachewhy("build", "--store", str(store), *COMMON, str(ctx))
        assert res.returncode == 0, res.stderr.decode()
        ids.append(json.loads(run_cachewhy("history", "--store", str(store), "--json", "--limit", "1").stdout)[0]["id"])
    assert len(set(ids)) == 10

    res = run_cachewhy("trends", "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr.decode()
    model = json.loads(res.stdout)
    (p,) = model["projects"]
    assert p["builds"] == 10 and p["context"] == str(ctx.resolve()) and p["per"] == "build"
    # the builds x steps strip: lines 3-6 of the newest build, the 10 builds oldest first
    assert [s["line"] for s in p["strip"]["steps"]] == [2, 3, 4, 5, 6]
    cells = dict(zip([s["line"] for s in p["strip"]["steps"]], p["strip"]["cells"]))
    assert cells[3] == "RCCCCRRRCR" and cells[4] == "RCCCCRRRCR"  # cold, cached, then missed but in build 8
    assert cells[5] == "R" * 10 and cells[6] == "R" * 10          # the source edits
    (reg,) = p["regressions"]
    assert (reg["line"], reg["instruction"]) == (4, "RUN cat deps/list.txt > deps.lock && sleep 2")
    assert (reg["missed"], reg["of"]) == (4, 5)
    assert reg["first_build"] == ids[5]
    cause = reg["cause"]
    assert (cause["kind"], cause["line"], cause["instruction"]) == ("context-changed", 3, "COPY deps/ ./deps/")
    assert "deps/cache/stamp added" in cause["detail"] and not cause["same_line"]
    assert [a["line"] for a in reg["also"]] == [3]  # the COPY regressed with it, from the same root
    # the time lost since: the RUN's and the COPY's own time in the 4 builds that missed
    assert reg["time_lost_s"] >= 4 * 2.0
    kinds = {k["kind"]: k for k in p["lost_by_kind"]}
    assert set(kinds) == {"no-previous-build", "context-changed"}
    assert kinds["context-changed"]["roots"] >= 9  # src/ in builds 1-9, deps/ in 5, 6, 7 and 9
    assert p["lines"][0]["line"] == 4  # the RUN with the sleep cost most

    # the terminal form: within 80 columns, the regression told as a sentence
    res = run_cachewhy("trends", "--store", str(store), env={"COLUMNS": "80"})
    out = res.stdout.decode()
    assert res.returncode == 0 and max(len(line) for line in out.splitlines()) <= 80
    text = " ".join(out.split())
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(reg["since"]))
    assert (f"`RUN cat deps/list.txt > deps.lock && sleep 2` (line 4) has rebuilt in 4 of 5 builds since "
            f"{when}, when line 3 `COPY deps/ ./deps/` missed (context-changed: ") in text
    assert "deps/cache/stamp added" in text and "with it line 3:" in text

    # the same trends from the folder of record files (as downloaded from CI)
    res = run_cachewhy("trends", "--json", str(store))
    assert res.returncode == 0, res.stderr.decode()
    assert json.loads(res.stdout)["projects"][0]["regressions"] == p["regressions"]

    # the HTML page in headless Chromium: charts drawn, no script, the regression listed
    pytest.importorskip("matplotlib")
    page = tmp_path / "trends.html"
    res = run_cachewhy("trends", "--store", str(store), "--html", str(page), env={"MPLCONFIGDIR": str(tmp_path / "mpl")})
    assert res.returncode == 0, res.stderr.decode()
    dom = dom_of(page, tmp_path)
    tags = [t for t, _ in dom.tags]
    assert "script" not in tags and not any(a.get("src") for _, a in dom.tags)
    assert tags.count("svg") == 3  # hit ratio, time lost by cause, the strip
    shown = " ".join(" ".join(dom.text).split())
    assert "has rebuilt in 4 of 5 builds since" in shown
    png = tmp_path / "trends.png"
    screenshot(page, png, tmp_path)
    if os.environ.get("CACHEWHY_UPDATE_SCREENSHOTS") == "1":  # docs/img/trends-html.png, regenerated on demand
        SCREENSHOT.write_bytes(png.read_bytes())
    assert re.search(r"Cache misses over 10 builds", shown)


def test_trends_of_a_folder_of_bundles(tmp_path):
    """Builds run by plain buildx, exported as `.dockerbuild` bundles (what CI uploads):
    trends explains each against the previous build of its project among them."""
    from tests.integration.test_bundles import _export
    from tests.integration.test_explain_truth import _build, _project
    from tests.integration.test_explain_history import _refs_named

    ctx, name, _ = _project(tmp_path)
    for i in range(4):
        if i:
            (ctx / "src" / "a.txt").write_text(f"edit {i}\n")
        _build(ctx, name)
    refs = _refs_named(name)
    assert len(refs) == 4
    folder = tmp_path / "artifacts"
    for i, ref in enumerate(reversed(refs)):  # a folder per CI run, as an artifact download lays them out
        _export(ref, folder / f"run-{i}" / "build.dockerbuild")
    res = run_cachewhy("trends", "--since", "all", "--json", str(folder), timeout=600)
    assert res.returncode == 0, res.stderr.decode()
    model = json.loads(res.stdout)
    assert model["source"] == f"4 builds of 4 bundles in {folder}"
    (p,) = model["projects"]
    assert p["builds"] == 4 and p["per"] == "build"
    # lines 3-5 of DOCKERFILE (COPY src/, the RUN reading it, the RUN after it), in build order
    cells = dict(zip([s["line"] for s in p["strip"]["steps"]], p["strip"]["cells"]))
    assert cells[2] == "RCCC"  # the RUN echo nonce: only the first build ran it
    assert cells[3] == "RRRR" and cells[4] == "RRRR"  # every edit of src/a.txt
    assert [s["hit_ratio"] for s in p["series"]][1:] == [0.25, 0.25, 0.25]
    kinds = {k["kind"] for k in p["lost_by_kind"]}
    assert "no-previous-build" in kinds  # the first build, and nothing before it among the bundles
    assert p["regressions"] == []  # rebuilt in every build: a cost, not a regression
