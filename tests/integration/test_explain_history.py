"""`cachewhy explain` and `cachewhy watch` on builds cachewhy did not run:
plain `docker buildx build`, read back from the builder's history over gRPC.

Each build carries a unique BUILDKIT_BUILD_NAME, so it is found by name in a
history other developers' builds share (never by "the newest build").
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import BASE_IMAGE, REPO, run_cachewhy

pytestmark = pytest.mark.engine

DOCKERFILE = """\
FROM {base}
RUN echo {nonce} > /nonce
COPY src/ /src/
RUN cat /src/*.txt > /all
"""


def _project(tmp_path: Path) -> tuple[Path, str]:
    nonce = uuid.uuid4().hex
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=BASE_IMAGE, nonce=nonce))
    (ctx / "src" / "a.txt").write_text("one\n")
    (ctx / "src" / "b.txt").write_text("b\n")
    return ctx, f"cw-hist-{nonce[:12]}"


def _plain_build(ctx: Path, name: str) -> None:
    res = subprocess.run(["docker", "buildx", "build", "--network=none", "--output=type=cacheonly",
                          "--build-arg", f"BUILDKIT_BUILD_NAME={name}", str(ctx)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]


def _refs_named(name: str) -> list[str]:
    """History refs of the builds named `name`, newest first."""
    res = subprocess.run(["docker", "buildx", "history", "ls", "--format", "json", "--no-trunc"],
                         capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:  # older buildx: no --no-trunc
        res = subprocess.run(["docker", "buildx", "history", "ls", "--format", "json"],
                             capture_output=True, text=True, timeout=60, check=True)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip().startswith("{")]
    rows = [r for r in rows if r.get("name") == name]
    rows.sort(key=lambda r: r.get("created_at") or "", reverse=True)
    return [r["ref"].rsplit("/", 1)[-1] for r in rows]


def test_explain_names_the_root_of_a_plain_build(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    assert len(refs) == 2, refs
    res = run_cachewhy("explain", refs[0], "--report-json", "-", "--width", "200", timeout=120)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    report = json.loads(res.stdout)
    assert report["build"]["ref"] == f"history {refs[0]}"
    assert report["previous"] == {"ref": f"history {refs[1]}"}  # the build of the same name before it
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["instruction"]) for m in roots] == [(3, "COPY src/ /src/")]
    # BuildKit keeps no snapshot of the context: explain says it could not compare the files,
    # never that they changed (nor which)
    cause = roots[0]["cause"]
    assert cause["kind"] == "unknown"
    assert "not compared" in cause["detail"] and "src" in cause["detail"]
    followers = [m for m in report["misses"] if not m["root"]]
    assert [m["line"] for m in followers] == [4]
    steps = {s["line"]: s["status"] for s in report["steps"] if s.get("line")}
    assert steps[2] == "cached"
    # the terminal says the same
    assert "Dockerfile:3" in err and "cause unknown" in err and f"history {refs[1]}" in err

    listed = run_cachewhy("explain", "--list", "--limit", "200", timeout=120)
    assert listed.returncode == 0
    assert refs[0] in listed.stdout.decode() and name in listed.stdout.decode()


def test_watch_explains_a_build_as_it_completes(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    (ctx / "src" / "b.txt").write_text("bee\n")
    env = dict(os.environ, CACHEWHY_LIVE="none", COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "watch"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        started = b""
        while b"watching" not in started and time.monotonic() < deadline:
            if sel.select(timeout=1):
                started += os.read(proc.stderr.fileno(), 4096)
            assert proc.poll() is None, started.decode()
        assert b"watching" in started
        _plain_build(ctx, name)
        out = b""
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while name.encode() not in out and time.monotonic() < deadline:
            if sel.select(timeout=1):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
        text = out.decode()
        para = next((p for p in text.split("\n\n") if name in p), "")
        assert para, text
        flat = " ".join(para.split())
        assert "completed" in flat and "Dockerfile:3" in flat and "unknown" in flat
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0  # Ctrl-C ends it cleanly
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("builder", ["nosuch", "unix:///nonexistent.sock"])
def test_unreachable_builder_is_one_line_exit_3(builder):
    for cmd in (["explain"], ["explain", "--list"], ["watch"]):
        res = run_cachewhy(*cmd, "--builder", builder, timeout=60)
        err = res.stderr.decode().strip()
        assert res.returncode == 3, err
        assert len(err.splitlines()) == 1 and err.startswith("cachewhy: cannot reach"), err
        assert builder in err


def test_explain_a_failed_build_maps_its_lines_from_its_error(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    df = (ctx / "Dockerfile").read_text().replace("RUN cat /src/*.txt > /all", "RUN cat /src/*.txt > /all && false")
    (ctx / "Dockerfile").write_text(df)
    res = subprocess.run(["docker", "buildx", "build", "--network=none", "--output=type=cacheonly",
                          "--build-arg", f"BUILDKIT_BUILD_NAME={name}", str(ctx)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 1
    refs = _refs_named(name)
    assert len(refs) == 2, refs
    out = run_cachewhy("explain", refs[0], "--report-json", "-", timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    report = json.loads(out.stdout)
    assert report["build"]["exit_code"] == 1
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(4, "instruction-changed")]
    assert any("failed, so it has no provenance" in n for n in report["notes"])


def test_explain_against_a_stored_record(tmp_path):
    ctx, name = _project(tmp_path)
    store = tmp_path / "store"
    first = run_cachewhy("build", "--store", str(store), "--network=none", "--output=type=cacheonly",
                         "--build-arg", f"BUILDKIT_BUILD_NAME={name}", str(ctx), timeout=300)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    (ctx / "src" / "a.txt").write_text("two\n")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    kept = sorted(p.name for p in store.rglob("*") if p.is_file())
    res = run_cachewhy("explain", f"default/default/{refs[0]}", "--against", "^0", "--store", str(store),
                       "--report-json", "-", timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    assert report["previous"]["ref"] != f"history {refs[1]}"  # the stored record, not the history
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(3, "unknown")]
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == kept  # explain keeps no record


def test_history_lists_the_builders_records_beside_the_stores(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    res = run_cachewhy("history", "--store", str(tmp_path / "store"), "--builder", "default")
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode()
    assert "builder default:" in out
    assert f"({name})" in out  # the plain build, found by its BUILDKIT_BUILD_NAME
    res = run_cachewhy("history", "--store", str(tmp_path / "store"), "--builder", "nosuch")
    assert res.returncode == 3
    assert res.stderr.decode().strip().splitlines()[-1] == 'cachewhy: cannot reach nosuch: no builder "nosuch" found'
    assert "Traceback" not in res.stderr.decode()


def test_evicted_cache_shows_the_builders_disk_usage(tmp_path):
    """A plain build, its cache records removed, the same build again:
    explain reports cache-evicted and what DiskUsage says of the cache."""
    from tests.integration.test_causes import evict, prune_allowed

    prune_allowed()
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    nonce = (ctx / "Dockerfile").read_text().split("echo ", 1)[1].split(" ", 1)[0]
    evict(nonce)
    _plain_build(ctx, name)
    refs = _refs_named(name)
    res = run_cachewhy("explain", refs[0], "--report-json", "-", "--width", "200", timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(2, "cache-evicted")]
    evidence = [n for n in report["notes"] if n.startswith("cache-evicted: the builder's cache now holds")]
    assert evidence and " MB" in evidence[0] and "oldest entry" in evidence[0], report["notes"]
