"""A gRPC channel to a BuildKit daemon, and the few calls cachewhy makes.

Three ways in (analyzer/buildkit/address.py parses `--builder`):

* a builder of docker buildx (`--builder NAME`, or the current one): each
  connection grpcio opens to a private unix socket is carried by a fresh
  `docker buildx dial-stdio` process, whose stdin and stdout are one end of a
  socket pair, bytes copied both ways by two threads (half-closed on EOF).
  This works for every buildx driver and respects docker contexts;
* a docker engine's socket (`docker://`): the same bridge, each connection
  upgraded on the engine API's `/grpc` endpoint instead of a helper process;
* a buildkitd address (`unix:///run/buildkit/buildkitd.sock`, `tcp://host:port`,
  with TLS when a CA is given): grpcio dials it directly.

Every call has a deadline. Errors become one-line EngineErrors (exit 3).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

# grpc's C core logs failures (a refused TLS handshake, say) to stderr on its
# own; cachewhy says what went wrong in one line instead
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402

from analyzer.buildkit import (
    content_pb2,
    content_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
)
from analyzer.buildkit.address import Target, Tls, parse_target
from analyzer.errors import EngineError

#: Seconds allowed for a unary call, and for a whole finite stream.
CALL_TIMEOUT = 30.0
STREAM_TIMEOUT = 120.0
_CHUNK = 1 << 16


def _is_docker_context(docker: str, name: str) -> bool:
    try:
        return subprocess.run([docker, "context", "inspect", name], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=CALL_TIMEOUT, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def dial_stdio_argv(builder: str | None) -> list[str]:
    """The docker CLI command that carries one connection to a buildx builder."""
    docker = shutil.which("docker")
    if docker is None:
        from analyzer.docker_setup import docker_missing  # noqa: PLC0415

        raise EngineError(docker_missing())
    if builder and _is_docker_context(docker, builder):
        # the docker-driver builder of a context: buildx refuses `--builder` for
        # it unless it is the current context, so select the context instead
        return [docker, "--context", builder, "buildx", "dial-stdio"]
    return [docker, "buildx", "dial-stdio", *(["--builder", builder] if builder else [])]


_UPGRADE = (b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 0\r\n\r\n")


def dockerd_grpc(path: str) -> tuple[socket.socket, bytes]:
    """A connection to a docker engine's socket, upgraded on `/grpc` to the
    gRPC of its BuildKit (the way the docker CLI reaches it); and any bytes
    that came after the upgrade's answer. Raises OSError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CALL_TIMEOUT)
        sock.connect(path)
        sock.sendall(_UPGRADE)
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data or len(head) > 65536:
                raise OSError("the engine closed the connection before upgrading it")
            head += data
        head, _, rest = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if " 101 " not in status + " ":
            raise OSError(f"the engine refused the /grpc upgrade: {status.strip()}")
        sock.settimeout(None)
        return sock, rest
    except BaseException:
        sock.close()
        raise


