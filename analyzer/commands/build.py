"""`cachewhy build`: run buildx, show live progress, explain the build."""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.errors import CachewhyError, EngineError, UsageError
from analyzer.gates import GATE_HELP, GATE_OPTIONS, GATE_REPEATABLE, Gates
from analyzer.options import check_typos, check_width, take_options, wants_help
from analyzer.outputs import OUTPUT_HELP, OUTPUT_OPTIONS, OUTPUT_SWITCHES, Outputs

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
be mistaken for cachewhy's. The exit code is buildx's; when the build
succeeded but a gate (--fail-*) tripped, it is 4.

cachewhy options:
{OUTPUT_HELP}{GATE_HELP}  --store DIR        where build records are kept  [CACHEWHY_STORE]
                     (default: ~/.local/share/cachewhy/records)
  --against REF      compare with this record (id, id prefix, ^N, file)
                     instead of the previous build of the same project
  --baseline FILE    compare with this record file (e.g. a CI artifact);
                     without it, the record carried by a --cache-from
                     type=local or type=registry cache is the baseline
  --predict          first predict which steps will rebuild and why
                     (`cachewhy predict`), then build and score the
                     prediction; the record keeps the score
  --live MODE        live progress: auto (default), tty, plain (a line per
                     finished step), none          [CACHEWHY_LIVE]
  --width N          width of the report           [COLUMNS]
  -h, --help         this help
