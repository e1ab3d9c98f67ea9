"""`cachewhy explain [REF|^N]`: explain a build cachewhy did not run, from the
builder's own build history (BuildKit's Control API, over gRPC).

The build's progress comes from its history record (the logs blob, or a
Status replay), its steps' LLB ops and Dockerfile lines from the provenance
attestation BuildKit keeps with every successful build. It is compared with
the previous build of the same Dockerfile, target and platform in the
builder's history, or with a stored record (--against). The pipeline is the
one of `cachewhy build` and `cachewhy analyze`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from analyzer.buildkit.address import BUILDER_HELP, BUILDER_OPTIONS, parse_target
from analyzer.errors import EngineError, InputError, UsageError
from analyzer.gates import GATE_HELP, GATE_OPTIONS, GATE_REPEATABLE, Gates
from analyzer.options import take_options, wants_help
from analyzer.outputs import OUTPUT_HELP, OUTPUT_OPTIONS, OUTPUT_SWITCHES, Outputs

if TYPE_CHECKING:
    from analyzer.pipeline import Outcome
    from analyzer.store import Store

SUMMARY = """\
explain [REF|^N|--since 1h] [--builder NAME] [--against REF] [--list]
      explain a build from the builder's own history (any build, not only
      cachewhy's): compared with the previous build of the same Dockerfile"""

USAGE = f"""\
usage: cachewhy explain [OPTIONS] [REF|^N]
       cachewhy explain --since DURATION [--report-json FILE] [--builder NAME]
       cachewhy explain --list [--builder NAME] [--limit N]

Explains a build that ran on a BuildKit builder, whoever ran it (plain
`docker buildx build`, an IDE, compose), from the builder's build history:
its steps and cache statuses, and (for a build that succeeded) its
provenance, which maps each step to its Dockerfile line and LLB op.

REF is a history ref (`docker buildx history ls`; the `builder/node/` prefix
may be left out, a unique prefix is enough) or ^N, the Nth newest build
(^0, the default, is the newest). It is compared with the previous build of
the same Dockerfile name, target, platform and build name in the history
(BuildKit does not keep the context path; of several such builds the newest
whose Dockerfile shares most of its lines is taken), or with --against.
BuildKit keeps no snapshot of the context files. When both builds' contexts
were git checkouts (buildx then records their revisions) and the checkout
here holds both commits, the context at each revision is read from git and
the changed files are named, marked as from git: uncommitted changes are not
seen. Otherwise a step that reads context files is reported as `unknown`,
naming the files it could not compare.

options:
{BUILDER_HELP}  --against REF      compare with this stored record (id, id prefix, ^N,
                     record file) instead of the builder's previous build
  --store DIR        where build records are kept  [CACHEWHY_STORE]
  --repo DIR         the git checkout to read the builds' revisions from
                     (default: the one holding the current folder)
  --since DURATION   explain every build completed in the last DURATION
                     (90s, 30m, 1h, 2d), oldest first, a paragraph each;
                     --report-json writes their reports as one JSON array
  --list             list the builder's history records, newest first
  --limit N          with --list: the newest N (default 20)
{OUTPUT_HELP}{GATE_HELP}  --width N          width of the report           [COLUMNS]
  -h, --help         this help

Exit codes: 0, 4 when a gate trips, 2 for bad arguments or an unknown ref,
3 when the builder cannot be reached or keeps no build history.
"""

_OPTIONS = {**OUTPUT_OPTIONS, **GATE_OPTIONS, **BUILDER_OPTIONS, "--against": "against", "--store": "store",
            "--width": "width", "--limit": "limit", "--repo": "repo",
            "--since": "since"}
_SWITCHES = {**OUTPUT_SWITCHES, "--list": "list"}
#: the share of Dockerfile lines an earlier build must have to be the same project
_MIN_SHARED = 0.5


# --------------------------------------------------------------------------
# picking builds in the history


