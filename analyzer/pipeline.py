"""From one build's input to its record, analysis and report.

Every source of a build (a run, a log, a history record: analyzer/sources/)
enters here as one BuildInput, with the Baseline it is compared with. The
outputs (analyzer/deliver.py) all read the report made here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, cast

from analyzer import notes as N
from analyzer.collector import paused
from analyzer.model import Record, Report
from analyzer.notes import Note

if TYPE_CHECKING:
    from analyzer.explain import Analysis
    from analyzer.graph import BuildGraph
    from analyzer.predict import Forecast
    from analyzer.sources import Baseline, BuildInput, PredictionInput
    from analyzer.store import Store


#: Bytes of log output kept per step while a build runs: enough for the last 20
#: lines graph.py keeps of a failed step (the terminal shows 8). events.py's
#: default, 64 KiB per vertex, is 128 MiB for 2,000 steps (docs/reliability.md §7).
STEP_LOG_TAIL = 8 * 1024


@dataclass
class Outcome:
    record: Record
    analysis: "Analysis"
    report: Report
    log_tails: dict[str, str] = field(default_factory=dict)  # step id -> last output lines (terminal only)
    # hash -> value of the build's own values, for --show-values (record.known_values); never stored
    known_values: Callable[[], dict[str, str]] | None = None
    store_fault: str | None = None  # the note saying why the record cannot be kept, when it cannot


@dataclass
class Made:
    """A build's record and graph, before any comparison."""

    record: Record
    graph: "BuildGraph | None"  # None: a forecast, which has no events
    notes: list[Note]  # the input's and baseline's notes, then what the graph and provenance told
    known_values: Callable[[], dict[str, str]]
    store_fault: str | None = None
    forecast: "Forecast | None" = None  # a prediction's: its cause engine decided the statuses


@paused
def analyse(input: "BuildInput | PredictionInput", baseline: "Baseline") -> Outcome:  # noqa: A002 - the pipeline's one input
    """The record, analysis and report of one build compared with its baseline,
    each made once: every note (the source's, the baseline's, the graph's and
    the evidence the source adds once the causes are known) is in before the
    report is made. A build from events gets its record from them; a prediction
    gets its forecast, and is then explained and reported as any build."""
    inp = input
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.record import step_ids  # noqa: PLC0415
    from analyzer.report.model import build_report  # noqa: PLC0415

    made = make_forecast(inp, baseline) if inp.kind == "prediction" else make_record(inp, baseline)  # type: ignore[arg-type]
    previous = baseline.record
    if made.forecast is not None:  # the cause engine that decided the statuses explains them
        analysis = made.forecast.explainer.run()
    else:
        try:  # a record from anywhere (store, --baseline, a shared cache): checked, and one note if bad
            problem = _cannot_compare(previous)
            analysis = explain(made.record, previous) if problem is None else None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            problem, analysis = f"it could not be compared ({exc!r})", None
        if analysis is None:
            made.notes.append(Note(N.RECORD_SKIPPED, N.BASELINE,
                                   f"the previous record {str(previous.get('id') if previous else None)[:40]} was "
                                   f"skipped: {problem}; this build is explained without a previous build"))
            previous = None
            analysis = explain(made.record, None)
    analysis.notes[:0] = made.notes
    if inp.evidence is not None:
        held, notes = inp.evidence.still_cached(analysis, made.record)
        if held:  # steps whose cache entry cannot have been evicted: their causes again
            kept = analysis.notes
            analysis = explain(made.record, previous, held)
            analysis.notes = kept
        analysis.notes += notes
        analysis.notes += inp.evidence.after(analysis)
    if made.forecast is not None:
        from analyzer.predict import add_prediction, notes_after  # noqa: PLC0415

        analysis.notes += notes_after(made.forecast, inp.now)  # type: ignore[union-attr]
        report = build_report(analysis)
        add_prediction(report, made.forecast, cast(dict, previous), inp.now)  # type: ignore[union-attr]
        return Outcome(made.record, analysis, report, known_values=made.known_values)
    report = build_report(analysis)
    made.record["report"] = report  # `cachewhy show` replays it
    graph = made.graph
    assert graph is not None
    ids = step_ids(graph.steps)
    tails = {ids[d]: s.log_tail for d, s in graph.steps.items() if s.log_tail}
    return Outcome(made.record, analysis, report, tails, known_values=made.known_values,
                   store_fault=made.store_fault)


