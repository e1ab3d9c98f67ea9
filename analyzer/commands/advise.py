"""`cachewhy advise`: recurring root misses over the store's history, with their fixes."""

from __future__ import annotations

import json
import os
import sys
import textwrap

from analyzer.errors import UsageError
from analyzer.model import Record
from analyzer.options import Parser, check_count, limit_option, store_options
from analyzer.report.rows import fmt_time

SUMMARY = """\
advise [--store DIR] [--limit N|all] [--project CONTEXT] [--top N] [--json]
       [--verify [--rule RULE,…] [--keep DIR] [-- BUILDX ARGS]]
      recurring cache misses over the stored builds: how often, time lost,
      the fix; --verify builds the original and the advised Dockerfile side
      by side"""

def parser() -> Parser:
    from analyzer.advice import REWRITABLE  # noqa: PLC0415

    verify_text = textwrap.fill(
        f"With --verify, for each group's advice that cachewhy can apply itself ({', '.join(REWRITABLE)}): "
        "copies the context twice into a temporary folder, one with the original and one with the advised "
        "Dockerfile, builds each cold (--no-cache: nothing is pruned), replays the edit behind the newest miss "
        "(a unique content change of the same files, or two values of the same build arg), builds again, and "
        "shows the steps rebuilt and the times side by side. Advice is shown as verified only when the advised "
        "Dockerfile builds and the engine rebuilt fewer steps (cache-mount: took clearly less time; "
        "apt-update-alone: the install no longer ran on a cached update).", 78, break_on_hyphens=False)
    p = Parser("advise", """\
cachewhy advise [--store DIR] [--limit N|all] [--project CONTEXT]
                       [--top N] [--json]
       cachewhy advise --verify [same options] [--rule RULE,…] [--keep DIR]
                       [-- BUILDX ARGS]""", f"""\
Reads the newest N build records of the store and groups their root misses
by project, Dockerfile line and cause kind: how many builds missed there, the
time those misses cost in total, and the advice for that line (the rules are
in docs/advice/) with the time it would have saved over those builds. Cached
`RUN curl`/`wget` downloads (stale while the remote file changes) come last.

{verify_text}""", """\
  -- BUILDX ARGS     with --verify: passed to every build (e.g. --build-arg,
                     --network, --builder); the original build's arg values
                     are not stored, so builds use the defaults""", parents=[store_options()])
    limit_option(p, DEFAULT_LIMIT, f"read the newest N records (default {DEFAULT_LIMIT}), or all of them")
    p.add_argument("--project", metavar="CONTEXT", help="only the builds of this context directory")
    p.add_argument("--top", metavar="N", type=lambda raw: check_count(raw, "--top"),
                   help="show the N groups that lost most time (default 10; 3 with --verify)")
    p.add_argument("--json", action="store_true", help="the groups (or the verification results) as JSON")
    p.add_argument("--verify", action="store_true",
                   help="build the original and the advised Dockerfile (4 builds per advice)")
    p.add_argument("--rule", metavar="RULE,…", help="with --verify: only these rules")
    p.add_argument("--keep", metavar="DIR",
                   help="with --verify: keep the copies and the rawjson logs of the builds in DIR")
    return p


DEFAULT_LIMIT = 50


