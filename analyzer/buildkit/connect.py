"""A gRPC channel to a BuildKit daemon, and the few calls cachewhy makes.

Two ways in:

* a builder of docker buildx (`--builder NAME`, or the current one): each
  connection grpcio opens to a private unix socket is bridged to a fresh
  `docker buildx dial-stdio [--builder NAME]` process, bytes copied both ways
  by two threads (half-closed on EOF). This works for every buildx driver and
  respects docker contexts;
* a buildkitd address (`unix:///run/buildkit/buildkitd.sock`, `tcp://host:port`):
  grpcio dials it directly.

Every call has a deadline. Errors become one-line EngineErrors (exit 3).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from analyzer.buildkit import (
    content_pb2,
    content_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
)
from analyzer.errors import EngineError

#: Seconds allowed for a unary call, and for a whole finite stream.
CALL_TIMEOUT = 30.0
STREAM_TIMEOUT = 120.0
_CHUNK = 1 << 16


def is_address(builder: str | None) -> bool:
    return bool(builder) and builder.startswith(("unix://", "tcp://"))  # type: ignore[union-attr]


class _Bridge:
    """A unix socket whose every connection is a `docker buildx dial-stdio` process."""

    def __init__(self, builder: str | None) -> None:
        docker = shutil.which("docker")
        if docker is None:
            raise EngineError("docker is not installed (or not on PATH): cannot reach a buildx builder")
        self.argv = [docker, "buildx", "dial-stdio", *(["--builder", builder] if builder else [])]
        self.dir = tempfile.mkdtemp(prefix="cachewhy-bk-")
        self.path = os.path.join(self.dir, "bk.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.closed = False
        self.procs: list[subprocess.Popen[bytes]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name="cachewhy-bridge", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
            except OSError as exc:
                self.errors.append(f"cannot run docker buildx dial-stdio: {exc.strerror or exc}")
                conn.close()
                continue
            with self.lock:
                self.procs.append(proc)
            threading.Thread(target=self._up, args=(conn, proc), daemon=True).start()
            threading.Thread(target=self._down, args=(conn, proc), daemon=True).start()
            threading.Thread(target=self._stderr, args=(proc,), daemon=True).start()

    @staticmethod
    def _up(conn: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        """socket -> helper's stdin; EOF closes the stdin."""
        try:
            while True:
                data = conn.recv(_CHUNK)
                if not data:
                    break
                proc.stdin.write(data)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            pass
        finally:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    @staticmethod
    def _down(conn: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        """helper's stdout -> socket; EOF half-closes the socket."""
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        try:
            while True:
                data = os.read(fd, _CHUNK)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _stderr(self, proc: subprocess.Popen[bytes]) -> None:
        data = proc.stderr.read() if proc.stderr else b""  # type: ignore[union-attr]
        text = data.decode("utf-8", "replace").strip()
        if text:
            line = text.splitlines()[-1]
            self.errors.append(line[len("ERROR: "):] if line.startswith("ERROR: ") else line)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """The calls cachewhy makes on a builder; use as a context manager."""

    def __init__(self, builder: str | None = None) -> None:
        self.builder = builder
        self.label = builder or "the current buildx builder"
        self._bridge: _Bridge | None = None
        if is_address(builder):
            target = builder if builder.startswith("unix://") else builder[len("tcp://"):]  # type: ignore[union-attr]
        else:
            self._bridge = _Bridge(builder)
            target = f"unix:{self._bridge.path}"
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.enable_retries", 0),
        ])
        self.control = control_pb2_grpc.ControlStub(self.channel)
        self.content = content_pb2_grpc.ContentStub(self.channel)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
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
            return EngineError(f"{self.label} does not support {what} (BuildKit too old: build history "
                               f"needs BuildKit 0.11 or later)")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return EngineError(f"cannot reach {self.label}: {detail or code.name.lower()}")  # type: ignore[union-attr]
        if code == grpc.StatusCode.NOT_FOUND:
            return EngineError(f"{what}: not found on {self.label}: {detail}")
        name = code.name if code is not None else "error"
        return EngineError(f"{what} failed on {self.label}: {name}: {detail}")

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