@paused
def make_forecast(inp: "PredictionInput", baseline: "Baseline") -> Made:
    """A prediction's record: the baseline's steps carried over to the build as it
    would start now, each with the status BuildKit will give it (predict.forecast)."""
    from analyzer.predict import forecast  # noqa: PLC0415

    fc = forecast(cast(dict, baseline.record), inp.now, inp.hasher)  # read as the JSON it is
    from analyzer.predict import cached_by_older  # noqa: PLC0415

    cached_by_older(fc, inp.older, inp.now, inp.hasher)  # reads older builds only for steps that rebuild
    if inp.other_target:  # the build will have no previous build of its target: explained so
        from analyzer.explain import _Explainer  # noqa: PLC0415

        fc.explainer = _Explainer(cast(dict, fc.record), None)
    notes = [*(N.as_note(n, N.BASELINE) for n in baseline.notes), *inp.notes,
             *(N.as_note(n, N.SOURCE) for n in fc.notes)]
    return Made(fc.record, None, notes, known_values=inp.known_values, forecast=fc)  # type: ignore[arg-type]


def _cannot_compare(previous: Record | None) -> str | None:
    """Why `previous` cannot be compared (fields the analysis reads of the wrong shape), or None."""
    from analyzer.store import analysis_problem  # noqa: PLC0415

    return None if previous is None else analysis_problem(previous)


