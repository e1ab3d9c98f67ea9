"""Command line: the only module that prints, reads the environment for
defaults and decides exit codes."""

from __future__ import annotations

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
  --live MODE        live progress: auto (default), tty, plain (a line per
                     finished step), none          [CACHEWHY_LIVE]
  --width N          width of the report           [COLUMNS]
  -h, --help         this help
"""


@dataclass
class BuildOptions:
    live: str = "auto"
    width: int | None = None
    buildx_argv: list[str] = field(default_factory=list)


_BUILD_OPTIONS = {"--live": "live", "--width": "width"}


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
    df = None
    if df_path is not None:
        try:
            df = dfmod.parse(df_path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            df = None  # buildx will say what is wrong with it
    width = opts.width or shutil.get_terminal_size((100, 24)).columns
    events = BuildEvents()
    progress = Progress(opts.live, df, width=width)
    if args.progress and args.progress != "rawjson":
        progress.message(f"cachewhy: --progress={args.progress} replaced by rawjson (cachewhy shows the progress)")

    def on_line(line: str) -> None:
        n_msgs = len(events.messages)
        changed = events.feed_line(line)
        for msg in events.messages[n_msgs:]:
            progress.message(msg)
        if changed:
            progress.update(events, changed)

    def on_start() -> None:
        import networkx  # noqa: F401, PLC0415 - import while buildx starts up

    with tempfile.TemporaryDirectory(prefix="cachewhy-") as workdir:
        result = buildx.run_build(args, on_line, on_start=on_start, workdir=Path(workdir))
        progress.finish(events)
        rc = result.returncode
        if result.interrupted:
            sys.stderr.write(f"cachewhy: build stopped by {result.interrupted}; showing what was seen\n")
        try:
            _report_build(events, df, df_path, result, width)
        except Exception as exc:  # the build's result must survive any analysis bug
            if debug:
                traceback.print_exc()
            sys.stderr.write(f"cachewhy: internal error while analysing the build: {exc!r} "
                             f"(run with --debug for the traceback); the build's exit code is kept\n")
    return rc


def _report_build(events, df, df_path, result, width: int) -> None:  # type: ignore[no-untyped-def]
    from analyzer.graph import build_graph  # noqa: PLC0415
    from analyzer.report import text  # noqa: PLC0415

    if not events.vertices:
        return  # buildx refused the arguments or could not start: its message says why
    locations = None
    if result.metadata_path is not None:
        from analyzer import dockerfile as dfmod  # noqa: PLC0415
        from analyzer.provenance import load_metadata  # noqa: PLC0415

        prov = load_metadata(result.metadata_path).primary()
        if prov is not None:
            locations = prov.vertex_lines()
            if df is None and prov.dockerfile_text is not None:
                df = dfmod.parse(prov.dockerfile_text)
    graph = build_graph(events, df, locations)
    colour = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    name = df_path.name if df_path is not None else "Dockerfile"
    sys.stderr.write("\n" + text.step_table(graph, width=width, colour=colour, dockerfile_name=name) + "\n")
    sys.stderr.write(text.footer(graph, result.returncode, result.ended - result.started) + "\n")


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