def select(records: list[Any], ref: str | None) -> int:
    """The index in `records` (newest first) of the build REF names."""
    if not records:
        raise InputError("the builder's history holds no completed build")
    if ref is None or ref in ("^0", "last"):
        return 0
    if ref.startswith("^"):
        try:
            n = int(ref[1:])
        except ValueError:
            raise UsageError(f"{ref!r}: ^N takes a number") from None
        if not 0 <= n < len(records):
            raise InputError(f"{ref}: the builder's history holds {len(records)} completed build(s)")
        return n
    ref = ref.rsplit("/", 1)[-1]
    hits = [i for i, r in enumerate(records) if r.Ref == ref] or \
           [i for i, r in enumerate(records) if r.Ref.startswith(ref)]
    if not hits:
        raise InputError(f"no build {ref!r} in the builder's history (`cachewhy explain --list` lists them)")
    if len(hits) > 1:
        raise InputError(f"{ref!r} names {len(hits)} builds: give more of the ref")
    return hits[0]


def pick(records: list[Any], ref: str | None) -> int:
    """The index in `records` of the build REF names; ^N and the default count
    only builds of projects, not the engine's self-test builds."""
    from analyzer.buildkit.history import is_engine_check  # noqa: PLC0415

    if ref is not None and not ref.startswith("^") and ref != "last":
        return select(records, ref)
    projects = [r for r in records if not is_engine_check(r)]
    if records and not projects:
        raise InputError("the builder's history holds only the engine's self-test builds")
    return records.index(projects[select(projects, ref)])


def say_which(line: str, width: int) -> None:
    """The report's first line: which build it explains (on stderr, with the
    report). What does not fit goes on a second line: ref, name and when first."""
    lines = [line]
    if len(line) > width and ", " in line:
        head, _, what = line.rpartition(", ")
        lines = [head, "  " + what]
    lines = [x if len(x) <= width else x[: width - 1] + "\u2026" for x in lines]
    try:
        sys.stderr.write("\n".join(lines) + "\n")
    except BrokenPipeError:
        pass


def _similar(a: str | None, b: str | None) -> float:
    if a is None or b is None:
        return 0.0
    la = {x.strip() for x in a.splitlines() if x.strip() and not x.lstrip().startswith("#")}
    lb = {x.strip() for x in b.splitlines() if x.strip() and not x.lstrip().startswith("#")}
    return len(la & lb) / max(1, len(la | lb))


def dockerfile_of(predicate: dict | None, fetched: Any = None) -> str | None:
    if predicate is None:
        return fetched.error_dockerfile if fetched is not None else None
    from analyzer.provenance import from_predicate  # noqa: PLC0415

    try:
        return from_predicate(predicate).dockerfile_text
    except InputError:
        return None


def previous_candidates(client: Any, records: list[Any], index: int, current: Any) -> Iterator[tuple[Any, bool]]:
    """The earlier builds of the same project in the whole history, in the order
    they are tried: those of the same platforms first, newest first, then those
    of other platforms (compared, a step's platform is then its cause); each with
    whether its Dockerfile shares enough lines with this one's."""
    from analyzer.buildkit.history import fetch_build, identity, is_engine_check, platforms  # noqa: PLC0415

    me = records[index]
    ident, plats = identity(me), platforms(me)
    older = [r for r in records[index + 1:] if identity(r) == ident and not is_engine_check(r)]
    older.sort(key=lambda r: platforms(r) != plats)  # stable: newest first within each
    text = dockerfile_of(current.predicate, current)
    for rec in older:
        fetched = fetch_build(client, rec)
        yield fetched, text is None or _similar(text, dockerfile_of(fetched.predicate, fetched)) >= _MIN_SHARED


