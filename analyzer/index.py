"""The store's index: an embedded SQLite database beside the record files.

One row per build (what `history` lists: ids, times, project, summary) and one
row per Dockerfile step of each build (status, time, root cause kind, line),
which `trends` aggregates without opening a record file.

Record files stay the truth; the index is a cache that any reader can repair
from them (store.py). It is written with the records' discipline:

* WAL journal, so readers never block the writer nor see half a build;
* one transaction per build (`BEGIN IMMEDIATE`: the build row and all its step
  rows, or nothing), taken after the record file is on disk;
* a busy timeout, so that concurrent builds queue for the write lock instead of
  failing; `synchronous=NORMAL`: a power cut may lose the last commits, never
  the database, and those builds are indexed again from their record files.

The same schema serves a folder of records read by `trends` (an in-memory
database, filled by the same `add` as the store's).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

SCHEMA_VERSION = 3
# indexes made differently by an older schema: dropped, then made again by _DDL
_REMADE = {1: ("steps_missed", "steps_roots")}
BUSY_TIMEOUT_MS = 60_000

# step status in the index: what the trends need to tell apart
CACHED, REBUILT, FAILED, OTHER = 0, 1, 2, 3
STATUS_CODE = {"cached": CACHED, "rebuilt": REBUILT, "failed": FAILED}
# keywords that are no cacheable work of their own (the report's hit ratio leaves them out too)
_NOT_STEPS = (None, "FROM")
_TEXT_MAX = 200  # instruction text kept per line: enough to recognise it, no more

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    n INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    context TEXT NOT NULL,
    dockerfile TEXT NOT NULL,
    target TEXT,
    platforms TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS builds (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    complete INTEGER NOT NULL,
    exit_code INTEGER NOT NULL,
    project INTEGER NOT NULL REFERENCES projects(n),
    scan INTEGER NOT NULL,          -- 1: indexed by a reader's repair, not by the save
    summary TEXT NOT NULL,          -- the JSON summary `history` shows
    cached INTEGER,                 -- cacheable steps taken from the cache
    rebuilt INTEGER,                -- cacheable steps run again
    lost_s REAL,                    -- time the root misses cost
    steps INTEGER NOT NULL          -- 1 when this build's step rows are in
);
CREATE INDEX IF NOT EXISTS builds_by_time ON builds (created, id);
CREATE INDEX IF NOT EXISTS builds_by_project ON builds (project, created);
-- covering: a period's figures per project and day without reading the (wide) build rows
CREATE INDEX IF NOT EXISTS builds_figures ON builds (project, created, cached, rebuilt, lost_s, exit_code);
CREATE TABLE IF NOT EXISTS lines (
    n INTEGER PRIMARY KEY,
    project INTEGER NOT NULL,
    line INTEGER NOT NULL,          -- 0: a step without a Dockerfile line
    instruction TEXT NOT NULL,
    UNIQUE (project, line, instruction)
);
CREATE TABLE IF NOT EXISTS steps (
    build INTEGER NOT NULL,         -- builds.n
    pos INTEGER NOT NULL,           -- order in the build
    line INTEGER NOT NULL,          -- lines.n
    status INTEGER NOT NULL,        -- CACHED, REBUILT, FAILED, OTHER
    duration_s REAL,
    kind TEXT,                      -- cause kind of the miss (a follower: its root's kind)
    root INTEGER NOT NULL,          -- 1: a root miss
    lost_s REAL,                    -- a root: the time it cost, its followers included
    created REAL NOT NULL,          -- the build's, copied: a period's misses read from one index, no join
    PRIMARY KEY (build, pos)
) WITHOUT ROWID;
-- covering indexes of the rows trends aggregates: misses (a small part of all steps) and roots
-- (the filtered column last: SQLite reads a partial index without the table only when it holds it)
CREATE INDEX IF NOT EXISTS steps_missed ON steps (line, created, build, duration_s, status) WHERE status != 0;
CREATE INDEX IF NOT EXISTS steps_roots ON steps (line, kind, created, build, lost_s, root) WHERE root = 1;
-- one line's status build after build (a regression's whole history)
CREATE INDEX IF NOT EXISTS steps_by_line ON steps (line, created, build, status, duration_s);
"""


class IndexCorrupt(Exception):
    """The database file is not a usable index (the caller sets it aside and rebuilds)."""


