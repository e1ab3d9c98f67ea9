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


# ------------------------------------------------------------ never the user's own files
#
# Every test, and every cachewhy or docker it starts, runs with a HOME and XDG
# folders of the session's own, so no record lands in the user's store and no
# docker or buildx state in their configuration. Done at import, before any
# test runs, so that subprocesses inherit it. The user's docker setup is
# copied (config.json, contexts, buildx builders) or linked read-only (the CLI
# plugins), never written to.

def _isolate_home() -> Path:
    import atexit  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    real_home = Path(os.path.expanduser("~"))
    session = Path(tempfile.mkdtemp(prefix="cachewhy-tests-home-"))
    atexit.register(shutil.rmtree, session, True)
    home = session / "home"
    home.mkdir()
    if not os.environ.get("DOCKER_CONFIG"):
        # an explicit DOCKER_CONFIG (scripts/engine.sh's private one) is kept as it is
        real = real_home / ".docker"
        config = home / ".docker"
        config.mkdir()
        if (real / "config.json").is_file():
            shutil.copy2(real / "config.json", config / "config.json")
        if (real / "contexts").is_dir():
            shutil.copytree(real / "contexts", config / "contexts", symlinks=True)
        for part in ("instances", "defaults"):
            if (real / "buildx" / part).is_dir():
                shutil.copytree(real / "buildx" / part, config / "buildx" / part, symlinks=True)
        if (real / "buildx" / "current").is_file():
            shutil.copy2(real / "buildx" / "current", config / "buildx" / "current")
        if (real / "cli-plugins").is_dir():
            (config / "cli-plugins").symlink_to(real / "cli-plugins")
        os.environ["DOCKER_CONFIG"] = str(config)
    os.environ["HOME"] = str(home)
    for var, sub in (("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config"),
                     ("XDG_CACHE_HOME", ".cache"), ("XDG_STATE_HOME", ".local/state")):
        os.environ[var] = str(home / sub)
    os.environ.pop("CACHEWHY_STORE", None)  # the user's own store, if they set one
    return home


TEST_HOME = _isolate_home()


@pytest.fixture(autouse=True)
def _own_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's default store is a fresh one of its own (a test that wants a
    store shared between its commands passes --store or CACHEWHY_STORE)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


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
    full_env = {**os.environ, "CACHEWHY_LIVE": "none", **(env or {})}
    return subprocess.run([sys.executable, "-m", "analyzer", *args], cwd=cwd or REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, timeout=timeout)


# ------------------------------------------------------------ a registry on loopback

REGISTRY_BIN = "docker-registry"  # Debian's package of distribution/registry (scripts/setup.sh installs it)


def start_registry(root: Path) -> tuple[subprocess.Popen, str]:
    """Start `docker-registry serve` on 127.0.0.1:<free port> with its storage
    under `root`; return the process and "127.0.0.1:<port>" once /v2/ answers.
    A loopback registry is plain http, which dockerd and BuildKit accept
    without any insecure-registry setting."""
    import socket  # noqa: PLC0415
    import time  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    exe = shutil.which(REGISTRY_BIN)
    if exe is None:
        raise FileNotFoundError(f"{REGISTRY_BIN} not found (apt-get install docker-registry; scripts/setup.sh does)")
    root.mkdir(parents=True, exist_ok=True)
    for _attempt in range(5):
        with socket.socket() as s:  # a free port; the registry binds it a moment later
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n")
        log = open(root / "registry.log", "ab")  # noqa: SIM115 - the child writes to it
        proc = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as resp:
                    if resp.status == 200:
                        return proc, f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.1)
        stop_registry(proc)  # the port was taken meanwhile, or it did not start: try again
    raise RuntimeError(f"{REGISTRY_BIN} did not start; see {root / 'registry.log'}:\n"
                       f"{(root / 'registry.log').read_text(errors='replace')[-2000:]}")


def stop_registry(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def registry(tmp_path: Path):
    """A registry of this test's own on 127.0.0.1: its "host:port"."""
    try:
        proc, addr = start_registry(tmp_path / "registry")
    except FileNotFoundError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(str(e))
        pytest.skip(str(e))
    try:
        yield addr
    finally:
        stop_registry(proc)
