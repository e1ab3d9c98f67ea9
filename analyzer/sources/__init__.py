"""One input for the analysis, whatever the build's source.

A build reaches cachewhy in one of three ways: a run of `cachewhy build`
(sources/run.py), a rawjson log with an optional metadata file
(sources/log.py), a record of a builder's build history (sources/history.py).
Each adapter reads its source once and hands the pipeline (analyzer/pipeline.py)
one `BuildInput`; the pipeline never knows where a build came from.

A build that has not run yet is one more source (sources/prediction.py): its
`PredictionInput` holds what the build would start from now, and the pipeline
makes its record by forecasting instead of from events, then explains and
reports it as it does every other build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Mapping

from analyzer import notes as N
from analyzer.model import Project, Record
from analyzer.notes import Note

if TYPE_CHECKING:
    from analyzer.events import BuildEvents
    from analyzer.explain import Analysis
    from analyzer.predict import Now
    from analyzer.provenance import Provenance
    from analyzer.store import Store

Hasher = Callable[[str], str]


class BuildArgValues:
    """A build's build-arg values (NAME -> value, None: unset). The values are
    never handed out in clear: only hashed (for the record), as a scrubber that
    takes them out of free text, or as the hash -> value table that
    `--show-values` reads at report time."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str | None] | None = None) -> None:
        self._values: dict[str, str | None] = dict(values or {})

    def __repr__(self) -> str:  # names only: a repr ends up in tracebacks and logs
        return f"BuildArgValues({sorted(self._values)})"

    def names(self) -> list[str]:
        return list(self._values)

    def _with(self, prov_args: Mapping[str, str] | None) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
        """The command line's values, then the provenance's `build-arg:X` where not given."""
        extra = [(k[len("build-arg:"):], v) for k, v in (prov_args or {}).items() if k.startswith("build-arg:")]
        return self._values, extra

    def hashed(self, hasher: Hasher, prov_args: Mapping[str, str] | None = None) -> dict[str, str | None]:
        """NAME -> keyed hash, as the record keeps them."""
        own, extra = self._with(prov_args)
        out = {name: (hasher(value) if value is not None else None) for name, value in own.items()}
        for name, value in extra:
            out.setdefault(name, hasher(value))
        return out

    def scrubber(self, prov_args: Mapping[str, str] | None = None,
                 learned: Mapping[str, str] | None = None) -> Callable[[str], str]:
        """Replaces the values in free text by `<NAME>` (record.make_scrubber): the
        command line's, the provenance's, then those `learned` elsewhere."""
        from analyzer.record import make_scrubber  # noqa: PLC0415

        own, extra = self._with(prov_args)
        values = {name: value for name, value in own.items() if value}
        for name, value in [*extra, *(learned or {}).items()]:
            values.setdefault(name, value)
        return make_scrubber(values)  # type: ignore[arg-type]

    def reveal_table(self, hasher: Hasher) -> dict[str, str]:
        """hash -> value of the values given on the command line (--show-values only)."""
        return {hasher(v): v for v in self._values.values() if v is not None}


@dataclass
class Invocation:
    """How the build was asked for, as far as its source tells."""

    argv: list[str] = field(default_factory=list)  # buildx's arguments, build-arg values redacted
    context: str | None = None  # as given: a folder, `-`, a URL
    target: str | None = None
    platforms: list[str] = field(default_factory=list)
    build_args: BuildArgValues = field(default_factory=BuildArgValues)
    no_cache: bool = False
    no_cache_filter: list[str] = field(default_factory=list)
    cache_from: list[str] = field(default_factory=list)
    cache_to: list[str] = field(default_factory=list)
    builder: str | None = None

    @property
    def context_dir(self) -> Path | None:
        """The local context folder, or None for `-`, URLs and git contexts."""
        from analyzer.buildx import local_context  # noqa: PLC0415 - buildx's reading of a context

        return local_context(self.context)


