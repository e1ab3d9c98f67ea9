"""What cache misses cost over many builds: the model `cachewhy trends` renders.

Everything is read from an index (analyzer/index.py): the store's, or one made
in memory from a folder of records. Aggregates over the whole period are SQL
over covering indexes (the builds by time, the misses, the root misses); only
each project's newest `WINDOW` builds are read step by step, for the builds x
steps strip and for regressions.

The regression rule (docs/trends.md says the same):

  For each Dockerfile line (its number and text, per project), take the builds
  of the project's newest `WINDOW` in the period that ran that line, oldest
  first: each either took the line from the cache (C) or ran it (M: rebuilt
  or failed). An onset is a build k where M - C counted from k to the newest
  build is largest and above 0, k being an M whose build before it is a C.
  The line has regressed when, from an onset k on, it missed in more than
  half of the builds and in at least `MIN_MISSES`, before k it was cached in
  more than half of at least `MIN_BEFORE` builds, and so many misses from k on
  are unlikely (below `CHANCE`) at the miss rate the line had before k (never
  taken as below `BASE_RATE_FLOOR`): a binomial tail. Of onsets that tie, the
  earliest that meets all this. The regression's
  cause is the root cause of the line's miss in build k, read from that
  build's record; when the record cannot be read, the cause is said unknown.
  Lines that regressed in the same build from the same root are one regression,
  told under the line that cost most.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import time
from typing import Any, Callable, Iterable

from analyzer.index import CACHED, FAILED, REBUILT

SCHEMA = "cachewhy.trends/v1"
WINDOW = 60  # newest builds per project read step by step (strip, regression candidates)
STRIP_BUILDS = 40  # builds shown in the builds x steps strip
MIN_MISSES = 3
MIN_BEFORE = 2
CHANCE = 0.01  # a run of misses this likely at the line's earlier miss rate is noise, not a regression
BASE_RATE_FLOOR = 0.05  # the earlier miss rate never taken as below this (a line never missed before)
TOP_LINES = 5
PER_BUILD_MAX = 60  # --per auto: one point per build up to this many builds, else one per day

_SINCE = re.compile(r"(\d+)\s*([mhdw])\Z")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float) -> float | None:
    """`30d`, `12h`, `2w`, `90m`, a date `2026-11-20` (local midnight), or `all` (None)."""
    t = text.strip().lower()
    if t == "all":
        return None
    m = _SINCE.match(t)
    if m:
        return now - int(m.group(1)) * _UNIT[m.group(2)]
    try:
        return time.mktime(time.strptime(t, "%Y-%m-%d"))
    except ValueError:
        raise ValueError(f"--since takes a span like 30d, 12h, 2w, a date YYYY-MM-DD, or all; not {text!r}") from None


def _where(since: float | None, cutoff: tuple[float, str] | None, projects: list[int] | None,
           gone: bool, alias: str = "b") -> tuple[str, list]:
    """The SQL condition selecting the period's builds (alias: a builds or steps row)."""
    conds, args = [], []
    if since is not None:
        conds.append(f"{alias}.created >= ?")
        args.append(since)
    if cutoff is not None:
        conds.append(f"{alias}.created >= ?")
        args.append(cutoff[0])
    if projects is not None:
        conds.append(f"{alias}.project IN ({','.join('?' * len(projects))})" if alias == "b"
                     else f"{alias}.line IN (SELECT n FROM lines WHERE project IN ({','.join('?' * len(projects))}))")
        args.extend(projects)
    if gone:
        conds.append(f"{alias}.build NOT IN (SELECT n FROM temp.gone)" if alias != "b"
                     else "b.n NOT IN (SELECT n FROM temp.gone)")
    return (" AND ".join(conds) or "1"), args


