"""`cachewhy history`: the builds in the store, newest first, one line each.

Reads the store's index only (no record file is parsed) and imports nothing
heavy: it must start and list 10,000 records in well under 0.15 s.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from analyzer.buildkit.address import BUILDER_HELP, BUILDER_OPTIONS, parse_target
from analyzer.errors import UsageError
from analyzer.options import take_options, wants_help
from analyzer.report.rows import fmt_time

if TYPE_CHECKING:
    from analyzer.buildkit.address import Target

SUMMARY = """\
history [--store DIR] [--limit N|all] [--json] [--builder NAME]
      the builds in the store, newest first: hit ratio, time lost, top cause"""

USAGE = f"""\
usage: cachewhy history [--store DIR] [--limit N|all] [--json] [--builder NAME]

Lists the builds kept in the store, newest first, one line each: the record
id (for `cachewhy show ID`, `cachewhy diff`, `--against`), when the build ran
(local time), its context, target, exit code, cache hit ratio, the time its
cache misses cost, and its top root cause with the Dockerfile line.

options:
  --store DIR        where build records are kept  [CACHEWHY_STORE]
  --limit N|all      the newest N builds (default 20), or all of them
  --json             the index entries as a JSON array (one entry a line)
{BUILDER_HELP}  -h, --help         this help
"""

_OPTIONS = {"--store": "store", "--limit": "limit", **BUILDER_OPTIONS}
_SWITCHES = {"--json": "json"}

_HOME = os.path.expanduser("~")


def _short_context(context: str, width: int = 32) -> str:
    if context.startswith(_HOME + os.sep) and _HOME not in ("", "/"):
        context = "~" + context[len(_HOME):]
    if len(context) > width:
        context = "\u2026" + context[-(width - 1):]
    return context


def row(entry: dict) -> tuple[str, ...]:
    """(id, when, context, target, exit, hits, lost, top cause) of one index entry."""
    summary = entry.get("summary") or {}
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["created"]))
    target = entry.get("target") or "-"
    if entry.get("platforms"):
        target += " " + ",".join(entry["platforms"])
    code = str(entry["exit_code"]) + ("" if entry.get("complete") else "*")
    if not summary:  # listed from its record file only (no summary in the index)
        return entry["id"], when, _short_context(entry.get("context") or "-"), target, code, "?", "?", "?"
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
            fmt_time(lost, missing="?") if kind or lost else "-", cause)


DEFAULT_LIMIT = 20


def newest(store, limit: int | None) -> tuple[list[dict], int, list[str]]:  # type: ignore[no-untyped-def]
    """The newest `limit` index entries (all for None), how many records the
    store holds, and the problems met.

    Same answer as `Store.list_records`, but only the index lines shown are
    parsed as JSON: the others are sorted by the id and creation time read
    off the line as the store writes it. Anything unusual (a record file the
    index lacks, a line in another layout) takes `list_records`, which also
    repairs the index.
    """
    from analyzer.store import SUFFIX, _entry_from_line  # noqa: PLC0415

    def slow() -> tuple[list[dict], int, list[str]]:
        entries, problems = store.list_records()
        return entries[:limit] if limit is not None else entries, len(entries), problems

    try:
        from analyzer.store import read_regular  # noqa: PLC0415

        data = read_regular(store.index_path)  # a FIFO in its place is never waited on
        names = os.listdir(store.root)
    except FileNotFoundError:
        return slow()  # no store yet, or no index: list_records knows what to say
    except OSError:
        return slow()
    present = {n[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX) and not n.startswith(".")}
    best: dict[str, tuple[float, bytes, bool]] = {}
    for raw in data.split(b"\n"):
        raw = raw.rstrip(b"\r")
        if not raw.startswith(b'{"id":"'):
            if raw.strip():
                try:
                    import json  # noqa: PLC0415

                    if _entry_from_line(json.loads(raw)) is not None:
                        return slow()  # a usable line in another layout
                except (ValueError, RecursionError):
                    pass  # a torn or corrupt line: skipped, as list_records does
            continue
        end = raw.find(b'"', 7)
        at = raw.find(b',"created":', end)
        stop = raw.find(b",", at + 11)
        if end < 0 or at < 0 or stop < 0:
            continue  # torn: list_records skips it too
        try:
            rid = raw[7:end].decode("ascii")
            created = float(raw[at + 11:stop])
        except (UnicodeDecodeError, ValueError):
            continue
        scan = raw.endswith(b',"src":"scan"}')
        prev = best.get(rid)
        if prev is not None and scan and not prev[2]:
            continue  # a repair line never overrides a saved one
        best[rid] = (created, raw, scan)
    if not present <= best.keys():
        return slow()  # record files the index lacks (or odd names): repair and report
    order = sorted(((c, rid) for rid, (c, _, _) in best.items() if rid in present), reverse=True)
    import json  # noqa: PLC0415

    entries = []
    for _, rid in order[:limit] if limit is not None else order:
        try:
            got = _entry_from_line(json.loads(best[rid][1]))
        except (ValueError, RecursionError):
            got = None
        if got is None or got[0]["id"] != rid:
            return slow()  # a damaged line hides an older one: let list_records decide
        entries.append(got[0])
    return entries, len(order), []


_HEAD = ("ID", "WHEN", "CONTEXT", "TARGET", "EXIT", "HITS", "LOST", "TOP CAUSE")
_RIGHT = {4, 5, 6}  # numbers are right-aligned


def render(entries: list[dict]) -> str:
    rows = [_HEAD, *(row(e) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD) - 1)]
    out = []
    for r in rows:
        cells = [r[i].rjust(w) if i in _RIGHT else r[i].ljust(w) for i, w in enumerate(widths)]
        out.append("  ".join(cells) + "  " + r[-1])
    if any(not e.get("complete") for e in entries):
        out.append("* the build was stopped before it ended (Ctrl-C, a signal, a log cut short)")
    return "\n".join(out) + "\n"


def _builder_history(target: "Target", limit: int | None) -> None:
    """The builder's own history records beside the store's (read over gRPC:
    imported only here, so a plain `history` stays fast)."""
    from analyzer.buildkit.connect import Client  # noqa: PLC0415
    from analyzer.commands.explain import list_records  # noqa: PLC0415

    with Client(target) as client:
        records = client.history()
    sys.stdout.write(f"\nbuilder {target.where or target.label}: {len(records)} build(s) in its history "
                     f"(`cachewhy explain REF` explains one)\n")
    list_records(records[:limit] if limit else records)


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    found, rest = take_options(argv, _OPTIONS, switches=_SWITCHES)
    if rest:
        raise UsageError(f"history: unexpected argument {rest[0]!r} (try `cachewhy history --help`)")
    limit: int | None = DEFAULT_LIMIT
    if "limit" in found:
        raw = str(found["limit"])
        if raw == "all":
            limit = None
        else:
            try:
                limit = int(raw)
            except ValueError:
                limit = 0
            if limit < 1:
                raise UsageError(f"--limit takes a number >= 1 or `all`, not {raw!r}")
    target = parse_target(found) if any(found.get(v) for v in BUILDER_OPTIONS.values()) else None

    from analyzer.store import open_store  # noqa: PLC0415

    store = open_store(found.get("store"))  # type: ignore[arg-type]
    entries, total, problems = newest(store, limit)
    for problem in problems:
        sys.stderr.write(f"cachewhy: warning: {problem}\n")
    try:
        if found.get("json"):
            import json  # noqa: PLC0415

            dumps = json.dumps
            body = ",\n".join(dumps(e, ensure_ascii=False, sort_keys=True) for e in entries)
            sys.stdout.write(f"[\n{body}\n]\n" if entries else "[]\n")
        elif not entries:
            sys.stderr.write(f"cachewhy: no builds recorded in {store.root}\n")
        else:
            sys.stdout.write(render(entries))
        sys.stdout.flush()
        if not found.get("json") and total > len(entries):
            sys.stderr.write(f"({len(entries)} of {total} builds; --limit all lists every one)\n")
        if target is not None:
            _builder_history(target, limit)
    except BrokenPipeError:  # `cachewhy history | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere at exit
    return 0