def no_previous_note(records: list[Any], index: int, tried: int, stepless: int) -> str:
    from analyzer.buildkit.history import identity  # noqa: PLC0415

    ident = identity(records[index])
    what = (f"the same Dockerfile ({ident.get('filename', 'Dockerfile')}"
            f"{', target ' + ident['target'] if ident.get('target') else ''})")
    if stepless:
        return (f"no earlier build of {what} with build steps in the builder's history to compare with "
                f"({stepless} stopped before any step, e.g. at a Dockerfile error: never a baseline)")
    if tried:
        return (f"none of the {tried} earlier build(s) of {what} in the builder's history shares at least {_MIN_SHARED:.0%} of its "
                f"Dockerfile's lines: not compared (give --against a record to compare with)")
    return f"no earlier build of {what} in the builder's history to compare with"


# --------------------------------------------------------------------------
# from a fetched build to a record


def events_of(fetched: Any) -> Any:
    from analyzer.events import BuildEvents  # noqa: PLC0415

    events = BuildEvents()
    for status in fetched.statuses:
        events.apply(status)
    if fetched.failed:
        events.add_message(f"ERROR: failed to build: {fetched.record.error.message or 'build failed'}")
    return events


def outcome_of(fetched: Any, *, label: str, previous: dict | None, key_store: "Store | None",
               notes: list[str], fallback_text: str | None = None, snapshot: dict | None = None) -> "Outcome":
    """The record and analysis of a history build, through analyze's log pipeline."""
    from analyzer.commands.analyze import LogSpec, log_outcome  # noqa: PLC0415

    events = events_of(fetched)
    if not events.vertices:
        raise InputError(f"{label}: its history record holds no build steps")
    from analyzer.launch import make_workdir  # noqa: PLC0415 - private, swept if we are killed

    tmpdir = make_workdir()
    meta = None
    try:
        if fetched.predicate is not None:
            meta = os.path.join(tmpdir, "metadata.json")
            Path(meta).write_text(json.dumps({"buildx.build.provenance": fetched.predicate}), encoding="utf-8")
        spec = LogSpec("-", metadata=meta, dockerfile=None, context=None, label=label,
                       fallback_text=fallback_text, snapshot=snapshot)
        outcome = log_outcome(events, spec, previous=previous, key_store=key_store,
                              notes=[*fetched.notes, *notes])
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if fallback_text is not None and fallback_text == fetched.error_dockerfile:
        # its own Dockerfile (from its error), not another build's: say so
        notes_now = outcome.analysis.notes
        for i, n in enumerate(notes_now):
            if n.startswith(label) and "lines of the other build's Dockerfile" in n:
                notes_now[i] = (f"{label}: failed, so it has no provenance: its steps were mapped by name to "
                                f"the lines of its Dockerfile as its error gives it; LLB ops and base images "
                                f"were not compared")
        _rebuild_report(outcome)
    return outcome


def _rebuild_report(outcome: "Outcome") -> None:
    from analyzer.report.model import build_report  # noqa: PLC0415

    ref = outcome.report.get("build", {}).get("ref")
    outcome.report = build_report(outcome.analysis)
    if ref is not None:
        outcome.report["build"]["ref"] = ref
    outcome.record["report"] = outcome.report