def gather(db: sqlite3.Connection, *, since: float | None, now: float, contexts: list[str] | None = None,
           limit: int | None = None, per: str = "auto", absent: Iterable[str] = (),
           load: Callable[[str], dict | None] | None = None) -> dict:
    """The trends of the builds in `db`: created at or after `since` (None: all), of the
    projects whose context is one of `contexts` (None: all), the newest `limit` of them.

    `absent`: ids of indexed builds whose record files are gone (left out). `load(id)`
    gives a build's record (None when it cannot be read): the regressions' causes."""
    notes: list[str] = []
    projects = {r[0]: {"n": r[0], "key": r[1], "context": r[2], "dockerfile": r[3], "target": r[4],
                       "platforms": _json_list(r[5])}
                for r in db.execute("SELECT n, key, context, dockerfile, target, platforms FROM projects")}
    wanted: list[int] | None = None
    if contexts is not None:
        real = {os.path.realpath(c) for c in contexts} | set(contexts)
        wanted = [n for n, p in projects.items() if p["context"] in real]
    absent = list(absent)
    db.execute("CREATE TEMP TABLE IF NOT EXISTS gone (n INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM temp.gone")
    if absent:
        db.executemany("INSERT OR IGNORE INTO temp.gone SELECT n FROM builds WHERE id = ?", [(i,) for i in absent])
    gone = bool(absent)
    cutoff = None
    if limit is not None:
        w, a = _where(since, None, wanted, gone)
        row = db.execute(f"SELECT b.created, b.id FROM builds b WHERE {w} ORDER BY b.created DESC, b.id DESC "
                         f"LIMIT 1 OFFSET ?", [*a, max(limit - 1, 0)]).fetchone()
        cutoff = (row[0], row[1]) if row is not None and limit > 0 else None
        if limit == 0:
            cutoff = (float("inf"), "")
    w, a = _where(since, cutoff, wanted, gone)
    ws, sa = _where(since, cutoff, wanted, gone, alias="s")
    # everything over the whole period is aggregated by SQLite: per project, per day, per line
    totals = db.execute(f"SELECT b.project, count(*), total(b.cached), total(b.rebuilt), total(b.lost_s), "
                        f"min(b.created), max(b.created), sum(b.exit_code != 0) FROM builds b "
                        f"INDEXED BY builds_figures WHERE {w} GROUP BY b.project", a).fetchall()
    modes = {t[0]: (per if per != "auto" else ("build" if t[1] <= PER_BUILD_MAX else "day")) for t in totals}
    series: dict[int, dict[Any, dict]] = {t[0]: {} for t in totals}

    def point(pn: int, key: Any, label: str, start: float, n: int, cached: float, rebuilt: float,
              lost: float) -> None:
        series[pn][key] = {"label": label, "start": start, "builds": n, "cached": int(cached),
                           "rebuilt": int(rebuilt), "time_lost_s": round(lost, 3), "lost_by_kind": {},
                           "hit_ratio": round(cached / (cached + rebuilt), 4) if cached + rebuilt else None}

    by_day = [pn for pn, m in modes.items() if m == "day"]
    by_build = [pn for pn, m in modes.items() if m == "build"]
    if by_day:
        for r in db.execute(f"SELECT b.project, date(b.created, 'unixepoch', 'localtime') AS d, count(*), "
                            f"min(b.created), total(b.cached), total(b.rebuilt), total(b.lost_s) FROM builds b "
                            f"INDEXED BY builds_figures "
                            f"WHERE {w} AND b.project IN ({','.join('?' * len(by_day))}) GROUP BY b.project, d "
                            f"ORDER BY b.project, d", [*a, *by_day]):
            point(r[0], r[1], r[1], r[3], r[2], r[4], r[5], r[6])
    if by_build:
        for r in db.execute(f"SELECT b.project, b.n, b.id, b.created, b.cached, b.rebuilt, b.lost_s FROM builds b "
                            f"WHERE {w} AND b.project IN ({','.join('?' * len(by_build))}) "
                            f"ORDER BY b.created, b.id", [*a, *by_build]):
            point(r[0], r[1], r[2], r[3], 1, r[4] or 0, r[5] or 0, r[6] or 0.0)
    line_info = {r[0]: (r[1], r[2], r[3]) for r in db.execute("SELECT n, project, line, instruction FROM lines")}
    # root misses by line, kind and day (or build): the covering index of root rows
    kinds: dict[int, dict[str, list]] = {pn: {} for pn in series}
    for bucket, pns in (("date(s.created, 'unixepoch', 'localtime')", by_day), ("s.build", by_build)):
        if not pns:
            continue
        for ln, kind, key, lost, n in db.execute(
                f"SELECT s.line, s.kind, {bucket} AS k, total(s.lost_s), count(*) FROM steps s "
                f"INDEXED BY steps_roots WHERE s.root = 1 AND {ws} GROUP BY s.line, s.kind, k", sa):
            pn = line_info[ln][0] if ln in line_info else -1
            if pn not in pns or key not in series[pn]:
                continue
            k = kind or "unknown"
            agg = kinds[pn].setdefault(k, [0.0, 0])
            agg[0] += lost
            agg[1] += n
            per_kind = series[pn][key]["lost_by_kind"]
            per_kind[k] = round(per_kind.get(k, 0.0) + lost, 3)
    missed = db.execute(f"SELECT s.line, count(*), total(s.duration_s) FROM steps s INDEXED BY steps_missed "
                        f"WHERE s.status != 0 AND {ws} GROUP BY s.line", sa).fetchall()
    out_projects = []
    for pn, n_builds, cached, rebuilt, lost, first, last, failed in totals:
        p = projects[pn]
        window = db.execute(f"SELECT b.n, b.id, b.created FROM builds b WHERE {w} AND b.project = ? "
                            f"ORDER BY b.created DESC, b.id DESC LIMIT ?", [*a, pn, WINDOW]).fetchall()[::-1]
        lines = sorted(((line_info[ln][1], line_info[ln][2], n, t) for ln, n, t in missed
                        if line_info.get(ln, (None,))[0] == pn), key=lambda x: (-x[3], x[0]))[:TOP_LINES]
        detail = _steps_of(db, window, line_info)
        out_projects.append({
            "context": p["context"], "dockerfile": p["dockerfile"], "target": p["target"],
            "platforms": p["platforms"], "project_key": p["key"],
            "builds": n_builds,
            "failed": failed,
            "first": first, "last": last,
            "hit_ratio": round(cached / (cached + rebuilt), 4) if cached + rebuilt else None,
            "time_lost_s": round(lost, 3),
            "per": modes[pn],
            "series": list(series[pn].values()),
            "lost_by_kind": [{"kind": k, "time_lost_s": round(v[0], 3), "roots": v[1]}
                             for k, v in sorted(kinds[pn].items(), key=lambda kv: (-kv[1][0], kv[0]))],
            "lines": [{"line": ln or None, "instruction": text, "misses": n, "time_s": round(t, 3)}
                      for ln, text, n, t in lines],
            "regressions": _regressions(db, detail, window, line_info, load, (ws, sa)),
            "strip": _strip(detail, window[-STRIP_BUILDS:], line_info),
        })
    out_projects.sort(key=lambda p: (-p["time_lost_s"], p["context"]))
    return {
        "schema": SCHEMA,
        "since": since, "until": now, "limit": limit,
        "builds": sum(t[1] for t in totals),
        "projects": out_projects,
        "notes": notes,
    }


