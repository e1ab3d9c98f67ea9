"""A build from a builder's build history (BuildKit's Control API): its
progress from the history record, its provenance from the attestation
BuildKit keeps with it; and how builds are picked in that history."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from analyzer import notes as N
from analyzer.errors import EngineError, InputError, UsageError
from analyzer.notes import Note
from analyzer.sources import BuildInput, from_events, logged_invocation

if TYPE_CHECKING:
    from analyzer.buildkit.history import Fetched
    from analyzer.events import BuildEvents
    from analyzer.explain import Analysis

#: how many earlier builds of the same identity are looked at for the previous one
_MAX_CANDIDATES = 6
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
                 evidence: "Callable[[Analysis], list[Note]] | None" = None) -> BuildInput:
    """The input of a history build, named `history REF` in its report.
    `fallback`: the Dockerfile text that maps its steps to lines when it has no
    provenance (its own, from its error; else the other build's)."""
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
                      record_id=f"history {fetched.record.Ref}", snapshot=snapshot)
    inp.evidence = evidence
    return inp


def eviction_evidence(client: Any) -> "Callable[[Analysis], list[Note]]":
    """For cache-evicted roots: what the builder's cache holds now."""
    def evidence(analysis: "Analysis") -> list[Note]:
        if not any(m.root and m.cause.kind == "cache-evicted" for m in analysis.misses):
            return []
        try:
            records = client.disk_usage()
        except EngineError as exc:
            text = f"cache-evicted: the builder's cache could not be inspected ({exc})"
        else:
            text = eviction_note(records, time.time())
        return [Note(N.EVICTION_EVIDENCE, N.CACHE, text)]
    return evidence


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


@dataclass
class Previous:
    fetched: Any | None
    notes: list[Note] = field(default_factory=list)


def find_previous(client: Any, records: list[Any], index: int, current: Any) -> Previous:
    """The newest earlier build of the same identity whose Dockerfile is most alike."""
    from analyzer.buildkit.history import fetch_build, identity  # noqa: PLC0415

    me = records[index]
    ident = identity(me)
    older = [r for r in records[index + 1:] if identity(r) == ident][:_MAX_CANDIDATES]
    if not older:
        return Previous(None, [Note(N.NO_BASELINE, N.BASELINE,
                                    f"no earlier build of the same Dockerfile ({ident.get('filename', 'Dockerfile')}"
                                    f"{', target ' + ident['target'] if ident.get('target') else ''}) in the "
                                    f"builder's history to compare with")])
    text = dockerfile_of(current.predicate, current)
    best = 0.0
    for rec in older:
        fetched = fetch_build(client, rec)
        if text is None:  # a failed build without its source: the newest one of the same identity
            return Previous(fetched)
        score = _similar(text, dockerfile_of(fetched.predicate, fetched))
        if score >= _MIN_SHARED:
            return Previous(fetched)
        best = max(best, score)
    return Previous(None, [Note(N.NO_BASELINE, N.BASELINE,
                                f"the {len(older)} earlier build(s) of the same Dockerfile name in the builder's "
                                f"history have other Dockerfiles (at most {best:.0%} of lines shared): not "
                                f"compared (give --against a record to compare with)")])


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
