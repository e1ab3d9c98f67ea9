"""`cachewhy analyze LOG`: explain a build that ran elsewhere, from its rawjson log.

Also the loaders `diff` shares: a rawjson log (file or stdin) made into a
record through the same pipeline as `build`, and a build named by a record
reference, a record file or a log.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer import confined
from analyzer.errors import InputError, UsageError
from analyzer.gates import GATE_HELP, GATE_OPTIONS, GATE_REPEATABLE, Gates
from analyzer.options import take_options, wants_help
from analyzer.outputs import OUTPUT_HELP, OUTPUT_OPTIONS, OUTPUT_SWITCHES, Outputs

if TYPE_CHECKING:
    from analyzer.events import BuildEvents
    from analyzer.pipeline import Outcome
    from analyzer.store import Store

SUMMARY = """\
analyze [OPTIONS] LOG
      explain a build that ran elsewhere from its `--progress=rawjson` log
      (a file, or - for stdin); needs no Docker"""

USAGE = f"""\
usage: cachewhy analyze [OPTIONS] LOG

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
`ERROR:` line, else 0.

options:
  --metadata-file FILE buildx's --metadata-file of that build; with full
                     provenance (BUILDX_METADATA_PROVENANCE=max) it maps
                     steps to Dockerfile lines and their LLB ops
  --dockerfile FILE  the Dockerfile, to map steps to lines without provenance
  --context DIR      the build's context folder (the project's identity;
                     its files are not read)
  --previous REF     compare with this build: a record (id, id prefix, ^N,
                     record file) or another rawjson log
  --previous-metadata FILE
                     the metadata file of a --previous log
  --store DIR        where build records are kept  [CACHEWHY_STORE]
  --no-record        do not keep a record of this build
{OUTPUT_HELP}{GATE_HELP}  --width N          width of the report           [COLUMNS]
  -h, --help         this help

