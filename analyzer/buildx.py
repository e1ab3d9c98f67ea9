"""Run `docker buildx build --progress=rawjson` and hand its stderr over line by line.

python-on-whales is not used to run the build: its streaming build merges
stdout and stderr (stdout may carry an image tarball with `--output -`), only
raises after the stream ends, holds the whole stderr in memory, cannot pass
flags it does not know (`--no-cache-filter`, `--call`, `--annotation` ...),
and gives no handle on the process to forward Ctrl-C. So buildx runs as a
plain subprocess here: stdin and stdout stay the user's, stderr is ours.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from analyzer.errors import EngineError
from analyzer.launch import QUIET_FLAGS, VALUE_FLAGS  # noqa: F401 - buildx flags that take a value (kept here too)

if TYPE_CHECKING:
    from analyzer.launch import Started


def local_context(context: str | None) -> Path | None:
    """The local context folder of a build's context argument, or None for `-`,
    URLs and git contexts."""
    if context is None or context == "-" or "://" in context or context.startswith("git@"):
        return None
    return Path(context)


@dataclass
class BuildArgs:
    """What cachewhy needs to know of the user's buildx arguments."""

    argv: list[str]  # passed to buildx unchanged (but for --progress)
    context: str | None = None
    dockerfile: str | None = None  # -f as given
    target: str | None = None
    platforms: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_filter: list[str] = field(default_factory=list)
    cache_from: list[str] = field(default_factory=list)
    cache_to: list[str] = field(default_factory=list)
    metadata_file: str | None = None
    builder: str | None = None
    progress: str | None = None  # the user's --progress, which cachewhy replaces
    build_contexts: dict[str, str] = field(default_factory=dict)  # --build-context name=value, as given
    # -q/--quiet: buildx refuses it with rawjson, so it is not passed on; cachewhy
    # prints the image id itself (image_id) and shows no progress
    quiet: bool = False
    call: str | None = None  # --call METHOD (--check is --call=check)

    @property
    def context_dir(self) -> Path | None:
        return local_context(self.context)

    def dockerfile_path(self) -> Path | None:
        return dockerfile_path_of(self.dockerfile, self.context_dir)


def dockerfile_path_of(dockerfile: str | None, context_dir: Path | None) -> Path | None:
    """Where the Dockerfile is: -f as given (relative to here), else the context's
    Dockerfile; None for `-f -` (stdin) and contexts that are not folders."""
    if dockerfile == "-":
        return None
    if dockerfile:
        p = Path(dockerfile)
        return p if p.is_absolute() else Path.cwd() / p
    return context_dir / "Dockerfile" if context_dir is not None else None


def parse_args(argv: list[str]) -> BuildArgs:
    """Read the user's `docker buildx build` arguments without changing them."""
    out = BuildArgs(argv=[])
    positional: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            positional.extend(argv[i + 1:])
            out.argv.extend(argv[i:])
            break
        if tok.startswith("-") and tok != "-":
            name, eq, value = tok.partition("=")
            takes_value = name in VALUE_FLAGS
            if takes_value and not eq:
                if i + 1 >= len(argv):
                    out.argv.append(tok)  # buildx will say what is missing
                    i += 1
                    continue
                value = argv[i + 1]
                i += 2
            else:
                i += 1
            if name == "--progress":
                out.progress = value
                continue
            if name in QUIET_FLAGS:
                out.quiet = not eq or value.lower() not in ("false", "0")
                continue
            out.argv.extend([tok] if eq or not takes_value else [tok, value])
            _note(out, name, value)
            continue
        positional.append(tok)
        out.argv.append(tok)
        i += 1
    if positional:
        out.context = positional[-1]
    return out


def _note(out: BuildArgs, name: str, value: str) -> None:
    if name in ("-f", "--file"):
        out.dockerfile = value
    elif name == "--target":
        out.target = value
    elif name == "--platform":
        out.platforms.extend(p.strip() for p in value.split(",") if p.strip())
    elif name == "--build-arg":
        key, eq, val = value.partition("=")
        # `--build-arg NAME` takes the value from the environment, as buildx does
        out.build_args[key] = val if eq else os.environ.get(key)
    elif name == "--no-cache":
        out.no_cache = True
    elif name == "--no-cache-filter":
        out.no_cache_filter.extend(v for v in value.split(",") if v)
    elif name == "--cache-from":
        out.cache_from.append(value)
    elif name == "--cache-to":
        out.cache_to.append(value)
    elif name == "--metadata-file":
        out.metadata_file = value
    elif name == "--builder":
        out.builder = value
    elif name == "--build-context":
        key, eq, val = value.partition("=")
        if eq and key:
            out.build_contexts[key] = val
    elif name == "--call":
        out.call = value
    elif name == "--check":
        out.call = "check"


