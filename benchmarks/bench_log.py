"""Figure 2: offline analysis of a big rawjson log.

The log (>= 5,000 vertices, >= 50 MB) is made by gen_log.py from a real
capture. Every measurement runs in a fresh child process (its ru_maxrss is
the peak memory), alternating ours and the reference:

2a  `events.load_file` + `graph.build_graph` (timed inside the child, after
    the imports, networkx's included) against a bare loop that reads the same file the same way
    and `json.loads` every line (timed the same way).
2b  peak RSS of the 2a child against the log's size (the child's whole
    footprint: interpreter and imports included).
2c  `python -m analyzer analyze --no-record LOG` (an empty store: no previous
    build, nothing written), whole process, against the bare loop as a whole
    process (only when the command exists).
2d  load + graph against `jq -c . LOG > /dev/null` (context only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import gen_log
from common import (
    REPO,
    Row,
    has_command,
    log,
    median,
    not_measured,
    python_child,
    run_child,
    spread,
)

BARE = r"""
import json, sys, time
path = sys.argv[1]
t0 = time.perf_counter()
n = 0
with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
    for line in f:
        try:
            json.loads(line)
        except ValueError:
            pass
        n += 1
t1 = time.perf_counter()
print(json.dumps({"t": t1 - t0, "lines": n}))
"""

OURS = r"""
import json, sys, time
import networkx  # imported before the clock starts, as the bare loop's json is
from analyzer.events import load_file
from analyzer.graph import build_graph
path = sys.argv[1]
t0 = time.perf_counter()
ev = load_file(path)
t1 = time.perf_counter()
g = build_graph(ev)
t2 = time.perf_counter()
print(json.dumps({"t": t2 - t0, "load": t1 - t0, "graph": t2 - t1, "vertices": len(ev.vertices),
                  "objects": ev.objects, "skipped": ev.skipped, "edges": g.dag.number_of_edges()}))
"""


def make_log(fixtures: Path, quick: bool) -> tuple[Path, dict]:
    path = fixtures / "big-rawjson.jsonl"
    meta = fixtures / "big-rawjson.json"
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("bytes") == path.stat().st_size and info.get("generator") == _gen_version():
            return path, info
    log("2: generating the big rawjson log (gen_log.py)")
    info = gen_log.generate(path, vertices=5000, mb=50.0)
    info["generator"] = _gen_version()
    meta.write_text(json.dumps(info))
    return path, info


def _gen_version() -> str:
    import hashlib

    return hashlib.sha256(Path(gen_log.__file__).read_bytes()).hexdigest()[:12]


def run(cfg, fixtures: Path) -> list[Row]:
    path, info = make_log(fixtures, cfg.quick)
    size_mb = info["bytes"] / 1e6
    reps = 3 if cfg.quick else 5
    log(f"2: {size_mb:.1f} MB, {info['vertices']} vertices, {info['lines']} lines; {reps} alternating pairs")
    ours, bare, rss, bare_rss, walls = [], [], [], [], []
    details = None
    # warm-up: page cache, .pyc files
    python_child(BARE, str(path))
    python_child(OURS, str(path))
    for i in range(reps):
        order = (BARE, OURS) if i % 2 == 0 else (OURS, BARE)
        for code in order:
            out, res = python_child(code, str(path))
            if code is OURS:
                ours.append(out["t"])
                rss.append(res.maxrss_kb)
                details = out
            else:
                bare.append(out["t"])
                bare_rss.append(res.maxrss_kb)
            walls.append(res.wall)
    ratios = [a / b for a, b in zip(ours, bare)]
    rows = [Row("2a", f"load_file + build_graph, {size_mb:.0f} MB log, {info['vertices']} vertices",
                median(ours), median(bare), "json.loads loop", median(ratios), "<= 1.5", median(ratios) <= 1.5,
                notes=(f"load {details['load']:.2f} s + graph {details['graph']:.2f} s (last run); "
                       f"{reps} alternating pairs, each in a fresh process"),
                samples={"ours": spread(ours), "ref": spread(bare), "ratios": ratios, "log": info,
                         "last": details})]
    peak_mb = median(rss) / 1024
    rows.append(Row("2b", "peak memory of load + graph (child ru_maxrss)", peak_mb, size_mb, "log size",
                    peak_mb / size_mb, "<= 3", peak_mb / size_mb <= 3, unit="MB",
                    notes=f"bare json loop peaks at {median(bare_rss) / 1024:.0f} MB (interpreter included in both)",
                    samples={"ours_kb": rss, "bare_kb": bare_rss}))
    # 2c: the whole command, when it exists
    if has_command(["analyze"]):
        # --no-record and an empty store: the analysis of this one log, no
        # previous build to compare with, nothing written
        empty = fixtures / "empty-store"
        shutil.rmtree(empty, ignore_errors=True)
        empty.mkdir()
        env = dict(os.environ, PYTHONPATH=str(REPO), CACHEWHY_STORE=str(empty))
        cmd_t, cmd_rss, bare_w = [], [], []
        import sys

        bare_cmd = [sys.executable, "-c", BARE, str(path)]
        ours_cmd = [sys.executable, "-m", "analyzer", "analyze", "--no-record", str(path)]
        run_child(ours_cmd, env=env, check=False)
        for i in range(reps):
            for c in ((bare_cmd, ours_cmd) if i % 2 == 0 else (ours_cmd, bare_cmd)):
                r = run_child(c, env=env, check=False)
                if c is ours_cmd:
                    cmd_t.append(r.wall)
                    cmd_rss.append(r.maxrss_kb)
                else:
                    bare_w.append(r.wall)
        rr = [a / b for a, b in zip(cmd_t, bare_w)]
        rows.append(Row("2c", "`cachewhy analyze --no-record LOG` (whole process)", median(cmd_t), median(bare_w),
                        "json.loads loop, whole process", median(rr), "<= 1.5", median(rr) <= 1.5,
                        notes=f"peak {median(cmd_rss) / 1024:.0f} MB = {median(cmd_rss) / 1024 / size_mb:.2f}x the log",
                        samples={"ours": spread(cmd_t), "ref": spread(bare_w), "ratios": rr, "rss_kb": cmd_rss}))
    else:
        rows.append(not_measured("2c", "`cachewhy analyze LOG` (whole process)", "<= 1.5",
                                 "not measurable yet: `python -m analyzer analyze --help` fails (no such command)"))
    jq = shutil.which("jq")
    if jq is None:
        rows.append(not_measured("2d", "load + graph against jq", "info",
                                 "jq not installed (apt-get install jq; run.py --setup does it)"))
    else:
        jt = []
        run_child(["sh", "-c", f'"{jq}" -c . "{path}" > /dev/null'])
        for _ in range(min(reps, 3)):
            jt.append(run_child(["sh", "-c", f'"{jq}" -c . "{path}" > /dev/null']).wall)
        rows.append(Row("2d", "load + graph against `jq -c . > /dev/null`", median(ours), median(jt), "jq",
                        median(ours) / median(jt), "info", None,
                        notes=f"{subprocess.run([jq, '--version'], capture_output=True, text=True).stdout.strip()}; "
                              "jq's time includes its start-up (a few ms)",
                        samples={"jq": spread(jt)}))
    return rows