@dataclass
class BuildInput:
    """What the analysis needs of one build, from whichever source."""

    kind: ClassVar[str] = "build"  # how the pipeline makes its record: from its events
    label: str  # how notes name it: "this build", "previous build (log x)", "A"
    events: "BuildEvents"
    invocation: Invocation
    started: float
    ended: float
    exit_code: int
    record_id: str | None = None  # None: a new store id; else how the report names it ("log x", "history REF")
    provenance: "Provenance | None" = None
    dockerfile_text: str | None = None
    dockerfile_path: Path | None = None
    interrupted: str | None = None  # "SIGINT", "log ended mid-build (…)": what was seen is kept, marked incomplete
    snapshot: dict | None = None  # the context files (snapshot.Snapshot.to_json())
    named_snapshots: dict | None = None  # name -> snapshot of each named build context (--build-context NAME=DIR)
    notes: list[Note] = field(default_factory=list)  # what reading the source found
    # what only the source can tell once the causes are known (the builder's cache)
    evidence: "Evidence | None" = None

    @property
    def project(self) -> Project:
        """What makes two builds comparable: context, Dockerfile, target, platforms."""
        from analyzer.record import project  # noqa: PLC0415

        inv = self.invocation
        return project(inv.context, inv.context_dir, self.dockerfile_path, inv.target, inv.platforms)

    def source_notes(self) -> list[Note]:
        """What reading it said about this build's own input (how its lines were mapped, a cut log)."""
        return [n for n in self.notes if n.about == N.SOURCE]


@dataclass
class PredictionInput:
    """A build these buildx arguments describe, as it would start now: its
    Dockerfile, context snapshot, base image digests and the builder's cache
    records (predict.Now). The pipeline forecasts its record from them."""

    kind: ClassVar[str] = "prediction"  # how the pipeline makes its record: by forecasting
    label: str
    now: "Now"
    hasher: Hasher  # the store's keyed hash: values compare with the baseline's without being kept
    notes: list[Note] = field(default_factory=list)
    evidence: "Evidence | None" = None
    #: the baseline is the project's build of another target (this one was never built):
    #: it tells the cache statuses; the misses are explained as having no previous build
    other_target: bool = False
    #: older builds of the project (newest first, read as iterated): a step the same as in one
    #: of them is cached while the builder has its record, whatever the last build did
    older: Iterable[dict] = ()

    def known_values(self) -> dict[str, str]:
        """hash -> value of the build args given (--show-values only)."""
        return {self.hasher(v): v for v in self.now.args.build_args.values() if v is not None}


class Evidence:
    """What a source can tell only once the causes are known, asked by the
    pipeline before it makes the report (a history build: the builder's cache)."""

    def still_cached(self, analysis: "Analysis", record: Record) -> tuple[dict[str, str], list[Note]]:
        """Vertex digest -> why the step's previous result is still cached (the
        causes are then found again with it), and notes."""
        return {}, []

    def after(self, analysis: "Analysis") -> list[Note]:
        """Notes on the final causes."""
        return []


@dataclass
class Baseline:
    """The build compared with, and what choosing it found."""

    record: Record | None = None
    notes: list[Note] = field(default_factory=list)
    # the store whose hash key this build's values are hashed with (None: a fixed key)
    keys: "Store | None" = None


def lines_of(label: str, provenance: "Provenance | None", given_text: str | None, given_name: str | None,
             fallback: "tuple[str, str] | None" = None) -> tuple[str | None, list[Note]]:
    """The Dockerfile text that maps a logged build's steps to lines, and what to say of it.

    What was built wins over what the user points at: the provenance's line
    ranges are of its own text. Without either, `fallback` (text, whose: "other"
    for another build's Dockerfile, "error" for the one a failed build's error
    carries) maps steps by name."""
    notes: list[Note] = []
    text = given_text
    if provenance is not None and provenance.dockerfile_text is not None:
        if text is not None and text != provenance.dockerfile_text:
            notes.append(Note(N.DOCKERFILE_DIFFERS, N.SOURCE,
                              f"{label}: the Dockerfile in its provenance differs from {given_name}; "
                              "the provenance's is used"))
        text = provenance.dockerfile_text
    if text is None and provenance is None and fallback is not None:
        text, whose = fallback
        if whose == "error":
            notes.append(Note(N.LINES_FROM_ERROR, N.SOURCE,
                              f"{label}: failed, so it has no provenance: its steps were mapped by name to "
                              f"the lines of its Dockerfile as its error gives it; LLB ops and base images "
                              f"were not compared"))
        else:
            notes.append(Note(N.LINES_BORROWED, N.SOURCE,
                              f"{label}: no provenance and no Dockerfile given: its steps were mapped to the "
                              "lines of the other build's Dockerfile"))
    if text is None and provenance is None:
        notes.append(Note(N.NO_LINES, N.SOURCE,
                          f"{label}: no provenance and no Dockerfile: steps have no line numbers "
                          "(give --metadata-file or --dockerfile)"))
    return text, notes


