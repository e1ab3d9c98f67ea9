"""The build is never worse for being wrapped: interruptions, killed buildx, concurrent builds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from analyzer.pipeline import STEP_LOG_TAIL
from analyzer.store import Store
from tests.conftest import REPO, run_cachewhy

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]


def slow_project(tmp_path: Path, seconds: int = 60) -> Path:
    ctx = tmp_path / f"slow-{uuid.uuid4().hex[:6]}"
    ctx.mkdir()
    token = uuid.uuid4().hex  # unique: no cache; and the shell that waits shows it in its command line
    (ctx / "Dockerfile").write_text(f"FROM local/busybox:latest\nRUN echo {token} && sleep {seconds} && echo {token}\n")
    return ctx


def start(ctx: Path, store: Path, env: dict | None = None) -> subprocess.Popen:
    env = dict(env or os.environ, CACHEWHY_LIVE="none")
    return subprocess.Popen([sys.executable, "-m", "analyzer", "build", "--store", str(store), *COMMON, str(ctx)],
                            cwd=REPO, stderr=subprocess.PIPE, env=env)


def _token(ctx: Path) -> str:
    """The unique token slow_project wrote into the RUN step."""
    return re.search(r"echo ([0-9a-f]{32})", (ctx / "Dockerfile").read_text()).group(1)


def wait_running(proc: subprocess.Popen, ctx: Path, timeout: float = 180.0) -> None:
    """Wait until the slow project's RUN step has its process running (a fixed sleep was not
    enough on a fresh engine, where the first build is still loading the base image)."""
    token = _token(ctx).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the build ended before it could be interrupted"
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if token in cmdline.read_bytes():
                    time.sleep(0.5)  # let buildx print the step's start
                    return
            except OSError:
                continue  # the process ended while we looked
        time.sleep(0.2)
    raise AssertionError(f"the RUN step did not start within {timeout:.0f} s")


def wait_reported_started(proc: subprocess.Popen, raw: Path, ctx: Path, timeout: float = 120.0) -> None:
    """Wait until buildx's progress stream (copied to `raw`) has said that the slow RUN
    step started: the engine sends statuses in batches, so a step can run for a while
    before its start reaches buildx."""
    token = _token(ctx)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the build ended before it could be interrupted"
        for line in raw.read_text(errors="replace").splitlines() if raw.exists() else []:
            try:
                vertexes = json.loads(line).get("vertexes") or []
            except (ValueError, AttributeError):
                continue
            if any(token in (v.get("name") or "") and v.get("started") for v in vertexes):
                return
        time.sleep(0.2)
    raise AssertionError(f"buildx did not report the RUN step started within {timeout:.0f} s")


# ------------------------------------------------------------ a fault of cachewhy's own

# cachewhy as users run it (cli.entry), with one part of it made to fail: a bug
# anywhere must leave the build's outputs and exit code alone
FAULTS = {
    # after buildx exits
    "analysis": ("from analyzer import pipeline\n"
                 "def broken(**kwargs):\n"
                 "    raise RuntimeError('injected fault')\n"
                 "pipeline.analyse = broken\n",
                 "cachewhy: internal error while analysing the build: RuntimeError('injected fault') (run with "
                 "--debug for the traceback); the build's exit code is kept"),
    # while buildx runs: the live view (the analysis still runs)
    "live-view": ("from analyzer import progress\n"
                  "def broken(self, *a, **k):\n"
                  "    raise RuntimeError('injected fault')\n"
                  "progress.Progress.update = broken\n",
                  "cachewhy: internal error in the live progress view: RuntimeError('injected fault') (run with "
                  "--debug for the traceback); the view stops, the build and its analysis go on"),
    # while buildx runs: folding the events (its stderr is then drained unread)
    "event-fold": ("from analyzer import events\n"
                   "def broken(self, line):\n"
                   "    raise RuntimeError('injected fault')\n"
                   "events.BuildEvents.feed_line = broken\n",
                   "cachewhy: internal error while reading the build's events: RuntimeError('injected fault') (run "
                   "with --debug for the traceback); buildx ran to its end, the build ran without analysis"),
}


def output_project(tmp_path: Path) -> Path:
    ctx = tmp_path / "outputs"
    ctx.mkdir()
    (ctx / "a.txt").write_text(f"{uuid.uuid4().hex}\n")
    (ctx / "Dockerfile").write_text(
        "FROM local/busybox:latest AS b\n"
        "ARG FAIL=0\n"
        "COPY a.txt /out/a.txt\n"
        'RUN test "$FAIL" != 1 && sha256sum /out/a.txt > /out/sum.txt\n'
        "FROM scratch\n"
        "COPY --from=b /out/ /\n")
    return ctx


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fail", [False, True], ids=["build-succeeds", "build-fails"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_of_cachewhy_leaves_the_build_alone(tmp_path, fault, fail):
    patch, line = FAULTS[fault]
    faulty = patch + "from analyzer import cli\ncli.entry()\n"
    ctx = output_project(tmp_path)
    args = ["--network=none", "--build-arg", f"FAIL={int(fail)}"]
    bare = subprocess.run(["docker", "buildx", "build", "--progress=quiet", *args,
                           "--output", f"type=local,dest={tmp_path / 'bare'}", str(ctx)],
                          capture_output=True, timeout=300)
    env = dict(os.environ, CACHEWHY_LIVE="plain")  # the live view runs even without a terminal
    wrapped = subprocess.run([sys.executable, "-c", faulty, "build", "--store", str(tmp_path / "store"),
                              *args, "--output", f"type=local,dest={tmp_path / 'wrapped'}", str(ctx)],
                             cwd=REPO, capture_output=True, env=env, timeout=300)
    err = wrapped.stderr.decode()
    assert (bare.returncode != 0) == fail
    assert wrapped.returncode == bare.returncode, err  # buildx's exit code, whatever cachewhy did
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if "injected fault" in ln] == [line], err
    # the live view's fault costs the view only: the answer and the record are still there
    assert ("Why:" in err and len(Store(tmp_path / "store").list_records()[0]) == 1) == (fault == "live-view")
    if not fail:  # the same outputs as the bare build, byte for byte
        assert set(tree(tmp_path / "bare")) == {"a.txt", "sum.txt"}
        assert tree(tmp_path / "wrapped") == tree(tmp_path / "bare")
    # --debug shows the traceback, and still keeps the exit code
    debug = subprocess.run([sys.executable, "-c", faulty, "--debug", "build", "--store", str(tmp_path / "store"),
                            *args, "--output", "type=cacheonly", str(ctx)],
                           cwd=REPO, capture_output=True, env=env, timeout=300)
    assert debug.returncode == bare.returncode
    assert "Traceback" in debug.stderr.decode() and "RuntimeError: injected fault" in debug.stderr.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build_leaves_an_incomplete_record(tmp_path, sig):
    store = tmp_path / "store"
    ctx = slow_project(tmp_path)
    proc = start(ctx, store)
    wait_running(proc, ctx)
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
    ctx = slow_project(tmp_path)
    proc = start(ctx, store)
    wait_running(proc, ctx)
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
    # the index lost no row: every build and each of its steps indexed by its own save (no repair),
    # read before anything lists the store (a listing would repair what is missing)
    import sqlite3  # noqa: PLC0415

    from analyzer.index import step_rows  # noqa: PLC0415

    db = sqlite3.connect(store / "index.db")
    builds = dict(db.execute("SELECT id, scan FROM builds").fetchall())
    per_build = dict(db.execute("SELECT b.id, count(s.pos) FROM builds b LEFT JOIN steps s ON s.build = b.n "
                                "GROUP BY b.id").fetchall())
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    files = sorted(p.stem for p in store.glob("*.json"))
    assert sorted(builds) == files and set(builds.values()) == {0}
    for rid in files:
        record = json.loads((store / f"{rid}.json").read_text())
        assert per_build[rid] == len(step_rows(record)) >= 2  # COPY and RUN
    entries, problems = Store(store).list_records()
    assert not problems
    assert len(entries) == n
    for e in entries:
        record = Store(store).load(e["id"])  # parses and validates the whole file
        assert record["complete"] is True and record["steps"]
    reports = [json.loads((c / "r.json").read_text()) for c in contexts]
    assert sorted(r["build"]["ref"] for r in reports) == sorted(e["id"] for e in entries)


# ------------------------------------------------------------ a daemon that goes away

ENGINE_SH = REPO / "scripts" / "engine.sh"


def _seed_engine_dir() -> Path | None:
    """The folder of the engine these tests run on, if scripts/engine.sh made it:
    its downloaded Debian packages let a second engine start in seconds."""
    candidates = [Path(os.environ["DOCKER_CONFIG"]).parent] if os.environ.get("DOCKER_CONFIG") else []
    if os.environ.get("CACHEWHY_ENGINE_DIR"):
        candidates.append(Path(os.environ["CACHEWHY_ENGINE_DIR"]))
    candidates.append(REPO / ".engine")
    for d in candidates:
        if (d / ".cachewhy-engine").is_file() and (d / "debs").is_dir():
            return d
    return None


@pytest.fixture
def private_engine(tmp_path: Path):
    """A dockerd of this test's own (scripts/engine.sh up in a tmp folder), stopped and
    removed afterwards: the test may kill it without touching the engine of the others.
    Yields (environment to run docker in, the file holding dockerd's pid)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("a private engine needs root")
        pytest.skip("a private engine needs root")
    d = tmp_path / "eng"
    d.mkdir()
    (d / ".cachewhy-engine").touch()  # engine.sh's mark: this folder is its own
    seed = _seed_engine_dir()
    if seed is not None:  # hard links to the packages already downloaded (a copy across file systems)
        if subprocess.run(["cp", "-al", str(seed / "debs"), str(d / "debs")], stderr=subprocess.DEVNULL).returncode:
            subprocess.run(["rm", "-rf", str(d / "debs")])
            subprocess.run(["cp", "-a", str(seed / "debs"), str(d / "debs")], check=True)
    env = dict(os.environ, CACHEWHY_PRIVATE_ENGINE="1", CACHEWHY_ENGINE_DIR=str(d))
    up = subprocess.run(["bash", "-c", f'eval "$(bash {ENGINE_SH} up)" >&2 && env -0'], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
    try:
        assert up.returncode == 0, up.stderr.decode(errors="replace")[-2000:]
        engine_env = dict(kv.split("=", 1) for kv in up.stdout.decode().split("\0") if "=" in kv)
        for k in ("CACHEWHY_PRIVATE_ENGINE", "CACHEWHY_ENGINE_DIR"):
            engine_env.pop(k, None)
        sock = engine_env["DOCKER_HOST"].removeprefix("unix://")
        yield engine_env, Path(sock).parent / "dockerd.pid"
    finally:
        subprocess.run(["bash", str(ENGINE_SH), "down", "--purge"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300)


def test_daemon_gone_mid_build_leaves_an_incomplete_record(tmp_path, private_engine):
    env, pidfile = private_engine
    # a docker that writes down its own exit code: cachewhy's must be the same
    rc_file = tmp_path / "buildx.rc"
    shim = tmp_path / "docker-shim"
    real = subprocess.run(["bash", "-c", "command -v docker"], env=env, stdout=subprocess.PIPE).stdout.decode().strip()
    # ... and keeps a copy of the progress stream it hands cachewhy, so that the daemon is
    # killed only once that stream has said the RUN started (what cachewhy then reports)
    raw = tmp_path / "progress.rawjson"
    shim.write_text(f'#!/bin/bash\n"{real}" "$@" 2> >(tee -a "{raw}" >&2)\nrc=$?\n'
                    f'echo $rc > "{rc_file}"\nexit $rc\n')
    shim.chmod(0o755)
    store = tmp_path / "store"
    ctx = slow_project(tmp_path)
    proc = start(ctx, store, env=dict(env, CACHEWHY_DOCKER=str(shim)))
    wait_running(proc, ctx)
    wait_reported_started(proc, raw, ctx)
    os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)  # the daemon crashes mid-RUN
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert "Traceback" not in text
    assert rc_file.is_file(), text
    assert proc.returncode == int(rc_file.read_text()) != 0
    # the note wraps at the report's width, where depends on buildx's error text: read it unwrapped
    flat = " ".join(text.split())
    assert "the connection to the builder was lost mid-build" in flat
    assert "1 step was still running" in flat and "marked incomplete" in flat
    assert "Why: nothing was rebuilt before the build stopped" in flat
    entries, problems = Store(store).list_records()
    assert not problems and len(entries) == 1
    record = Store(store).load(entries[0]["id"])
    assert record["complete"] is False and record["interrupted"] == "builder connection lost"
    assert Store(store).find_previous(record["project"]) is None


# ------------------------------------------------------------ load

def _bench_load():  # type: ignore[no-untyped-def]
    """benchmarks/bench_load.py: the generator and the peak-RSS launcher of the full-size run."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("bench_load", REPO / "benchmarks" / "bench_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_is_streamed(tmp_path):
    """The CI size of benchmarks/bench_load.py (2,000 steps, 100 MB there): 300 RUN steps of
    64 KiB of output each, ~20 MB of step logs. cachewhy's own peak memory may not grow with
    the log: against the same 300 steps printing 1 KiB each, it grows by no more than three
    8 KiB tails a step. (The steps' graph, record and report cost memory per step, whatever
    their output; a 3-step build as the baseline measured that too, and how fast the engine
    sends the output changed it by machine.)"""
    bench = _bench_load()
    env = dict(os.environ)
    small = bench.make_context(tmp_path, 300, 1)
    _, quiet_rss, _ = bench.wrapped(small, env, tmp_path / "store-small")
    big = bench.make_context(tmp_path, 300, 64)
    _, peak_rss, err = bench.wrapped(big, env, tmp_path / "store", report_json=tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    steps = [s for s in report["steps"] if (s.get("instruction") or "").startswith("RUN ")]
    assert len(steps) == 300 and all(s["status"] == "rebuilt" for s in steps)
    assert "Traceback" not in err
    # the answer fits a screen: the table lists 40 of the 300 rebuilt steps and says so
    # (the report file has every one)
    table = err[err.index("\nLINE "):].splitlines()[2:]
    assert sum(1 for ln in table if "  rebuilt  " in ln) == 40
    # (the FROM and COPY rows of the stages are not from the cache either, and quicker)
    hidden = re.search(r"\u2026 (\d+) more rows not shown \((\d+) quicker\); every one is in --report-md FILE", err)
    assert hidden and int(hidden[1]) == int(hidden[2]) >= 260, err[-3000:]
    assert len(err.splitlines()) < 80, err
    # What may grow: each step's 8 KiB tail, and base64 chunks waiting to be counted (at
    # most about twice the tail): 300 x 24 KiB, 7.4 MB, well under the 19 MB more of logs
    # (before the fixes in docs/reliability.md the growth was 17-20 MB).
    extra_logs = 300 * (64 - 1) * 1024
    bound = 300 * 3 * STEP_LOG_TAIL
    assert peak_rss - quiet_rss < bound < extra_logs / 2, (
        f"peak RSS {peak_rss / 1e6:.1f} MB against {quiet_rss / 1e6:.1f} MB for the same steps printing "
        f"1 KiB each, for {extra_logs / 1e6:.0f} MB more of step logs")


# ------------------------------------------------------------ a store of an older cachewhy

def test_store_of_an_older_cachewhy_is_a_baseline(tmp_path):
    """testdata/store-v1-early: records written by cachewhy at 8c2d6d8 are listed and a
    new build is explained against them (--against: the records name the folder they were
    built in, /tmp/cachewhy-store-v1-early/ctx, not this test's)."""
    import shutil  # noqa: PLC0415

    root = tmp_path / "old"
    shutil.copytree(REPO / "testdata" / "store-v1-early", root)
    # The records name the base image by the digest it had on the engine that made them;
    # `docker import` gives every engine its own digest (the import time is in the config),
    # so the copy names this engine's, as if they had been made here.
    made_with = "sha256:e70d30525037bf90052de33a4f4fee5df349d2003b1dd599a3afc9a239803463"
    here = subprocess.run(["docker", "image", "inspect", "local/busybox:latest", "--format", "{{.Id}}"],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    for record in root.glob("*.json"):
        text = record.read_text()
        assert made_with in text
        record.write_text(text.replace(made_with, here))
    ctx = root / "project"
    # the steps the old records saw cached must be in this engine's cache too (else they are
    # cache-evicted here): the project as it was, built once without cachewhy
    warm = subprocess.run(["docker", "buildx", "build", "--progress=quiet", *COMMON, "--build-arg", "VERSION=2.0",
                           str(ctx)], capture_output=True, text=True, timeout=300, check=False)
    assert warm.returncode == 0, warm.stderr[-2000:]
    (ctx / "src" / "main.py").write_text(f"print({uuid.uuid4().hex!r})\n")  # new to the build cache too
    history = run_cachewhy("history", "--store", str(root))
    assert history.returncode == 0 and history.stdout.decode().count("/tmp/cachewhy-store-v1-early/ctx") == 2
    res = run_cachewhy("build", "--store", str(root), "--against", "last", "--report-json", str(tmp_path / "r.json"),
                       "--width", "200", *COMMON, "--build-arg", "VERSION=2.0", str(ctx))
    text = res.stderr.decode()
    assert res.returncode == 0, text
    # the Why: header wraps at the terminal width: read it as one line
    assert "compared with build 20261128T064751446699-e3c3dca3" in " ".join(text.split())
    report = json.loads((tmp_path / "r.json").read_text())
    roots = [m for m in report["misses"] if m["root"]]
    # only the changed file: the old record's ops, build-arg hashes and context snapshot all compare
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(13, "context-changed")]
    assert roots[0]["cause"]["files"]["modified"] == ["src/main.py"]
    entries, problems = Store(root).list_records()
    assert not problems and len(entries) == 3
