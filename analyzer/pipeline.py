"""From a finished build's events to its record, analysis and report.

One code path for every way cachewhy meets a build: a build it ran, a log it
is handed, a stored record. The terminal and file outputs all read the report.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from analyzer.collector import paused

if TYPE_CHECKING:
    from analyzer.buildx import BuildArgs, RunResult
    from analyzer.events import BuildEvents
    from analyzer.explain import Analysis
    from analyzer.outputs import Outputs
    from analyzer.store import Store


#: Bytes of log output kept per step while a build runs: enough for the last 20
#: lines graph.py keeps of a failed step (the terminal shows 8). events.py's
#: default, 64 KiB per vertex, is 128 MiB for 2,000 steps (docs/reliability.md §6).
STEP_LOG_TAIL = 8 * 1024


@dataclass
class Outcome:
    record: dict
    analysis: "Analysis"
    report: dict
    log_tails: dict[str, str] = field(default_factory=dict)  # step id -> last output lines (terminal only)
    # hash -> value of the build's own values, for --show-values (record.known_values); never stored
    known_values: Callable[[], dict[str, str]] | None = None
    store_fault: str | None = None  # the note saying why the record cannot be kept, when it cannot


@paused
def analyse(*, events: "BuildEvents", args: "BuildArgs", result: "RunResult", dockerfile_text: str | None,
            dockerfile_path: Path | None, metadata_path: Path | None, snapshot: dict | None,
            previous: dict | None, store: "Store | None", notes: list[str],
            named_snapshots: dict | None = None) -> Outcome:
    from analyzer import dockerfile as dfmod  # noqa: PLC0415
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.graph import build_graph  # noqa: PLC0415
    from analyzer.provenance import load_metadata  # noqa: PLC0415
    from analyzer.record import known_values, make_hasher, make_record, step_ids, store_key_noted  # noqa: PLC0415
    from analyzer.report.model import build_report  # noqa: PLC0415
    from analyzer.store import new_id  # noqa: PLC0415

    prov = None
    if metadata_path is not None:
        metadata = load_metadata(metadata_path)
        prov = metadata.primary()
        notes = [*notes, *metadata.problems]
    if prov is None:
        notes = [*notes, "no provenance: steps were matched by name, and ops, base images and remote "
                         "sources could not be compared"]
    if dockerfile_text is None and prov is not None:
        dockerfile_text = prov.dockerfile_text
    df = dfmod.parse(dockerfile_text) if dockerfile_text is not None else None
    graph = build_graph(events, df, prov.vertex_lines() if prov is not None else None)
    notes = [*notes, *_graph_notes(graph)]
    lost = _cut_short(graph, events, result)
    if lost is not None:  # one clear note instead of the generic one
        notes = [n for n in notes if not n.startswith("the events stop before the build did")] + [lost[1]]
    store_fault = None
    key = b"cachewhy"
    if store is not None:
        try:
            key, key_notes = store_key_noted(store.root)
            notes = [*notes, *key_notes]
        except OSError as exc:
            # the store cannot be written: the report still comes, the record is not kept;
            # a key of this run only, so no hash here can be matched with another run's
            import secrets  # noqa: PLC0415

            key = secrets.token_bytes(32)
            store_fault = _store_fault(store, exc)
            notes = [*notes, store_fault]
    hasher = make_hasher(key)
    record = make_record(
        record_id=new_id(), args=args, result=result, graph=graph, prov=prov, dockerfile_path=dockerfile_path,
        dockerfile_text=dockerfile_text, snapshot=snapshot, named_snapshots=named_snapshots,
        messages=events.messages, hasher=hasher,
        # stopped by the user, buildx killed by a signal, or the builder gone mid-build:
        # what was seen is kept, marked incomplete
        complete=result.interrupted is None and result.returncode < 128 and lost is None,
    )
    if lost is not None and not record.get("interrupted"):
        record["interrupted"] = lost[0]
    analysis = _explain_against(record, previous, notes)
    analysis.notes[:0] = notes
    report = build_report(analysis)
    record["report"] = report  # `cachewhy show` replays it
    ids = step_ids(graph.steps)
    tails = {ids[d]: s.log_tail for d, s in graph.steps.items() if s.log_tail}
    return Outcome(record, analysis, report, tails,
                   known_values=lambda: known_values(args, prov, hasher, dockerfile_text), store_fault=store_fault)


def _explain_against(record: dict, previous: dict | None, notes: list[str]) -> "Analysis":
    """explain(record, previous); a previous record that cannot be compared (it came from
    anywhere: another store, a CI artifact, a shared cache) is skipped with a note naming it."""
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.store import analysis_problem  # noqa: PLC0415

    if previous is None:
        return explain(record, None)
    problem = analysis_problem(previous)
    if problem is None:
        try:
            return explain(record, previous)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            problem = f"it could not be compared ({exc!r})"
    notes.append(f"the previous record {str(previous.get('id'))[:40]} was skipped: {problem}; this build is "
                 "explained without a previous build")
    return explain(record, None)


def _store_fault(store: "Store", exc: BaseException) -> str:
    """The one note of a store that cannot keep this build's record."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"this build's record is not kept in the record store {store.root}: {why}"


