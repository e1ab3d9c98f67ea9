"""A build from a builder's build history (BuildKit's Control API): its
progress from the history record, its provenance from the attestation
BuildKit keeps with it; and how builds are picked in that history."""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Any, Iterator, cast

from analyzer import notes as N
from analyzer.errors import EngineError, InputError, UsageError
from analyzer.model import Record
from analyzer.notes import Note
from analyzer.sources import BuildInput, Evidence, from_events, logged_invocation

if TYPE_CHECKING:
    from analyzer.buildkit.history import Fetched
    from analyzer.events import BuildEvents
    from analyzer.explain import Analysis
    from analyzer.provenance import Provenance

#: the share of Dockerfile lines an earlier build must have to be the same project
_MIN_SHARED = 0.5


# --------------------------------------------------------------------------
# from a fetched build to the pipeline's input


def events_of(fetched: "Fetched") -> "BuildEvents":
    from analyzer.events import BuildEvents  # noqa: PLC0415

    events = BuildEvents()
    for status in fetched.statuses:
        events.apply(status)
    if fetched.failed:
        events.add_message(f"ERROR: failed to build: {fetched.record.error.message or 'build failed'}")
    return events


def from_history(fetched: "Fetched", *, label: str, fallback: str | None = None, snapshot: dict | None = None,
                 client: Any = None, prefix: str = "history") -> BuildInput:
    """The input of a history build, named `history REF` in its report (a
    bundle's: `bundle REF`, its prefix).
    `fallback`: the Dockerfile text that maps its steps to lines when it has no
    provenance (its own, from its error; else the other build's). `client`: the
    builder, asked about its cache once the causes are known."""
    events = events_of(fetched)
    if not events.vertices:
        raise InputError(f"{label}: its history record holds no build steps")
    prov = None
    notes = [Note(N.READ_PROBLEM, N.HISTORY, n) for n in fetched.notes]
    if fetched.predicate is not None:
        from analyzer.provenance import from_predicate  # noqa: PLC0415

        prov = from_predicate(fetched.predicate)
        if not prov.steps:  # another predicate type, or mode=min: nothing to map steps with
            prov = None
            notes.append(Note(N.PROVENANCE_UNREADABLE, N.PROVENANCE,
                              "the provenance attestation of this build has no build definition cachewhy can "
                              "read (another provenance format, or provenance mode=min)"))
    whose = "error" if fallback is not None and fallback == fetched.error_dockerfile else "other"
    inp = from_events(events, label=label, invocation=logged_invocation(prov, None, None), provenance=prov,
                      given_text=None, given_name=None, dockerfile_path=None,
                      fallback=(fallback, whose) if fallback is not None else None, notes=notes,
                      record_id=f"{prefix} {fetched.record.Ref}", snapshot=snapshot)
    if client is not None:
        inp.evidence = HistoryEvidence(client, fetched, prov)
    return inp


class HistoryEvidence(Evidence):
    """The builder's cache (DiskUsage), asked about once the causes are known."""

    def __init__(self, client: Any, fetched: "Fetched", prov: "Provenance | None") -> None:
        self.client, self.fetched, self.prov = client, fetched, prov

    def still_cached(self, analysis: "Analysis", record: Record) -> tuple[dict[str, str], list[Note]]:
        """Roots left `unknown` only because the context files were not compared:
        when the builder's cache still holds the step's previous result, the cache
        was not evicted and only the context content can differ (buildkit/usage.py)."""
        from analyzer.buildkit.usage import StepRun, descriptions, held_earlier  # noqa: PLC0415
        from analyzer.explain import BUILT, match_steps  # noqa: PLC0415

        previous = analysis.previous
        open_roots = [m.step for m in analysis.misses
                      if m.root and m.cause.kind == "unknown" and _reads_context(m.step)
                      and m.step.get("started") is not None and m.step.get("completed") is not None]
        if previous is None or not open_roots or not previous.get("created"):
            return {}, []
        try:
            usage = self.client.disk_usage()
        except EngineError as exc:
            return {}, [Note(N.CACHE_UNKNOWN, N.CACHE,
                             f"the builder's cache could not be inspected ({exc}): whether a step's "
                             "previous result is still cached is not known")]
        current = self.fetched
        names = {v.get("digest"): v.get("name") for st in current.statuses for v in st.get("vertexes") or []}
        prev_steps = previous.get("steps") or []
        pairs = match_steps(cast(list, record.get("steps") or []), prev_steps)
        runs = []
        for step in open_roots:
            llb = self.prov.op_for(step["digest"]) if self.prov is not None else None
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
        return {d: (f"the previous result (made {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))}) is "
                    f"still in the builder's cache (DiskUsage)") for d, t in found.items()}, []

    def after(self, analysis: "Analysis") -> list[Note]:
        """For cache-evicted roots: what the builder's cache holds now."""
        if not any(m.root and m.cause.kind == "cache-evicted" for m in analysis.misses):
            return []
        try:
            records = self.client.disk_usage()
        except EngineError as exc:
            text = f"cache-evicted: the builder's cache could not be inspected ({exc})"
        else:
            text = eviction_note(records, time.time())
        return [Note(N.EVICTION_EVIDENCE, N.CACHE, text)]