def store_fault(store: "Store", exc: BaseException) -> str:
    """The one note of a store that cannot keep this build's record."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"this build's record is not kept in the record store {store.root}: {why}"


@paused
def make_record(inp: "BuildInput", baseline: "Baseline") -> Made:
    """The build's graph and record (its values hashed with the baseline's key)."""
    from analyzer import dockerfile as dfmod  # noqa: PLC0415
    from analyzer.graph import build_graph  # noqa: PLC0415
    from analyzer.record import build_record, known_values, make_hasher, store_key_noted  # noqa: PLC0415
    from analyzer.store import new_id  # noqa: PLC0415

    prov = inp.provenance
    # what the builder's history said of a record was read before the baseline was chosen
    notes = [*(n for n in inp.notes if n.about == N.HISTORY), *(N.as_note(n, N.BASELINE) for n in baseline.notes),
             *(n for n in inp.notes if n.about != N.HISTORY)]
    if prov is None:
        notes.append(Note(N.NO_PROVENANCE, N.PROVENANCE,
                          "no provenance: steps were matched by name, and ops, base images and remote "
                          "sources could not be compared"))
    df = dfmod.parse(inp.dockerfile_text) if inp.dockerfile_text is not None else None
    graph = build_graph(inp.events, df, prov.vertex_lines() if prov is not None else None)
    notes += _graph_notes(graph)
    lost = _cut_short(graph, inp)
    if lost is not None:  # one clear note instead of the generic one
        notes = [n for n in notes if n.kind != N.EVENTS_STOP] + [lost[1]]
    fault = None
    key = b"cachewhy"
    if baseline.keys is not None:
        try:
            key, key_notes = store_key_noted(baseline.keys.root)
            notes += [Note(N.HASH_KEY_REPLACED, N.COMPARISON, n) for n in key_notes]
        except OSError as exc:
            # the store cannot be written: the report still comes, the record is not kept;
            # a key of this run only, so no hash here can be matched with another run's
            import secrets  # noqa: PLC0415

            key = secrets.token_bytes(32)
            fault = store_fault(baseline.keys, exc)
            notes.append(Note(N.STORE_FAULT, N.RECORD, fault))
    hasher = make_hasher(key)
    record = build_record(
        inp, record_id=inp.record_id or new_id(), graph=graph, hasher=hasher,
        # stopped by the user, buildx killed by a signal, or the builder gone mid-build:
        # what was seen is kept, marked incomplete
        complete=inp.interrupted is None and inp.exit_code < 128 and lost is None,
    )
    if lost is not None and not record.get("interrupted"):
        record["interrupted"] = lost[0]
    return Made(record, graph, notes,
                known_values=lambda: known_values(inp.invocation.build_args, prov, hasher, inp.dockerfile_text),
                store_fault=fault)


# buildx's words when its connection to BuildKit drops (the daemon stopped or crashed)
_LOST = ("code = Unavailable", "error reading from server", "connection reset", "connection refused",
         "transport is closing", "Cannot connect to the Docker daemon")


def _cut_short(graph: "BuildGraph", inp: "BuildInput") -> tuple[str, Note] | None:
    """(record's `interrupted`, note) when buildx failed while steps were still running:
    the builder went away mid-build (a stopped or crashed daemon, a dropped connection)."""
    if inp.exit_code == 0 or inp.exit_code >= 128 or inp.interrupted:
        return None
    running = [s for s in graph.steps.values() if s.unfinished]
    if not running:
        return None
    error = " ".join((inp.events.error_message() or "").split()).removeprefix("ERROR: ")
    said = f" (buildx: {error[:200]})" if error else ""
    n = f"{len(running)} step{'s were' if len(running) != 1 else ' was'} still running"
    if any(w in error for w in _LOST):
        return ("builder connection lost", Note(N.BUILDER_LOST, N.EVENTS,
                f"the connection to the builder was lost mid-build{said}: {n}; the daemon or BuildKit went "
                "away. This build's record is kept, marked incomplete (never a baseline unless asked for)"))
    return ("stopped mid-build", Note(N.BUILDER_LOST, N.EVENTS,
            f"buildx stopped mid-build{said}: {n}. This build's record is kept, marked incomplete "
            "(never a baseline unless asked for)"))


def _graph_notes(graph: "BuildGraph") -> list[Note]:
    """What is odd about the events themselves, said once; a cycle is no build at all."""
    from analyzer.events import MAX_LINE_BYTES  # noqa: PLC0415
    from analyzer.errors import InputError  # noqa: PLC0415
    from analyzer.graph import find_cycle  # noqa: PLC0415

    cycle = find_cycle(graph.dag)
    if cycle:
        names = " \u2192 ".join(graph.steps[a].name[:40] for a, _ in cycle)
        raise InputError(f"the vertices' inputs form a cycle ({names}): this is not a BuildKit build graph")
    out = []
    running = [s for s in graph.steps.values() if s.unfinished]
    if running:
        out.append(Note(N.EVENTS_STOP, N.EVENTS, f"the events stop before the build did: {len(running)} "
                        f"{'vertices were' if len(running) != 1 else 'vertex was'} still running"))
    if graph.missing_inputs:
        out.append(Note(N.MISSING_INPUTS, N.EVENTS,
                        f"{len(graph.missing_inputs)} input{'s' if len(graph.missing_inputs) != 1 else ''} named "
                        "by a vertex never appeared in the events; those edges are left out"))
    if graph.long_lines:
        out.append(Note(N.LONG_LINES, N.EVENTS,
                        f"{graph.long_lines} line{'s' if graph.long_lines != 1 else ''} of the log longer than "
                        f"{MAX_LINE_BYTES // (1024 * 1024)} MiB {'were' if graph.long_lines != 1 else 'was'} "
                        "dropped unread (memory stays bounded)"))
    if graph.bad_times:
        out.append(Note(N.BAD_TIMES, N.EVENTS,
                        f"{graph.bad_times} timestamp{'s' if graph.bad_times != 1 else ''} in the events "
                        f"{'are' if graph.bad_times != 1 else 'is'} impossible (unreadable, before 2000 or in the "
                        "future) and not used for times"))
    return out