# buildx's words when its connection to BuildKit drops (the daemon stopped or crashed)
_LOST = ("code = Unavailable", "error reading from server", "connection reset", "connection refused",
         "transport is closing", "Cannot connect to the Docker daemon")


def _cut_short(graph, events, result) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
    """(record's `interrupted`, note) when buildx failed while steps were still running:
    the builder went away mid-build (a stopped or crashed daemon, a dropped connection)."""
    if result.returncode == 0 or result.returncode >= 128 or result.interrupted:
        return None
    running = [s for s in graph.steps.values() if s.unfinished]
    if not running:
        return None
    error = " ".join((events.error_message() or "").split()).removeprefix("ERROR: ")
    said = f" (buildx: {error[:200]})" if error else ""
    n = f"{len(running)} step{'s were' if len(running) != 1 else ' was'} still running"
    if any(w in error for w in _LOST):
        return ("builder connection lost",
                f"the connection to the builder was lost mid-build{said}: {n}; the daemon or BuildKit went "
                "away. This build's record is kept, marked incomplete (never a baseline unless asked for)")
    return ("stopped mid-build",
            f"buildx stopped mid-build{said}: {n}. This build's record is kept, marked incomplete "
            "(never a baseline unless asked for)")


def _graph_notes(graph) -> list[str]:  # type: ignore[no-untyped-def]
    """What is odd about the events themselves, said once; a cycle is no build at all."""
    from analyzer.errors import InputError  # noqa: PLC0415

    from analyzer.graph import find_cycle  # noqa: PLC0415

    cycle = find_cycle(graph.dag)
    if cycle:
        names = " \u2192 ".join(graph.steps[a].name[:40] for a, _ in cycle)
        raise InputError(f"the vertices' inputs form a cycle ({names}): this is not a BuildKit build graph")
    out = []
    running = [s for s in graph.steps.values() if s.unfinished]
    if running:
        out.append(f"the events stop before the build did: {len(running)} "
                   f"{'vertices were' if len(running) != 1 else 'vertex was'} still running")
    if graph.missing_inputs:
        out.append(f"{len(graph.missing_inputs)} input{'s' if len(graph.missing_inputs) != 1 else ''} named "
                   "by a vertex never appeared in the events; those edges are left out")
    return out


