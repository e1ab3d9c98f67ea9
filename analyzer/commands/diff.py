"""`cachewhy diff A B`: two builds compared step by step."""

from __future__ import annotations

import os
import sys
from typing import cast

from analyzer import notes as N
from analyzer.errors import InputError, UsageError
from analyzer.gates import Gates
from analyzer.notes import Note
from analyzer.options import Parser, gate_options, output_options, store_options, width_options
from analyzer.outputs import Outputs

SUMMARY = """\
diff [OPTIONS] A B
      compare two builds (records or rawjson logs) step by step: why B
      rebuilt what it rebuilt, compared with A"""

def parser() -> Parser:
    p = Parser("diff", "cachewhy diff [OPTIONS] A B", """\
Compares build B with build A: the same "Why:" answer as `cachewhy build`
gives (B's cache misses and their causes, as if A were the build before it),
then every Dockerfile step with its status in A and in B and what changed.
A and B are each a record (id, id prefix, ^N, `last`, or a record file) or a
rawjson log (`-` for stdin, for one of them):

  cachewhy diff ^1 ^0
  cachewhy diff --metadata-a a.json --metadata-b b.json a.log b.log

The report the output options write is B's, compared with A.""", """\
The comparison goes to stdout; to stderr when an output option sends a
report there (`--report-json -`). Notes and errors go to stderr.
Exit codes: 0, 4 when a gate trips (on B's report), 2 for bad arguments or an
unusable record or log.""", parents=[store_options(), output_options(), gate_options(), width_options()])
    p.add_argument("--metadata-a", metavar="FILE", help="buildx's --metadata-file of log A (provenance)")
    p.add_argument("--metadata-b", metavar="FILE", help="the same for log B")
    p.add_argument("--dockerfile-a", metavar="FILE",
                   help="the Dockerfile of log A, to map steps to lines without provenance")
    p.add_argument("--dockerfile-b", metavar="FILE", help="the same for log B")
    return p


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv)
    if opts is None:
        return 0
    found = opts.found()
    refs = opts.args
    if len(refs) != 2:
        raise UsageError(f"diff takes two builds A and B, not {len(refs)}" + (f": {' '.join(refs)}" if refs else ""))
    if refs.count("-") > 1:
        raise UsageError("diff: only one of A and B can be read from stdin")
    outputs = Outputs.from_options(found)
    gates = Gates.from_options(found)
    width = opts.report_width
    for opt in ("metadata_a", "metadata_b", "dockerfile_a", "dockerfile_b"):
        value = found.get(opt)
        if value is not None and not os.path.isfile(str(value)):
            raise InputError(f"--{opt.replace('_', '-')} {value}: no such file")

    from analyzer.deliver import shown_report  # noqa: PLC0415
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.pipeline import make_record  # noqa: PLC0415
    from analyzer.previous import key_store, name_build  # noqa: PLC0415
    from analyzer.report.diff import render, step_rows  # noqa: PLC0415
    from analyzer.report.model import build_report  # noqa: PLC0415
    from analyzer.sources import Baseline  # noqa: PLC0415
    from analyzer.sources.log import from_log, log_ref, read_metadata  # noqa: PLC0415
    from analyzer.store import open_store, project_key  # noqa: PLC0415

    store = open_store(opts.store)
    named = [name_build(ref, store, label) for ref, label in zip(refs, ("A", "B"))]
    for n, side in zip(named, ("a", "b")):
        if not n.is_log and (found.get(f"metadata_{side}") or found.get(f"dockerfile_{side}")):
            raise UsageError(f"--metadata-{side}/--dockerfile-{side} are for a log; {side.upper()} is a record")
    keys = key_store(named, store, writing=False)
    notes: list[Note] = []
    records: list[dict] = []  # A and B, read as the JSON they are
    known: dict[str, str] = {}  # hash -> value of the logs' own values, for --show-values
    for n, side in zip(named, ("a", "b")):
        if n.events is not None:
            inp = from_log(n.events, label=side.upper(),
                           metadata=read_metadata(found.get(f"metadata_{side}")),  # type: ignore[arg-type]
                           dockerfile=found.get(f"dockerfile_{side}"), record_id=log_ref(n.ref))  # type: ignore[arg-type]
            made = make_record(inp, Baseline(keys=keys))  # a record only: B's report is made below, against A
            rec = made.record
            if outputs.show_values:
                known.update(made.known_values())
            if not rec.get("has_provenance"):
                notes.append(Note(N.PREVIOUS_NO_PROVENANCE, N.COMPARISON,
                                  f"{side.upper()} ({n.ref}): no provenance: steps were matched by name; ops, "
                                  "base images and remote sources could not be compared"))
            notes += inp.source_notes()
            records.append(cast(dict, rec))
        else:
            records.append(cast(dict, n.record))  # not a log: a stored record or a record file
    a, b = records

    try:
        same = project_key(a["project"]) == project_key(b["project"])
    except Exception:  # noqa: BLE001 - a damaged project only loses this note
        same = True
    if not same and not (named[0].is_log or named[1].is_log):
        notes.append(Note(N.DIFFERENT_PROJECTS, N.COMPARISON,
                          "A and B are builds of different projects (context, Dockerfile, target or platforms "
                          "differ): their steps were matched by stage and instruction"))

    analysis = explain(b, a)
    analysis.notes[:0] = notes
    report = shown_report(build_report(analysis), lambda: known, outputs)

    from analyzer.outputs import write_outputs  # noqa: PLC0415

    write_outputs(report, outputs)
    from analyzer.outputs import report_stream  # noqa: PLC0415

    out = report_stream(outputs)
    rows = step_rows(a, b, cast(dict, report))
    text = render(report, a, b, rows, width, colour=out.isatty() and "NO_COLOR" not in os.environ)
    try:
        from analyzer import console  # noqa: PLC0415

        console.write(out, text + "\n", trusted=True)  # the colours of text.root_causes
        out.flush()
    except BrokenPipeError:
        pass
    return gates.apply(report, 0)