def explain_build(client: Any, records: list[Any], index: int, *, store: "Store",
                  against: str | None, repo: str | None = None) -> "Outcome":
    """Fetch, compare and analyse the build at records[index]."""
    from analyzer.buildkit.history import describe, fetch_build  # noqa: PLC0415

    current = fetch_build(client, records[index])
    notes: list[str] = []
    previous_record: dict | None = None
    fallback: str | None = None  # a failed build has no provenance: the lines of the one before
    keys: Store | None = None
    git = None  # both builds' context files, read from git where buildx recorded revisions
    if against:
        from analyzer.commands.analyze import name_build  # noqa: PLC0415

        named = name_build(against, store, "--against")
        if named.record is None:
            raise InputError(f"--against {against}: give a stored record (id, ^N) or a record file")
        previous_record = named.record
        fallback = previous_record.get("dockerfile_text")
        keys = store if named.key_dir is not None else None
    else:
        from analyzer.vcs import contexts_from_git  # noqa: PLC0415

        tried = stepless = 0
        for fetched, alike in previous_candidates(client, records, index, current):
            if not reached_steps(fetched):
                stepless += 1  # a Dockerfile error: it says nothing of the steps
                continue
            tried += 1
            if not alike:
                continue
            git = contexts_from_git(fetched.record.FrontendAttrs, current.record.FrontendAttrs, repo)
            label = f"previous build ({describe(fetched.record)})"
            try:
                prev_outcome = outcome_of(fetched, label=label, previous=None, key_store=None, notes=[],
                                          snapshot=git.before)
            except InputError:
                prev_outcome = None
            if prev_outcome is None or not has_steps(prev_outcome.record):
                stepless += 1  # a Dockerfile error, --check, --call: it says nothing of the steps
                git = None
                continue
            if git.note:
                notes.append(git.note)
            previous_record = prev_outcome.record
            previous_record["id"] = f"history {fetched.record.Ref}"
            fallback = dockerfile_of(fetched.predicate)
            notes += [n for n in prev_outcome.analysis.notes if n.startswith("previous build")]
            if stepless:
                notes.append(f"{stepless} newer build(s) of this Dockerfile stopped before any step (a Dockerfile "
                             f"error, --check, --call): never a baseline, passed over")
            break
        else:
            notes.append(no_previous_note(records, index, tried, stepless))
    outcome = outcome_of(current, label="this build", previous=previous_record, key_store=keys, notes=notes,
                         fallback_text=(current.error_dockerfile or fallback) if current.predicate is None else None,
                         snapshot=git.now if git is not None else None)
    outcome.record["id"] = f"history {current.record.Ref}"
    outcome.report["build"]["ref"] = outcome.record["id"]
    add_cache_evidence(client, current, outcome)
    add_eviction_evidence(client, outcome)
    return outcome


#: how BuildKit's Dockerfile frontend names a step's vertex: `[2/4] RUN …`, `[build 2/4] COPY …`
_STEP_NAME = re.compile(r"\[[^\]]*\b\d+/\d+\] ")


def reached_steps(fetched: Any) -> bool:
    """Did a history build get as far as its Dockerfile's steps? (Not one that
    stopped at a Dockerfile parse error.)"""
    return fetched.predicate is not None or any(
        _STEP_NAME.match(v.get("name") or "") for st in fetched.statuses for v in st.get("vertexes") or [])


def has_steps(record: dict) -> bool:
    """Did the build reach its Dockerfile's steps? (Not when it stopped at a
    Dockerfile error, or only checked or outlined it: --check, --call.)"""
    return any(s.get("keyword") for s in record.get("steps") or [])


def _reads_context(step: dict) -> bool:
    return any(c.get("source") == "context" for c in step.get("context_inputs") or [])


