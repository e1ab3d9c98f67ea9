"""The build is never worse for being wrapped: interruptions, killed buildx, concurrent builds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from analyzer.store import Store
from tests.conftest import REPO, run_cachewhy

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]


def slow_project(tmp_path: Path, seconds: int = 60) -> Path:
    ctx = tmp_path / f"slow-{uuid.uuid4().hex[:6]}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM local/busybox:latest\nRUN echo {uuid.uuid4().hex} && sleep {seconds}\n")
    return ctx


def start(ctx: Path, store: Path) -> subprocess.Popen:
    env = dict(os.environ, CACHEWHY_LIVE="none")
    return subprocess.Popen([sys.executable, "-m", "analyzer", "build", "--store", str(store), *COMMON, str(ctx)],
                            cwd=REPO, stderr=subprocess.PIPE, env=env)


def wait_running(proc: subprocess.Popen, seconds: float = 4.0) -> None:
    time.sleep(seconds)
    assert proc.poll() is None, "the build ended before it could be interrupted"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build_leaves_an_incomplete_record(tmp_path, sig):
    store = tmp_path / "store"
    proc = start(slow_project(tmp_path), store)
    wait_running(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode != 0
    assert f"build stopped by {sig.name}" in text
    assert "Traceback" not in text
    entries, problems = Store(store).list_records()
    assert not problems and len(entries) == 1
    assert entries[0]["complete"] is False
    # an incomplete record is never the baseline of the next build unless asked for
    assert Store(store).find_previous(Store(store).load(entries[0]["id"])["project"]) is None


def test_killed_buildx_keeps_its_exit_code(tmp_path):
    store = tmp_path / "store"
    proc = start(slow_project(tmp_path), store)
    wait_running(proc)
    # kill buildx itself (cachewhy's child), as the OOM killer would
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], stdout=subprocess.PIPE).stdout.split()
    assert children, "buildx is not running under cachewhy"
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL
    assert "Traceback" not in err.decode()
    entries, _ = Store(store).list_records()
    assert len(entries) == 1 and entries[0]["complete"] is False


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_builds_keep_every_record_whole(tmp_path, n):
    store = tmp_path / "store"
    contexts = []
    for i in range(n):
        ctx = tmp_path / f"p{i}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM local/busybox:latest\nCOPY a.txt /\nRUN echo {uuid.uuid4().hex}\n")
        (ctx / "a.txt").write_text(f"{i}\n")
        contexts.append(ctx)

    def build(ctx: Path) -> int:
        return run_cachewhy("build", "--store", str(store), "--report-json", str(ctx / "r.json"), *COMMON,
                            str(ctx)).returncode

    with ThreadPoolExecutor(max_workers=n) as pool:
        codes = list(pool.map(build, contexts))
    assert codes == [0] * n
    entries, problems = Store(store).list_records()
    assert not problems
    assert len(entries) == n
    for e in entries:
        record = Store(store).load(e["id"])  # parses and validates the whole file
        assert record["complete"] is True and record["steps"]
    reports = [json.loads((c / "r.json").read_text()) for c in contexts]
    assert sorted(r["build"]["ref"] for r in reports) == sorted(e["id"] for e in entries)
