"""Figure 5: the record store.

5a  `cachewhy history` over a store of 10,000 records, a fresh process each
    time; while that command does not exist, a fresh process that runs
    `Store(dir).list_records()` (what history will call), and the same call
    in this process for context.
5b  bytes on disk per record: the record file and its index line, for a
    realistic record (the latest real record of figure 1a's 30-step build
    when figure 1 ran, else one made by the pipeline from the real capture
    in testdata/).
5c  the same for the record of figure 1c's build of the 50,000-file context
    (when figure 1c ran): what the context snapshot costs.

The 10,000 records are copies of that realistic record under fresh ids and
creation times, spread over 50 projects, saved with `Store.save` (fsync off),
with the summary `cachewhy build` puts in the index.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from common import (
    REPO,
    Row,
    cachewhy_command,
    has_command,
    log,
    median,
    run_child,
    spread,
)

N_RECORDS = 10_000
N_PROJECTS = 50


def _records_of(fixtures: Path, project_dir: str) -> list[Path]:
    """Record files of figure 1's store whose context is `project_dir`, oldest first."""
    store = fixtures / "wrapper" / "store"
    if not store.is_dir():
        return []
    out = []
    for f in sorted(store.glob("*.json")):
        try:
            ctx = json.loads(f.read_text())["project"]["context"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ctx.rstrip("/").endswith("/" + project_dir):
            out.append(f)
    return out


def template_record(fixtures: Path) -> tuple[dict, str]:
    files = _records_of(fixtures, "warm30")
    if files:
        return json.loads(files[-1].read_text()), f"real record of figure 1a's warm 30-step build ({files[-1].name})"
    import gen_records

    return gen_records.realistic_record(), "pipeline record of testdata/rawjson/multistage-change (no figure 1 store)"


def _id(i: int, created: float) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created))
    return f"{stamp}{int(created * 1e6) % 1_000_000:06d}-{i:08x}"


def make_store(fixtures: Path, rec: dict, source: str) -> Path:
    sys.path.insert(0, str(REPO))
    from analyzer.store import Store

    root = fixtures / "store-10k"
    meta = fixtures / "store-10k.json"
    want = {"records": N_RECORDS, "template_steps": len(rec.get("steps") or []),
            "template_bytes": len(json.dumps(rec, separators=(",", ":")))}
    if root.is_dir() and meta.exists():
        have = json.loads(meta.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            return root
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    log(f"5: filling a store with {N_RECORDS:,} records")
    st = Store(root, fsync=False)
    t0 = 1_780_000_000.0
    for i in range(N_RECORDS):
        created = t0 + i * 37.5
        r = dict(rec)
        r["id"] = _id(i, created)
        r["created"] = created
        r["completed_at"] = created + (rec.get("duration_s") or 1.0)
        p = dict(rec["project"])
        p["context"] = f"/home/dev/project{i % N_PROJECTS:02d}"
        p["dockerfile"] = p["context"] + "/Dockerfile"
        r["project"] = p
        st.save(r, summary={"hit_ratio": 1.0 if i % 3 else 0.6, "time_lost_s": 0.0 if i % 3 else 1.234,
                            "top_cause": None if i % 3 else "context-changed", "top_line": None if i % 3 else 6})
    meta.write_text(json.dumps({**want, "source": source}))
    return root


def run(cfg, fixtures: Path) -> list[Row]:
    sys.path.insert(0, str(REPO))
    from analyzer.store import Store

    rec, source = template_record(fixtures)
    rows: list[Row] = []
    # 5b: size per record, saved by the store itself
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cachewhy-bench-store-") as d:
        st = Store(d, fsync=False)
        path = st.save(rec, summary={"hit_ratio": 1.0, "time_lost_s": 0.0, "top_cause": None, "top_line": None})
        rec_bytes = path.stat().st_size
        idx_bytes = st.index_path.stat().st_size
    parts = {k: len(json.dumps(v, ensure_ascii=False, separators=(",", ":"))) for k, v in rec.items()}
    top = sorted(parts.items(), key=lambda kv: -kv[1])[:4]
    n_steps = len(rec.get("steps") or [])
    rows.append(Row("5b", f"store size per record ({n_steps} vertices)", float(rec_bytes + idx_bytes), None, "",
                    None, "info", None, unit="B",
                    notes=(f"record file {rec_bytes:,} B + index line {idx_bytes:,} B; largest parts: "
                           + ", ".join(f"{k} {v:,} B" for k, v in top) + f"; {source}"),
                    samples={"record_bytes": rec_bytes, "index_line_bytes": idx_bytes, "parts": parts,
                             "source": source}))
    big = _records_of(fixtures, "context-50k")
    if big:
        brec = json.loads(big[-1].read_text())
        with tempfile.TemporaryDirectory(prefix="cachewhy-bench-store-") as d:
            st = Store(d, fsync=False)
            path = st.save(brec, summary={"hit_ratio": 1.0, "time_lost_s": 0.0, "top_cause": None, "top_line": None})
            b_bytes = path.stat().st_size
            b_idx = st.index_path.stat().st_size
        n_files = len(((brec.get("snapshot") or {}).get("entries")) or {})
        snap_bytes = len(json.dumps(brec.get("snapshot"), separators=(",", ":")))
        rows.append(Row("5c", f"store size per record, build of a {n_files:,}-entry context (figure 1c)",
                        float(b_bytes + b_idx), None, "", None, "info", None, unit="B",
                        notes=(f"record file {b_bytes:,} B + index line {b_idx:,} B; the context snapshot is "
                               f"{snap_bytes:,} B ({snap_bytes / max(1, n_files):.0f} B per entry)"),
                        samples={"record_bytes": b_bytes, "index_line_bytes": b_idx, "snapshot_bytes": snap_bytes,
                                 "entries": n_files}))
    root = make_store(fixtures, rec, source)
    reps = 5 if cfg.quick else 15
    if has_command(["history"]):
        cw = cachewhy_command()
        import os

        env = dict(os.environ, CACHEWHY_STORE=str(root))
        run_child([*cw, "history"], env=env, check=False)
        t = [run_child([*cw, "history"], env=env).wall for _ in range(reps)]
        rows.insert(0, Row("5a", f"`cachewhy history`, {N_RECORDS:,} records (fresh process)", median(t), None, "",
                           None, "<= 0.3 s", median(t) <= 0.3, notes=f"median of {reps}",
                           samples={"ours": spread(t)}))
        return rows
    code = ("import sys, json, time; t0 = time.perf_counter(); from analyzer.store import Store; "
            "e, p = Store(sys.argv[1]).list_records(); print(json.dumps({'n': len(e), 't': time.perf_counter() - t0}))")
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO))
    run_child([sys.executable, "-c", code, str(root)], env=env)
    fresh = [run_child([sys.executable, "-c", code, str(root)], env=env).wall for _ in range(reps)]
    inproc = []
    for _ in range(reps):
        t0 = time.perf_counter()
        entries, problems = Store(root).list_records()
        inproc.append(time.perf_counter() - t0)
    assert len(entries) == N_RECORDS, (len(entries), problems[:3])
    rows.insert(0, Row("5a", f"Store.list_records(), {N_RECORDS:,} records (fresh process)", median(fresh), None, "",
                       None, "<= 0.3 s", median(fresh) <= 0.3,
                       notes=(f"`cachewhy history` does not exist yet: measured the store call it will make, in a "
                              f"fresh interpreter (import included); in-process {median(inproc) * 1000:.0f} ms; "
                              f"median of {reps}"),
                       samples={"fresh_process": spread(fresh), "in_process": spread(inproc)}))
    return rows
