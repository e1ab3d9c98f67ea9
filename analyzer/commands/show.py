"""`cachewhy show REF`: the report of a stored build, again."""

from __future__ import annotations

import sys

from analyzer import notes as N
from analyzer.errors import UsageError
from analyzer.gates import Gates
from analyzer.model import Record, Report
from analyzer.notes import Note
from analyzer.options import Parser, gate_options, output_options, store_options, width_options
from analyzer.outputs import Outputs

SUMMARY = """\
show [OPTIONS] [REF]
      the report of a stored build again (default: the newest)"""

def parser() -> Parser:
    return Parser("show", "cachewhy show [OPTIONS] [REF]", """\
Shows the report of a build kept in the store, as it was shown when the build
ended, and writes it with the output options. REF is a record id, a unique
id prefix, ^N (the Nth newest build of the project in the current directory,
^0 the newest; store:^N counts every build of the store), `last`, or a record
file; the default is the newest record. A record kept by an older cachewhy
without its report is explained again against the build before it of the
same project in the store.""", "Exit codes: 0, 4 when a gate trips, 2 for bad arguments or an unknown REF.",
                  parents=[store_options(), output_options(), gate_options(), width_options()])


def heading(record: Record) -> str:
    """One line naming the build shown: id, local time, project."""
    import time  # noqa: PLC0415

    project = record.get("project") or {}
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("created") or 0))
    parts = [f"Build {record.get('id')}", when, str(project.get("context") or "-")]
    if project.get("dockerfile") not in (None, "-") and not str(project["dockerfile"]).endswith(
            f"{project.get('context')}/Dockerfile"):
        parts.append(f"-f {project['dockerfile']}")
    if project.get("target"):
        parts.append(f"target {project['target']}")
    if project.get("platforms"):
        parts.append(",".join(project["platforms"]))
    if not record.get("complete", True):
        parts.append(f"interrupted ({record.get('interrupted') or 'incomplete'})")
    return " \u00b7 ".join(parts)


def report_of(record: Record, store) -> tuple[Report, object]:  # type: ignore[no-untyped-def]
    """The record's stored report, or one made again; and the analysis (None when stored)."""
    report = record.get("report")
    if isinstance(report, dict) and str(report.get("schema", "")).startswith("cachewhy.report/"):
        return report, None
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.report.model import build_report  # noqa: PLC0415
    from analyzer.store import StoreError  # noqa: PLC0415

    previous = None
    note = ""
    try:
        previous, skipped = store.load_previous(record["project"], before_id=record["id"])
        if skipped:
            note = f" ({'; '.join(skipped)})"
    except StoreError as exc:
        note = f" ({exc})"
    analysis = explain(record, previous)
    if previous is not None:
        analysis.notes.insert(0, Note(N.NO_REPORT, N.RECORD,
                                      f"this record was kept without its report: explained again against "
                                      f"{previous['id']}, the build before it of the same project in the store"))
    else:
        analysis.notes.insert(0, Note(N.NO_REPORT, N.RECORD,
                                      "this record was kept without its report, and the store holds no earlier "
                                      f"build of its project to explain it against{note}: causes are not known"))
    return build_report(analysis), analysis


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv)
    if opts is None:
        return 0
    refs = opts.args
    if len(refs) > 1:
        raise UsageError(f"show takes one REF, not {len(refs)}: {' '.join(refs)}")
    outputs = Outputs.from_options(opts.found())
    gates = Gates.from_options(opts.found())
    width = opts.report_width

    from analyzer.explain import Analysis  # noqa: PLC0415
    from analyzer.deliver import deliver  # noqa: PLC0415
    from analyzer.pipeline import Outcome  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415

    store = open_store(opts.store)
    record = store.load(refs[0] if refs else "last")
    report, analysis = report_of(record, store)
    from analyzer.outputs import report_stream  # noqa: PLC0415

    out = report_stream(outputs)
    try:
        from analyzer.report.fit import join_wrapped  # noqa: PLC0415

        out.write("\n".join(join_wrapped(heading(record).split(" \u00b7 "), " \u00b7 ", width, "  ")) + "\n")
    except BrokenPipeError:
        pass
    outcome = Outcome(record, analysis or Analysis(record, None, []), report)  # type: ignore[arg-type]
    deliver(outcome, outputs, None, width, stream=out)
    return gates.apply(report, 0)
