"""`cachewhy build`: run buildx, show live progress, explain the build."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.errors import CachewhyError, UsageError
from analyzer.options import take_options, wants_help
from analyzer.outputs import OUTPUT_HELP, OUTPUT_OPTIONS, Outputs

SUMMARY = """\
build [CACHEWHY OPTIONS] [DOCKER BUILDX BUILD ARGS] PATH
      run `docker buildx build` (every flag passes through, same exit code),
      show live progress, then why each step was rebuilt"""

USAGE = f"""\
usage: cachewhy build [CACHEWHY OPTIONS] [DOCKER BUILDX BUILD ARGS] PATH

Runs `docker buildx build --progress=rawjson ARGS PATH`, shows live progress,
then the root causes of every cache miss and the build's steps in Dockerfile
order with their cache status. Every argument that is not one of the options
below goes to buildx unchanged; put `--` before buildx arguments that could
be mistaken for cachewhy's. The exit code is buildx's.

cachewhy options:
{OUTPUT_HELP}  --store DIR        where build records are kept  [CACHEWHY_STORE]
                     (default: ~/.local/share/cachewhy/records)
  --against REF      compare with this record (id, id prefix, ^N, file)
                     instead of the previous build of the same project
  --live MODE        live progress: auto (default), tty, plain (a line per
                     finished step), none          [CACHEWHY_LIVE]
  --width N          width of the report           [COLUMNS]
  -h, --help         this help
"""

_OPTIONS = {**OUTPUT_OPTIONS, "--live": "live", "--width": "width", "--store": "store", "--against": "against"}


@dataclass
class BuildOptions:
    live: str = "auto"
    width: int | None = None
    store: str | None = None
    against: str | None = None
    outputs: Outputs = field(default_factory=Outputs)
    buildx_argv: list[str] = field(default_factory=list)


def parse_options(argv: list[str]) -> BuildOptions:
    from analyzer.buildx import VALUE_FLAGS  # noqa: PLC0415

    found, rest = take_options(argv, _OPTIONS, foreign_value_flags=VALUE_FLAGS)
    opts = BuildOptions(
        live=str(found.get("live") or os.environ.get("CACHEWHY_LIVE", "auto")),
        store=found.get("store"),  # type: ignore[arg-type]
        against=found.get("against"),  # type: ignore[arg-type]
        outputs=Outputs.from_options(found),
        buildx_argv=rest,
    )
    if opts.live not in ("auto", "tty", "plain", "none"):
        raise UsageError(f"--live must be auto, tty, plain or none, not {opts.live!r}")
    if "width" in found:
        try:
            opts.width = int(found["width"])  # type: ignore[call-overload]
        except ValueError:
            raise UsageError(f"--width takes a number, not {found['width']!r}") from None
    return opts


class Baseline:
    """The store, the previous record and the context snapshot of this build."""

    def __init__(self, opts: BuildOptions, args, df_path, df) -> None:  # type: ignore[no-untyped-def]
        from analyzer.record import follow_paths, project_of  # noqa: PLC0415
        from analyzer.store import open_store  # noqa: PLC0415

        self.notes: list[str] = []
        self.store = None
        self.previous: dict | None = None
        self.context = args.context_dir
        self.df_path = df_path
        self.follow = follow_paths(df) if df is not None else None
        self._thread = None
        self._snapshot: dict | None = None
        try:
            self.store = open_store(opts.store)
            ref = opts.against or self.store.find_previous(project_of(args, df_path))
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


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    opts = parse_options(argv)

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
    baseline = Baseline(opts, args, df_path, df)

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
        if result.interrupted:
            sys.stderr.write(f"cachewhy: build stopped by {result.interrupted}; showing what was seen\n")
        if not events.vertices:
            return result.returncode  # buildx refused the arguments or could not start: it said why
        try:
            from analyzer.pipeline import analyse, deliver  # noqa: PLC0415

            outcome = analyse(events=events, args=args, result=result, dockerfile_text=df_text,
                              dockerfile_path=df_path, metadata_path=result.metadata_path,
                              snapshot=baseline.snapshot(), previous=baseline.previous, store=baseline.store,
                              notes=baseline.notes)
            deliver(outcome, opts.outputs, baseline.store, width)
        except CachewhyError as exc:
            sys.stderr.write(f"cachewhy: {exc}\n")
        except Exception as exc:  # the build's result must survive any analysis bug
            if debug:
                traceback.print_exc()
            sys.stderr.write(f"cachewhy: internal error while analysing the build: {exc!r} "
                             f"(run with --debug for the traceback); the build's exit code is kept\n")
    return result.returncode
