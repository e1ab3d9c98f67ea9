"""Command line: the only layer that prints, reads the environment for
defaults and decides exit codes. Each command lives in analyzer/commands/."""

from __future__ import annotations

import importlib
import os
import sys

from analyzer import __version__
from analyzer.errors import CachewhyError, UsageError

# command -> module under analyzer.commands; imported only when run
COMMANDS = {
    "build": "build",
    "predict": "predict",
    "analyze": "analyze",
    "diff": "diff",
    "show": "show",
    "history": "history",
    "advise": "advise",
    "trends": "trends",
    "explain": "explain",
    "watch": "watch",
}


def usage() -> str:
    lines = ["usage: cachewhy [--debug] COMMAND [ARGS]", "", "Tells you why your Docker build was slow.", "",
             "commands:"]
    for name in COMMANDS:
        mod = importlib.import_module(f"analyzer.commands.{COMMANDS[name]}")
        lines.extend("  " + line for line in mod.SUMMARY.splitlines())
    lines += ["  version", "        print cachewhy's version", "", "options:",
              "  --debug     show tracebacks of internal errors (or CACHEWHY_DEBUG=1)",
              "  --version   print the version", "  -h, --help  this help", "",
              "Run `cachewhy COMMAND --help` for a command's options.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from analyzer import console  # noqa: PLC0415

    with console.installed():  # every line written from here on is neutralised (console.py)
        return _main(argv)


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("CACHEWHY_DEBUG") == "1"
    while argv and argv[0] == "--debug":
        debug = True
        argv.pop(0)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd in ("--version", "version"):
            sys.stdout.write(f"cachewhy {__version__}\n")
            return 0
        if cmd not in COMMANDS:
            raise UsageError(f"unknown command {cmd!r} (try `cachewhy --help`)")
        if cmd == "build":
            # buildx first, then the imports: they take longer than a warm build can spare
            from analyzer import launch  # noqa: PLC0415

            launch.start(rest)
        module = importlib.import_module(f"analyzer.commands.{COMMANDS[cmd]}")
        return int(module.run(rest, debug))
    except CachewhyError as exc:
        if debug:
            import traceback  # noqa: PLC0415

            traceback.print_exc()
        sys.stderr.write(f"cachewhy: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("cachewhy: interrupted\n")
        return 130
    except Exception as exc:  # a bug of ours: one line, the traceback only when asked
        if debug:
            import traceback  # noqa: PLC0415

            traceback.print_exc()
        sys.stderr.write(f"cachewhy: internal error: {exc!r} (run `cachewhy --debug …` for the traceback)\n")
        return 70
    finally:
        if cmd == "build":  # a buildx started early and not taken (a usage error): stop it
            from analyzer import launch  # noqa: PLC0415

            launch.discard()


def entry() -> None:
    """The console script: main(), then exit without the interpreter's teardown.

    Everything is written and closed by then (records, reports, temporary
    folders, threads joined); tearing down the events' and the records' objects
    would only add tens of milliseconds to every build."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass
    os._exit(code)