def _json_list(text: Any) -> list:
    import json  # noqa: PLC0415

    try:
        v = json.loads(text)
    except (TypeError, ValueError):
        return []
    return v if isinstance(v, list) else []


def _steps_of(db: sqlite3.Connection, rows: list[tuple], line_info: dict) -> dict[int, list[tuple]]:
    """build n -> its step rows (line n, status, duration), in build order."""
    out: dict[int, list[tuple]] = {b[0]: [] for b in rows}
    ns = list(out)
    for i in range(0, len(ns), 500):  # SQLite's bound-parameter limit
        chunk = ns[i:i + 500]
        for build, ln, st, dur in db.execute(f"SELECT build, line, status, duration_s FROM steps "
                                             f"WHERE build IN ({','.join('?' * len(chunk))}) ORDER BY build, pos",
                                             chunk):
            out[build].append((ln, st, dur))
    return out


def _strip(detail: dict[int, list[tuple]], rows: list[tuple], line_info: dict) -> dict:
    """The newest builds x the steps of the newest build: 'C' cached, 'R' rebuilt,
    'F' failed, '-' another status, '.' not run (no such step in that build)."""
    if not rows:
        return {"builds": [], "steps": [], "cells": []}
    order = list(dict.fromkeys(r[0] for r in detail.get(rows[-1][0]) or []))
    code = {CACHED: "C", REBUILT: "R", FAILED: "F"}
    status = [{r[0]: r[1] for r in detail.get(b[0]) or []} for b in rows]  # per build: line -> status
    cells = ["".join(code.get(st[ln], "-") if ln in st else "." for st in status) for ln in order]
    return {
        "builds": [{"id": b[1], "created": b[2]} for b in rows],
        "steps": [{"line": line_info[ln][1] or None, "instruction": line_info[ln][2]} for ln in order],
        "cells": cells,
    }