Exit codes: 0 (also for the log of a failed build: its exit code is in the
report), 4 when a gate trips, 2 for bad arguments or an unusable log.
"""

_OPTIONS = {
    **OUTPUT_OPTIONS, **GATE_OPTIONS,
    "--metadata-file": "metadata", "--dockerfile": "dockerfile", "--context": "context",
    "--previous": "previous", "--previous-metadata": "previous_metadata",
    "--store": "store", "--width": "width",
}
_SWITCHES = {**OUTPUT_SWITCHES, "--no-record": "no_record"}


# --------------------------------------------------------------------------
# helpers shared by the commands


def positionals(argv: list[str], rest: list[str], command: str) -> list[str]:
    """The positional arguments left by take_options; an unknown option is a usage error."""
    after = len(argv) - argv.index("--") - 1 if "--" in argv else 0
    before = rest[: len(rest) - after]
    for tok in before:
        if tok.startswith("-") and tok != "-":
            raise UsageError(f"{command}: unknown option {tok.partition('=')[0]!r} "
                             f"(try `cachewhy {command} --help`)")
    return rest


def parse_width(found: dict[str, object]) -> int:
    from analyzer.report.fit import parse_width as width_of_option  # noqa: PLC0415

    return width_of_option(found.get("width"))


# --------------------------------------------------------------------------
# a rawjson log


def read_log(where: str) -> "BuildEvents":
    """The folded events of a log file, or of stdin for `-`; InputError when
    the input is unusable (missing, empty, binary, not a rawjson log)."""
    import io  # noqa: PLC0415

    from analyzer.events import load_file, read_events  # noqa: PLC0415

    label = "stdin" if where == "-" else where
    if where == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("LOG is `-` but stdin is a terminal: pipe the log in "
                             "(docker buildx build --progress=rawjson … 2>&1 | cachewhy analyze -)")
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
        try:
            events = read_events(stream)
        except OSError as exc:
            raise InputError(f"cannot read stdin: {exc.strerror or exc}") from None
    else:
        try:
            events = load_file(where)
        except OSError as exc:
            raise InputError(f"cannot read {where}: {exc.strerror or exc}") from None
    if not events.vertices:
        raise InputError(_why_no_events(label, events))
    return events


def _why_no_events(label: str, events: "BuildEvents") -> str:
    hint = "is it the stderr of `docker buildx build --progress=rawjson`?"
    msgs = events.messages
    if not events.objects and not msgs:
        return f"{label} is empty: no build events to analyse"
    if any("\x00" in m or m.count("\ufffd") > 2 for m in msgs[:50]):
        return f"{label} is binary data, not a build log ({hint})"
    if any(m.startswith("#") and m[1:2].isdigit() for m in msgs[:50]):
        return (f"{label} is a --progress=plain log, which names no cache keys: "
                f"build with --progress=rawjson to analyse it")
    if events.objects:
        return f"{label} holds {events.objects} JSON object(s) but no build step ({hint})"
    return f"{label} holds no build events, only {len(msgs)} line(s) of text ({hint})"


@dataclass
class LogSpec:
    """How to read a log: where from and what maps its steps to lines."""

    where: str  # a path or "-"
    metadata: str | None = None
    dockerfile: str | None = None
    context: str | None = None
    label: str = ""  # how notes name it
    fallback_text: str | None = None  # a Dockerfile text to map lines when nothing else does
    snapshot: dict | None = None  # its context files, where known otherwise (explain: from git)


def _timing(events: "BuildEvents") -> tuple[float, float, str | None]:
    """Start and end of the build from its vertices, and whether the log stops mid-build."""
    import time  # noqa: PLC0415

    from analyzer.events import parse_time  # noqa: PLC0415

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


def log_outcome(events: "BuildEvents", spec: LogSpec, *, previous: dict | None, key_store: "Store | None",
                notes: list[str]) -> "Outcome":
    """The record and report of a logged build, through the same pipeline as `build`."""
    from analyzer.buildx import RunResult, parse_args  # noqa: PLC0415
    from analyzer.pipeline import analyse  # noqa: PLC0415
    from analyzer.provenance import load_metadata  # noqa: PLC0415

    prov = None
    meta_path = None
    if spec.metadata:
        meta_path = Path(spec.metadata)
        prov = load_metadata(meta_path).primary()
    argv: list[str] = []
    if spec.dockerfile:
        argv += ["-f", spec.dockerfile]
    if prov is not None:
        if prov.args.get("target"):
            argv += ["--target", prov.args["target"]]
        if prov.args.get("platform"):
            argv += ["--platform", prov.args["platform"]]
        if "no-cache" in prov.args:  # BuildKit's attribute: "" for all, else the stage names
            argv += ["--no-cache-filter", prov.args["no-cache"]] if prov.args["no-cache"] else ["--no-cache"]
    argv.append(spec.context or "-")
    args = parse_args(argv)
    df_path = args.dockerfile_path()
    df_text = None
    if spec.dockerfile:
        try:
            df_text = confined.read_beside(spec.dockerfile)
        except OSError as exc:
            raise InputError(f"cannot read --dockerfile {spec.dockerfile}: {exc.strerror or exc}") from None
    elif df_path is not None and df_path.is_file() and (prov is None or prov.dockerfile_text is None):
        try:
            df_text = confined.read_beside(df_path)
        except OSError:
            df_text = None
    notes = list(notes)
    if prov is not None and prov.dockerfile_text is not None:
        # what was built wins over what the user points at: the provenance's
        # line ranges are of its own text
        if df_text is not None and df_text != prov.dockerfile_text:
            notes.append(f"{spec.label or 'the build'}: the Dockerfile in its provenance differs from "
                         f"{spec.dockerfile or df_path}; the provenance's is used")
        df_text = prov.dockerfile_text
    if df_text is None and prov is None and spec.fallback_text is not None:
        df_text = spec.fallback_text
        notes.append(f"{spec.label or 'the build'}: no provenance and no Dockerfile given: its steps were "
                     "mapped to the lines of the other build's Dockerfile")
    if df_text is None and prov is None:
        notes.append(f"{spec.label or 'the build'}: no provenance and no Dockerfile: steps have no line numbers "
                     "(give --metadata-file or --dockerfile)")
    started, ended, cut = _timing(events)
    if cut:
        notes.append(f"{spec.label or 'the build'}: the {cut}: it was cut short")
    result = RunResult(returncode=1 if events.error_message() else 0, started=started, ended=ended,
                       metadata_path=meta_path, interrupted=cut)
    return analyse(events=events, args=args, result=result, dockerfile_text=df_text, dockerfile_path=df_path,
                   metadata_path=meta_path, snapshot=spec.snapshot, previous=previous, store=key_store, notes=notes)


# --------------------------------------------------------------------------
# a build named on the command line: record ref, record file or log


@dataclass
class Named:
    """A build given by reference: a stored record or a log to be analysed."""

    ref: str
    record: dict | None = None  # a stored record
    key_dir: Path | None = None  # where the hash key of its values is, when known
    events: "BuildEvents | None" = None  # a log, not yet made into a record
    notes: list[str] = field(default_factory=list)

    @property
    def is_log(self) -> bool:
        return self.events is not None


def _sniff(path: Path) -> str:
    """'record', 'report' or 'log', from the first bytes of a file."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b'"cachewhy.record/' in head:
        return "record"
    if b'"cachewhy.report/' in head:
        return "report"
    return "log"


