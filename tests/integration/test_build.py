"""`cachewhy build` on the real engine: statuses step by step, exit codes, pass-through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, make_cold, run_cachewhy

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]


def table(stderr: str) -> dict[int, tuple[str, str]]:
    """The step table as the user reads it: line -> (stage, status)."""
    rows: dict[int, tuple[str, str]] = {}
    lines = stderr.splitlines()
    start = next(i for i, l in enumerate(lines) if l.lstrip().startswith("LINE  STAGE"))
    for row in lines[start + 1:]:
        words = row.split()
        if len(words) >= 3 and words[0].isdigit():
            rows[int(words[0])] = (words[1], words[2])
    return rows


def statuses(stderr: str) -> dict[int, str]:
    return {line: status for line, (_, status) in table(stderr).items()}


def test_cold_warm_and_one_file_change(project):
    ctx = project("multistage")
    make_cold(ctx / "Dockerfile")

    cold = run_cachewhy("build", "--width", "200", *COMMON, str(ctx))
    assert cold.returncode == 0, cold.stderr.decode()
    got = statuses(cold.stderr.decode())
    # every cacheable step ran; the FROM lines are sources, not cache misses
    assert got == {1: "source", 2: "rebuilt", 3: "rebuilt", 6: "rebuilt", 7: "rebuilt",
                   9: "source", 10: "rebuilt", 11: "rebuilt", 12: "rebuilt", 13: "rebuilt"}
    assert "cache hits 0/8 steps (0%)" in cold.stderr.decode()

    warm = run_cachewhy("build", "--width", "200", *COMMON, str(ctx))
    assert warm.returncode == 0
    got = statuses(warm.stderr.decode())
    assert {line for line, s in got.items() if s == "cached"} == {2, 3, 6, 7, 10, 11, 12, 13}
    assert "cache hits 8/8 steps (100%)" in warm.stderr.decode()

    # src/b.txt is copied by line 6: line 6 and what depends on it rebuild,
    # what precedes it stays cached
    with open(ctx / "src" / "b.txt", "a") as f:
        f.write("gamma\n")
    change = run_cachewhy("build", "--width", "200", *COMMON, str(ctx))
    assert change.returncode == 0
    got = statuses(change.stderr.decode())
    assert got[2] == got[3] == "cached"
    assert got[6] == got[7] == "rebuilt"
    assert got[10] == "cached"  # the final stage's WORKDIR does not depend on the builder
    assert got[11] == "rebuilt"  # build.txt has new content
    assert got[13] == "rebuilt"


def test_failing_build_keeps_exit_code_and_shows_the_failed_step(project):
    ctx = project("failing")
    make_cold(ctx / "Dockerfile")
    res = run_cachewhy("build", "--width", "200", *COMMON, str(ctx))
    err = res.stderr.decode()
    assert res.returncode == 1
    got = table(err)
    assert got[7] == ("stage-1", "failed")
    # buildx's own error epilogue still reaches the user
    assert "ERROR: failed to build" in err
    assert 'error: process "/bin/sh -c echo \\"checking input\\" && grep -qx expected input.txt"' in err
    assert "| checking input" in err  # the failed step's own output
    assert got[8][1] in ("skipped", "canceled")


def test_flags_pass_through(project, tmp_path):
    ctx = project("multistage")
    make_cold(ctx / "Dockerfile")
    dockerfile = tmp_path / "Other.Dockerfile"
    dockerfile.write_text((ctx / "Dockerfile").read_text())
    res = run_cachewhy("build", "--width", "200", *COMMON, "-f", str(dockerfile), "--target", "builder",
                       "--build-arg", "UNUSED=1", str(ctx))
    err = res.stderr.decode()
    assert res.returncode == 0, err
    got = statuses(err)
    assert set(got) == {1, 2, 3, 6, 7}  # --target builder: the final stage is not built
    assert "INSTRUCTION (Other.Dockerfile)" in err


def test_unknown_flag_gives_buildx_exit_code(project):
    res = run_cachewhy("build", "--bogus-flag", str(project("multistage")))
    assert res.returncode == 125
    assert "unknown flag: --bogus-flag" in res.stderr.decode()
    assert "Traceback" not in res.stderr.decode()


def test_ctrl_c_stops_buildx_and_shows_what_was_seen(tmp_path):
    ctx = tmp_path / "slow"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM local/busybox:latest\nRUN echo {time.time_ns()} && sleep 60\n")
    env = dict(os.environ, CACHEWHY_LIVE="none")
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "build", "--width", "200", *COMMON, str(ctx)],
                            cwd=REPO, stderr=subprocess.PIPE, env=env)
    time.sleep(4)  # the RUN step is running by now
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert time.time() - t0 < 30, "buildx did not stop on Ctrl-C"
    assert proc.returncode != 0
    assert "build stopped by SIGINT" in text
    assert statuses(text)[2] in ("canceled", "running")
    assert "Traceback" not in text