def add_cache_evidence(client: Any, current: Any, outcome: "Outcome") -> None:
    """Roots left `unknown` only because the context files were not compared:
    when the builder's cache still holds the step's previous result, the cache
    was not evicted and only the context content can differ (buildkit/usage.py).
    The analysis is made again with that evidence."""
    from analyzer.buildkit.usage import StepRun, descriptions, held_earlier  # noqa: PLC0415
    from analyzer.explain import explain  # noqa: PLC0415

    previous = outcome.analysis.previous
    open_roots = [m.step for m in outcome.analysis.misses
                  if m.root and m.cause.kind == "unknown" and _reads_context(m.step)
                  and m.step.get("started") is not None and m.step.get("completed") is not None]
    if previous is None or not open_roots or not previous.get("created"):
        return
    try:
        usage = client.disk_usage()
    except EngineError as exc:
        outcome.analysis.notes.append(f"the builder's cache could not be inspected ({exc}): whether a step's "
                                      "previous result is still cached is not known")
        _rebuild_report(outcome)
        return
    names = {v.get("digest"): v.get("name") for st in current.statuses for v in st.get("vertexes") or []}
    prov = None
    if current.predicate is not None:
        from analyzer.provenance import from_predicate  # noqa: PLC0415

        try:
            prov = from_predicate(current.predicate)
        except InputError:
            prov = None
    from analyzer.explain import BUILT, match_steps  # noqa: PLC0415

    prev_steps = previous.get("steps") or []
    pairs = match_steps(outcome.record.get("steps") or [], prev_steps)
    runs = []
    for step in open_roots:
        llb = prov.op_for(step["digest"]) if prov is not None else None
        p = pairs.get(step["id"])
        if p is None or p.get("line") is None:
            continue
        later = [x for x in prev_steps if x.get("stage") == p.get("stage") and (x.get("line") or 0) > p["line"]
                 and x.get("keyword") not in (None, "FROM") and x.get("status") in BUILT]
        runs.append(StepRun(step["digest"], descriptions(names.get(step["digest"]), llb.op if llb else None),
                            float(step["started"]), float(step["completed"]),
                            after=tuple(descriptions(x.get("name"), x.get("op")) for x in later)))
    started = current.record.CreatedAt.seconds + current.record.CreatedAt.nanos / 1e9
    found = held_earlier(usage, runs, started, float(previous["created"]))
    if not found:
        return
    held = {d: (f"the previous result (made {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))}) is "
                f"still in the builder's cache (DiskUsage)") for d, t in found.items()}
    notes = list(outcome.analysis.notes)
    outcome.analysis = explain(outcome.record, previous, held)
    outcome.analysis.notes = notes
    _rebuild_report(outcome)


def add_eviction_evidence(client: Any, outcome: "Outcome") -> None:
    """For cache-evicted roots: what the builder's cache holds now, in a note."""
    if not any(m.root and m.cause.kind == "cache-evicted" for m in outcome.analysis.misses):
        return
    try:
        records = client.disk_usage()
    except EngineError as exc:
        note = f"cache-evicted: the builder's cache could not be inspected ({exc})"
    else:
        note = eviction_note(records, time.time())
    outcome.analysis.notes.append(note)
    _rebuild_report(outcome)


def eviction_note(records: list[Any], now: float) -> str:
    total = sum(r.Size for r in records if r.Size > 0)
    created = [r.CreatedAt.seconds for r in records if r.HasField("CreatedAt") and r.CreatedAt.seconds]
    oldest = f"; its oldest entry is {_age(now - min(created))} old" if created else ""
    return (f"cache-evicted: the builder's cache now holds {len(records)} entries, {total / 1e6:.1f} MB{oldest}: "
            "entries older or beyond its size limit are garbage-collected (or were pruned)")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


# --------------------------------------------------------------------------
# --list


def list_records(records: list[Any], out: Any = None) -> None:
    out = out or sys.stdout
    out.write(f"{'REF':<27} {'WHEN':<19}  {'STATUS':<9} {'STEPS':>5} {'CACHED':>6}  DOCKERFILE / TARGET / NAME\n")
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.CreatedAt.seconds))
        status = "failed" if r.HasField("error") and r.error.code else "completed"
        attrs = r.FrontendAttrs
        what = attrs.get("filename", "Dockerfile")
        if attrs.get("target"):
            what += f" --target {attrs['target']}"
        if attrs.get("build-arg:BUILDKIT_BUILD_NAME"):
            what += f" ({attrs['build-arg:BUILDKIT_BUILD_NAME']})"
        out.write(f"{r.Ref:<27} {when:<19}  {status:<9} {r.numTotalSteps:>5} {r.numCachedSteps:>6}  {what}\n")


# --------------------------------------------------------------------------
# --since


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `30m`, `1h`, `2d` (a bare number is seconds)."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:], None)
    number = raw[:-1] if unit else raw
    try:
        value = float(number)
    except ValueError:
        value = -1
    if not value > 0:
        raise UsageError(f"--since takes a duration such as 90s, 30m, 1h or 2d, not {text!r}")
    return value * (unit or 1)


