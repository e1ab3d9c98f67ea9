"""Start buildx before the rest of cachewhy is imported (`cachewhy build`).

A warm build takes buildx about half a second; importing cachewhy's command
modules (dataclasses, subprocess, tempfile, json ...) before launching it
would add tens of milliseconds to every build. So cli.py calls `start` first:
with only os, sys and signal imported, it splits cachewhy's own options from
the user's buildx arguments, makes the temporary folder for the metadata file
and spawns buildx with its stderr on a pipe. commands/build.py then parses
the options for real and `take`s the process only when it was started with
exactly the command it would have run itself (`take`); otherwise it stops
it and starts buildx the ordinary way (buildx.run_build).

Nothing here may import more than the standard library's os, sys and signal
(and analyzer.options, which imports nothing).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping

from analyzer.errors import UsageError
from analyzer.options import check_typos, take_options, wants_help

# `docker buildx build` flags that take a value; anything else starting with
# "-" is a switch. Only needed to tell the context PATH from flag values.
VALUE_FLAGS = frozenset({
    "--add-host", "--allow", "--annotation", "--attest", "--build-arg",
    "--build-context", "--builder", "--cache-from", "--cache-to", "--call",
    "--cgroup-parent", "-f", "--file", "--iidfile", "--label", "--metadata-file",
    "--network", "--no-cache-filter", "-o", "--output", "--platform", "--progress",
    "--provenance", "--sbom", "--secret", "--shm-size", "--ssh", "-t", "--tag",
    "--target", "--ulimit", "--policy", "--source-policy-file",
})

# buildx's quiet flag: refused by buildx together with --progress=rawjson, so
# cachewhy takes it out and prints the image id itself (commands/build.py)
QUIET_FLAGS = frozenset({"-q", "--quiet"})

# `docker buildx build` flags that take no value (and the hidden ones buildx
# still accepts): with VALUE_FLAGS, what buildx knows, so that an unknown
# option one edit away from one of cachewhy's can be refused as a typo.
SWITCH_FLAGS = frozenset({
    "--check", "-D", "--debug", "--load", "--no-cache", "--pull", "--push", "-q", "--quiet",
    "--detach", "--print", "--compress", "--force-rm", "--rm", "--squash", "--stream",
})
BUILDX_FLAGS = VALUE_FLAGS | SWITCH_FLAGS

# The options of `cachewhy build` (commands/build.py: _OPTIONS, the switches),
# by name only; a unit test keeps these in step with build.py. A name missing
# here only costs the early start: build.py then sees another buildx command
# and starts buildx itself.
OWN_OPTIONS = frozenset({
    "--report-json", "--report-md", "--report-sarif", "--dot", "--svg", "--html",
    "--fail-below-hit-ratio", "--fail-on", "--fail-above-time",
    "--live", "--width", "--store", "--against", "--baseline",
})
OWN_SWITCHES = frozenset({"--show-values"})

# the signals Python ignores that a child should not inherit ignored (as subprocess does)
_RESET_SIGNALS = tuple(getattr(signal, s) for s in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, s))


class Started:
    """A buildx process started here; the parts of subprocess.Popen that run_build uses."""

    def __init__(self, pid: int, stderr_fd: int, cmd: list[str], buildx_argv: list[str],
                 own_metadata: bool, workdir: str | None, started: float) -> None:
        self.pid = pid
        self.stderr = os.fdopen(stderr_fd, "rb")
        self.cmd = cmd
        self.buildx_argv = buildx_argv  # the user's buildx arguments, --progress taken out
        self.own_metadata = own_metadata  # cachewhy's --metadata-file in workdir
        self.workdir = workdir
        self.started = started
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except InterruptedError:
                continue
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        """Cancel it (as Ctrl-C would), wait for it, and remove its folder."""
        self.send_signal(signal.SIGINT)
        self.stderr.close()
        self.wait()
        remove_workdir(self.workdir)


_started: Started | None = None


def start(argv: list[str]) -> None:
    """Start buildx for `cachewhy build ARGV` if that can be done without the
    rest of cachewhy; any doubt (help, --against, which must be checked
    before building, a usage error) leaves it to commands/build.py."""
    global _started  # noqa: PLW0603
    if wants_help(argv) or any(a == "--against" or a.startswith("--against=") for a in argv):
        return
    head = argv[: argv.index("--")] if "--" in argv else argv
    if "--predict" in head:  # the prediction is printed before buildx starts
        return
    try:
        check_typos(argv, OWN_OPTIONS | OWN_SWITCHES, OWN_OPTIONS, BUILDX_FLAGS, VALUE_FLAGS)
        _found, rest = take_options(argv, {name: name for name in OWN_OPTIONS}, {s: s for s in OWN_SWITCHES},
                                    foreign_value_flags=VALUE_FLAGS)
    except UsageError:
        return
    if "-" in _found.values():  # a report to stdout: build.py checks that buildx does not write there
        return
    buildx_argv, user_metadata = _without_progress(rest)
    workdir = None
    env: Mapping[str, str] = os.environ
    extra: list[str] = []
    if not user_metadata:
        workdir = _make_workdir()
        if workdir is None:
            return
        extra = ["--metadata-file", os.path.join(workdir, "metadata.json")]
        if "BUILDX_METADATA_PROVENANCE" not in env:
            env = dict(env, BUILDX_METADATA_PROVENANCE="max")
    custom = os.environ.get("CACHEWHY_DOCKER")
    docker = custom.split() if custom else ["docker"]
    cmd = [*docker, "buildx", "build", "--progress=rawjson", *extra, *buildx_argv]
    r, w = os.pipe()
    try:
        now = time.time()
        pid = spawn_tied(cmd, env, w)
    except OSError:  # no docker on PATH and the like: build.py says so properly
        os.close(r)
        remove_workdir(workdir)
        return
    finally:
        os.close(w)
    _started = Started(pid, r, cmd, buildx_argv, not user_metadata, workdir, now)


#: The signal buildx gets when cachewhy dies, however it dies (kill -9 included): buildx
#: cancels the build on it, as on Ctrl-C, and exits.
DEATH_SIGNAL = signal.SIGTERM


def die_with_parent(parent: int) -> None:
    """In a child before exec: ask the kernel for DEATH_SIGNAL when the parent dies
    (Linux prctl PR_SET_PDEATHSIG; nothing elsewhere), and go at once if it is gone already."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # noqa: PLC0415 - in the child only: the parent never pays for it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(DEATH_SIGNAL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(128 + int(DEATH_SIGNAL))