def deliver(outcome: Outcome, outputs: "Outputs", store: "Store | None", width: int,
            terminal: bool = True, stream: "TextIO | None" = None) -> None:
    """Keep what must not be lost first (the record, the report files), then show it.

    Under GitHub Actions the Markdown report is appended to $GITHUB_STEP_SUMMARY and
    each root cause becomes a workflow annotation. An output that cannot be written
    stops neither the others nor the terminal report: the errors are raised together
    at the end, as one CachewhyError (the caller prints it; the build's exit code stays).
    """
    from analyzer.errors import CachewhyError  # noqa: PLC0415
    from analyzer.outputs import github_hooks, stdout_carries_data, write_outputs  # noqa: PLC0415

    if store is not None and outcome.store_fault is None:
        try:
            _save(outcome, store)
        except (CachewhyError, OSError) as exc:  # a full disk, a read-only store: one note, the report comes
            note = _store_fault(store, exc)
            outcome.store_fault = note
            outcome.report.setdefault("notes", []).append(note)
    errors: list[str] = []
    report = shown_report(outcome.report, outcome.known_values, outputs)  # after the record is saved
    try:
        try:
            write_outputs(report, outputs)
        except CachewhyError as exc:
            errors.append(str(exc))
        argv = (outcome.record.get("invocation") or {}).get("argv") or []
        errors += github_hooks(report, stdout_busy=stdout_carries_data(argv, outputs))
    finally:
        if terminal:
            show(report, outcome.log_tails, width, stream)
    if errors:
        raise CachewhyError("; ".join(errors))


def _save(outcome: Outcome, store: "Store") -> None:
    top = outcome.analysis.roots[0] if outcome.analysis.roots else None
    summary = {
        "hit_ratio": outcome.report["summary"]["hit_ratio"],
        "time_lost_s": outcome.report["summary"]["time_lost_s"],
        "top_cause": top.cause.kind if top else None,
        "top_line": top.step.get("line") if top else None,
        **_predicted(outcome.record),
    }
    if not any(s.get("keyword") for s in outcome.record.get("steps") or []):
        # it stopped at a Dockerfile error, or ran --check or --call: such a
        # record is never a baseline (store.find_previous)
        summary["no_steps"] = True
    store.save(outcome.record, summary=summary)


def _predicted(record: dict) -> dict:
    """The score of `build --predict` in the index line: [statuses right, statuses scored]."""
    sc = record.get("prediction")
    if not isinstance(sc, dict):
        return {}
    return {"predicted": [sc.get("steps_right"), sc.get("steps")]}


def shown_report(report: dict, known: "Callable[[], dict[str, str]] | None", outputs: "Outputs") -> dict:
    """The report as this run shows it: with --show-values, the hashes of values
    this run knows in clear are shown with their values (report/reveal.py)."""
    if not getattr(outputs, "show_values", False):
        return report
    values = known() if known is not None else {}
    if not values:
        try:
            sys.stderr.write("cachewhy: --show-values: no values to show: values are never stored, only the "
                             "build being run or analysed has them\n")
        except BrokenPipeError:
            pass
        return report
    from analyzer.report.reveal import reveal  # noqa: PLC0415

    return reveal(report, values)


def show(report: dict, log_tails: dict[str, str] | None, width: int, stream: "TextIO | None" = None) -> None:
    """The terminal report on `stream`: stderr for a build (stdout is buildx's), else
    what outputs.report_stream chose."""
    from analyzer.report import text  # noqa: PLC0415

    out = stream or sys.stderr
    colour = out.isatty() and "NO_COLOR" not in os.environ
    try:
        from analyzer import console  # noqa: PLC0415

        # trusted: our colours pass; the renderer has neutralised the build's text
        console.write(out, text.render(report, log_tails or {}, width=width, colour=colour) + "\n",
                      trusted=colour)
        out.flush()
    except BrokenPipeError:
        pass  # the reader went away (`| head`); the record and report are written


def publish(report: dict, outputs: "Outputs", width: int,
            known: "Callable[[], dict[str, str]] | None" = None) -> None:
    """Show a report that no build record keeps (a prediction): the report files, the
    GitHub hooks (step summary, annotations), then the terminal. Errors as deliver's."""
    from analyzer.errors import CachewhyError  # noqa: PLC0415
    from analyzer.outputs import github_hooks, write_outputs  # noqa: PLC0415

    errors: list[str] = []
    report = shown_report(report, known, outputs)
    try:
        try:
            write_outputs(report, outputs)
        except CachewhyError as exc:
            errors.append(str(exc))
        errors += github_hooks(report, stdout_busy=False)
    finally:
        show(report, None, width)
    if errors:
        raise CachewhyError("; ".join(errors))
