"""Shared fixtures: paths to recorded captures, and the real engine.

Tests marked `engine` drive real builds. Without a usable engine they skip
locally, but under CI=true they fail: CI must prove the engine tests ran.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO / "testdata"
RAWJSON = TESTDATA / "rawjson"
PROJECTS = TESTDATA / "projects"
BASE_IMAGE = "local/busybox:latest"

_engine_state: dict[str, str | None] = {}


def engine_problem() -> str | None:
    """None when docker buildx can build here, else why not."""
    if "problem" in _engine_state:
        return _engine_state["problem"]
    problem = None
    if shutil.which("docker") is None:
        problem = "no docker CLI on PATH (run scripts/engine.sh up)"
    else:
        for cmd in (["docker", "buildx", "version"], ["docker", "image", "inspect", BASE_IMAGE]):
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            if res.returncode != 0:
                problem = f"`{' '.join(cmd)}` failed: {res.stderr.decode(errors='replace').strip()[:300]}"
                break
    _engine_state["problem"] = problem
    return problem


@pytest.fixture
def engine() -> None:
    problem = engine_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the engine is required under CI=true: {problem}")
        pytest.skip(problem)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("engine"):
            item.fixturenames.insert(0, "engine")


@pytest.fixture
def project(tmp_path: Path):
    """Copy a project from testdata/projects into tmp_path; return its folder."""
    def make(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(PROJECTS / name, dest)
        return dest
    return make


def make_cold(dockerfile: Path) -> str:
    """Give every WORKDIR a fresh path, so no step of the project can be in any
    cache yet: a cold build without pruning anybody's cache. Line numbers stay."""
    nonce = uuid.uuid4().hex[:10]
    text = dockerfile.read_text()
    dockerfile.write_text(re.sub(r"^(WORKDIR /\S+)$", rf"\1-{nonce}", text, flags=re.M))
    return nonce


def run_cachewhy(*args: str, cwd: Path | None = None, env: dict | None = None,
                 timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, CACHEWHY_LIVE="none", **(env or {}))
    return subprocess.run([sys.executable, "-m", "analyzer", *args], cwd=cwd or REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, timeout=timeout)