class _Bridge:
    """A unix socket whose every connection is carried to the builder by a
    fresh `docker buildx dial-stdio` process (argv), or upgraded on a docker
    engine's `/grpc` endpoint (dockerd: the engine's socket path)."""

    def __init__(self, argv: list[str] | None = None, dockerd: str | None = None) -> None:
        self.argv = argv
        self.dockerd = dockerd
        self.dir = tempfile.mkdtemp(prefix="cachewhy-bk-")
        self.path = os.path.join(self.dir, "bk.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.closed = False
        self.procs: list[subprocess.Popen[bytes]] = []
        self.socks: list[socket.socket] = []  # both ends of every carried connection
        self.errors: list[str] = []
        self.said: list[str] = []  # the dial-stdio processes' whole stderr
        self.readers: list[threading.Thread] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name="cachewhy-bridge", daemon=True).start()

    def _open(self) -> tuple[socket.socket, bytes]:
        """The far end of one connection (a socket), and bytes already read from it."""
        if self.dockerd is not None:
            try:
                return dockerd_grpc(self.dockerd)
            except OSError as exc:
                raise OSError(f"cannot connect to the docker engine at unix://{self.dockerd}: "
                              f"{exc.strerror or exc}") from None
        if self.argv is None:  # neither a docker engine nor a helper command: nothing to connect through
            raise OSError("no way to reach the builder (no dockerd socket, no dial-stdio command)")
        ours, theirs = socket.socketpair()
        try:
            # the helper's stdin and stdout are one socket: half-closing ours ends its input
            proc = subprocess.Popen(self.argv, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            ours.close()
            raise OSError(f"cannot run docker buildx dial-stdio: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        reader = threading.Thread(target=self._stderr, args=(proc,), daemon=True)
        with self.lock:
            self.procs.append(proc)
            self.readers.append(reader)
        reader.start()
        return ours, b""

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                far, early = self._open()
                if early:
                    conn.sendall(early)
            except OSError as exc:
                self.errors.append(str(exc))
                conn.close()
                continue
            with self.lock:
                self.socks += [conn, far]
            threading.Thread(target=_pump, args=(conn, far), daemon=True).start()
            threading.Thread(target=_pump, args=(far, conn), daemon=True).start()

    def _stderr(self, proc: subprocess.Popen[bytes]) -> None:
        data = proc.stderr.read() if proc.stderr else b""  # type: ignore[union-attr]
        text = data.decode("utf-8", "replace").strip()
        if text:
            self.said.append(text)  # all of it: docker names a missing plugin before its last line
            line = text.splitlines()[-1]
            self.errors.append(line[len("ERROR: "):] if line.startswith("ERROR: ") else line)

    def settle(self, timeout: float = 3.0) -> None:
        """Wait (briefly) for what the dial-stdio processes that ended said: a
        failed call can come back before their stderr has been read."""
        deadline = time.monotonic() + timeout
        with self.lock:
            readers = list(self.readers)
        for t in readers:
            t.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            procs, socks = list(self.procs), list(self.socks)
        for sock in socks:  # the helpers read their end of file and end by themselves
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()  # the docker CLI does not end a plugin on SIGTERM: kill is what ends it
                proc.wait()
        for sock in socks:
            sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Bytes from src to dst; src's end of file half-closes dst."""
    try:
        while True:
            data = src.recv(_CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _quiet_grpc_threads() -> None:
    """Keep grpc's own threads from printing a traceback once the channel is
    being closed. A stream just cancelled (`watch` ended by Ctrl-C) can still
    be in flight in the channel's spin thread when the channel closes; that
    thread then fails on the closed queue ("'NoneType' object is not
    callable" in grpc/_channel.py). It is grpc's bookkeeping of a call we
    ended, not an error of the command; other threads' errors still print."""
    previous = threading.excepthook
    if getattr(previous, "cachewhy_quiet_grpc", False):
        return

    def hook(args: Any) -> None:
        tb = args.exc_traceback
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and "/grpc/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return
        previous(args)

    hook.cachewhy_quiet_grpc = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class Client:
    """The calls cachewhy makes on a builder; use as a context manager."""

    def __init__(self, target: "Target | str | None" = None) -> None:
        if not isinstance(target, Target):
            target = parse_target({"builder": target})
        self.label = target.label
        self.tls = target.tls is not None
        self._bridge: _Bridge | None = None
        options = [("grpc.max_receive_message_length", 256 << 20), ("grpc.enable_retries", 0)]
        if target.kind == "buildx":
            self._bridge = _Bridge(argv=dial_stdio_argv(target.where))
        elif target.kind == "docker":
            self._bridge = _Bridge(dockerd=target.where)
        if self._bridge is not None:
            self.channel = grpc.insecure_channel(f"unix:{self._bridge.path}", options=options)
        elif target.kind == "unix":
            self.channel = grpc.insecure_channel(f"unix://{target.where}", options=options)
        elif target.tls is None:
            self.channel = grpc.insecure_channel(str(target.where), options=options)
        else:
            self.channel = grpc.secure_channel(str(target.where), _credentials(target.tls), options=[
                *options, *([("grpc.ssl_target_name_override", target.tls.servername)]
                            if target.tls.servername else [])])
        self.control = control_pb2_grpc.ControlStub(self.channel)
        self.content = content_pb2_grpc.ContentStub(self.channel)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        _quiet_grpc_threads()
        try:
            self.channel.close()
        finally:
            if self._bridge is not None:
                self._bridge.close()

    # ----------------------------------------------------------------- errors

    def error(self, exc: grpc.RpcError, what: str) -> EngineError:
        code = exc.code() if hasattr(exc, "code") else None
        detail = (exc.details() if hasattr(exc, "details") else "") or ""
        if self._bridge is not None and self._bridge.errors:
            detail = self._bridge.errors[-1]
        detail = " ".join(detail.split())[:300]
        if code == grpc.StatusCode.UNIMPLEMENTED:
            version = "BuildKit too old" if what == "Info" else self._version()
            return EngineError(f"{self.label} does not support {what} ({version}: build history "
                               f"needs BuildKit 0.11 or later)")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            from analyzer.docker_setup import diagnose  # noqa: PLC0415

            said = None
            if self._bridge is not None:
                self._bridge.settle()
                said = diagnose(self._bridge.said + self._bridge.errors)
            if said is not None:  # no buildx plugin, no daemon: say which and what to do
                return EngineError(said)
            hint = ""
            if self.tls and any(w in detail for w in ("TSI", "SSL", "handshake", "certificate")):
                hint = " (the TLS handshake failed: check --tlscacert, --tlscert/--tlskey and --tlsservername)"
            return EngineError(f"cannot reach {self.label}: {detail or code.name.lower()}{hint}")  # type: ignore[union-attr]
        if code == grpc.StatusCode.NOT_FOUND:
            return EngineError(f"{what}: not found on {self.label}: {detail}")
        name = code.name if code is not None else "error"
        return EngineError(f"{what} failed on {self.label}: {name}: {detail}")

    def _version(self) -> str:
        """`BuildKit vX.Y.Z` from Info, for messages; `BuildKit too old` if Info fails too."""
        try:
            v = self.info().buildkitVersion
        except EngineError:
            return "BuildKit too old"
        return f"BuildKit {v.version or 'of unknown version'}"

    # ------------------------------------------------------------------ calls

    def info(self) -> Any:
        try:
            return self.control.Info(control_pb2.InfoRequest(), timeout=CALL_TIMEOUT, wait_for_ready=False)
        except grpc.RpcError as exc:
            raise self.error(exc, "Info") from None

    def history(self, *, ref: str = "", limit: int = 0, filters: list[str] | None = None) -> list[Any]:
        """The completed history records (newest first), ending at the present."""
        req = control_pb2.BuildHistoryRequest(EarlyExit=True, Ref=ref, Limit=limit, Filter=filters or [])
        out = []
        try:
            for ev in self.control.ListenBuildHistory(req, timeout=STREAM_TIMEOUT):
                if ev.type == control_pb2.COMPLETE and ev.record.Ref:
                    out.append(ev.record)
        except grpc.RpcError as exc:
            raise self.error(exc, "build history (ListenBuildHistory)") from None
        out.sort(key=lambda r: (r.CreatedAt.seconds, r.CreatedAt.nanos), reverse=True)
        return out

    def watch(self) -> Iterator[Any]:
        """History events of the builds running now and to come (no deadline:
        ended by cancel or Ctrl-C)."""
        req = control_pb2.BuildHistoryRequest(EarlyExit=False, ActiveOnly=True)
        call = self.control.ListenBuildHistory(req)
        self._watch_call = call
        try:
            yield from call
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                return
            raise self.error(exc, "build history (ListenBuildHistory)") from None
        finally:
            call.cancel()

    def status(self, ref: str) -> list[Any]:
        """The stored progress stream of a finished build (StatusResponse messages)."""
        try:
            return list(self.control.Status(control_pb2.StatusRequest(Ref=ref), timeout=STREAM_TIMEOUT))
        except grpc.RpcError as exc:
            raise self.error(exc, f"progress of build {ref} (Status)") from None

    def read_blob(self, digest: str, limit: int = 512 << 20) -> bytes:
        req = content_pb2.ReadContentRequest(digest=digest)
        parts = []
        total = 0
        try:
            for chunk in self.content.Read(req, timeout=STREAM_TIMEOUT):
                parts.append(chunk.data)
                total += len(chunk.data)
                if total > limit:
                    raise EngineError(f"blob {digest} is larger than {limit >> 20} MiB")
        except grpc.RpcError as exc:
            raise self.error(exc, f"blob {digest} (Content.Read)") from None
        return b"".join(parts)

    def disk_usage(self) -> list[Any]:
        try:
            return list(self.control.DiskUsage(control_pb2.DiskUsageRequest(), timeout=CALL_TIMEOUT).record)
        except grpc.RpcError as exc:
            raise self.error(exc, "DiskUsage") from None


def _credentials(tls: Tls) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise EngineError(f"cannot read {path}: {exc.strerror or exc}") from None

    return grpc.ssl_channel_credentials(root_certificates=read(tls.cacert), private_key=read(tls.key),
                                        certificate_chain=read(tls.cert))


def decode_logs_blob(data: bytes) -> list[Any]:
    """The StatusResponse frames of a history logs blob: `[uint32 LE length][message]`…"""
    out = []
    pos = 0
    while pos + 4 <= len(data):
        n = int.from_bytes(data[pos:pos + 4], "little")
        pos += 4
        if pos + n > len(data):
            break
        msg = control_pb2.StatusResponse()
        msg.ParseFromString(data[pos:pos + n])
        out.append(msg)
        pos += n
    return out