def explain_recent(client: Any, records: list[Any], after: float, *, store: "Store", outputs: Outputs,
                   gates: Gates, width: int, repo: str | None) -> int:
    """Each build created after `after` (epoch seconds), oldest first: a paragraph each."""
    from analyzer.commands.watch import explained  # noqa: PLC0415
    from analyzer.outputs import render_json, write_file  # noqa: PLC0415

    from analyzer.buildkit.history import is_engine_check  # noqa: PLC0415

    picked = [i for i, r in enumerate(records) if r.CreatedAt.seconds + r.CreatedAt.nanos / 1e9 >= after
              and not is_engine_check(r)]
    if not picked:
        sys.stderr.write(f"cachewhy: no build in the builder's history since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(after))}\n")
    out = sys.stderr if outputs.report_json == "-" else sys.stdout  # stdout may be the JSON's
    reports, code = [], 0
    for index in reversed(picked):  # oldest first, as they ran
        text, outcome = explained(client, records, index, store=store, width=width, repo=repo)
        out.write(text + "\n\n")
        out.flush()
        if outcome is not None:
            reports.append(outcome.report)
            code = max(code, gates.apply(outcome.report, 0))
    if outputs.report_json:
        write_file(outputs.report_json, render_json(reports))  # type: ignore[arg-type]
    return code


# --------------------------------------------------------------------------
# the command


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    from analyzer.commands.analyze import parse_width, positionals  # noqa: PLC0415

    found, rest = take_options(argv, _OPTIONS, switches=_SWITCHES, repeatable=GATE_REPEATABLE)
    refs = positionals(argv, rest, "explain")
    if len(refs) > 1:
        raise UsageError(f"explain takes one REF, not {len(refs)}: {' '.join(refs)}")
    outputs = Outputs.from_options(found)
    gates = Gates.from_options(found)
    width = parse_width(found)
    limit = 20
    if "limit" in found:
        if not found.get("list"):
            raise UsageError("--limit goes with --list")
        try:
            limit = int(found["limit"])  # type: ignore[call-overload]
        except ValueError:
            raise UsageError(f"--limit takes a number, not {found['limit']!r}") from None
    if found.get("list") and refs:
        raise UsageError("--list takes no REF")
    since = parse_duration(str(found["since"])) if "since" in found else None
    if since is not None:
        if refs or found.get("list") or found.get("against"):
            raise UsageError("--since explains every recent build: it takes no REF, --list or --against")
        others = [f.option for f, _ in outputs.requested() if f.attr != "report_json"]
        if others:
            raise UsageError(f"--since gives a paragraph per build and --report-json; not {', '.join(others)}")
    target = parse_target(found)

    from analyzer.buildkit.connect import Client  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415

    store = open_store(found.get("store"))  # type: ignore[arg-type]
    with Client(target) as client:
        records = client.history()
        if found.get("list"):
            list_records(records[:limit])
            return 0
        if since is not None:
            try:
                return explain_recent(client, records, time.time() - since, store=store, outputs=outputs,
                                      gates=gates, width=width, repo=found.get("repo"))  # type: ignore[arg-type]
            except BrokenPipeError:  # `cachewhy explain --since 1d | head`: the reader went away
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        index = pick(records, refs[0] if refs else None)
        outcome = explain_build(client, records, index, store=store, against=found.get("against"),  # type: ignore[arg-type]
                                repo=found.get("repo"))  # type: ignore[arg-type]

    from analyzer.buildkit.history import headline  # noqa: PLC0415
    from analyzer.pipeline import deliver  # noqa: PLC0415

    say_which(f"Build {headline(records[index])}", width)
    deliver(outcome, outputs, None, width)  # a history build is the builder's, not kept in the store
    return gates.apply(outcome.report, 0)
