"""Where an outcome goes: the store first (what must not be lost), then the
report files, the CI hooks, and the terminal."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Callable, TextIO

from analyzer.model import Record, Report

if TYPE_CHECKING:
    from analyzer.outputs import Outputs
    from analyzer.pipeline import Outcome
    from analyzer.store import Store


def deliver(outcome: "Outcome", outputs: "Outputs", store: "Store | None", width: int,
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
            from analyzer.pipeline import store_fault  # noqa: PLC0415

            note = store_fault(store, exc)
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


def _save(outcome: "Outcome", store: "Store") -> None:
    """The record and its index line (the summary `history` and `trends` read)."""
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


def _predicted(record: Record) -> dict:
    """The score of `build --predict` in the index line: [statuses right, statuses scored]."""
    sc = record.get("prediction")
    if not isinstance(sc, dict):
        return {}
    return {"predicted": [sc.get("steps_right"), sc.get("steps")]}


def shown_report(report: Report, known: "Callable[[], dict[str, str]] | None", outputs: "Outputs") -> Report:
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


def show(report: Report, log_tails: dict[str, str] | None, width: int, stream: "TextIO | None" = None) -> None:
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


def publish(report: Report, outputs: "Outputs", width: int,
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
