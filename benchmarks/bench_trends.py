"""Figure 7: trends over a busy CI's months (issue 16).

7a  `cachewhy trends --since all --limit all` over a generated store of 100,000
    builds of 20 projects with 60 steps each (whole process, warm: one run
    first, then the median of several), against its budget of 1 s.
7b  `cachewhy history` over a generated store of 10,000 builds (same shape),
    fresh process, against its budget of 0.3 s.
7c  recording one build of 60 steps into the index of the 100,000-build store:
    `index.add` in its own transaction (BEGIN IMMEDIATE … COMMIT, WAL,
    synchronous=NORMAL as the store opens it), in process, against 5 ms; the
    whole `Store.save` (record file written and fsynced, then indexed) beside it.

The stores come from benchmarks/gen_trends.py (steps indexed by `index.add`,
record files holding what the store checks and the report's misses), kept in
the fixtures folder and reused. Ratios are measured / budget.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from common import REPO, Row, cachewhy_command, log, median, run_child, spread

N_BUILDS, N_PROJECTS, N_STEPS = 100_000, 20, 60
N_HISTORY = 10_000


def _store(fixtures: Path, name: str, builds: int) -> Path:
    import shutil

    import gen_trends

    root = fixtures / name
    meta = fixtures / f"{name}.json"
    want = {"builds": builds, "projects": N_PROJECTS, "steps": N_STEPS, "generator": 1}
    if root.is_dir() and meta.exists() and json.loads(meta.read_text()) == want:
        return root
    shutil.rmtree(root, ignore_errors=True)
    log(f"7: generating a store of {builds:,} builds ({N_PROJECTS} projects x {N_STEPS} steps)")
    t0 = time.perf_counter()
    gen_trends.make_store(root, builds, N_PROJECTS, N_STEPS)
    log(f"   made in {time.perf_counter() - t0:.0f} s")
    meta.write_text(json.dumps(want))
    return root


def _timed(cmd: list[str], env: dict, reps: int) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system) of `reps` runs after a warm-up run."""
    run_child(cmd, env=env)  # warm: the page cache holds the index, bytecode is compiled
    runs = [run_child(cmd, env=env) for _ in range(reps)]
    return [r.wall for r in runs], [r.user + r.sys for r in runs]


def run(cfg, fixtures: Path) -> list[Row]:
    sys.path.insert(0, str(REPO))
    reps = 3 if cfg.quick else 7
    cw = cachewhy_command()
    rows: list[Row] = []
    big = _store(fixtures, "trends-100k", N_BUILDS)
    env = dict(os.environ, CACHEWHY_STORE=str(big), COLUMNS="80")
    t, cpu = _timed([*cw, "trends", "--since", "all", "--limit", "all"], env, reps)
    out = run_child([*cw, "trends", "--since", "all", "--json"], env=env, capture=True).stdout
    model = json.loads(out)
    regs = sum(len(p["regressions"]) for p in model["projects"])
    db_mb = sum(f.stat().st_size for f in big.glob("index.db*")) / 1e6
    rows.append(Row("7a", f"`cachewhy trends`, {N_BUILDS:,} builds x {N_STEPS} steps, {N_PROJECTS} projects",
                    median(t), 1.0, "budget", median(t) / 1.0, "<= 1 s", median(t) <= 1.0,
                    notes=(f"whole process, warm, median of {reps} (CPU time user+sys median {median(cpu):.2f} s: "
                           f"what the wall time is without other processes' load); {model['builds']:,} builds "
                           f"read, {regs} regressions found; index {db_mb:.0f} MB"),
                    samples={"ours": spread(t), "cpu": spread(cpu), "builds": model["builds"], "regressions": regs,
                             "index_mb": round(db_mb, 1)}))
    small = _store(fixtures, "trends-10k", N_HISTORY)
    env = dict(os.environ, CACHEWHY_STORE=str(small))
    t, cpu = _timed([*cw, "history"], env, reps * 2)
    rows.append(Row("7b", f"`cachewhy history`, {N_HISTORY:,} builds (SQLite index)", median(t), 0.3, "budget",
                    median(t) / 0.3, "<= 0.3 s", median(t) <= 0.3,
                    notes=f"fresh process, median of {reps * 2} (CPU time user+sys median {median(cpu):.2f} s)",
                    samples={"ours": spread(t), "cpu": spread(cpu)}))
    rows += _record_cost(big)
    return rows


def _record_cost(root: Path) -> list[Row]:
    """7c: one build into the 100,000-build index, its own transaction each time."""
    import shutil
    import tempfile

    import gen_trends

    from analyzer import index as ix
    from analyzer.store import Store, _entry_from_record

    rng = random.Random(11)
    plan = gen_trends.project_steps(3, N_STEPS)
    with tempfile.TemporaryDirectory(prefix="cachewhy-bench-trends-") as d:
        # a copy: the fixture stays as generated
        for f in root.glob("index.db*"):
            shutil.copy(f, Path(d) / f.name)
        store = Store(d)  # fsync on, as builds use it
        db = store.index()
        assert db is not None
        now = time.time()
        recs = [gen_trends.build_record(3, 9_000_000 + i, now + i, plan, rng, now, N_STEPS // 3,
                                        "/ci/work/project-03") for i in range(260)]
        add, save = [], []
        for i, rec in enumerate(recs[:200]):
            entry = _entry_from_record(rec, rec["id"], ix.summary_from_report(rec))
            t0 = time.perf_counter()
            with ix.transaction(db):
                ix.add(db, entry, rec, scan=False)
            add.append(time.perf_counter() - t0)
        for rec in recs[200:]:
            t0 = time.perf_counter()
            store.save(rec, summary=ix.summary_from_report(rec))
            save.append(time.perf_counter() - t0)
    m = median(add)
    return [Row("7c", f"recording one {N_STEPS}-step build into the {N_BUILDS:,}-build index", m, 0.005, "budget",
                m / 0.005, "<= 5 ms", m <= 0.005,
                notes=(f"index.add in its own transaction, median of {len(add)} (p90 "
                       f"{sorted(add)[int(len(add) * 0.9)] * 1000:.1f} ms); the whole Store.save with the record "
                       f"file fsynced: median {median(save) * 1000:.1f} ms of {len(save)}"),
                samples={"ours": spread(add), "save": spread(save)})]
