"""Which BuildKit a command talks to: `--builder` and the TLS options, parsed.

Standard library only, so commands can parse and check their options before
grpc is imported.

* NAME (or nothing): a docker buildx builder, reached through
  `docker buildx dial-stdio` (every driver: docker, docker-container, remote,
  kubernetes, cloud);
* `unix:///path.sock`, `tcp://host:port`: a buildkitd address, dialled
  directly; `tcp://` with any TLS option is dialled over TLS (`--tlscacert`
  the CA to verify buildkitd by, else the system's; `--tlscert`/`--tlskey` a
  client certificate; `--tlsservername` when the certificate names another
  host);
* `docker://` or `docker://unix:///var/run/docker.sock`: the BuildKit inside a
  docker engine, through the engine API's `/grpc` endpoint (no docker CLI
  needed; `docker://` alone takes DOCKER_HOST, else the default socket).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from analyzer.errors import UsageError

BUILDER_OPTIONS = {"--builder": "builder", "--tlscacert": "tlscacert", "--tlscert": "tlscert",
                   "--tlskey": "tlskey", "--tlsservername": "tlsservername"}

BUILDER_HELP = """\
  --builder NAME     the buildx builder (default: the current one), a
                     buildkitd address (unix:///path.sock, tcp://host:port),
                     or docker:// (the docker engine's BuildKit, at
                     DOCKER_HOST or docker://unix:///var/run/docker.sock)
  --tlscacert FILE   with tcp://: the CA certificate to verify buildkitd by
  --tlscert FILE     with tcp://: a client certificate (and --tlskey FILE)
  --tlsservername N  with tcp://: the name buildkitd's certificate holds
"""

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Tls:
    cacert: str | None  # None: the system's trusted CAs
    cert: str | None = None
    key: str | None = None
    servername: str | None = None


@dataclass(frozen=True)
class Target:
    """Where the gRPC channel goes, and how."""

    kind: str  # "buildx" (a builder name, or the current one), "unix", "tcp", "docker"
    where: str | None  # the builder name, socket path or host:port
    label: str  # how messages name it
    tls: Tls | None = None


def parse_target(found: dict) -> Target:
    """The target `--builder` and the TLS options name (raises UsageError)."""
    builder = found.get("builder") or None
    tls_given = {k: found[k] for k in ("tlscacert", "tlscert", "tlskey", "tlsservername") if found.get(k)}
    if builder is not None and builder.startswith("tcp://"):
        hostport = builder[len("tcp://"):].rstrip("/")
        if not hostport:
            raise UsageError("--builder tcp:// needs host:port")
        tls = _tls(tls_given) if tls_given else None
        return Target("tcp", hostport, builder, tls)
    if tls_given:
        raise UsageError(f"--{next(iter(tls_given))} goes with --builder tcp://HOST:PORT")
    if builder is None:
        return Target("buildx", None, "the current buildx builder")
    if builder.startswith("unix://"):
        path = builder[len("unix://"):]
        if not path:
            raise UsageError("--builder unix:// needs a socket path")
        return Target("unix", path, builder)
    if builder.startswith("docker://"):
        rest = builder[len("docker://"):]
        host = rest or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_DOCKER_SOCKET}"
        if not host.startswith("unix://"):
            raise UsageError(f"{builder}: only a unix socket of the docker engine is supported "
                             f"(docker://unix:///path), not {host}")
        return Target("docker", host[len("unix://"):], f"the docker engine at {host}")
    if "://" in builder:
        raise UsageError(f"--builder {builder}: give a buildx builder name, unix://, tcp:// or docker://")
    return Target("buildx", builder, builder)


def _tls(given: dict) -> Tls:
    if ("tlscert" in given) != ("tlskey" in given):
        raise UsageError("--tlscert and --tlskey go together")
    for opt in ("tlscacert", "tlscert", "tlskey"):
        if opt in given and not os.path.isfile(given[opt]):
            raise UsageError(f"--{opt} {given[opt]}: no such file")
    return Tls(given.get("tlscacert"), given.get("tlscert"), given.get("tlskey"), given.get("tlsservername"))