def timing(events: "BuildEvents") -> tuple[float, float, str | None]:
    """Start and end of a build from its vertices, and whether its events stop mid-build."""
    import time  # noqa: PLC0415

    from analyzer.events import _parse_ns, possible_ns  # noqa: PLC0415

    def parse_time(s: str | None) -> float | None:  # an impossible time (year 9999) is none
        ns = possible_ns(_parse_ns(s))
        return None if ns is None else ns / 1e9

    starts, ends, running = [], [], 0
    for v in events.vertices.values():
        t = parse_time(v.first_started or v.started)
        if t is not None:
            starts.append(t)
        e = parse_time(v.completed)
        if e is not None:
            ends.append(e)
        elif v.started and not v.error:
            running += 1
    started = min(starts) if starts else time.time()
    ended = max([started, *ends, *starts])
    cut = None
    if running and events.error_message() is None:
        cut = f"log ended mid-build ({running} step(s) still running)"
    return started, ended, cut


def from_events(events: "BuildEvents", *, label: str, invocation: Invocation, provenance: "Provenance | None",
                given_text: str | None, given_name: str | None, dockerfile_path: Path | None,
                fallback: "tuple[str, str] | None", notes: list[Note], record_id: str | None,
                snapshot: dict | None) -> BuildInput:
    """A build known only from its events (a log, a history record): its timing and
    exit code are read from them (1 when they hold buildx's `ERROR:` line)."""
    text, line_notes = lines_of(label, provenance, given_text, given_name, fallback)
    started, ended, cut = timing(events)
    if cut:
        line_notes.append(Note(N.CUT_SHORT, N.SOURCE, f"{label}: the {cut}: it was cut short"))
    return BuildInput(
        label=label, events=events, invocation=invocation, started=started, ended=ended,
        exit_code=1 if events.error_message() else 0, record_id=record_id, provenance=provenance,
        dockerfile_text=text, dockerfile_path=dockerfile_path, interrupted=cut, snapshot=snapshot,
        notes=[*line_notes, *notes],
    )


def logged_invocation(provenance: "Provenance | None", dockerfile: str | None, context: str | None) -> Invocation:
    """The invocation of a build known from its events: target, platforms and
    --no-cache from its provenance's frontend attributes, the Dockerfile and
    context the user names. `argv` is what the record shows: the buildx
    arguments that would ask for the same build."""
    args = provenance.args if provenance is not None else {}
    argv: list[str] = ["-f", dockerfile] if dockerfile else []
    target = args.get("target") or None
    platform = args.get("platform") or ""
    no_cache, no_cache_filter = False, []
    if target:
        argv += ["--target", target]
    if platform:
        argv += ["--platform", platform]
    if "no-cache" in args:  # BuildKit's attribute: "" for all, else the stage names
        if args["no-cache"]:
            argv += ["--no-cache-filter", args["no-cache"]]
            no_cache_filter = [v for v in args["no-cache"].split(",") if v]
        else:
            argv.append("--no-cache")
            no_cache = True
    argv.append(context or "-")
    return Invocation(argv=argv, context=context or "-", target=target,
                      platforms=[p.strip() for p in platform.split(",") if p.strip()],
                      no_cache=no_cache, no_cache_filter=no_cache_filter)
