"""Figure 8: predictions (issue 15).

8a-8c replay the acceptance corpus (/work/shared/acceptance, its own
      check_cachewhy.py: fresh contexts, the same prunes, re-tags and edits)
      with `cachewhy build --predict` for every build: cachewhy predicts
      first, then builds, and keeps the score in the build's record. Summed
      over every build of every scenario:
  8a  step statuses predicted right (rebuilt or cached, by Dockerfile line),
      steps marked may-rebuild left out                      target >= 98%
  8b  root causes predicted right (the build's roots: same line and kind)
                                                             target >= 95%
  8c  steps predicted cached that BuildKit rebuilt, not marked may-rebuild
                                                             target 0
      The corpus prunes the engine's whole cache: run it with --engine-dir.
8d    `cachewhy predict` (the whole command, a fresh process) on the unchanged
      50,000-file context of figure 3, against the snapshot `cachewhy build`
      takes of the same context (in process, with the previous record's stat
      data, as build.Baseline takes it), alternating.       target <= 1.5
8e    (info) the same prediction in process without asking the engine (no
      python-on-whales lookups, no DiskUsage) against the same snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, Row, alternate, log, not_measured, run_child

CORPUS = Path(os.environ.get("CACHEWHY_ACCEPTANCE", "/work/shared/acceptance"))


def corpus(env: dict | None, why: str) -> list[Row]:
    names = ("8a", "8b", "8c")
    if env is None:
        return [not_measured(n, "prediction on the acceptance corpus", "-", why) for n in names]
    script = CORPUS / "check_cachewhy.py"
    if not script.exists():
        return [not_measured(n, "prediction on the acceptance corpus", "-", f"no corpus at {CORPUS}")
                for n in names]
    store = Path(tempfile.mkdtemp(prefix="cachewhy-bench-predict-"))
    try:
        cmd = f"{sys.executable} -m analyzer build --predict --report-json {{report}} {{buildx_args}} {{context}}"
        log("8: the acceptance corpus, `cachewhy build --predict` for every build")
        res = subprocess.run([sys.executable, str(script), "--cmd", cmd], cwd=REPO, capture_output=True,
                             env=dict(env, CACHEWHY_STORE=str(store / "records"), CACHEWHY_LIVE="none"),
                             timeout=3600)
        tail = res.stdout.decode(errors="replace").strip().splitlines()[-1:] or [""]
        scores = []
        for f in sorted((store / "records").glob("*.json")):
            try:
                rec = json.loads(f.read_text())
            except ValueError:
                continue
            if isinstance(rec.get("prediction"), dict):
                scores.append((rec.get("created") or 0, rec["prediction"]))
        scores.sort(key=lambda x: x[0])
        steps = sum(s["steps"] for _, s in scores)
        right = sum(s["steps_right"] for _, s in scores)
        roots = sum(len(s["roots"]) for _, s in scores)
        roots_right = sum(s["roots_right"] for _, s in scores)
        wrong_cached = sum(len(s["wrongly_cached"]) for _, s in scores)
        maybe = sum(len(s["may_rebuild"]) for _, s in scores)
        misses = [f"build {i + 1}: {s['wrongly_cached'] or ''}{s['wrongly_rebuilt'] or ''} "
                  f"roots {s['roots_predicted']} vs {s['roots']}"
                  for i, (_, s) in enumerate(scores)
                  if s["wrongly_cached"] or s["wrongly_rebuilt"] or s["roots_right"] != len(s["roots"])]
        note = f"{len(scores)} builds scored; corpus checker: {tail[0]}"
        samples = {"builds": [s for _, s in scores], "wrong": misses}
        pct_steps = 100.0 * right / steps if steps else None
        pct_roots = 100.0 * roots_right / roots if roots else None
        return [
            Row("8a", f"step statuses predicted right ({right}/{steps}; {maybe} may-rebuild)", pct_steps, None, "",
                None, ">= 98%", pct_steps is not None and pct_steps >= 98.0, unit="%", notes=note, samples=samples),
            Row("8b", f"root causes predicted right, line and kind ({roots_right}/{roots})", pct_roots, None, "",
                None, ">= 95%", pct_roots is not None and pct_roots >= 95.0, unit="%",
                notes="; ".join(misses)[:600]),
            Row("8c", "steps predicted cached that BuildKit rebuilt (not may-rebuild)", float(wrong_cached), None, "",
                None, "= 0", wrong_cached == 0, unit="steps"),
        ]
    finally:
        shutil.rmtree(store, ignore_errors=True)


def big_context(env: dict | None, why: str, ctx: Path | None, quick: bool) -> list[Row]:
    name = "predict on the unchanged 50,000-file context vs build's own snapshot"
    if env is None or ctx is None:
        return [not_measured("8d", name, "<= 1.5", why or "no 50,000-file context")]
    sys.path.insert(0, str(REPO))
    from analyzer import dockerfile as dfmod
    from analyzer import snapshot as snapmod
    from analyzer.record import follow_paths

    store = Path(tempfile.mkdtemp(prefix="cachewhy-bench-predict-"))
    try:
        penv = dict(env, CACHEWHY_STORE=str(store), CACHEWHY_LIVE="none")
        args = ["--network=none", "--output=type=cacheonly", str(ctx)]
        log("8d: one build of the 50,000-file context for its record (sends ~500 MB to the engine)")
        first = run_child([sys.executable, "-m", "analyzer", "build", *args], env=penv, cwd=REPO)
        if first.returncode != 0:
            return [not_measured("8d", name, "<= 1.5", f"the build failed (exit {first.returncode})")]
        record = json.loads(max(store.glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
        df_path = ctx / "Dockerfile"
        follow = follow_paths(dfmod.parse(df_path.read_text()))
        time.sleep(0.1)

        def snap() -> float:  # as build.Baseline._take_snapshot does it
            t0 = time.perf_counter()
            prev = snapmod.Snapshot.from_json(record["snapshot"])
            excludes = snapmod.read_dockerignore(ctx, df_path)
            snapmod.snapshot(ctx, excludes=excludes, follow=follow, previous=prev).to_json()
            return time.perf_counter() - t0

        def predict() -> float:
            got = run_child([sys.executable, "-m", "analyzer", "predict", *args], env=penv, cwd=REPO)
            if got.returncode != 0:
                raise RuntimeError(f"cachewhy predict exited {got.returncode}")
            return got.wall

        import analyzer.predict as pr
        from analyzer.buildx import parse_args
        from analyzer.pipeline import analyse
        from analyzer.sources.prediction import from_args

        def own_work() -> float:  # the prediction in this process, without asking the engine
            t0 = time.perf_counter()
            pargs = parse_args(args)
            real = pr._in_background
            pr._in_background = lambda work: (lambda: {})  # noqa: E731 - no image lookups, no DiskUsage
            try:
                analyse(*from_args(pargs, store_dir=str(store), against=None))
            finally:
                pr._in_background = real
            return time.perf_counter() - t0

        pairs = 3 if quick else 7
        res = alternate(predict, snap, pairs=pairs, warmup=1)
        own = alternate(own_work, snap, pairs=pairs, warmup=1)
        return [Row("8d", name, res["ours"]["median"], res["ref"]["median"], "snapshot as build takes it",
                    res["ratio"], "<= 1.5", res["ratio"] <= 1.5,
                    notes=f"{pairs} alternating pairs; predict is a fresh process (start-up, python-on-whales in a "
                          "child process, DiskUsage included), the snapshot runs in this one", samples=res),
                Row("8e", "the prediction's own work in process (no image lookups, no DiskUsage)",
                    own["ours"]["median"], own["ref"]["median"], "snapshot as build takes it", own["ratio"], "info",
                    None, notes="what 8d costs besides process start-up and asking the engine", samples=own)]
    finally:
        shutil.rmtree(store, ignore_errors=True)


def run(cfg, fixtures: Path, env: dict | None, why: str) -> list[Row]:
    rows = corpus(env, why)
    ctx = None
    if env is not None:
        import bench_snapshot

        ctx, _git, _info = bench_snapshot.make_context(fixtures)
    rows.extend(big_context(env, why, ctx, cfg.quick))
    return rows
