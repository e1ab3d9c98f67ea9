"""`cachewhy advise`: recurring root misses over the store's history, with their fixes."""

from __future__ import annotations

import json
import os
import sys

from analyzer.errors import UsageError
from analyzer.options import take_options, wants_help

SUMMARY = """\
advise [--store DIR] [--limit N|all] [--project CONTEXT] [--top N] [--json]
      recurring cache misses over the stored builds: how often, time lost, the fix"""

USAGE = """\
usage: cachewhy advise [--store DIR] [--limit N|all] [--project CONTEXT] [--top N] [--json]

Reads the newest N build records of the store and groups their root misses
by project, Dockerfile line and cause kind: how many builds missed there, the
time those misses cost in total, and the advice for that line (the rules are
in docs/advice/) with the time it would have saved over those builds.

options:
  --store DIR        where build records are kept  [CACHEWHY_STORE]
  --limit N|all      read the newest N records (default 50), or all of them
  --project CONTEXT  only the builds of this context directory
  --top N            show the N groups that lost most time (default 10)
  --json             the groups as JSON
  -h, --help         this help

`--verify` (building the original and the advised Dockerfile side by side) is
not implemented yet.
"""

_OPTIONS = {"--store": "store", "--limit": "limit", "--project": "project", "--top": "top"}
_SWITCHES = {"--json": "json", "--verify": "verify"}


def _count(value: object, name: str, default: int | None) -> int | None:
    if value is None:
        return default
    if value == "all" and name == "--limit":
        return None
    try:
        n = int(str(value))
    except ValueError:
        n = -1
    if n < 0:
        raise UsageError(f"{name} takes a number >= 0{' or all' if name == '--limit' else ''}, not {value!r}")
    return n


def _fmt(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:04.1f}s"


def render(groups: list[dict], builds: int) -> str:
    if not groups:
        return f"No root misses in the {builds} build(s) read: nothing to advise.\n"
    out = [f"Recurring cache misses over the last {builds} build(s), most time lost first:", ""]
    for g in groups:
        name = (g.get("dockerfile") or "Dockerfile").rsplit("/", 1)[-1]
        if name in ("", "-"):
            name = "Dockerfile"
        where = f"{name}:{g['line']}" if g.get("line") else name
        instr = " ".join((g.get("instruction") or "").split())
        if len(instr) > 60:
            instr = instr[:59] + "\u2026"
        out.append(f"{g.get('context') or '-'}  {where}  {instr}")
        out.append(f"    {g['kind']}: {g['count']} build{'s' if g['count'] != 1 else ''}, "
                   f"{_fmt(g['time_lost_s'])} lost in total")
        for a in g.get("advice")[:1] if g.get("advice") else []:
            saved = f" (would have saved {_fmt(g['saved_s'])} over these builds)" if g.get("saved_s") else ""
            out.append(f"    fix [{a['rule']}]: {' '.join(a['message'].replace('`', '').split())}{saved}")
        out.append("")
    return "\n".join(out)


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    found, rest = take_options(argv, _OPTIONS, _SWITCHES)
    if rest:
        raise UsageError(f"advise takes no arguments: {' '.join(rest)}")
    if found.get("verify"):
        raise UsageError("advise --verify is not implemented yet")
    limit = _count(found.get("limit"), "--limit", 50)
    top = _count(found.get("top"), "--top", 10)

    from analyzer.advice import recurring  # noqa: PLC0415
    from analyzer.store import StoreError, open_store  # noqa: PLC0415

    store = open_store(found.get("store"))  # type: ignore[arg-type]
    project = found.get("project")
    entries, problems = store.list_records()
    if project is not None:
        want = os.path.realpath(str(project))
        entries = [e for e in entries if e.get("context") in (project, want)]
    if limit is not None:
        entries = entries[:limit]
    records = []
    for e in entries:
        try:
            records.append(store.load(e["id"]))
        except StoreError as exc:
            problems.append(str(exc))
    groups = recurring(records)[:top]
    if found.get("json"):
        sys.stdout.write(json.dumps(groups, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(groups, len(records)))
    for p in problems:
        sys.stderr.write(f"cachewhy: note: {p}\n")
    return 0