def _onsets(seq: list[bool]) -> list[int]:
    """The indexes k where (misses - cached) of seq[k:] is largest and above 0, seq[k]
    a miss after a cached build; earliest first."""
    best, score = 0, 0
    found: list[int] = []
    for k in range(len(seq) - 1, -1, -1):
        score += 1 if seq[k] else -1
        if seq[k] and k > 0 and not seq[k - 1] and score >= best and score > 0:
            found = [k] if score > best else [k, *found]
            best = score
    return found


def _onset(seq: list[bool]) -> int | None:
    got = _onsets(seq)
    return got[0] if got else None


def _series(detail: dict[int, list[tuple]], rows: list[tuple]) -> dict[int, list[tuple[int, bool, float]]]:
    """line n -> (build n, missed, duration) for each build of `rows` that ran it, oldest first."""
    out: dict[int, list[tuple[int, bool, float]]] = {}
    ran = (CACHED, REBUILT, FAILED)
    for b in rows:
        n = b[0]
        for ln, st, dur in detail.get(n) or ():
            if st in ran:
                out.setdefault(ln, []).append((n, st != CACHED, dur or 0.0))
    return out


def _is_regression(seq: list[tuple[int, bool, float]]) -> tuple[int, int, int, float] | None:
    """(onset index, misses from it, builds from it, their time) when `seq` regressed (the
    rule); of onsets that tie, the earliest that meets the rule."""
    onsets = _onsets([bool(r[1]) for r in seq])
    if not onsets:
        return None
    n = len(seq)
    missed_to = [0] * (n + 1)  # misses in seq[:i]
    for i, r in enumerate(seq):
        missed_to[i + 1] = missed_to[i] + (1 if r[1] else 0)
    for k in onsets:
        misses = missed_to[n] - missed_to[k]
        cached_before = k - missed_to[k]
        if (misses * 2 > n - k and misses >= MIN_MISSES
                and k >= MIN_BEFORE and cached_before * 2 > k
                and _tail(n - k, misses, max(1 - cached_before / k, BASE_RATE_FLOOR)) < CHANCE):
            return k, misses, n - k, sum(r[2] for r in seq[k:] if r[1])
    return None


def _tail(n: int, m: int, p: float) -> float:
    """P(at least m misses in n builds) when each misses with probability p (binomial)."""
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    lgn = math.lgamma(n + 1)
    total = 0.0
    for i in range(m, n + 1):
        term = math.exp(lgn - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq)
        total += term
        if i > n * p and term < total * 1e-12:  # past the mode the terms only shrink
            break
    return min(1.0, total)


