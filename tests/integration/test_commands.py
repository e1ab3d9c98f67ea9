"""analyze, diff, history and the gates over real builds on the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, make_cold, run_cachewhy

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]
STATUSES_AFTER_B_TXT = {2: "cached", 3: "cached", 6: "rebuilt", 7: "rebuilt", 10: "cached", 11: "rebuilt",
                        12: "rebuilt", 13: "rebuilt"}


def buildx(ctx: Path, log: Path, meta: Path, *extra: str) -> int:
    """A plain `docker buildx build` (no cachewhy) with its stderr kept as a rawjson log."""
    env = dict(os.environ, BUILDX_METADATA_PROVENANCE="max")
    with open(log, "wb") as err:
        res = subprocess.run(["docker", "buildx", "build", "--progress=rawjson", "--metadata-file", str(meta),
                              *COMMON, *extra, str(ctx)], stdout=subprocess.DEVNULL, stderr=err, env=env,
                             timeout=300)
    return res.returncode


def change_b_txt(ctx: Path) -> None:
    with open(ctx / "src" / "b.txt", "a") as f:
        f.write("gamma\n")


def statuses(report: dict) -> dict[int, str]:
    return {s["line"]: s["status"] for s in report["steps"] if s.get("line") and s["status"] in ("cached", "rebuilt")}


def test_analyze_logs_of_plain_buildx(project, tmp_path):
    ctx = project("multistage")
    make_cold(ctx / "Dockerfile")
    assert buildx(ctx, tmp_path / "1.log", tmp_path / "m1.json") == 0
    change_b_txt(ctx)
    assert buildx(ctx, tmp_path / "2.log", tmp_path / "m2.json") == 0
    store = tmp_path / "store"

    res = run_cachewhy("analyze", "--store", str(store), "--width", "200", str(tmp_path / "2.log"),
                       "--metadata-file", str(tmp_path / "m2.json"), "--previous", str(tmp_path / "1.log"),
                       "--previous-metadata", str(tmp_path / "m1.json"), "--report-json", "-")
    err = res.stderr.decode()
    assert res.returncode == 0, err
    report = json.loads(res.stdout)
    assert statuses(report) == STATUSES_AFTER_B_TXT
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["instruction"]) for m in roots] == [(6, "COPY src/ ./src/")]
    # a log holds no snapshot of the context: the file that changed cannot be named, and the
    # cause says what was compared and what was not instead of guessing
    cause = roots[0]["cause"]
    assert cause["kind"] == "unknown"
    assert "LLB op" in cause["detail"]
    assert "not compared: the context files it reads (src)" in cause["detail"]
    assert ":6 " in err and "cause unknown" in err  # (no --dockerfile: the report's dockerfile is "-")

    # the same from stdin, as a pipe from buildx; a warm build: every step cached
    env = dict(os.environ, BUILDX_METADATA_PROVENANCE="max", CACHEWHY_LIVE="none")
    cmd = (f"docker buildx build --progress=rawjson --metadata-file {tmp_path / 'm3.json'} {' '.join(COMMON)} {ctx} "
           f"2>&1 | {sys.executable} -m analyzer analyze --store {store} --context {ctx} "
           f"--metadata-file {tmp_path / 'm3.json'} --fail-below-hit-ratio 100% --report-json - -")
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=REPO, env=env, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    assert set(statuses(report).values()) == {"cached"} and report["summary"]["hit_ratio"] == 1.0


def test_build_twice_then_diff_and_history(project, tmp_path):
    ctx = project("multistage")
    make_cold(ctx / "Dockerfile")
    store = str(tmp_path / "store")
    first = run_cachewhy("build", "--store", store, *COMMON, str(ctx))
    assert first.returncode == 0, first.stderr.decode()
    change_b_txt(ctx)
    second = run_cachewhy("build", "--store", store, *COMMON, str(ctx))
    assert second.returncode == 0, second.stderr.decode()

    res = run_cachewhy("diff", "--store", store, "--width", "200", "--report-json", "-", "^1", "^0")
    err = res.stderr.decode()
    assert res.returncode == 0, err
    report = json.loads(res.stdout)
    roots = [m for m in report["misses"] if m["root"]]
    assert [m["line"] for m in roots] == [6]
    # cachewhy build snapshots the context: here the file is named
    assert roots[0]["cause"]["kind"] == "context-changed"
    assert roots[0]["cause"]["files"]["modified"] == ["src/b.txt"]
    lines = err.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("LINE  INSTRUCTION"))
    rows = {r.split()[0]: r for r in lines[start + 1:] if r[:4].strip().isdigit()}
    assert "rebuilt  rebuilt  context-changed: src/b.txt modified" in rows["6"]
    assert rows["7"].rstrip().endswith("follows line 6 (context-changed)")
    assert "rebuilt  cached" in rows["2"]  # the first build was cold

    res = run_cachewhy("history", "--store", store, "--width", "200")
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode()
    lines = out.splitlines()
    assert len(lines) == 3
    ids = [line.split()[0] for line in lines[1:]]
    assert ids[1] < ids[0]  # newest first
    assert lines[1].endswith("context-changed at Dockerfile:6")
    assert "no-previous-build at Dockerfile:" in lines[2]
    assert str(ctx.name) in lines[1]


def test_fail_on_context_changed_exits_4_and_the_image_is_built(project, tmp_path):
    ctx = project("multistage")
    make_cold(ctx / "Dockerfile")
    store = str(tmp_path / "store")
    out1 = tmp_path / "out1"
    assert run_cachewhy("build", "--store", store, "--network=none", f"--output=type=local,dest={out1}",
                        str(ctx)).returncode == 0
    change_b_txt(ctx)
    out2 = tmp_path / "out2"
    res = run_cachewhy("build", "--store", store, "--fail-on", "context-changed", "--network=none",
                       f"--output=type=local,dest={out2}", str(ctx))
    err = res.stderr.decode()
    assert res.returncode == 4, err
    assert "cachewhy: gate: root cause context-changed at Dockerfile:6" in err.splitlines()
    [listing] = out2.glob("srv*/listing.txt")  # the image was built and exported all the same
    assert "gamma" in listing.read_text()
    # a gate that does not trip changes nothing
    res = run_cachewhy("build", "--store", store, "--fail-on", "context-changed", "--fail-below-hit-ratio", "100%",
                       *COMMON, str(ctx))
    assert res.returncode == 0, res.stderr.decode()


def test_a_failed_build_keeps_its_exit_code_past_the_gates(project, tmp_path):
    ctx = project("failing")
    make_cold(ctx / "Dockerfile")
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), "--fail-below-hit-ratio", "100%", *COMMON,
                       str(ctx))
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert "cachewhy: gate: hit ratio 0% below 100%" in err.splitlines()