def _reads_context(step: dict) -> bool:
    return any(c.get("source") == "context" for c in step.get("context_inputs") or [])


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


def _identity(client: Any, record: Any) -> dict[str, str]:
    """A build's project as the builder knows it; a bundle adds the context and
    Dockerfile paths buildx kept (its localState)."""
    from analyzer.buildkit.history import identity  # noqa: PLC0415

    project = getattr(client, "project", None)
    return {**identity(record), **(project(record) if project is not None else {})}


def previous_candidates(client: Any, records: list[Any], index: int, current: Any,
                        pool: set[str] | None = None) -> Iterator[tuple[Any, bool]]:
    """The earlier builds of the same project in the whole history, in the order
    they are tried: those of the same platforms first, newest first, then those
    of other platforms (compared, a step's platform is then its cause); each with
    whether its Dockerfile shares enough lines with this one's. `pool`: the refs
    to compare with instead (--against OTHER.dockerbuild), whatever their project."""
    from analyzer.buildkit.history import fetch_build, is_engine_check, platforms  # noqa: PLC0415

    me = records[index]
    plats = platforms(me)
    if pool is not None:
        older = [r for r in records if r.Ref in pool and r.Ref != me.Ref]
    else:
        ident = _identity(client, me)
        older = [r for r in records[index + 1:] if _identity(client, r) == ident and not is_engine_check(r)]
    older.sort(key=lambda r: platforms(r) != plats)  # stable: newest first within each
    text = dockerfile_of(current.predicate, current)
    for rec in older:
        fetched = fetch_build(client, rec)
        yield fetched, text is None or _similar(text, dockerfile_of(fetched.predicate, fetched)) >= _MIN_SHARED


def no_previous_note(records: list[Any], index: int, tried: int, stepless: int,
                     where: str = "in the builder's history") -> Note:
    from analyzer.buildkit.history import identity  # noqa: PLC0415

    ident = identity(records[index])
    what = (f"the same Dockerfile ({ident.get('filename', 'Dockerfile')}"
            f"{', target ' + ident['target'] if ident.get('target') else ''})")
    if stepless:
        text = (f"no earlier build of {what} with build steps {where} to compare with "
                f"({stepless} stopped before any step, e.g. at a Dockerfile error: never a baseline)")
    elif tried:
        text = (f"none of the {tried} earlier build(s) of {what} {where} shares at least "
                f"{_MIN_SHARED:.0%} of its Dockerfile's lines: not compared (give --against a record to compare with)")
    else:
        text = f"no earlier build of {what} {where} to compare with"
    return Note(N.NO_BASELINE, N.BASELINE, text)


#: how BuildKit's Dockerfile frontend names a step's vertex: `[2/4] RUN …`, `[build 2/4] COPY …`
_STEP_NAME = re.compile(r"\[[^\]]*\b\d+/\d+\] ")


def reached_steps(fetched: Any) -> bool:
    """Did a history build get as far as its Dockerfile's steps? (Not one that
    stopped at a Dockerfile parse error.)"""
    return fetched.predicate is not None or any(
        _STEP_NAME.match(v.get("name") or "") for st in fetched.statuses for v in st.get("vertexes") or [])


def has_steps(record: Record) -> bool:
    """Did the build reach its Dockerfile's steps? (Not when it stopped at a
    Dockerfile error, or only checked or outlined it: --check, --call.)"""
    return any(s.get("keyword") for s in record.get("steps") or [])


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
