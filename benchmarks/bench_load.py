"""Load (issue 8, promise 6): a wrapped build of 2,000 steps with ~100 MB of step logs.

    python benchmarks/bench_load.py [--steps 2000] [--kb 50] [--engine-dir DIR] [--json FILE]

Generates a Dockerfile of STEPS `RUN` steps, each printing about KB KiB of
text lines to stdout (busybox `sh`, no network), in stages of at most 50
RUNs (a stage's layers stack as overlay lower dirs, which the kernel caps
well below 2,000) and a last stage that copies one file from each. An `ARG
BUST`, new on every run, makes every RUN run again. Then, alternating:

* bare:    docker buildx build --progress=rawjson …  (stderr to a file: its
           size is the rawjson volume cachewhy has to read)
* wrapped: cachewhy build …, through a launcher that runs cachewhy's main()
           and then reads getrusage(RUSAGE_SELF).ru_maxrss: the peak resident
           memory of the cachewhy process itself (buildx, its child, is not
           counted).

Prints one JSON object: steps, step-log bytes (decoded), rawjson bytes, wall
times, the overhead ratio wrapped/bare and the peak RSS. Needs a running
engine (the environment's, or --engine-dir to start a private one with
scripts/engine.sh). tests/integration/test_reliability.py::test_load_is_streamed
runs a smaller size of the same build in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGE_RUNS = 50
LINE = "x" * 56  # with "step NNNN line NNNN " a line is ~76 bytes

# Peak RSS of cachewhy's own process: main() in process, then getrusage.
LAUNCHER = (
    "import resource, sys\n"
    "from analyzer.cli import main\n"
    "rc = main(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
    "sys.exit(rc)\n"
)


def dockerfile(steps: int, kb: int) -> str:
    """STEPS RUN steps of ~KB KiB of stdout each, in stages of <= 50, and a stage joining them."""
    lines_per_step = max(1, kb * 1024 // 76)
    out: list[str] = []
    stages = (steps + STAGE_RUNS - 1) // STAGE_RUNS
    n = 0
    for s in range(stages):
        out += [f"FROM local/busybox:latest AS s{s}", "ARG BUST=0"]
        for _ in range(min(STAGE_RUNS, steps - n)):
            out.append(f'RUN i=0; while [ $i -lt {lines_per_step} ]; do echo "step {n:04d} line $i {LINE}"; '
                       f'i=$((i+1)); done; echo "$BUST" > /tmp/s{s}')
            n += 1
    out.append("FROM local/busybox:latest")
    out += [f"COPY --from=s{s} /tmp/s{s} /s{s}" for s in range(stages)]
    return "\n".join(out) + "\n"


def make_context(root: Path, steps: int, kb: int) -> Path:
    ctx = root / f"load-{steps}x{kb}k"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile(steps, kb))
    return ctx


COMMON = ["--network=none", "--output=type=cacheonly"]


def bare(ctx: Path, env: dict, log: Path) -> float:
    t = time.monotonic()
    with open(log, "wb") as err:
        rc = subprocess.run(["docker", "buildx", "build", "--progress=rawjson", *COMMON,
                             "--build-arg", f"BUST={uuid.uuid4().hex}", str(ctx)],
                            stdout=subprocess.DEVNULL, stderr=err, env=env).returncode
    if rc != 0:
        raise SystemExit(f"bare buildx failed with exit {rc}; see {log}")
    return time.monotonic() - t


def wrapped(ctx: Path, env: dict, store: Path, report_json: Path | None = None) -> tuple[float, int, str]:
    """Wall time, peak RSS (bytes) of the cachewhy process, and its stderr (the report)."""
    with tempfile.NamedTemporaryFile(prefix="cachewhy-rss-") as rss:
        extra = ["--report-json", str(report_json)] if report_json else []
        t = time.monotonic()
        res = subprocess.run([sys.executable, "-c", LAUNCHER, rss.name, "build", "--store", str(store), *extra,
                              *COMMON, "--build-arg", f"BUST={uuid.uuid4().hex}", str(ctx)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=dict(env, CACHEWHY_LIVE="none"))
        took = time.monotonic() - t
        err = res.stderr.decode(errors="replace")
        if res.returncode != 0:
            raise SystemExit(f"cachewhy build failed with exit {res.returncode}:\n{err[-2000:]}")
        return took, int(Path(rss.name).read_text()) * 1024, err


def step_log_bytes(rawjson: Path) -> int:
    """Decoded bytes of every step log in a rawjson capture (streamed)."""
    import base64  # noqa: PLC0415

    total = 0
    dec = json.JSONDecoder()
    with open(rawjson, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj, _ = dec.raw_decode(line)
            except ValueError:
                continue
            for entry in obj.get("logs") or []:
                total += len(base64.b64decode(entry.get("data") or ""))
    return total


def engine_env(engine_dir: str | None) -> dict:
    env = dict(os.environ)
    if engine_dir:
        cmd = f'eval "$(bash {REPO}/scripts/engine.sh up)" >&2 && env -0'
        out = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=900,
                             env=dict(env, CACHEWHY_PRIVATE_ENGINE="1", CACHEWHY_ENGINE_DIR=engine_dir))
        if out.returncode != 0:
            raise SystemExit("engine.sh up failed: " + out.stderr.decode(errors="replace")[-500:])
        env = dict(kv.split("=", 1) for kv in out.stdout.decode().split("\0") if "=" in kv)
    return env


def run(cfg, env: dict | None, why: str) -> list:  # type: ignore[no-untyped-def]
    """Figure 6 of benchmarks/run.py: 2,000 steps x 50 KiB (--quick: the CI
    size, 300 x 64 KiB), alternating bare and wrapped, a new BUST each run."""
    from common import Row, log, median, not_measured  # noqa: PLC0415 - run.py's helpers

    if env is None:
        return [not_measured("6a", "wrapper overhead, 2,000-step build with 100 MB of step logs", "<= 1.02", why)]
    steps, kb, pairs = (300, 64, 1) if cfg.quick else (2000, 50, 2)
    work = cfg.fixtures / "load"
    work.mkdir(parents=True, exist_ok=True)
    ctx = make_context(work, steps, kb)
    rawjson = work / "bare.rawjson"
    log(f"6: {steps} steps x {kb} KiB: a first build to fill the base image's cache, then {pairs} pair(s)")
    bare(ctx, env, rawjson)
    ratios, bare_s, wrapped_s, rss = [], [], [], []
    for i in range(pairs):
        if i % 2:  # which goes first swaps every pair, as in the other figures
            w, peak, _err = wrapped(ctx, env, work / "store")
            b = bare(ctx, env, rawjson)
        else:
            b = bare(ctx, env, rawjson)
            w, peak, _err = wrapped(ctx, env, work / "store")
        bare_s.append(b)
        wrapped_s.append(w)
        rss.append(peak)
        ratios.append(w / b)
        log(f"  6 pair {i + 1}/{pairs}: wrapped {w:.1f} s, bare {b:.1f} s, ratio {w / b:.3f}, "
            f"cachewhy peak RSS {peak / 1e6:.0f} MB")
    logs = step_log_bytes(rawjson)
    ratio = median(ratios)
    name = f"{steps:,}-step build with {logs / 1e6:.0f} MB of step logs"
    samples = {"steps": steps, "kib_per_step": kb, "step_log_bytes": logs, "rawjson_bytes": rawjson.stat().st_size,
               "bare_s": bare_s, "wrapped_s": wrapped_s, "ratios": ratios, "peak_rss_bytes": rss}
    return [
        Row("6a", f"wrapper overhead, {name}", median(wrapped_s), median(bare_s), "buildx --progress=rawjson",
            ratio, "<= 1.02", ratio <= 1.02, notes=f"{pairs} pair(s), a new BUST build arg each run; "
                                                  "the long-build target of figure 1b", samples=samples),
        Row("6b", f"cachewhy's peak RSS, {name}", max(rss) / 1e6, logs / 1e6, "step-log volume (MB)",
            max(rss) / logs, "info", None, unit="MB",
            notes=f"ru_maxrss of cachewhy's own process (buildx not counted); rawjson read "
                  f"{rawjson.stat().st_size / 1e6:.0f} MB"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--kb", type=int, default=50, help="KiB of stdout per step")
    ap.add_argument("--pairs", type=int, default=1, help="alternating bare/wrapped pairs")
    ap.add_argument("--engine-dir", help="start a private engine there (scripts/engine.sh up)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cachewhy-bench-load")
    ap.add_argument("--json", type=Path, help="also write the result here")
    a = ap.parse_args(argv)
    env = engine_env(a.engine_dir)
    a.workdir.mkdir(parents=True, exist_ok=True)
    ctx = make_context(a.workdir, a.steps, a.kb)
    log = a.workdir / "bare.rawjson"
    bare_s, wrapped_s, rss = [], [], []
    for _ in range(a.pairs):
        bare_s.append(bare(ctx, env, log))
        took, peak, _err = wrapped(ctx, env, a.workdir / "store")
        wrapped_s.append(took)
        rss.append(peak)
    result = {
        "steps": a.steps, "kib_per_step": a.kb,
        "step_log_bytes": step_log_bytes(log), "rawjson_bytes": log.stat().st_size,
        "bare_s": [round(x, 2) for x in bare_s], "wrapped_s": [round(x, 2) for x in wrapped_s],
        "overhead_ratio": round(sorted(w / b for w, b in zip(wrapped_s, bare_s))[len(bare_s) // 2], 3),
        "peak_rss_bytes": max(rss),
        "cpus": os.cpu_count(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