def name_build(ref: str, store: "Store", what: str) -> Named:
    """Read what `ref` names: `-` (a log on stdin), a file (a record or a log),
    else a reference into the store (id, id prefix, ^N, last)."""
    if ref == "-":
        return Named(ref, events=read_log("-"))
    path = Path(os.path.expanduser(ref))
    if path.is_file():
        kind = _sniff(path)
        if kind == "report":
            raise InputError(f"{what} {ref} is a JSON report, not a record: give its record "
                             f"(`cachewhy history` lists them) or the build's log")
        if kind == "record":
            from analyzer.store import parse_record  # noqa: PLC0415

            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read {ref}: {exc.strerror or exc}") from None
            record = parse_record(data, f"record file {ref}")
            return Named(ref, record=record, key_dir=_key_dir(path.resolve().parent))
        return Named(ref, events=read_log(str(path)))
    if path.is_dir():
        raise InputError(f"{what} {ref} is a directory, not a record or a log")
    record = store.load(ref)
    return Named(ref, record=record, key_dir=_key_dir(store.root))


def _key_dir(folder: Path) -> Path | None:
    """`folder` when it holds a store's hash key (read, never made, here)."""
    return folder if (folder / "hash.key").is_file() else None


def key_store(named: list[Named], store: "Store", *, writing: bool) -> "Store | None":
    """The store whose hash key the records made from logs use for build-arg
    and ENV values: the store written to; else the key of the record they are
    compared with, so that equal values hash equally; else the store's own
    key if it has one (None: a fixed key, for logs compared with each other).
    A record hashed with another key is told apart by its `hash_key_id`, and
    explain then says its values were not compared."""
    from analyzer.store import Store  # noqa: PLC0415

    if writing:
        return store
    dirs = sorted({n.key_dir for n in named if n.record is not None and n.key_dir is not None})
    if dirs:
        return Store(dirs[0])
    if (store.root / "hash.key").is_file():
        return store
    return None