def render(groups: list[dict], builds: int, width: int | None = None) -> str:
    from analyzer.report import fit  # noqa: PLC0415

    width = width or fit.default_width()
    if not groups:
        return "\n".join(fit.wrap(f"No root misses in the {builds} build(s) read: nothing to advise.", width)) + "\n"
    out = [*fit.wrap(f"Recurring cache misses over the last {builds} build(s), most time lost first:", width), ""]
    for g in groups:
        name = (g.get("dockerfile") or "Dockerfile").rsplit("/", 1)[-1]
        if name in ("", "-"):
            name = "Dockerfile"
        where = f"{name}:{g['line']}" if g.get("line") else name
        instr = " ".join((g.get("instruction") or "").split())
        if len(instr) > 60:
            instr = instr[:59] + "\u2026"
        head = f"{g.get('context') or '-'}  {where}  {instr}"
        if fit.width_of(head) <= width:
            out.append(head)
        else:  # the context on a line of its own (its end is the project's name), then the step
            out.append(fit.cut_middle(g.get("context") or "-", width))
            out.append(fit.cut(f"  {where}  {instr}", width))
        times = f"{g['count']} build{'s' if g['count'] != 1 else ''}"
        if g["kind"] == "cached":  # advice tied to no miss: a download taken from the cache
            out.extend(fit.wrap(f"cached in {times}: the URL was not fetched again, the file may be stale", width,
                                "    ", "      "))
        else:
            out.extend(fit.wrap(f"{g['kind']}: {times}, {fmt_time(g['time_lost_s'])} lost in total", width,
                                "    ", "      "))
        for a in (g.get("advice") or [])[:1]:
            saved = f" (would have saved {fmt_time(g['saved_s'])} over these builds)" if g.get("saved_s") else ""
            out.extend(fit.wrap(f"fix [{a['rule']}]: {' '.join(a['message'].replace('`', '').split())}{saved}",
                                width, "    ", "      "))
        out.append("")
    return fit.block("\n".join(out), width)


def run(argv: list[str], debug: bool) -> int:
    buildx_args: list[str] = []
    if "--" in argv:  # buildx arguments for the --verify builds
        cut = argv.index("--")
        argv, buildx_args = argv[:cut], argv[cut + 1:]
    opts = parser().parse(argv)
    if opts is None:
        return 0
    if opts.args:
        raise UsageError(f"advise takes no arguments: {' '.join(opts.args)}")
    found = opts.found()
    verifying = bool(found.get("verify"))
    if not verifying and (buildx_args or found.get("rule") or found.get("keep")):
        raise UsageError("--rule, --keep and buildx arguments go with --verify")
    limit = opts.limit
    top = opts.top or (3 if verifying else 10)
    rules = None
    if found.get("rule"):
        from analyzer.advice import RULES  # noqa: PLC0415

        rules = {r.strip() for r in str(found["rule"]).split(",") if r.strip()}
        unknown = sorted(rules - set(RULES))
        if unknown:
            raise UsageError(f"--rule: no such rule {', '.join(unknown)} (rules: {', '.join(RULES)})")

    from analyzer.advice import recurring  # noqa: PLC0415
    from analyzer.store import StoreError, open_store  # noqa: PLC0415

    store = open_store(opts.store)
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
    groups = recurring(records)
    if rules:
        groups = [g for g in groups if any(a["rule"] in rules for a in g.get("advice") or [])]
    groups = groups[:top]
    if verifying:
        return _verify(groups, records, buildx_args, rules, found.get("keep"), bool(found.get("json")), problems)
    if found.get("json"):
        sys.stdout.write(json.dumps(groups, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(groups, len(records)))
    for p in problems:
        sys.stderr.write(f"cachewhy: note: {p}\n")
    return 0


def _verify(groups: list[dict], records: list[Record], buildx_args: list[str], rules: set[str] | None,
            keep: object, as_json: bool, problems: list[str]) -> int:
    from pathlib import Path  # noqa: PLC0415

    from analyzer.verify import render as render_verified  # noqa: PLC0415
    from analyzer.verify import verify  # noqa: PLC0415

    keep_dir = None
    if keep is not None:
        keep_dir = Path(str(keep))
        if keep_dir.exists() and (not keep_dir.is_dir() or any(keep_dir.iterdir())):
            raise UsageError(f"--keep {keep}: give a new or empty folder")
        keep_dir.mkdir(parents=True, exist_ok=True)
    for p in problems:
        sys.stderr.write(f"cachewhy: note: {p}\n")
    results = verify(groups, {r["id"]: r for r in records}, buildx_args, rules=rules, keep=keep_dir)
    if as_json:
        sys.stdout.write(json.dumps([r.as_dict() for r in results], indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_verified(results))
    return 0
