"""Command line: the only module that prints, reads the environment for
defaults and decides exit codes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from analyzer import __version__
from analyzer.errors import CachewhyError, UsageError

USAGE = """\
usage: cachewhy [--debug] COMMAND [ARGS]

Tells you why your Docker build was slow.

commands:
  build [CACHEWHY OPTIONS] [DOCKER BUILDX BUILD ARGS] PATH
        run `docker buildx build` (every flag passes through, same exit code),
        show live progress and report every step's cache status
  version
        print cachewhy's version

options:
  --debug     show tracebacks of internal errors (or CACHEWHY_DEBUG=1)
  --version   print the version
  -h, --help  this help

Run `cachewhy build --help` for the build options.
"""

BUILD_USAGE = """\
usage: cachewhy build [CACHEWHY OPTIONS] [DOCKER BUILDX BUILD ARGS] PATH

Runs `docker buildx build --progress=rawjson ARGS PATH`, shows live progress and
then the build's steps in Dockerfile order with their cache status. Every
argument that is not one of the options below goes to buildx unchanged; put
`--` before buildx arguments that could be mistaken for cachewhy's. The exit
code is buildx's.

cachewhy options:
  --report-json FILE write the JSON report (cachewhy.report/v1) to FILE,
                     `-` for stdout
  --store DIR        where build records are kept  [CACHEWHY_STORE]
                     (default: ~/.local/share/cachewhy/records)
  --against REF      compare with this record (id, id prefix, ^N, file)
                     instead of the previous build of the same project
  --live MODE        live progress: auto (default), tty, plain (a line per
                     finished step), none          [CACHEWHY_LIVE]
  --width N          width of the report           [COLUMNS]
  -h, --help         this help
"""


@dataclass
class BuildOptions:
    live: str = "auto"
    width: int | None = None
    report_json: str | None = None
    store: str | None = None
    against: str | None = None
    buildx_argv: list[str] = field(default_factory=list)


_BUILD_OPTIONS = {"--live": "live", "--width": "width", "--report-json": "report_json",
                  "--store": "store", "--against": "against"}


def parse_build_options(argv: list[str]) -> BuildOptions:
    """Take cachewhy's own options out of the argument list; leave the rest in order."""
    from analyzer.buildx import VALUE_FLAGS  # noqa: PLC0415

    opts = BuildOptions(live=os.environ.get("CACHEWHY_LIVE", "auto"))
    rest: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            rest.extend(argv[i + 1:])
            break
        name, eq, value = tok.partition("=")
        if name in _BUILD_OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value = argv[i + 1]
                i += 1
            setattr(opts, _BUILD_OPTIONS[name], value)
            i += 1
            continue
        rest.append(tok)
        if name in VALUE_FLAGS and not eq and i + 1 < len(argv):
            rest.append(argv[i + 1])  # a buildx flag's value is never ours
            i += 1
        i += 1
    if opts.live not in ("auto", "tty", "plain", "none"):
        raise UsageError(f"--live must be auto, tty, plain or none, not {opts.live!r}")
    if opts.width is not None:
        try:
            opts.width = int(opts.width)
        except ValueError:
            raise UsageError(f"--width takes a number, not {opts.width!r}") from None
    opts.buildx_argv = rest
    return opts


def cmd_build(argv: list[str], debug: bool) -> int:
    if any(a in ("-h", "--help") for a in argv[: argv.index("--") if "--" in argv else len(argv)]):
        sys.stdout.write(BUILD_USAGE)
        return 0
    opts = parse_build_options(argv)

    from analyzer import buildx, dockerfile as dfmod  # noqa: PLC0415
    from analyzer.events import BuildEvents  # noqa: PLC0415
    from analyzer.progress import Progress  # noqa: PLC0415

    args = buildx.parse_args(opts.buildx_argv)
    df_path = args.dockerfile_path()
    df = df_text = None
    if df_path is not None:
        try:
            df_text = df_path.read_text(encoding="utf-8", errors="replace")
            df = dfmod.parse(df_text)
        except OSError:
            df = None  # buildx will say what is wrong with it
    width = opts.width or shutil.get_terminal_size((100, 24)).columns
    events = BuildEvents()
    progress = Progress(opts.live, df, width=width)
    if args.progress and args.progress != "rawjson":
        progress.message(f"cachewhy: --progress={args.progress} replaced by rawjson (cachewhy shows the progress)")
    baseline = Baseline(opts, args, df_path, df, progress)

    def on_line(line: str) -> None:
        n_msgs = len(events.messages)
        changed = events.feed_line(line)
        for msg in events.messages[n_msgs:]:
            progress.message(msg)
        if changed:
            progress.update(events, changed)

    def on_start() -> None:
        baseline.start_snapshot()  # hashes the context while buildx works
        import networkx  # noqa: F401, PLC0415 - import while buildx starts up

    with tempfile.TemporaryDirectory(prefix="cachewhy-") as workdir:
        result = buildx.run_build(args, on_line, on_start=on_start, workdir=Path(workdir))
        progress.finish(events)
        rc = result.returncode
        if result.interrupted:
            sys.stderr.write(f"cachewhy: build stopped by {result.interrupted}; showing what was seen\n")
        try:
            _report_build(events, df, df_text, df_path, args, result, baseline, opts, width)
        except CachewhyError as exc:
            sys.stderr.write(f"cachewhy: {exc}\n")
        except Exception as exc:  # the build's result must survive any analysis bug
            if debug:
                traceback.print_exc()
            sys.stderr.write(f"cachewhy: internal error while analysing the build: {exc!r} "
                             f"(run with --debug for the traceback); the build's exit code is kept\n")
    return rc