def docker_command() -> list[str]:
    """The docker CLI to call: CACHEWHY_DOCKER (words) or `docker` on PATH."""
    custom = os.environ.get("CACHEWHY_DOCKER")
    if custom:
        return custom.split()
    import shutil  # noqa: PLC0415 - `analyze` reads buildx arguments without running docker

    exe = shutil.which("docker")
    if exe is None:
        from analyzer.docker_setup import docker_missing  # noqa: PLC0415

        raise EngineError(docker_missing())
    return [exe]


#: Signals whose default action ends cachewhy: each ends buildx first (run_build.forward).
#: SIGKILL cannot be caught: the kernel's parent-death signal covers it (launch.spawn_tied).
_ENDING_SIGNALS = tuple(getattr(signal, s) for s in (
    "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF",
    "SIGXCPU", "SIGPWR") if hasattr(signal, s))


@dataclass
class RunResult:
    returncode: int
    started: float
    ended: float
    metadata_path: Path | None  # where buildx wrote --metadata-file, if it did
    interrupted: str | None = None  # "SIGINT", "SIGTERM" when the user stopped it
    command: list[str] = field(default_factory=list)
    # a bug of ours while reading the stream (on_line raised): the lines after it
    # were drained unread, so buildx ran to its end, but the events are partial
    reader_error: BaseException | None = None


def run_build(args: BuildArgs, on_line: Callable[[str], None], on_start: Callable[[], None] | None = None,
              workdir: Path | None = None, launched: "Started | None" = None) -> RunResult:
    """Run buildx, calling `on_line` for each stderr line as it arrives.

    Provenance is asked for (BUILDX_METADATA_PROVENANCE=max into a metadata
    file) unless the user set their own: it maps vertices to Dockerfile lines.
    Ctrl-C and SIGTERM are forwarded so buildx cancels the build cleanly; the
    lines seen until it exits are still handed over. `launched`: the same
    command, already started by analyzer/launch.py.
    """
    meta_path: Path | None
    if launched is not None:
        proc: "Started | subprocess.Popen[bytes]" = launched
        cmd = launched.cmd
        started = launched.started
        meta_path = Path(args.metadata_file) if args.metadata_file else Path(str(launched.workdir)) / "metadata.json"
    else:
        import subprocess  # noqa: PLC0415

        env = dict(os.environ)
        extra: list[str] = []
        if args.metadata_file:
            meta_path = Path(args.metadata_file)
        else:
            from analyzer.launch import make_workdir  # noqa: PLC0415

            tmp = Path(workdir) if workdir else Path(make_workdir())
            meta_path = tmp / "metadata.json"
            extra = ["--metadata-file", str(meta_path)]
            # our own file: ask for full provenance (the user's file stays as they asked)
            env.setdefault("BUILDX_METADATA_PROVENANCE", "max")
        cmd = [*docker_command(), "buildx", "build", "--progress=rawjson", *extra, *args.argv]
        started = time.time()
        from analyzer.launch import die_with_parent  # noqa: PLC0415

        if sys.platform.startswith("linux"):
            import ctypes  # noqa: F401, PLC0415 - imported here: the child may not import (threads)
        parent = os.getpid()
        try:
            # tied to cachewhy: its death (kill -9 too) stops buildx (launch.die_with_parent)
            proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env,  # noqa: PLW1509
                                    preexec_fn=lambda: die_with_parent(parent))
        except OSError as exc:
            raise EngineError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from exc

    stopped: list[str] = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signal.Signals(signum).name)
        if len(stopped) > 3:  # the user insists: stop waiting for buildx
            proc.kill()
        elif proc.poll() is None:
            # Ctrl-C as Ctrl-C; any other ending signal (SIGHUP, SIGUSR1…, which buildx
            # would ignore or die of without cancelling) as SIGTERM: buildx cancels the build
            proc.send_signal(signum if signum in (signal.SIGINT, signal.SIGTERM) else signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in _ENDING_SIGNALS}
    reader_error: BaseException | None = None
    try:
        if on_start is not None:
            try:
                on_start()
            except Exception as exc:  # noqa: BLE001 - as below
                reader_error = exc
        assert proc.stderr is not None
        for raw in proc.stderr:
            if reader_error is None:
                try:
                    on_line(raw.decode("utf-8", errors="replace"))
                except Exception as exc:  # noqa: BLE001 - ours; buildx must still run to its end
                    reader_error = exc
            # else: drained unread, so that buildx never blocks on a full pipe
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if rc < 0:  # killed by a signal: report it the way a shell would
        rc = 128 + (-rc)
    return RunResult(
        returncode=rc, started=started, ended=time.time(),
        metadata_path=meta_path if meta_path.is_file() else None,
        interrupted=stopped[0] if stopped else None, command=cmd, reader_error=reader_error,
    )


def image_id(metadata: dict) -> str:
    """What `docker buildx build -q` prints on stdout for a build that succeeded:
    the image config's digest when the exporter reports one, else the image
    manifest's digest, else nothing (cacheonly, local and tar outputs). The
    same line with --iidfile; checked on buildx 0.29 (tests/integration/test_quiet.py)."""
    value = metadata.get("containerimage.config.digest") or metadata.get("containerimage.digest") or ""
    return value if isinstance(value, str) else ""