def connect(path: str | os.PathLike[str], *, fsync: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the index at `path` (":memory:" for a scratch one).

    Raises IndexCorrupt when the file is no database or a damaged one, OSError
    (as sqlite3.OperationalError) when it cannot be opened."""
    db = sqlite3.connect(os.fspath(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                         check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if os.fspath(path) != ":memory:":
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal mode {mode}")
        db.execute(f"PRAGMA synchronous = {'NORMAL' if fsync else 'OFF'}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            if version > SCHEMA_VERSION:
                raise IndexCorrupt(f"index schema {version} is newer than this cachewhy's ({SCHEMA_VERSION})")
            with transaction(db):
                old = db.execute("PRAGMA user_version").fetchone()[0]
                if old < SCHEMA_VERSION:
                    for v in range(old, SCHEMA_VERSION):
                        for name in _REMADE.get(v, ()):
                            db.execute(f"DROP INDEX IF EXISTS {name}")
                    for stmt in _DDL.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as e:
        db.close()
        if _is_damage(e):
            raise IndexCorrupt(str(e)) from None
        raise
    except IndexCorrupt:
        db.close()
        raise
    return db


def _is_damage(e: sqlite3.Error) -> bool:
    """A damaged or foreign file, as opposed to a busy or unreadable one."""
    text = str(e).lower()
    return not isinstance(e, sqlite3.OperationalError) or any(
        w in text for w in ("not a database", "malformed", "corrupt", "no such table", "no such column"))


class transaction:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on any error: one writer at a time,
    waiting up to the busy timeout for the others."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass


# --------------------------------------------------------------------------
# what one build contributes


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def summary_from_report(record: Mapping[str, Any]) -> dict:
    """The summary a save would have indexed, from the report kept in the record
    (a record indexed by a repair); {} for a record without one."""
    report = record.get("report")
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        return {}
    summ = report["summary"]
    roots = [m for m in report.get("misses") or [] if isinstance(m, dict) and m.get("root")]
    top = max(roots, key=lambda m: _num(m.get("time_lost_s")) or 0.0) if roots else None
    out = {
        "hit_ratio": summ.get("hit_ratio"),
        "time_lost_s": summ.get("time_lost_s"),
        "top_cause": ((top.get("cause") or {}).get("kind")) if top else None,
        "top_line": top.get("line") if top else None,
    }
    steps = record.get("steps")
    if isinstance(steps, list) and not any(isinstance(s, dict) and s.get("keyword") for s in steps):
        out["no_steps"] = True  # as deliver marks it: never a baseline (store.find_previous)
    return out


def step_rows(record: Mapping[str, Any]) -> list[tuple[int, str, int, float | None, str | None, int, float | None]]:
    """(line, instruction, status, duration, cause kind, root, time lost) per cacheable
    step of a record, in build order. Kinds come from the report the record keeps."""
    report = record.get("report") if isinstance(record.get("report"), dict) else {}
    misses = {m.get("id"): m for m in (report or {}).get("misses") or [] if isinstance(m, dict)}
    out = []
    for s in record.get("steps") or []:
        if not isinstance(s, dict) or s.get("keyword") in _NOT_STEPS:
            continue
        raw_line = s.get("line")
        line = raw_line if isinstance(raw_line, int) and not isinstance(raw_line, bool) else 0
        text = " ".join(str(s.get("instruction") or s.get("name") or "").split())[:_TEXT_MAX]
        status = STATUS_CODE.get(str(s.get("status")), OTHER)
        m = misses.get(s.get("id"))
        kind: Any = None
        root, lost = False, None
        if m is not None:
            kind = (m.get("cause") or {}).get("kind") if isinstance(m.get("cause"), dict) else None
            root = bool(m.get("root"))
            lost = _num(m.get("time_lost_s")) if root else None
        out.append((line, text, status, _num(s.get("duration_s")), kind if isinstance(kind, str) else None,
                    1 if root else 0, lost))
    return out


def _counts(rows: list, summary: dict) -> tuple[int | None, int | None, float | None]:
    cached: int | None
    rebuilt: int | None
    if rows:
        cached = sum(1 for r in rows if r[2] == CACHED)
        rebuilt = sum(1 for r in rows if r[2] == REBUILT)
    else:
        cached = rebuilt = None
    return cached, rebuilt, _num(summary.get("time_lost_s"))


def _project_n(db: sqlite3.Connection, entry: dict) -> int:
    key = entry["project_key"]
    got = db.execute("SELECT n FROM projects WHERE key = ?", (key,)).fetchone()
    if got is not None:
        return int(got[0])
    cur = db.execute("INSERT INTO projects (key, context, dockerfile, target, platforms) VALUES (?, ?, ?, ?, ?)",
                     (key, entry["context"], entry["dockerfile"], entry["target"],
                      json.dumps(list(entry["platforms"]), ensure_ascii=False)))
    return int(cur.lastrowid)  # type: ignore[arg-type]


def _line_n(db: sqlite3.Connection, project: int, line: int, text: str, cache: dict) -> int:
    """The id of a project's (line, text); `cache` starts empty per build and is filled
    with the project's known lines at the first call (one query instead of one a step)."""
    if not cache:
        cache.update(((r[0], r[1]), r[2]) for r in db.execute(
            "SELECT line, instruction, n FROM lines WHERE project = ?", (project,)))
        cache[None] = 0  # loaded
    k = (line, text)
    n = cache.get(k)
    if n is None:
        n = cache[k] = int(db.execute("INSERT INTO lines (project, line, instruction) VALUES (?, ?, ?)",
                                      (project, line, text)).lastrowid)  # type: ignore[arg-type]
    return n


def add(db: sqlite3.Connection, entry: dict, record: Mapping[str, Any] | None, *, scan: bool) -> bool:
    """Index one build; call inside a transaction. `entry` is the store's index entry
    (id, created, ..., summary); `record` gives the step rows (None: none yet).

    A save replaces an earlier row of the same id; a repair (`scan`) never does.
    Returns whether a row was written."""
    old = db.execute("SELECT n, scan FROM builds WHERE id = ?", (entry["id"],)).fetchone()
    if old is not None:
        if scan:
            return False
        db.execute("DELETE FROM steps WHERE build = ?", (old[0],))
        db.execute("DELETE FROM builds WHERE n = ?", (old[0],))
    project = _project_n(db, entry)
    rows = step_rows(record) if record is not None else []
    summary = entry.get("summary") or {}
    cached, rebuilt, lost = _counts(rows, summary)
    cur = db.execute(
        "INSERT INTO builds (id, created, complete, exit_code, project, scan, summary, cached, rebuilt, lost_s, steps)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (entry["id"], float(entry["created"]), int(entry["complete"]), int(entry["exit_code"]), project,
         int(scan), json.dumps(summary, ensure_ascii=False, separators=(",", ":")), cached, rebuilt, lost,
         int(record is not None)))
    build = cur.lastrowid
    cache: dict = {}
    created = float(entry["created"])
    db.executemany(
        "INSERT INTO steps (build, pos, line, status, duration_s, kind, root, lost_s, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(build, pos, _line_n(db, project, r[0], r[1], cache), r[2], r[3], r[4], r[5], r[6], created)
         for pos, r in enumerate(rows)])
    return True