def _regressions(db: sqlite3.Connection, detail: dict[int, list[tuple]], window: list[tuple], line_info: dict,
                 load: Callable[[str], dict | None] | None, where: tuple[str, list]) -> list[dict]:
    """The rule (module docstring) over each line's builds in the period. Candidates come
    from the newest WINDOW builds, read step by step: a line that regressed within them,
    or missed in most of them (its onset may be older); only the candidates' whole
    history in the period is then read, from the index of one line's steps."""
    found: list[dict[str, Any]] = []
    for ln, recent in _series(detail, window).items():
        missed = sum(1 for _, m, _ in recent if m)
        if missed < MIN_MISSES or (missed * 2 <= len(recent) and _is_regression(recent) is None):
            continue
        w, a = where
        seq = db.execute(
            f"SELECT s.build, s.status != {CACHED}, coalesce(s.duration_s, 0.0) FROM steps s INDEXED BY steps_by_line "
            f"WHERE s.line = ? AND s.status IN ({CACHED}, {REBUILT}, {FAILED}) AND {w} "
            f"ORDER BY s.created, s.build", [ln, *a]).fetchall()
        got = _is_regression(seq)
        if got is None:
            continue
        k, misses, of, lost = got
        start = db.execute("SELECT id, created FROM builds WHERE n = ?", (seq[k][0],)).fetchone()
        found.append({
            "line_n": ln, "line": line_info[ln][1] or None, "instruction": line_info[ln][2],
            "first_build": start[0], "since": start[1], "missed": misses, "of": of,
            "time_lost_s": round(lost, 3),
        })
    # the cause: the root of the line's miss in the first build, from that build's record
    records: dict[str, dict | None] = {}
    for r in found:
        rid = r["first_build"]
        if rid not in records:
            records[rid] = load(rid) if load is not None else None
        r["cause"], r["root_id"] = _cause_of(records[rid], r["line"], r["instruction"])
        if r["cause"] is None:  # said as it is: which record, and what it lacks
            r["no_cause"] = "unreadable" if records[rid] is None else "not in its report"
    # lines that regressed in one build from one root: one regression, under the costliest line
    groups: dict[tuple, list[dict]] = {}
    for r in found:
        key = (r["first_build"], r["root_id"]) if r["root_id"] else (r["first_build"], "line", r["line_n"])
        groups.setdefault(key, []).append(r)
    out = []
    for members in groups.values():
        members.sort(key=lambda r: (-r["time_lost_s"], r["line"] or 0))
        head = dict(members[0])
        head["also"] = [{"line": m["line"], "instruction": m["instruction"], "missed": m["missed"], "of": m["of"],
                         "time_lost_s": m["time_lost_s"]} for m in members[1:]]
        head["time_lost_s"] = round(sum(m["time_lost_s"] for m in members), 3)
        head.pop("line_n")
        head.pop("root_id")
        out.append(head)
    out.sort(key=lambda r: (-r["time_lost_s"], r["line"] or 0))
    return out


def _cause_of(record: dict | None, line: int | None, instruction: str) -> tuple[dict | None, str | None]:
    """(cause, root step id) of the miss at `line` in `record`'s report; (None, None) if unknown."""
    if not isinstance(record, dict):
        return None, None
    report = record.get("report") if isinstance(record.get("report"), dict) else {}
    misses = [m for m in (report or {}).get("misses") or [] if isinstance(m, dict)]
    by_id = {m.get("id"): m for m in misses}
    want = " ".join(instruction.split())
    mine = next((m for m in misses if m.get("line") == line
                 and " ".join(str(m.get("instruction") or "").split())[:len(want)] == want), None)
    if mine is None:
        mine = next((m for m in misses if m.get("line") == line), None)
    if mine is None:
        return None, None
    root = mine if mine.get("root") else by_id.get((mine.get("caused_by") or [None])[0])
    if root is None:
        return None, None
    cause: dict = root.get("cause") if isinstance(root.get("cause"), dict) else {}  # type: ignore[assignment]
    return ({"kind": cause.get("kind") or "unknown", "detail": cause.get("detail") or "",
             "line": root.get("line"), "instruction": " ".join(str(root.get("instruction") or "").split()),
             "same_line": root is mine, "build": record.get("id")},
            str(root.get("id")))
