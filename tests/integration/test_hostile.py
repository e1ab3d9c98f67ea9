"""Issue 18 on the real engine: links out of the context, a killed cachewhy."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cachewhy
from tests.integration.test_reliability import slow_project, wait_running

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]


def _files(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in r.rglob("*") if p.is_file()]


def test_a_dockerignore_linked_to_the_environment_never_reaches_the_carried_record(tmp_path):
    canary = f"ci-token-{uuid.uuid4().hex}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM local/busybox:latest\nCOPY a.txt /a-{uuid.uuid4().hex[:8]}.txt\n")
    (ctx / "a.txt").write_text("a\n")
    (ctx / ".dockerignore").symlink_to("/proc/self/environ")
    store, cache, out = tmp_path / "store", tmp_path / "cache", tmp_path / "out"
    res = run_cachewhy("build", "--store", str(store), "--report-json", str(tmp_path / "r.json"), *COMMON,
                       "--cache-to", f"type=local,dest={cache}", str(ctx), env={"CANARY_TOKEN": canary})
    err = res.stderr.decode()
    assert res.returncode == 0, err  # BuildKit resolves the link inside the context: no ignore file
    carried = cache / "cachewhy-record.json"
    assert carried.is_file(), err
    assert stat.S_IMODE(carried.stat().st_mode) == 0o600
    files = _files(store, cache, out) + [tmp_path / "r.json"]
    assert len(files) >= 4
    for p in files:
        assert canary.encode() not in p.read_bytes(), p
    assert canary not in err + res.stdout.decode()


def test_a_dockerfile_linked_out_of_the_context_is_read_by_nobody(tmp_path):
    canary = f"shadow-{uuid.uuid4().hex}"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text(f"# {canary}\nFROM local/busybox:latest\nRUN true\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").symlink_to(outside / "Dockerfile")
    store = tmp_path / "store"
    res = run_cachewhy("build", "--store", str(store), "--report-json", str(tmp_path / "r.json"), *COMMON, str(ctx))
    err = res.stderr.decode()
    assert res.returncode != 0, err  # BuildKit refuses it: the link leaves the Dockerfile's folder
    assert "internal error" not in err and "Traceback" not in err
    for p in _files(store) + [tmp_path / "r.json"]:
        if p.exists():
            assert canary.encode() not in p.read_bytes(), p
    assert canary not in err + res.stdout.decode()


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            out.append(int(status.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def test_kill_9_of_cachewhy_takes_buildx_with_it_and_the_next_run_sweeps_its_folder(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, CACHEWHY_LIVE="none", TMPDIR=str(tmp))
    ctx = slow_project(tmp_path, seconds=120)
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "build", "--store", str(tmp_path / "store"),
                             *COMMON, str(ctx)], cwd=REPO, stderr=subprocess.PIPE, env=env)
    try:
        wait_running(proc, ctx)
        buildx = _children(proc.pid)
        assert buildx, "no buildx under cachewhy"
        folders = list(tmp.glob(f"cachewhy-{proc.pid}-*"))
        assert len(folders) == 1 and stat.S_IMODE(folders[0].stat().st_mode) == 0o700
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not all(_gone(p) for p in buildx) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(p) for p in buildx), "buildx kept running after cachewhy was killed"
        assert folders[0].exists()  # kill -9 leaves it: nothing can run in a killed process
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    quick = tmp_path / "quick"
    quick.mkdir()
    (quick / "Dockerfile").write_text("FROM local/busybox:latest\n")
    res = subprocess.run([sys.executable, "-m", "analyzer", "build", "--store", str(tmp_path / "store"), *COMMON,
                          str(quick)], cwd=REPO, capture_output=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    assert not folders[0].exists()  # the next run removed the dead run's folder, and its metadata
    assert not list(tmp.glob("cachewhy-*"))