class Baseline:
    """The store, the previous record and the context snapshot of this build."""

    def __init__(self, opts: BuildOptions, args, df_path, df, progress) -> None:  # type: ignore[no-untyped-def]
        from analyzer.record import follow_paths, project_of  # noqa: PLC0415
        from analyzer.store import open_store  # noqa: PLC0415

        self.notes: list[str] = []
        self.store = None
        self.previous: dict | None = None
        self.project = project_of(args, df_path)
        self.context = args.context_dir
        self.df_path = df_path
        self.follow = follow_paths(df) if df is not None else None
        self._thread = None
        self._snapshot: dict | None = None
        try:
            self.store = open_store(opts.store)
            ref = opts.against or self.store.find_previous(self.project)
            if ref:
                self.previous = self.store.load(ref)
        except CachewhyError as exc:
            if opts.against:
                raise
            self.notes.append(f"no previous record: {exc}")

    def start_snapshot(self) -> None:
        import threading  # noqa: PLC0415

        if self.context is None or not self.context.is_dir():
            return
        self._thread = threading.Thread(target=self._take_snapshot, daemon=True)
        self._thread.start()

    def _take_snapshot(self) -> None:
        from analyzer import snapshot  # noqa: PLC0415

        try:
            prev = None
            if self.previous and self.previous.get("snapshot"):
                try:
                    prev = snapshot.Snapshot.from_json(self.previous["snapshot"])
                except (ValueError, KeyError, TypeError):
                    prev = None
            excludes = snapshot.read_dockerignore(self.context, self.df_path)
            snap = snapshot.snapshot(self.context, excludes=excludes, follow=self.follow, previous=prev)
            self._snapshot = snap.to_json()
        except Exception as exc:  # a snapshot problem must not stop the report
            self.notes.append(f"the context could not be snapshotted: {exc}")

    def snapshot(self) -> dict | None:
        if self._thread is not None:
            self._thread.join()
        return self._snapshot


def _report_build(events, df, df_text, df_path, args, result, baseline: Baseline,  # type: ignore[no-untyped-def]
                  opts: BuildOptions, width: int) -> None:
    from analyzer import dockerfile as dfmod  # noqa: PLC0415
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.graph import build_graph  # noqa: PLC0415
    from analyzer.provenance import load_metadata  # noqa: PLC0415
    from analyzer.record import make_hasher, make_record, store_key  # noqa: PLC0415
    from analyzer.report import text  # noqa: PLC0415
    from analyzer.report.model import build_report  # noqa: PLC0415
    from analyzer.store import new_id  # noqa: PLC0415

    if not events.vertices:
        return  # buildx refused the arguments or could not start: its message says why
    prov = None
    if result.metadata_path is not None:
        prov = load_metadata(result.metadata_path).primary()
    locations = None
    if prov is not None:
        locations = prov.vertex_lines()
        if df is None and prov.dockerfile_text is not None:
            df_text = prov.dockerfile_text
            df = dfmod.parse(df_text)
    graph = build_graph(events, df, locations)
    store = baseline.store
    hasher = make_hasher(store_key(store.root) if store is not None else b"cachewhy")
    record = make_record(
        record_id=new_id(), args=args, result=result, graph=graph, prov=prov, dockerfile_path=df_path,
        dockerfile_text=df_text, snapshot=baseline.snapshot(), messages=events.messages, hasher=hasher,
        complete=result.interrupted is None,
    )
    analysis = explain(record, baseline.previous)
    analysis.notes[:0] = baseline.notes
    report = build_report(analysis)

    # what must not be lost first: the record and the JSON report, then the screen
    if store is not None:
        top = analysis.roots[0] if analysis.roots else None
        summary = {
            "hit_ratio": report["summary"]["hit_ratio"],
            "time_lost_s": report["summary"]["time_lost_s"],
            "top_cause": top.cause.kind if top else None,
            "top_line": top.step.get("line") if top else None,
        }
        store.save(record, summary=summary)
    if opts.report_json:
        _write_output(opts.report_json, json.dumps(report, indent=2, sort_keys=True) + "\n")
    colour = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    name = df_path.name if df_path is not None else "Dockerfile"
    screen = "\n".join([
        "",
        text.root_causes(report, width=width, colour=colour),
        "",
        text.step_table(graph, width=width, colour=colour, dockerfile_name=name),
        text.footer(graph, result.returncode, result.ended - result.started),
    ])
    try:
        sys.stderr.write(screen + "\n")
        sys.stderr.flush()
    except BrokenPipeError:
        pass  # the reader went away (`| head`); the record and report are written


def _write_output(dest: str, data: str) -> None:
    if dest == "-":
        sys.stdout.write(data)
        sys.stdout.flush()
        return
    path = Path(dest)
    tmp = path.with_name(f".{path.name}.cachewhy-tmp")
    try:
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CachewhyError(f"cannot write {dest}: {exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("CACHEWHY_DEBUG") == "1"
    while argv and argv[0] in ("--debug",):
        debug = True
        argv.pop(0)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd in ("--version", "version"):
            sys.stdout.write(f"cachewhy {__version__}\n")
            return 0
        if cmd == "build":
            return cmd_build(rest, debug)
        raise UsageError(f"unknown command {cmd!r} (try `cachewhy --help`)")
    except CachewhyError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"cachewhy: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("cachewhy: interrupted\n")
        return 130