def set_steps(db: sqlite3.Connection, rid: str, record: Mapping[str, Any]) -> None:
    """Fill in the step rows of a build indexed without them (a migrated index)."""
    got = db.execute("SELECT n, project, summary, steps, created FROM builds WHERE id = ?", (rid,)).fetchone()
    if got is None or got[3]:
        return
    build, project, summary_text, created = got[0], got[1], got[2], got[4]
    rows = step_rows(record)
    summary = json.loads(summary_text) if summary_text else {}
    cached, rebuilt, lost = _counts(rows, summary)
    cache: dict = {}
    db.executemany(
        "INSERT OR REPLACE INTO steps (build, pos, line, status, duration_s, kind, root, lost_s, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(build, pos, _line_n(db, project, r[0], r[1], cache), r[2], r[3], r[4], r[5], r[6], created)
         for pos, r in enumerate(rows)])
    db.execute("UPDATE builds SET steps = 1, cached = ?, rebuilt = ?, lost_s = coalesce(lost_s, ?) WHERE n = ?",
               (cached, rebuilt, lost, build))


def remove(db: sqlite3.Connection, ids: Iterable[str]) -> None:
    for rid in ids:
        got = db.execute("SELECT n FROM builds WHERE id = ?", (rid,)).fetchone()
        if got is not None:
            db.execute("DELETE FROM steps WHERE build = ?", (got[0],))
            db.execute("DELETE FROM builds WHERE n = ?", (got[0],))


def clear(db: sqlite3.Connection) -> None:
    for table in ("steps", "builds", "lines", "projects"):
        db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names


_ENTRY_SQL = ("SELECT b.id, b.created, b.complete, b.exit_code, p.key, p.context, p.dockerfile, p.target, "
              "p.platforms, b.summary, b.scan FROM builds b JOIN projects p ON p.n = b.project")


def _entry(row: tuple, loads: Any = json.loads) -> dict:
    return {
        "id": row[0],
        "created": row[1],
        "complete": bool(row[2]),
        "exit_code": row[3],
        "project_key": row[4],
        "context": row[5],
        "dockerfile": row[6],
        "target": row[7],
        "platforms": loads(row[8]),
        "summary": loads(row[9]),
    }


def entries(db: sqlite3.Connection) -> Iterator[tuple[dict, bool]]:
    """Every indexed build as the store's index entry, and whether a repair indexed it."""
    import orjson  # noqa: PLC0415 - twice json's speed on 10,000 summaries

    loads = orjson.loads
    for row in db.execute(_ENTRY_SQL):
        yield _entry(row, loads), bool(row[10])


def ids(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT id FROM builds ORDER BY created, id")]


def without_steps(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT id FROM builds WHERE steps = 0")]


def count_steps(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM steps").fetchone()[0])


def make_file(path: Path) -> None:
    """Create the database file with the store's mode (0600) before SQLite opens it:
    SQLite gives its WAL and shared-memory files the database file's mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
