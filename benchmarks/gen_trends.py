"""A generated store for the trends figure: builds of several projects over a
period, each of a fixed number of steps, with cache misses as CI sees them
(most builds mostly cached; an occasional edit that rebuilds from its line on;
now and then the cache gone) and, in every project, one line that turns into a
recurring miss half way through the period (a regression to be found).

Record files hold what the store checks plus the report's summary and misses
(what trends reads back for a regression's cause); steps go to the index only,
through the same `index.add` a save uses. Deterministic for a given seed."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KEYWORDS = ["RUN", "COPY", "RUN", "RUN", "ENV", "WORKDIR", "RUN", "COPY", "ADD", "RUN"]


def _rid(created: float, i: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created))
    return f"{stamp}{int(created * 1e6) % 1_000_000:06d}-{i:08x}"


def project_steps(p: int, steps: int) -> list[tuple[int, str, str]]:
    out = []
    for k in range(steps):
        kw = KEYWORDS[(k + p) % len(KEYWORDS)]
        out.append((k + 2, kw, f"{kw} step-{k} of project {p}" if kw != "RUN" else f"RUN make part-{k} # p{p}"))
    return out


def build_record(p: int, i: int, created: float, steps: list, rng: random.Random, regress_from: float,
                 reg_line: int, context: str) -> dict:
    """One build: which steps missed, their times, and the report's misses."""
    n = len(steps)
    first_miss = None
    r = rng.random()
    if r < 0.02:
        first_miss, kind = 0, "cache-evicted"
    elif r < 0.25:
        first_miss, kind = rng.randrange(n // 2, n), "context-changed"
    elif r < 0.32:
        first_miss, kind = rng.randrange(0, n), "instruction-changed"
    regressed = created >= regress_from and rng.random() < 0.85
    recs, misses = [], []
    root_ids: list[str] = []
    for k, (line, kw, text) in enumerate(steps):
        sid = f"s{p:02d}{k:03d}"
        dur = round(0.05 + (k % 7) * 0.4 + rng.random() * 0.3, 3)
        missed = first_miss is not None and k >= first_miss
        root_kind = kind if first_miss is not None and k == first_miss else None
        if regressed and k == reg_line and not missed:
            missed, root_kind = True, "context-changed"
        recs.append({"id": sid, "keyword": kw, "line": line, "instruction": text,
                     "status": "rebuilt" if missed else "cached", "duration_s": dur if missed else 0.0})
        if missed:
            if root_kind is not None:
                detail = ("node_modules/.package-lock.json added; from .dockerignore: node_modules is no longer "
                          "excluded" if k == reg_line else f"{kind} at line {line}")
                misses.append({"id": sid, "line": line, "instruction": text, "root": True, "time_lost_s": dur,
                               "caused_by": [], "cause": {"kind": root_kind, "detail": detail}})
                root_ids.append(sid)
            else:
                misses.append({"id": sid, "line": line, "instruction": text, "root": False,
                               "time_lost_s": dur, "caused_by": root_ids[:1],
                               "cause": {"kind": kind if first_miss is not None else "context-changed",
                                         "detail": "follows"}})
                if root_ids:
                    next(m for m in misses if m["id"] == root_ids[0])["time_lost_s"] += dur
    cached = sum(1 for s in recs if s["status"] == "cached")
    rebuilt = n - cached
    lost = round(sum(m["time_lost_s"] for m in misses if m["root"]), 3)
    return {
        "schema": "cachewhy.record/v1", "id": _rid(created, p * 10_000_000 + i), "created": created,
        "complete": True, "exit_code": 0,
        "project": {"context": context, "dockerfile": f"{context}/Dockerfile", "target": None,
                    "platforms": ["linux/amd64"]},
        "steps": recs,
        "report": {"summary": {"cached": cached, "rebuilt": rebuilt, "hit_ratio": round(cached / n, 4),
                               "time_lost_s": lost}, "misses": misses},
    }


def make_store(root: Path, builds: int, projects: int, steps: int, days: float = 28.0, seed: int = 7,
               end: float | None = None) -> Path:
    """Write the store at `root` (made fresh): `builds` builds spread over `projects`."""
    from analyzer import index as ix
    from analyzer.store import Store, _entry_from_record

    rng = random.Random(seed)
    end = end if end is not None else time.time() - 60
    start = end - days * 86400
    store = Store(root, fsync=False)
    store._ensure_root()
    db = store.index()
    per = builds // projects
    contexts = [f"/ci/work/project-{p:02d}" for p in range(projects)]
    plans = [project_steps(p, steps) for p in range(projects)]
    batch = 0
    db.execute("BEGIN IMMEDIATE")
    for i in range(per):
        for p in range(projects):
            created = start + (i * projects + p) * (end - start) / (per * projects)
            rec = build_record(p, i, created, plans[p], rng, start + (end - start) * 0.5, steps // 3, contexts[p])
            stub = {k: rec[k] for k in ("schema", "id", "created", "complete", "exit_code", "project")}
            stub["report"] = {"summary": rec["report"]["summary"],  # what a regression's cause reads
                              "misses": [m for m in rec["report"]["misses"]
                                         if m["root"] or m["line"] == plans[p][steps // 3][0]]}
            with open(root / f"{rec['id']}.json", "w") as f:
                json.dump(stub, f, separators=(",", ":"))
            ix.add(db, _entry_from_record(rec, rec["id"], ix.summary_from_report(rec)), rec, scan=False)
            batch += 1
            if batch % 5000 == 0:
                db.execute("COMMIT")
                db.execute("BEGIN IMMEDIATE")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return root


if __name__ == "__main__":
    root = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    t = time.perf_counter()
    make_store(root, n, int(sys.argv[3]) if len(sys.argv) > 3 else 4, int(sys.argv[4]) if len(sys.argv) > 4 else 20)
    print(f"{n} builds in {time.perf_counter() - t:.1f}s; {os.path.getsize(root / 'index.db') / 1e6:.1f} MB index")
