"""Figure 1: what wrapping buildx costs, and how fast the CLI starts.

1a  `cachewhy build` against `docker buildx build --progress=rawjson` on a
    warm 30-step build (every step cached), alternating, same arguments, both
    with stderr to /dev/null; median of the per-pair ratios.
1b  the same on a build whose 12 RUN steps sleep 5 s each (~60 s): a build
    arg BUST, new for every run and the same for both tools, makes every step
    run again without touching the Dockerfile.
1c  the same as 1a on a build whose context is the 50,000-file tree of
    figure 3 (COPY . .): cachewhy snapshots the context while buildx sends it.
1d  `cachewhy --help`, a fresh process each time.
1e  `cachewhy history`, a fresh process each time (when the command exists).

A diagnostic run of 1a (not timed in the table) puts a stamping shim between
cachewhy and docker (CACHEWHY_DOCKER) to split cachewhy's wall time into: its
start-up before buildx is launched, buildx itself, and the work after buildx
exits.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

from common import (
    REPO,
    Row,
    alternate,
    cachewhy_command,
    has_command,
    log,
    median,
    not_measured,
    run_child,
    spread,
)

WARM_STEPS = 30


def engine_env(engine_dir: str | None) -> tuple[dict | None, str]:
    """The environment to run docker in, or (None, why not)."""
    env = dict(os.environ)
    if engine_dir:
        log(f"starting the benchmark engine in {engine_dir} (scripts/engine.sh up)")
        cmd = f'eval "$(bash {REPO}/scripts/engine.sh up)" >&2 && env -0'
        e = dict(env, CACHEWHY_PRIVATE_ENGINE="1", CACHEWHY_ENGINE_DIR=str(engine_dir))
        out = subprocess.run(["bash", "-c", cmd], env=e, capture_output=True, timeout=900)
        if out.returncode != 0:
            return None, "engine.sh up failed: " + out.stderr.decode(errors="replace")[-500:]
        env = dict(kv.split("=", 1) for kv in out.stdout.decode().split("\0") if "=" in kv)
        for k in ("CACHEWHY_PRIVATE_ENGINE", "CACHEWHY_ENGINE_DIR"):
            env.pop(k, None)
    docker = shutil.which("docker", path=env.get("PATH"))
    if docker is None:
        return None, "no docker CLI on PATH (run with --engine-dir DIR, or eval \"$(scripts/engine.sh up)\" first)"
    try:
        ok = subprocess.run([docker, "buildx", "version"], env=env, capture_output=True, timeout=30).returncode == 0 \
            and subprocess.run([docker, "info"], env=env, capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    if not ok:
        return None, "docker does not answer (no engine running?)"
    return env, ""


def warm_project(d: Path) -> Path:
    """A two-stage Dockerfile with 30 cacheable steps and a small context."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "src").mkdir(exist_ok=True)
    for i in range(1, 21):
        (d / "src" / f"mod{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    (d / "config.txt").write_text("mode=bench\n")
    lines = ["FROM local/busybox:latest AS base", "WORKDIR /app", "COPY config.txt ./"]
    lines += [f"RUN echo step {i} > /tmp/s{i} && cat /tmp/s{i}" for i in range(1, 14)]
    lines += ["", "FROM base AS app", "COPY src/ ./src/"]
    lines += [f"RUN echo step {i} >> /app/log && ls src | wc -l" for i in range(14, 28)]
    (d / "Dockerfile").write_text("\n".join(lines) + "\n")
    return d


def slow_project(d: Path, steps: int) -> Path:
    """`steps` RUNs that each sleep $NAP seconds; BUST changes every run."""
    d.mkdir(parents=True, exist_ok=True)
    lines = ["FROM local/busybox:latest", "ARG BUST=0", "ARG NAP=5", "WORKDIR /w",
             'RUN echo "run $BUST" > bust.txt && sleep "$NAP"']
    lines += [f'RUN echo "step {i}" && sleep "$NAP" && echo "step {i} done" >> steps.txt' for i in range(2, steps + 1)]
    (d / "Dockerfile").write_text("\n".join(lines) + "\n")
    return d


def _stamp_shim(d: Path) -> Path:
    p = d / "stamp-docker.sh"
    p.write_text('#!/bin/sh\ndate +%s%N >> "$BENCH_STAMPS"\n"$@"\nrc=$?\ndate +%s%N >> "$BENCH_STAMPS"\nexit $rc\n')
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


class Wrapper:
    def __init__(self, env: dict, work: Path) -> None:
        self.env = env
        self.work = work
        self.docker = shutil.which("docker", path=env.get("PATH"))
        self.cw = cachewhy_command()
        self.store = work / "store"
        shutil.rmtree(self.store, ignore_errors=True)
        self.cenv = dict(env, CACHEWHY_STORE=str(self.store), CACHEWHY_LIVE="plain", COLUMNS="100")

        self.retries: list[str] = []  # builds that failed once and were run again

    def _timed(self, cmd: list[str], args, env: dict) -> float:  # type: ignore[no-untyped-def]
        """The wall time of one build of `args` (a list, or a function making
        fresh ones). A build that fails is run once more, with fresh
        arguments: the engine now and then fails a build on its own
        (containerd: "parent snapshot ... does not exist"), for plain buildx
        as for cachewhy; a second failure stops the benchmark."""
        r = run_child([*cmd, *(args() if callable(args) else args)], env=env, check=False)
        if r.returncode != 0:
            self.retries.append(f"{' '.join(cmd[-2:])} exited {r.returncode}")
            log(f"  a build exited {r.returncode}; running it once more")
            r = run_child([*cmd, *(args() if callable(args) else args)], env=env)
        return r.wall

    def plain(self, args) -> float:  # type: ignore[no-untyped-def]
        return self._timed([self.docker, "buildx", "build", "--progress=rawjson"], args, self.env)

    def ours(self, args, env: dict | None = None) -> float:  # type: ignore[no-untyped-def]
        return self._timed([*self.cw, "build"], args, env or self.cenv)

    def diagnose(self, args: list[str], runs: int = 3) -> dict:
        """Split `cachewhy build`'s wall time around the buildx it runs; a plain
        buildx run goes between two diagnostic runs, for comparison."""
        shim = _stamp_shim(self.work)
        stamps = self.work / "stamps.txt"
        env = dict(self.cenv, CACHEWHY_DOCKER=f"{shim} {self.docker}", BENCH_STAMPS=str(stamps))
        launch, inside, tail, wall, plain = [], [], [], [], []
        for _ in range(runs):
            plain.append(self.plain(args))
            stamps.unlink(missing_ok=True)
            t0 = time.time_ns()
            r = run_child([*self.cw, "build", *args], env=env)
            t1 = time.time_ns()
            a, b = (int(x) for x in stamps.read_text().split())
            launch.append((a - t0) / 1e9)
            inside.append((b - a) / 1e9)
            tail.append((t1 - b) / 1e9)
            wall.append(r.wall)
        return {"start_to_buildx_launch_s": spread(launch), "buildx_inside_cachewhy_s": spread(inside),
                "after_buildx_exit_s": spread(tail), "wall_s": spread(wall), "plain_buildx_s": spread(plain),
                "note": "the shim (sh + date, ~2 ms each side) is counted in launch and tail"}


def run(cfg, fixtures: Path, env: dict | None, why: str, bigctx: Path | None = None) -> list[Row]:
    rows: list[Row] = []
    quick = cfg.quick
    if env is None:
        rows.append(not_measured("1a", f"wrapper overhead, warm {WARM_STEPS}-step build", "<= 1.10", why))
        rows.append(not_measured("1b", "wrapper overhead, ~60 s build", "<= 1.02", why))
    else:
        w = Wrapper(env, fixtures / "wrapper")
        proj = warm_project(fixtures / "wrapper" / "warm30")
        args = ["-t", "cachewhy-bench/warm30", str(proj)]
        log("1a: filling the cache (cold build)")
        w.plain(args)
        w.ours(args)
        pairs = 5 if quick else 15
        res = alternate(lambda: w.ours(args), lambda: w.plain(args), pairs=pairs, warmup=2, log=log, label="1a")
        diag = w.diagnose(args, runs=3 if quick else 7)
        res["diagnosis"] = diag
        ratio = res["ratio"]
        rows.append(Row("1a", f"wrapper overhead, warm {WARM_STEPS}-step build", res["ours"]["median"],
                        res["ref"]["median"], "buildx --progress=rawjson", ratio, "<= 1.10", ratio <= 1.10,
                        notes=(f"{pairs} alternating pairs; diagnosis ({len(diag['wall_s']['values'])} runs): "
                               f"cachewhy start-up before buildx "
                               f"{diag['start_to_buildx_launch_s']['median'] * 1000:.0f} ms, buildx inside cachewhy "
                               f"{diag['buildx_inside_cachewhy_s']['median'] * 1000:.0f} ms (plain buildx meanwhile "
                               f"{diag['plain_buildx_s']['median'] * 1000:.0f} ms), after buildx exits "
                               f"{diag['after_buildx_exit_s']['median'] * 1000:.0f} ms"),
                        samples=res))
        # 1b: every step runs again; the Dockerfile stays the same
        steps, nap, pairs = (4, 5, 1) if quick else (12, 5, 3)
        sproj = slow_project(fixtures / "wrapper" / "slow", steps)
        counter = [0]

        def sargs(n: int = nap) -> list[str]:
            counter[0] += 1
            return ["--build-arg", f"BUST={time.time_ns()}-{counter[0]}", "--build-arg", f"NAP={n}",
                    "-t", "cachewhy-bench/slow", str(sproj)]

        log(f"1b: warm-up with NAP=0, then {pairs} pair(s) of {steps} x {nap} s builds")
        w.plain(sargs(0))
        w.ours(sargs(0))
        res = alternate(lambda: w.ours(sargs), lambda: w.plain(sargs), pairs=pairs, warmup=0, log=log, label="1b")
        res["retries"] = list(w.retries)
        ratio = res["ratio"]
        rows.append(Row("1b", f"wrapper overhead, {steps * nap} s build ({steps} RUNs rebuilt)", res["ours"]["median"],
                        res["ref"]["median"], "buildx --progress=rawjson", ratio, "<= 1.02", ratio <= 1.02,
                        notes=f"{pairs} alternating pair(s), a new BUST build arg each run"
                              + ("; --quick: shorter than the 60 s of the target" if quick else ""),
                        samples=res))
        if bigctx is not None and not cfg.skip_bigctx:
            try:
                rows.append(_big_context(w, bigctx, quick))
            except Exception as exc:  # noqa: BLE001 - keep 1a and 1b
                rows.append(not_measured("1c", "wrapper overhead, warm build of a 50,000-file context", "info",
                                         f"error: {exc!r}"))
    rows += startup(cfg, fixtures, env)
    return rows


def _big_context(w: Wrapper, ctx: Path, quick: bool) -> Row:
    args = ["-t", "cachewhy-bench/bigctx", str(ctx)]
    log("1c: cold build of the 50,000-file context (sends ~500 MB to the engine)")
    w.plain(args)
    w.ours(args)
    pairs = 3 if quick else 7
    res = alternate(lambda: w.ours(args), lambda: w.plain(args), pairs=pairs, warmup=1, log=log, label="1c")
    diag = w.diagnose(args, runs=3)
    res["diagnosis"] = diag
    return Row("1c", "wrapper overhead, warm build of a 50,000-file / 500 MB context", res["ours"]["median"],
               res["ref"]["median"], "buildx --progress=rawjson", res["ratio"], "info", None,
               notes=(f"{pairs} alternating pairs; no target of its own (figure 3 has the snapshot's); diagnosis "
                      f"(3 runs): start-up before buildx {diag['start_to_buildx_launch_s']['median'] * 1000:.0f} ms, "
                      f"buildx inside cachewhy {diag['buildx_inside_cachewhy_s']['median'] * 1000:.0f} ms (plain "
                      f"buildx meanwhile {diag['plain_buildx_s']['median'] * 1000:.0f} ms), after buildx exits "
                      f"{diag['after_buildx_exit_s']['median'] * 1000:.0f} ms"),
               samples=res)


def startup(cfg, fixtures: Path, env: dict | None) -> list[Row]:
    import sys

    rows = []
    n = 10 if cfg.quick else 30
    cw = cachewhy_command()
    base_env = dict(env or os.environ)
    ref = [run_child([sys.executable, "-c", "pass"], env=base_env).wall for _ in range(n)]

    def fresh(argv: list[str], e: dict) -> list[float]:
        run_child([*cw, *argv], env=e, check=False)  # warm-up (page cache, .pyc)
        return [run_child([*cw, *argv], env=e, check=False).wall for _ in range(n)]

    t = fresh(["--help"], base_env)
    rows.append(Row("1d", "`cachewhy --help` start-up (fresh process)", median(t), median(ref), "python -c pass",
                    median(t) / median(ref), "< 0.15 s", median(t) < 0.15, notes=f"median of {n}",
                    samples={"ours": spread(t), "ref": spread(ref)}))
    if has_command(["history"]):
        store = fixtures / "wrapper" / "store"
        e = dict(base_env, CACHEWHY_STORE=str(store))
        t = fresh(["history"], e)
        rows.append(Row("1e", "`cachewhy history` start-up (fresh process)", median(t), median(ref), "python -c pass",
                        median(t) / median(ref), "< 0.15 s", median(t) < 0.15,
                        notes=f"median of {n}; store {store}", samples={"ours": spread(t), "ref": spread(ref)}))
    else:
        rows.append(not_measured("1e", "`cachewhy history` start-up (fresh process)", "< 0.15 s",
                                 "not measurable yet: `python -m analyzer history --help` fails (no such command)"))
    return rows