# --------------------------------------------------------------------------
# the command


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    found, rest = take_options(argv, _OPTIONS, switches=_SWITCHES, repeatable=GATE_REPEATABLE)
    logs = positionals(argv, rest, "analyze")
    if len(logs) != 1:
        raise UsageError("analyze takes one LOG (a file, or - for stdin)" if not logs
                         else f"analyze takes one LOG, not {len(logs)}: {' '.join(logs)}")
    outputs = Outputs.from_options(found)
    gates = Gates.from_options(found)
    width = parse_width(found)
    if logs[0] == "-" and found.get("previous") == "-":
        raise UsageError("LOG and --previous cannot both be read from stdin")
    if found.get("previous_metadata") and not found.get("previous"):
        raise UsageError("--previous-metadata needs --previous LOG")
    recording = not found.get("no_record")

    from analyzer.store import StoreError, open_store  # noqa: PLC0415

    store = open_store(found.get("store"))  # type: ignore[arg-type]
    spec = LogSpec(logs[0], metadata=found.get("metadata"), dockerfile=found.get("dockerfile"),  # type: ignore[arg-type]
                   context=found.get("context"), label="this build")  # type: ignore[arg-type]
    # the log first: in a pipe from buildx, its metadata file is written when the build ends
    events = read_log(spec.where)
    for opt, value in (("--metadata-file", spec.metadata), ("--previous-metadata", found.get("previous_metadata")),
                       ("--dockerfile", spec.dockerfile)):
        if value is not None and not Path(str(value)).is_file():
            raise InputError(f"{opt} {value}: no such file" if not Path(str(value)).exists() else f"{opt} {value}: not a file")

    notes: list[str] = []
    previous: dict | None = None
    prev_named: Named | None = None
    if found.get("previous"):
        prev_named = name_build(str(found["previous"]), store, "--previous")
    elif spec.context or spec.dockerfile:
        try:
            from analyzer.buildx import parse_args  # noqa: PLC0415
            from analyzer.record import project_of  # noqa: PLC0415

            args = parse_args([*(["-f", spec.dockerfile] if spec.dockerfile else []), spec.context or "-"])
            ref = store.find_previous(_project_with_prov(project_of(args, args.dockerfile_path()), spec))
            if ref:
                prev_named = Named(ref, record=store.load(ref), key_dir=_key_dir(store.root))
        except StoreError as exc:
            notes.append(f"no previous record: {exc}")
    else:
        notes.append("no --previous, and without --context or --dockerfile the build has no project "
                     "to find its previous build by")

    keys = key_store([prev_named] if prev_named else [], store, writing=recording)
    if prev_named is not None and prev_named.is_log:
        prev_spec = LogSpec(prev_named.ref, metadata=found.get("previous_metadata"),  # type: ignore[arg-type]
                            dockerfile=spec.dockerfile, context=spec.context, label=f"previous build ({prev_named.ref})",
                            fallback_text=dockerfile_of(spec))
        prev_outcome = log_outcome(prev_named.events, prev_spec, previous=None, key_store=keys,  # type: ignore[arg-type]
                                   notes=[])
        previous = prev_outcome.record
        previous["id"] = log_ref(prev_named.ref)  # not stored: the report names the log
        notes += [n for n in prev_outcome.analysis.notes if n.startswith("previous build")]
        if prev_outcome.record.get("has_provenance") is False:
            notes.append(f"previous build ({prev_named.ref}): no provenance, so its steps' ops could not be compared")
    elif prev_named is not None:
        previous = prev_named.record

    outcome = log_outcome(events, spec, previous=previous, key_store=keys, notes=notes)

    from analyzer.outputs import report_stream  # noqa: PLC0415
    from analyzer.pipeline import deliver  # noqa: PLC0415

    out = report_stream(outputs)
    try:
        deliver(outcome, outputs, store if recording else None, width, stream=out)
    except StoreError as exc:  # the analysis stands without its record
        sys.stderr.write(f"cachewhy: the record could not be kept: {exc}\n")
        deliver(outcome, outputs, None, width, stream=out)
    return gates.apply(outcome.report, 0)


def log_ref(where: str) -> str:
    """How a report names a build known only from its log."""
    return "stdin" if where == "-" else f"log {where}"


def dockerfile_of(spec: LogSpec) -> str | None:
    """The Dockerfile text a log's metadata carries, or the one its options name."""
    if spec.metadata:
        from analyzer.provenance import load_metadata  # noqa: PLC0415

        prov = load_metadata(spec.metadata).primary()
        if prov is not None and prov.dockerfile_text is not None:
            return prov.dockerfile_text
    for path in (spec.dockerfile, os.path.join(spec.context, "Dockerfile") if spec.context else None):
        if path:
            try:
                return confined.read_beside(path)
            except OSError:
                pass
    return None


def _project_with_prov(project: dict, spec: LogSpec) -> dict:
    """The project of the logged build: target and platforms come from its provenance."""
    if not spec.metadata:
        return project
    from analyzer.provenance import load_metadata  # noqa: PLC0415

    prov = load_metadata(spec.metadata).primary()
    if prov is None:
        return project
    plats = [p.strip() for p in (prov.args.get("platform") or "").split(",") if p.strip()]
    return dict(project, target=prov.args.get("target") or None, platforms=sorted(plats))
