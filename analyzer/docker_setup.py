"""What is missing when docker cannot build: no docker CLI, no buildx plugin,
no daemon. One line each, saying which and what to do (docs/cli.md, exit codes).

Standard library only: `cachewhy build` reads buildx's first lines with it."""

from __future__ import annotations

import os

_APT = "Debian/Ubuntu: apt-get install"


def docker_missing() -> str:
    return (f"no docker CLI on PATH: install it with its buildx plugin ({_APT} docker.io docker-buildx), "
            "or set CACHEWHY_DOCKER")


def plugin_dir() -> str:
    """Where the docker CLI looks for the user's plugins first."""
    config = os.environ.get("DOCKER_CONFIG")
    return os.path.join(config, "cli-plugins") if config else "~/.docker/cli-plugins"


def buildx_missing() -> str:
    return (f"docker has no buildx plugin: install it ({_APT} docker-buildx), or put the docker-buildx "
            f"binary in {plugin_dir()}")


def daemon_unreachable(where: str | None) -> str:
    at = f" at {where}" if where else ""
    return (f"cannot connect to the Docker daemon{at}: start it (systemctl start docker), or point "
            "DOCKER_HOST or `docker context use` at a running one")


# what the docker CLI says when `docker buildx …` names no plugin it has
_NO_PLUGIN = ("unknown flag: --progress", "unknown command: docker buildx", "'buildx' is not a docker command",
              "unknown command \"buildx\"")
_NO_DAEMON = "Cannot connect to the Docker daemon"


def diagnose(lines: list[str]) -> str | None:
    """The one line for what docker said before any build step, when it is one
    of the problems above; else None (buildx's own words stand)."""
    text = "\n".join(lines)
    if any(w in text for w in _NO_PLUGIN):
        return buildx_missing()
    if _NO_DAEMON in text:
        after = text.split(_NO_DAEMON, 1)[1]
        where = after.split(" at ", 1)[1].split(". ")[0].split()[0] if after.startswith(" at ") else None
        return daemon_unreachable(where.rstrip(".") if where else None)
    return None
