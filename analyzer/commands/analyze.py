"""`cachewhy analyze LOG`: explain a build that ran elsewhere, from its rawjson log."""

from __future__ import annotations

import sys
from pathlib import Path

from analyzer import notes as N
from analyzer.errors import InputError, UsageError
from analyzer.gates import Gates
from analyzer.model import Record
from analyzer.notes import Note
from analyzer.options import Parser, add_groups, gate_options, output_options, store_options, width_options
from analyzer.outputs import Outputs

SUMMARY = """\
analyze [OPTIONS] LOG
      explain a build that ran elsewhere from its `--progress=rawjson` log
      (a file, or - for stdin); needs no Docker"""

def parser() -> Parser:
    p = Parser("analyze", "cachewhy analyze [OPTIONS] LOG", """\
Explains a build that ran elsewhere (in CI, on another machine) from what
`docker buildx build --progress=rawjson` wrote to stderr. LOG is that file,
or `-` to read it from stdin:

  BUILDX_METADATA_PROVENANCE=max docker buildx build --progress=rawjson \\
      --metadata-file m.json . 2>build.log
  cachewhy analyze --metadata-file m.json --context . build.log
  docker buildx build --progress=rawjson . 2>&1 | cachewhy analyze -

Needs no Docker. The build is compared with --previous, or else with the
newest record of the same project (--context, --dockerfile, target and
platforms) in the store, and gets a record of its own there (unless
--no-record). Without provenance the statuses, cascades and time lost are
still exact; the report says which causes could not be told apart.
The analysed build's exit code is taken as 1 when its log holds buildx's
`ERROR:` line, else 0.""", """\
Exit codes: 0 (also for the log of a failed build: its exit code is in the
report), 4 when a gate trips, 2 for bad arguments or an unusable log.""")
    p.add_argument("--metadata-file", metavar="FILE", dest="metadata",
                   help="buildx's --metadata-file of that build; with full provenance "
                        "(BUILDX_METADATA_PROVENANCE=max) it maps steps to Dockerfile lines and their LLB ops")
    p.add_argument("--dockerfile", metavar="FILE", help="the Dockerfile, to map steps to lines without provenance")
    p.add_argument("--context", metavar="DIR",
                   help="the build's context folder (the project's identity; its files are not read)")
    p.add_argument("--previous", metavar="REF", help="compare with this build: a record (id, id prefix, ^N, "
                                                     "record file) or another rawjson log")
    p.add_argument("--previous-metadata", metavar="FILE", help="the metadata file of a --previous log")
    add_groups(p, store_options(), output_options(), gate_options(), width_options())
    p.add_argument("--no-record", action="store_true", help="do not keep a record of this build")
    return p


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv)
    if opts is None:
        return 0
    found = opts.found()
    logs = opts.args
    if len(logs) != 1:
        raise UsageError("analyze takes one LOG (a file, or - for stdin)" if not logs
                         else f"analyze takes one LOG, not {len(logs)}: {' '.join(logs)}")
    outputs = Outputs.from_options(found)
    gates = Gates.from_options(found)
    width = opts.report_width
    if logs[0] == "-" and found.get("previous") == "-":
        raise UsageError("LOG and --previous cannot both be read from stdin")
    if found.get("previous_metadata") and not found.get("previous"):
        raise UsageError("--previous-metadata needs --previous LOG")
    recording = not found.get("no_record")
    metadata, dockerfile, context = found.get("metadata"), found.get("dockerfile"), found.get("context")

    from analyzer.deliver import deliver  # noqa: PLC0415
    from analyzer.pipeline import analyse, make_record  # noqa: PLC0415
    from analyzer.previous import Named, key_dir, key_store, name_build  # noqa: PLC0415
    from analyzer.sources import Baseline  # noqa: PLC0415
    from analyzer.sources.log import from_log, log_ref, read_log, read_metadata  # noqa: PLC0415
    from analyzer.store import StoreError, open_store  # noqa: PLC0415

    store = open_store(opts.store)
    # the log first: in a pipe from buildx, its metadata file is written when the build ends
    events = read_log(logs[0])
    for opt, value in (("--metadata-file", metadata), ("--previous-metadata", found.get("previous_metadata")),
                       ("--dockerfile", dockerfile)):
        if value is not None and not Path(str(value)).is_file():
            raise InputError(f"{opt} {value}: no such file" if not Path(str(value)).exists() else f"{opt} {value}: not a file")

    notes: list[Note] = []
    prev_named: Named | None = None
    if found.get("previous"):
        prev_named = name_build(str(found["previous"]), store, "--previous")
    inp = from_log(events, label="this build", metadata=read_metadata(metadata),  # type: ignore[arg-type]
                   dockerfile=dockerfile, context=context)  # type: ignore[arg-type]
    if prev_named is None and (context or dockerfile):
        try:
            prev, skipped = store.load_previous(inp.project)
            notes += [Note(N.RECORD_SKIPPED, N.BASELINE, n) for n in skipped]
            if prev is not None:
                prev_named = Named(prev["id"], record=prev, key_dir=key_dir(store.root))
        except StoreError as exc:
            notes.append(Note(N.NO_BASELINE, N.BASELINE, f"no previous record: {exc}"))
    elif prev_named is None:
        notes.append(Note(N.NO_BASELINE, N.BASELINE, "no --previous, and without --context or --dockerfile the "
                          "build has no project to find its previous build by"))

    keys = key_store([prev_named] if prev_named else [], store, writing=recording)
    previous: Record | None = None
    if prev_named is not None and prev_named.events is not None:
        label = f"previous build ({prev_named.ref})"
        prev_inp = from_log(prev_named.events, label=label,
                            metadata=read_metadata(found.get("previous_metadata")),  # type: ignore[arg-type]
                            dockerfile=dockerfile, context=context,  # type: ignore[arg-type]
                            fallback=inp.dockerfile_text, record_id=log_ref(prev_named.ref))
        previous = make_record(prev_inp, Baseline(keys=keys)).record
        notes += prev_inp.source_notes()
        if previous.get("has_provenance") is False:
            notes.append(Note(N.PREVIOUS_NO_PROVENANCE, N.BASELINE,
                              f"{label}: no provenance, so its steps' ops could not be compared"))
    elif prev_named is not None:
        previous = prev_named.record

    outcome = analyse(input=inp, baseline=Baseline(previous, notes, keys))

    from analyzer.outputs import report_stream  # noqa: PLC0415

    out = report_stream(outputs)
    try:
        deliver(outcome, outputs, store if recording else None, width, stream=out)
    except StoreError as exc:  # the analysis stands without its record
        sys.stderr.write(f"cachewhy: the record could not be kept: {exc}\n")
        deliver(outcome, outputs, None, width, stream=out)
    return gates.apply(outcome.report, 0)
