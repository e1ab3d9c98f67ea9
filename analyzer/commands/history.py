"""`cachewhy history`: the builds in the store, newest first, one line each.

Reads the store's index only (no record file is parsed) and imports nothing
heavy: it must start and list 10,000 records in well under 0.3 s.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from analyzer.buildkit.address import BUILDER_OPTIONS, parse_target
from analyzer.options import Parser, builder_options, limit_option, store_options, width_options
from analyzer.report.rows import fmt_time

if TYPE_CHECKING:
    from analyzer.buildkit.address import Target

SUMMARY = """\
history [--store DIR] [--limit N|all] [--json] [--builder NAME]
      the builds in the store, newest first: hit ratio, time lost, top cause"""

def parser() -> Parser:
    p = Parser("history", "cachewhy history [--store DIR] [--limit N|all] [--json] [--width N]\n"
                          "                        [--builder NAME]",
               """\
Lists the builds kept in the store, newest first, one line each: the record
id (for `cachewhy show ID`, `cachewhy diff`, `--against`), when the build ran
(local time), its context, target, exit code, cache hit ratio, the time its
cache misses cost, and its top root cause with the Dockerfile line. A build
whose line would be wider than --width gets two: the id, time and numbers,
then its context, target and top cause.""",
               parents=[store_options(), width_options(), builder_options()])
    limit_option(p, DEFAULT_LIMIT, f"the newest N builds (default {DEFAULT_LIMIT}), or all of them")
    p.add_argument("--json", action="store_true", help="the index entries as a JSON array (one entry a line)")
    return p


_HOME = os.path.expanduser("~")


def _short_context(context: str, width: int = 32) -> str:
    if context.startswith(_HOME + os.sep) and _HOME not in ("", "/"):
        context = "~" + context[len(_HOME):]
    if len(context) > width:
        context = "\u2026" + context[-(width - 1):]
    return context


def row(entry: dict) -> tuple[str, ...]:
    """(id, when, context, target, exit, hits, predicted, lost, top cause) of one index entry."""
    summary = entry.get("summary") or {}
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["created"]))
    target = entry.get("target") or "-"
    if entry.get("platforms"):
        target += " " + ",".join(entry["platforms"])
    code = str(entry["exit_code"]) + ("" if entry.get("complete") else "*")
    if not summary:  # listed from its record file only (no summary in the index)
        return entry["id"], when, _short_context(entry.get("context") or "-"), target, code, "?", "?", "?", "?"
    ratio = summary.get("hit_ratio")
    hits = f"{ratio:.0%}" if isinstance(ratio, (int, float)) else "-"
    lost = summary.get("time_lost_s")
    kind = summary.get("top_cause")
    if kind:
        name = (entry.get("dockerfile") or "Dockerfile").rsplit("/", 1)[-1]
        if name in ("", "-"):
            name = "Dockerfile"
        line = summary.get("top_line")
        cause = f"{kind} at {name}:{line}" if line else str(kind)
    else:
        cause = "-"
    return (entry["id"], when, _short_context(entry.get("context") or "-"), target, code, hits,
            _predicted(summary), fmt_time(lost, missing="?") if kind or lost else "-", cause)


def _predicted(summary: dict) -> str:
    """`build --predict`'s score: step statuses predicted right / scored ("-": not predicted)."""
    got = summary.get("predicted")
    if (isinstance(got, list) and len(got) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in got)
            and got[1] > 0):
        return f"{got[0]}/{got[1]}"
    return "-"


DEFAULT_LIMIT = 20


def newest(store, limit: int | None) -> tuple[list[dict], int, list[str]]:  # type: ignore[no-untyped-def]
    """The newest `limit` index entries (all for None), how many records the
    store holds, and the problems met: one query of the store's SQLite index
    and one `os.listdir` (`Store.list_records`, which also repairs the index)."""
    entries, problems = store.list_records()
    return entries[:limit] if limit is not None else entries, len(entries), problems


