"""cachewhy's performance benchmarks (issue 7): one command, one table.

    .venv/bin/python benchmarks/run.py [--quick] [--only NAMES] [--json FILE]
                                       [--engine-dir DIR] [--fixtures DIR] [--markdown]
    .venv/bin/python benchmarks/run.py --report benchmarks/results.json [--markdown]

Run it with the interpreter of cachewhy's virtual environment (made by
scripts/setup.sh), so that `cachewhy` is the console script users run.

NAMES (comma-separated; default all, in this order):
  wrapper   1a-1c  `cachewhy build` against plain `docker buildx build
                   --progress=rawjson`: warm 30-step build, ~60 s build,
                   warm build of a 50,000-file context (needs an engine)
  startup   1d-1e  `cachewhy --help` / `cachewhy history`, fresh processes
  log       2a-2d  a generated 50 MB / 5,000-vertex rawjson log: load + graph
                   against a json.loads loop, peak memory, jq
  snapshot  3a-3c  a generated 50,000-file / 500 MB context: re-snapshot
                   against git status, cold snapshot against sha256sum
  explain   4a-4b  explain() on generated 1k..100k-step records
  store     5a-5b  a 10,000-record store: listing time, bytes per record
  load      6a-6b  a wrapped build of 2,000 steps with 100 MB of step logs
                   (issue 8), against plain buildx: overhead, peak memory
                   (needs an engine; about 12 minutes, --quick 300 steps)
  trends    7a-7c  `cachewhy trends` over 100,000 generated builds (20 projects
                   x 60 steps), `history` of 10,000, one build into the index
                   (issue 16; the stores take some minutes to generate once)
  predict   8a-8d  issue 15: the acceptance corpus replayed with `build
                   --predict` (statuses and roots predicted right, none
                   predicted cached that rebuilt); `cachewhy predict` on the
                   unchanged 50,000-file context against build's snapshot
                   (needs an engine of its own: the corpus prunes it)

The engine: figure 1 runs docker as found in the environment (after
`eval "$(scripts/engine.sh up)"`), or, with --engine-dir DIR, starts a
private engine of its own there (`CACHEWHY_PRIVATE_ENGINE=1
CACHEWHY_ENGINE_DIR=DIR scripts/engine.sh up`) so that other people's tests on
the shared engine are neither disturbed nor disturbing. Without an engine the
wrapper rows say so and the rest runs.

Fixtures (the log, the context and its git repository, the 10,000-record
store: about 2 GB) are generated into --fixtures (default
$TMPDIR/cachewhy-bench) and reused by later runs; delete the folder to
regenerate them. --quick: fewer repetitions, a 20 s instead of a 60 s slow
build, 100k-step explain only when cheap. The full run takes about 15
minutes on 2 cores, --quick about 5.

Every comparison runs a warm-up first, then alternates ours and the
reference (which goes first swaps every pair) and reports the median of the
per-pair ratios, so that load from other processes hits both sides alike.
The table goes to stdout (--markdown: as a Markdown table), the full results
with every sample, the machine and the load seen during each figure to --json
(default benchmarks/results.json). docs/performance.md explains the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    DEFAULT_FIXTURES,
    REPO,
    LoadProbe,
    Row,
    log,
    machine_info,
    not_measured,
    table,
)

NAMES = ("wrapper", "startup", "log", "snapshot", "explain", "store", "load", "trends", "predict")


def ensure_jq() -> None:
    """Debian's jq, for figure 2d (installed when missing and we may)."""
    if shutil.which("jq"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("jq is missing and cannot be installed here (needs root and apt-get); figure 2d is skipped")
        return
    log("installing jq (apt-get install jq)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "jq"], env=env,
                       capture_output=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "jq"], env=env,
                       capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="cachewhy performance benchmarks (see the top of this file)")
    ap.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    ap.add_argument("--only", action="append", default=[], metavar="NAMES",
                    help=f"comma-separated subset of: {', '.join(NAMES)}")
    ap.add_argument("--json", type=Path, default=BENCH / "results.json", metavar="FILE",
                    help="where to write the results (default benchmarks/results.json)")
    ap.add_argument("--engine-dir", metavar="DIR",
                    help="start (or reuse) a private engine in DIR for figure 1 (scripts/engine.sh up)")
    ap.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES, metavar="DIR",
                    help=f"where generated fixtures are kept between runs (default {DEFAULT_FIXTURES})")
    ap.add_argument("--skip-bigctx", action="store_true", help="skip 1c (the warm build of the 50,000-file context)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--report", type=Path, metavar="FILE",
                    help="run nothing: print the table of an earlier results file")
    cfg = ap.parse_args(argv)
    if cfg.report is not None:
        return report(cfg.report, cfg.markdown)
    names = [n.strip() for part in cfg.only for n in part.split(",") if n.strip()] or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    names = [n for n in NAMES if n in names]
    cfg.fixtures.mkdir(parents=True, exist_ok=True)
    # bytecode, as an installed cachewhy has it (PYTHONDONTWRITEBYTECODE would
    # otherwise make every cachewhy process compile what it imports)
    import compileall

    compileall.compile_dir(str(REPO / "analyzer"), quiet=1)
    # no benchmark may touch the user's own record store
    os.environ["CACHEWHY_STORE"] = str(cfg.fixtures / "scratch-store")

    started = time.time()
    env = why = None
    if "wrapper" in names or "startup" in names or "load" in names or "predict" in names:
        import bench_wrapper

        if "wrapper" in names or "load" in names or "predict" in names:
            env, why = bench_wrapper.engine_env(cfg.engine_dir)
            if env is None:
                log(f"figure 1 (wrapper): {why}")
    if "log" in names:
        ensure_jq()
    info = machine_info(env)
    log(f"machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gb']} GB, Python {info['python']}, "
        f"load {' '.join(info['loadavg_at_start'])}")
    rows: list[Row] = []
    loads: dict[str, dict] = {}
    for name in names:
        probe = LoadProbe()
        log(f"== {name}")
        try:
            if name == "wrapper":
                import bench_wrapper

                bigctx = None
                if not cfg.skip_bigctx and env is not None:
                    import bench_snapshot

                    bigctx, _git, _info = bench_snapshot.make_context(cfg.fixtures)
                got = [r for r in bench_wrapper.run(cfg, cfg.fixtures, env, why or "", bigctx)
                       if r.figure in ("1a", "1b", "1c")]
            elif name == "startup":
                import bench_wrapper

                got = bench_wrapper.startup(cfg, cfg.fixtures, env)
            elif name == "log":
                import bench_log

                got = bench_log.run(cfg, cfg.fixtures)
            elif name == "snapshot":
                import bench_snapshot

                got = bench_snapshot.run(cfg, cfg.fixtures)
            elif name == "explain":
                import bench_explain

                got = bench_explain.run(cfg, cfg.fixtures)
            elif name == "store":
                import bench_store

                got = bench_store.run(cfg, cfg.fixtures)
            elif name == "trends":
                import bench_trends

                got = bench_trends.run(cfg, cfg.fixtures)
            elif name == "predict":
                import bench_predict

                got = bench_predict.run(cfg, cfg.fixtures, env, why or "")
            else:
                import bench_load

                got = bench_load.run(cfg, env, why or "")
        except Exception as exc:  # one broken figure must not lose the others
            traceback.print_exc()
            got = [not_measured(name, f"{name} benchmark", "-", f"error: {exc!r}")]
        loads[name] = probe.finish()
        for r in got:
            log(f"   {r.figure} {r.status()}: {r.name}")
        rows.extend(got)
    out = {
        "schema": "cachewhy.bench/v1",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "quick": cfg.quick,
        "only": names,
        "machine": info,
        "load": loads,
        "git_head": _git_head(),
        "rows": [r.to_json() for r in rows],
    }
    cfg.json.parent.mkdir(parents=True, exist_ok=True)
    cfg.json.write_text(json.dumps(out, indent=1) + "\n")
    print(table(rows, markdown=cfg.markdown))
    print()
    for r in rows:
        if r.notes:
            print(f"{r.figure}: {r.notes}")
    print(f"\nresults: {cfg.json} ({out['duration_s']:.0f} s)")
    return 0 if all(r.passed is not False for r in rows) else 1


def report(path: Path, markdown: bool) -> int:
    data = json.loads(path.read_text())
    fields = ("figure", "name", "ours", "reference", "ref_name", "ratio", "target", "passed", "unit", "notes")
    rows = [Row(**{k: r.get(k) for k in fields}) for r in data["rows"]]
    print(table(rows, markdown=markdown))
    return 0


def _git_head() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
