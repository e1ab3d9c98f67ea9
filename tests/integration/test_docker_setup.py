"""A missing buildx plugin, a missing docker CLI, an unreachable daemon: one line each."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cachewhy

pytestmark = pytest.mark.engine


def no_plugin_env(tmp_path: Path) -> dict[str, str]:
    """A docker CLI as Debian's docker.io without docker-buildx leaves it: a
    config whose cli-plugins folder is empty, no docker-buildx on PATH."""
    config = tmp_path / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if not (Path(d) / "docker-buildx").exists())
    env = {"DOCKER_CONFIG": str(config), "PATH": path}
    probe = subprocess.run(["docker", "buildx", "version"], env={**os.environ, **env}, capture_output=True)
    assert probe.returncode != 0, "a system-wide buildx plugin is installed: this machine cannot go without one"
    return env


BUILDX_MISSING = ("cachewhy: docker has no buildx plugin: install it (Debian/Ubuntu: apt-get install "
                  "docker-buildx), or put the docker-buildx binary in {}/cli-plugins\n")


def test_build_without_the_buildx_plugin(project, tmp_path) -> None:
    env = no_plugin_env(tmp_path)
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), str(project("multistage")), env=env)
    assert res.stderr.decode() == BUILDX_MISSING.format(env["DOCKER_CONFIG"])
    assert res.returncode == 3 and res.stdout == b""


@pytest.mark.parametrize("command", [["explain"], ["watch"], ["history", "--builder", "default"]])
def test_builder_commands_without_the_buildx_plugin(tmp_path, command) -> None:
    env = no_plugin_env(tmp_path)
    res = run_cachewhy(*command, "--store", str(tmp_path / "store"), env=env, timeout=120)
    err = res.stderr.decode().splitlines()
    assert err[-1] + "\n" == BUILDX_MISSING.format(env["DOCKER_CONFIG"])
    assert "Run 'docker --help'" not in res.stderr.decode()
    assert res.returncode == 3


def test_no_docker_cli(project, tmp_path) -> None:
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "docker").exists())
    env = {"PATH": path, "CACHEWHY_DOCKER": ""}
    line = ("cachewhy: no docker CLI on PATH: install it with its buildx plugin (Debian/Ubuntu: apt-get install "
            "docker.io docker-buildx), or set CACHEWHY_DOCKER\n")
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), str(project("multistage")), env=env)
    assert (res.returncode, res.stderr.decode(), res.stdout) == (3, line, b"")
    res = run_cachewhy("explain", "--store", str(tmp_path / "store"), env=env)
    assert (res.returncode, res.stderr.decode()) == (3, line)


def test_daemon_unreachable(project, tmp_path) -> None:
    sock = tmp_path / "nothing.sock"
    env = {"DOCKER_HOST": f"unix://{sock}"}
    line = (f"cachewhy: cannot connect to the Docker daemon at unix://{sock}: start it (systemctl start docker), "
            "or point DOCKER_HOST or `docker context use` at a running one\n")
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), str(project("multistage")), env=env)
    assert res.stderr.decode() == line
    assert res.returncode == 1  # buildx ran and failed: its exit code
    res = run_cachewhy("explain", "--store", str(tmp_path / "store"), env=env)
    assert (res.returncode, res.stderr.decode()) == (3, line)
    assert shutil.which("docker")