def spawn_tied(cmd: list[str], env: Mapping[str, str], stderr_fd: int) -> int:
    """Start `cmd` with its stderr on `stderr_fd`, tied to this process: when cachewhy
    dies (any signal, kill -9 too) the kernel stops it (die_with_parent).

    posix_spawn cannot run code in the child, so this forks (the process is small
    and single-threaded here) and reports a failed exec back through a close-on-exec
    pipe, as OSError, like posix_spawnp did."""
    parent = os.getpid()
    err_r, err_w = os.pipe2(os.O_CLOEXEC) if hasattr(os, "pipe2") else os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing here may raise
        try:
            os.close(err_r)
            os.dup2(stderr_fd, 2)
            for s in _RESET_SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            die_with_parent(parent)
            os.execvpe(cmd[0], cmd, env)
        except OSError as exc:
            try:
                os.write(err_w, str(exc.errno or 0).encode())
            except OSError:
                pass
        finally:
            os._exit(127)
    os.close(err_w)
    try:
        data = b""
        while True:
            chunk = os.read(err_r, 32)  # EOF: the exec succeeded (the pipe closed on it)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(err_r)
    if data:
        os.waitpid(pid, 0)
        code = int(data.decode() or 0)
        raise OSError(code, os.strerror(code), cmd[0])
    return pid