_HEAD = ("ID", "WHEN", "CONTEXT", "TARGET", "EXIT", "HITS", "PRED", "LOST", "TOP CAUSE")
_RIGHT = {4, 5, 6, 7}  # numbers are right-aligned


_PRED = _HEAD.index("PRED")


def render(entries: list[dict], width: int | None = None) -> str:
    """One line a build; when that is wider than `width`, two: the id, time and
    numbers, then (indented) the context, target and top cause."""
    from analyzer.report import fit  # noqa: PLC0415

    rows = [_HEAD, *(row(e) for e in entries)]
    if all(r[_PRED] in ("-", "?") for r in rows[1:]):  # no build was predicted: no column for it
        rows = [r[:_PRED] + r[_PRED + 1:] for r in rows]
    right = _RIGHT if len(rows[0]) == len(_HEAD) else {4, 5, 6}
    out = _table(rows, right)
    if width is not None and any(fit.width_of(x) > width for x in out):
        # the numbers on the first line, what the build was and why on the second
        first = [r[:2] + r[4:-1] for r in rows]
        if any(fit.width_of(x) > width for x in _table([(*x, "") for x in first], set())):
            first = [(r[0], r[1][5:16] if r is not first[0] else r[1], *r[2:]) for r in first]  # MM-DD HH:MM
        out = []
        for top, r in zip(_table([(*x, "") for x in first], {i - 2 for i in right}), rows):
            out.append(top.rstrip())
            if r is not rows[0]:
                out.extend(fit.wrap(" \u00b7 ".join(x for x in (r[2], r[3], r[-1]) if x and x != "-"), width,
                                    "  ", "    "))
        out.insert(1, "  CONTEXT \u00b7 TARGET \u00b7 TOP CAUSE")
    if any(not e.get("complete") for e in entries):
        out.append("* the build was stopped before it ended (Ctrl-C, a signal, a log cut short)")
    return (fit.block("\n".join(out), width) if width is not None else "\n".join(out)) + "\n"


def _table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        cells = [r[i].rjust(w) if i in right else r[i].ljust(w) for i, w in enumerate(widths)]
        out.append("  ".join(cells) + "  " + r[-1])
    return out


def _builder_history(target: "Target", limit: int | None) -> None:
    """The builder's own history records beside the store's (read over gRPC:
    imported only here, so a plain `history` stays fast)."""
    from analyzer.buildkit.connect import Client  # noqa: PLC0415
    from analyzer.sources.history import list_records  # noqa: PLC0415

    with Client(target) as client:
        records = client.history()
    sys.stdout.write(f"\nbuilder {target.where or target.label}: {len(records)} build(s) in its history "
                     f"(`cachewhy explain REF` explains one)\n")
    list_records(records[:limit] if limit else records)


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv, most=0)
    if opts is None:
        return 0
    limit = opts.limit
    found = opts.found()
    target = parse_target(found) if any(found.get(v) for v in BUILDER_OPTIONS.values()) else None
    width = opts.report_width

    from analyzer.store import open_store  # noqa: PLC0415

    store = open_store(opts.store)
    entries, total, problems = newest(store, limit)
    for problem in problems:
        sys.stderr.write(f"cachewhy: warning: {problem}\n")
    try:
        if opts.json:
            import json  # noqa: PLC0415

            dumps = json.dumps
            body = ",\n".join(dumps(e, ensure_ascii=False, sort_keys=True) for e in entries)
            sys.stdout.write(f"[\n{body}\n]\n" if entries else "[]\n")
        elif not entries:
            sys.stderr.write(f"cachewhy: no builds recorded in {store.root}\n")
        else:
            sys.stdout.write(render(entries, width))
        sys.stdout.flush()
        if not opts.json and total > len(entries):
            sys.stderr.write(f"({len(entries)} of {total} builds; --limit all lists every one)\n")
        if target is not None:
            _builder_history(target, limit)
    except BrokenPipeError:  # `cachewhy history | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere at exit
    return 0