"""

_OPTIONS = {**OUTPUT_OPTIONS, **GATE_OPTIONS, "--live": "live", "--width": "width", "--store": "store", "--against": "against",
            "--baseline": "baseline"}


@dataclass
class BuildOptions:
    live: str = "auto"
    width: int | None = None
    store: str | None = None
    against: str | None = None
    baseline: str | None = None  # a record file (--baseline)
    outputs: Outputs = field(default_factory=Outputs)
    gates: Gates = field(default_factory=Gates)
    buildx_argv: list[str] = field(default_factory=list)
    predict: bool = False


def parse_options(argv: list[str]) -> BuildOptions:
    from analyzer.buildx import VALUE_FLAGS  # noqa: PLC0415
    from analyzer.launch import BUILDX_FLAGS  # noqa: PLC0415

    own_value = set(_OPTIONS)
    switches = {**OUTPUT_SWITCHES, "--predict": "predict"}
    check_typos(argv, own_value | set(switches), own_value, BUILDX_FLAGS, VALUE_FLAGS)
    found, rest = take_options(argv, _OPTIONS, switches, foreign_value_flags=VALUE_FLAGS,
                               repeatable=GATE_REPEATABLE)
    opts = BuildOptions(
        live=str(found.get("live") or os.environ.get("CACHEWHY_LIVE", "auto")),
        store=found.get("store"),  # type: ignore[arg-type]
        against=found.get("against"),  # type: ignore[arg-type]
        baseline=found.get("baseline"),  # type: ignore[arg-type]
        outputs=Outputs.from_options(found),
        gates=Gates.from_options(found),
        buildx_argv=rest,
        predict=bool(found.get("predict")),
    )
    to_stdout = [fmt.option for fmt, dest in opts.outputs.requested() if dest == "-"]
    if to_stdout:
        from analyzer.outputs import stdout_carries_data  # noqa: PLC0415

        if stdout_carries_data(rest):
            raise UsageError(f"{to_stdout[0]} -: buildx writes to stdout in this build (`-o ...dest=-`, `-o -`, "
                             "-q or --call), and a report there would be mixed into it; give the report a file")
    if opts.live not in ("auto", "tty", "plain", "none"):
        raise UsageError(f"--live must be auto, tty, plain or none, not {opts.live!r}")
    if "width" in found:
        opts.width = check_width(found["width"])  # the same rule as every command's --width
    return opts


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    opts = parse_options(argv)

    from analyzer import buildx  # noqa: PLC0415

    args = buildx.parse_args(opts.buildx_argv)
    from analyzer import launch  # noqa: PLC0415

    # the buildx that cli.py started before importing this module, if it runs this very command
    launched = launch.take(args.argv, args.metadata_file)
    df_path = args.dockerfile_path()
    if opts.against:  # a wrong --against is the user's error: say so before building
        from analyzer.store import open_store  # noqa: PLC0415

        open_store(opts.store).resolve(opts.against)
    from analyzer.report.fit import default_width  # noqa: PLC0415

    width = opts.width or default_width()
    prediction = _predict_first(opts, args, width, debug) if opts.predict else None
    # Everything else is prepared on a thread of lower priority while buildx
    # starts up and runs (it takes half a second at least): the modules that
    # read its events, the Dockerfile, the store and the previous record, the
    # snapshot, the modules of the analysis. On two cores this work would
    # otherwise slow buildx and the engine down. Lines that come before the
    # events can be folded wait in `early`.
    import threading  # noqa: PLC0415

    state: dict = {"df_text": None, "baseline": None, "held": []}
    ready = threading.Event()
    early: list[str] = []

    def view_failed(exc: Exception) -> None:
        """A broken live view must not cost the build or its analysis: it stops, said once."""
        state["view_error"] = exc
        if debug:
            traceback.print_exception(exc)
        sys.stderr.write(f"cachewhy: internal error in the live progress view: {exc!r} (run with --debug for "
                         "the traceback); the view stops, the build and its analysis go on\n")

    def fold(line: str) -> None:
        events, progress = state["events"], state["progress"]
        n_msgs = len(events.messages)
        changed = events.feed_line(line)  # a bug here goes to run_build, which keeps buildx going
        if "view_error" in state:
            return
        try:
            held = state["held"]
            for msg in events.messages[n_msgs:]:
                if not events.vertices:  # docker's words before any step: maybe a missing plugin or daemon
                    held.append(msg)
                    continue
                if held:
                    for m in held:
                        progress.message(m)
                    held.clear()
                progress.message(msg)
            if changed:
                progress.update(events, changed)
        except Exception as exc:  # noqa: BLE001 - see view_failed
            view_failed(exc)

    def on_line(line: str) -> None:
        if not ready.is_set():
            early.append(line)
            return
        if early:
            fold_early()
        if "events" in state:
            fold(line)

    def fold_early() -> None:
        lines = early[:]
        early.clear()
        if "events" in state:
            for ln in lines:
                fold(ln)

    def prepare() -> None:
        _lower_priority()
        try:
            from analyzer import dockerfile as dfmod  # noqa: PLC0415
            from analyzer.events import BuildEvents  # noqa: PLC0415
            from analyzer.pipeline import STEP_LOG_TAIL  # noqa: PLC0415
            from analyzer.progress import Progress  # noqa: PLC0415

            events = BuildEvents(log_limit=STEP_LOG_TAIL)  # memory bounded also for 2,000 steps
            # -q: no progress, as buildx shows none (its messages, errors included, still are)
            progress = Progress("none" if args.quiet else opts.live, None, width=width)
            if args.progress and args.progress != "rawjson":
                progress.message(f"cachewhy: --progress={args.progress} replaced by rawjson "
                                 "(cachewhy shows the progress)")
            df = None
            if df_path is not None:
                try:
                    from analyzer import confined  # noqa: PLC0415

                    # as BuildKit reads it: never through a link out of its folder
                    state["df_text"] = confined.read_beside(df_path)
                    df = dfmod.parse(state["df_text"])
                except OSError:
                    df = None  # buildx will say what is wrong with it
            progress.dockerfile = df
            state["events"], state["progress"] = events, progress
        except Exception as exc:  # noqa: BLE001 - never leave buildx running because of us
            state["error"] = exc
            return
        finally:
            ready.set()
        try:
            from analyzer.sources.run import RunBaseline  # noqa: PLC0415 - off the start-up path

            baseline = state["baseline"] = RunBaseline(opts.store, opts.against, opts.baseline, args, df_path, df)
            baseline.start_snapshot()  # hashes the context while buildx works
        except Exception as exc:  # noqa: BLE001 - never leave buildx running because of us
            state["error"] = exc
            return
        _import_analysis()

    preparing = threading.Thread(target=prepare, name="cachewhy-prepare", daemon=True)
    tmp = None
    if launched is None and args.metadata_file is None:
        try:  # private, named by our pid: a later run removes it if this one is killed
            tmp = launch.make_workdir()
        except OSError as exc:
            raise CachewhyError(str(exc)) from None
    try:
        result = buildx.run_build(args, on_line, on_start=preparing.start,
                                  workdir=Path(tmp) if tmp is not None else None, launched=launched)
        preparing.join()
        if args.quiet:  # first: whatever happens to the analysis, stdout is buildx's -q stdout
            _print_image_id(args, result)
        if result.reader_error is not None:  # the events are partial: no analysis to trust
            if debug:
                traceback.print_exception(result.reader_error)
            sys.stderr.write(f"cachewhy: internal error while reading the build's events: {result.reader_error!r} "
                             "(run with --debug for the traceback); buildx ran to its end, the build ran "
                             "without analysis\n")
            return result.returncode
        fold_early()  # buildx ended before the events were made
        if state["held"]:  # what docker said before any step: one line of ours when we know what is missing
            from analyzer.docker_setup import diagnose  # noqa: PLC0415

            said = diagnose(state["held"]) if result.returncode != 0 else None
            if said is not None:
                sys.stderr.write(f"cachewhy: {said}\n")
                from analyzer.docker_setup import buildx_missing  # noqa: PLC0415

                # no buildx ran: docker's 125 is no buildx exit code; a daemon buildx could not reach keeps its own
                return EngineError.exit_code if said == buildx_missing() else result.returncode
            for m in state["held"]:
                sys.stderr.write(m if m.endswith("\n") else m + "\n")
            state["held"].clear()
        events, progress = state.get("events"), state.get("progress")
        if events is not None and progress is not None and "view_error" not in state:
            try:
                progress.finish(events)
            except Exception as exc:  # noqa: BLE001 - see view_failed
                view_failed(exc)
        baseline = state["baseline"]
        df_text = state["df_text"]
        if baseline is None:  # the store or the previous record could not be set up
            err = state.get("error")
            if debug and err is not None:
                traceback.print_exception(err)
            sys.stderr.write(f"cachewhy: {err if isinstance(err, CachewhyError) else repr(err)}; "
                             "the build ran without analysis\n")
            return result.returncode
        if result.interrupted:
            sys.stderr.write(f"cachewhy: build stopped by {result.interrupted}; showing what was seen\n")
        if events is None or not events.vertices:
            return result.returncode  # buildx refused the arguments or could not start: it said why
        report = None
        try:
            from analyzer import sources  # noqa: PLC0415
            from analyzer.deliver import deliver  # noqa: PLC0415
            from analyzer.pipeline import analyse  # noqa: PLC0415
            from analyzer.sources.run import from_run  # noqa: PLC0415

            inp = from_run(events, args, result, dockerfile_text=df_text, dockerfile_path=df_path,
                           snapshot=baseline.snapshot(), named_snapshots=baseline.named_snapshots())
            outcome = analyse(input=inp, baseline=sources.Baseline(baseline.previous, baseline.notes,
                                                                   baseline.store))
            report = outcome.report  # the gates read it, even when an output cannot be written
            scored = None
            if prediction is not None:
                from analyzer.predict import score  # noqa: PLC0415

                scored = outcome.record["prediction"] = score(prediction.report, outcome.report)
            try:
                # -q with --live none: nothing of cachewhy's on the terminal (files and record are written)
                deliver(outcome, opts.outputs, baseline.store, width,
                        terminal=not (args.quiet and opts.live == "none"))
            finally:  # the next CI job's baseline, even when a report file could not be written
                baseline.export(outcome.record, result.returncode)
            if scored is not None:
                from analyzer.predict import score_lines  # noqa: PLC0415

                sys.stderr.write("\n".join(score_lines(scored, width)) + "\n")
        except CachewhyError as exc:
            sys.stderr.write(f"cachewhy: {exc}\n")
        except Exception as exc:  # the build's result must survive any analysis bug
            if debug:
                traceback.print_exc()
            sys.stderr.write(f"cachewhy: internal error while analysing the build: {exc!r} "
                             f"(run with --debug for the traceback); the build's exit code is kept\n")
    finally:
        if tmp is not None:
            launch.remove_workdir(tmp)
        elif launched is not None:
            launch.remove_workdir(launched.workdir)
    return opts.gates.apply(report, result.returncode)  # the build's own failure wins


def _predict_first(opts: BuildOptions, args, width: int, debug: bool):  # type: ignore[no-untyped-def]
    """`--predict`: the prediction, shown before buildx starts; a prediction that
    cannot be made is said in one line and the build goes on."""
    try:
        from analyzer.deliver import show  # noqa: PLC0415
        from analyzer.pipeline import analyse  # noqa: PLC0415
        from analyzer.sources.prediction import from_args  # noqa: PLC0415

        got = analyse(*from_args(args, store_dir=opts.store, against=opts.against))
        show(got.report, None, width)
        return got
    except Exception as exc:  # noqa: BLE001 - the build runs whatever the prediction does
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"cachewhy: no prediction: {exc if isinstance(exc, CachewhyError) else repr(exc)}\n")
        return None


def _print_image_id(args, result) -> None:  # type: ignore[no-untyped-def]
    """stdout as `docker buildx build -q` leaves it: the image id line after a
    build that succeeded (empty for outputs without an image), nothing after a
    failed one. With --call/--check, buildx's own stdout stands as it is."""
    if result.returncode != 0 or args.call not in (None, "build"):
        return
    import json  # noqa: PLC0415

    from analyzer.buildx import image_id  # noqa: PLC0415

    metadata: dict = {}
    if result.metadata_path is not None:
        try:
            got = json.loads(result.metadata_path.read_text(encoding="utf-8"))
            metadata = got if isinstance(got, dict) else {}
        except (OSError, ValueError):
            metadata = {}
    try:
        sys.stdout.write(image_id(metadata) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def _lower_priority() -> None:
    """Lower the priority of the calling thread only (Linux: a thread is a task
    of its own), and of the threads it starts, so that buildx and the engine
    go first on a busy machine; the build's lines are still read at full
    priority on the main thread."""
    if sys.platform.startswith("linux"):
        import threading  # noqa: PLC0415

        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass


def _import_analysis() -> None:
    """Import what the analysis after the build needs, while buildx runs."""
    import networkx  # noqa: F401, PLC0415 - the build graph (graph.build_graph)

    import analyzer.advice  # noqa: F401, PLC0415 - the report's fixes (report.model imports it when used)
    import analyzer.deliver  # noqa: F401, PLC0415
    import analyzer.explain  # noqa: F401, PLC0415
    import analyzer.pipeline  # noqa: F401, PLC0415
    import analyzer.sources.run  # noqa: F401, PLC0415
    import analyzer.provenance  # noqa: F401, PLC0415
    import analyzer.record  # noqa: F401, PLC0415
    import analyzer.report.model  # noqa: F401, PLC0415
    import analyzer.report.text  # noqa: F401, PLC0415
    import analyzer.store  # noqa: F401, PLC0415