def take(buildx_argv: list[str], user_metadata: str | None) -> Started | None:
    """The buildx started by `start`, when it runs exactly the command that
    commands/build.py would run (same buildx arguments, same metadata file
    choice); else None, having stopped it."""
    global _started  # noqa: PLW0603
    got, _started = _started, None
    if got is None:
        return None
    if got.buildx_argv == buildx_argv and got.own_metadata == (user_metadata is None):
        return got
    got.stop()
    return None


def discard() -> None:
    """Stop a buildx started here that will not be used (a usage error, --help)."""
    global _started  # noqa: PLW0603
    got, _started = _started, None
    if got is not None:
        got.stop()


def _without_progress(argv: list[str]) -> tuple[list[str], bool]:
    """buildx.parse_args's reading of `argv`, only as far as the command line
    depends on it: the arguments without --progress and -q, and whether
    --metadata-file is given."""
    out: list[str] = []
    metadata = False
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            out.extend(argv[i:])
            break
        if tok.startswith("-") and tok != "-":
            name, eq, _value = tok.partition("=")
            takes_value = name in VALUE_FLAGS
            if takes_value and not eq:
                if i + 1 >= len(argv):
                    out.append(tok)
                    i += 1
                    continue
                i += 2
            else:
                i += 1
            if name == "--progress" or name in QUIET_FLAGS:
                continue
            if name == "--metadata-file":
                metadata = True
            out.extend([tok] if eq or not takes_value else [tok, argv[i - 1]])
            continue
        out.append(tok)
        i += 1
    return out, metadata


def _temp_base() -> str:
    return next((os.environ[v] for v in ("TMPDIR", "TEMP", "TMP") if os.environ.get(v)), "/tmp")


#: A private folder of one cachewhy process: `cachewhy-<pid>-<random hex>`. The pid
#: lets a later run remove what a killed one (kill -9) left: the metadata file
#: there holds build-arg values in clear.
WORKDIR_PREFIX = "cachewhy-"


def _make_workdir() -> str | None:
    """A private temporary folder (tempfile.mkdtemp's job, without importing tempfile)."""
    base = _temp_base()
    sweep_workdirs(base)
    for _ in range(10):
        path = os.path.join(base, f"{WORKDIR_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        except OSError:
            return None
        return os.path.abspath(path)
    return None


def make_workdir() -> str:
    """The private folder of this process for buildx's metadata file; OSError when none can be made."""
    got = _make_workdir()
    if got is None:
        raise OSError(f"cannot make a private folder in {_temp_base()}")
    return got


def sweep_workdirs(base: str | None = None) -> list[str]:
    """Remove the private folders of cachewhy processes that are gone (killed before they
    could clean up); return their paths. Only folders of this user, mode 0700, named
    `cachewhy-<pid>-<hex>` with no process `pid`, are touched."""
    base = base or _temp_base()
    removed: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for name in names:
        if not name.startswith(WORKDIR_PREFIX):
            continue
        pid_s, _, tail = name[len(WORKDIR_PREFIX):].partition("-")
        if not pid_s.isdigit() or not tail or int(pid_s) == os.getpid():
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if (not (st.st_mode & 0o170000 == 0o040000) or (uid is not None and st.st_uid != uid)
                or st.st_mode & 0o077):
            continue
        try:
            os.kill(int(pid_s), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue
        remove_workdir(path)
        removed.append(path)
    return removed


def remove_workdir(path: str | None) -> None:
    if path is None:
        return
    try:
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
    except OSError:
        pass


if sys.platform == "win32" or not hasattr(os, "posix_spawnp"):  # pragma: no cover
    def start(argv: list[str]) -> None:  # type: ignore[no-redef]  # noqa: F811, ARG001
        """No posix_spawn here: build.py starts buildx itself."""
