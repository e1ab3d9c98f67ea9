"""From a finished build's events to its record, analysis and report.

One code path for every way cachewhy meets a build: a build it ran, a log it
is handed, a stored record. The terminal and file outputs all read the report.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analyzer.buildx import BuildArgs, RunResult
    from analyzer.events import BuildEvents
    from analyzer.explain import Analysis
    from analyzer.outputs import Outputs
    from analyzer.store import Store


@dataclass
class Outcome:
    record: dict
    analysis: "Analysis"
    report: dict
    log_tails: dict[str, str] = field(default_factory=dict)  # step id -> last output lines (terminal only)


def analyse(*, events: "BuildEvents", args: "BuildArgs", result: "RunResult", dockerfile_text: str | None,
            dockerfile_path: Path | None, metadata_path: Path | None, snapshot: dict | None,
            previous: dict | None, store: "Store | None", notes: list[str]) -> Outcome:
    from analyzer import dockerfile as dfmod  # noqa: PLC0415
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.graph import build_graph  # noqa: PLC0415
    from analyzer.provenance import load_metadata  # noqa: PLC0415
    from analyzer.record import make_hasher, make_record, step_id, store_key  # noqa: PLC0415
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
    hasher = make_hasher(store_key(store.root) if store is not None else b"cachewhy")
    record = make_record(
        record_id=new_id(), args=args, result=result, graph=graph, prov=prov, dockerfile_path=dockerfile_path,
        dockerfile_text=dockerfile_text, snapshot=snapshot, messages=events.messages, hasher=hasher,
        # stopped by the user, or buildx killed by a signal: what was seen is kept, marked incomplete
        complete=result.interrupted is None and result.returncode < 128,
    )
    analysis = explain(record, previous)
    analysis.notes[:0] = notes
    report = build_report(analysis)
    record["report"] = report  # `cachewhy show` replays it
    tails = {step_id(s.digest): s.log_tail for s in graph.steps.values() if s.log_tail}
    return Outcome(record, analysis, report, tails)


def _graph_notes(graph) -> list[str]:  # type: ignore[no-untyped-def]
    """What is odd about the events themselves, said once; a cycle is no build at all."""
    import networkx as nx  # noqa: PLC0415

    from analyzer.errors import InputError  # noqa: PLC0415

    try:
        cycle = nx.find_cycle(graph.dag)
    except nx.NetworkXNoCycle:
        cycle = None
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


def deliver(outcome: Outcome, outputs: "Outputs", store: "Store | None", width: int) -> None:
    """Keep what must not be lost first (the record, the report files), then show it.

    Under GitHub Actions the Markdown report is appended to $GITHUB_STEP_SUMMARY and
    each root cause becomes a workflow annotation. An output that cannot be written
    stops neither the others nor the terminal report: the errors are raised together
    at the end, as one CachewhyError (the caller prints it; the build's exit code stays).
    """
    from analyzer.errors import CachewhyError  # noqa: PLC0415
    from analyzer.outputs import github_hooks, stdout_carries_data, write_outputs  # noqa: PLC0415

    if store is not None:
        top = outcome.analysis.roots[0] if outcome.analysis.roots else None
        store.save(outcome.record, summary={
            "hit_ratio": outcome.report["summary"]["hit_ratio"],
            "time_lost_s": outcome.report["summary"]["time_lost_s"],
            "top_cause": top.cause.kind if top else None,
            "top_line": top.step.get("line") if top else None,
        })
    errors: list[str] = []
    try:
        try:
            write_outputs(outcome.report, outputs)
        except CachewhyError as exc:
            errors.append(str(exc))
        argv = (outcome.record.get("invocation") or {}).get("argv") or []
        errors += github_hooks(outcome.report, stdout_busy=stdout_carries_data(argv, outputs))
    finally:
        show(outcome.report, outcome.log_tails, width)
    if errors:
        raise CachewhyError("; ".join(errors))


def show(report: dict, log_tails: dict[str, str] | None, width: int) -> None:
    from analyzer.report import text  # noqa: PLC0415

    colour = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    try:
        sys.stderr.write(text.render(report, log_tails or {}, width=width, colour=colour) + "\n")
        sys.stderr.flush()
    except BrokenPipeError:
        pass  # the reader went away (`| head`); the record and report are written
