"""`pip install` of a built wheel into a fresh virtual environment gives a
working `cachewhy` (what `pipx install .` does)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from tests.conftest import RAWJSON, REPO


def test_a_wheel_installs_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # the wheel as `pip wheel .` (and pipx) builds it, from a copy of the sources: the build
    # leaves build/ and *.egg-info behind, which must not land in the repository
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", ".engine", "build", "*.egg-info",
                                                             "__pycache__", ".hypothesis", "testdata"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(dist), str(src)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    [wheel] = dist.glob("cachewhy-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    exe = env_dir / "bin" / "cachewhy"
    assert exe.is_file()
    # run where the repository's own package cannot be imported by accident
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "100"
    where = subprocess.run([str(py), "-c", "import analyzer; print(analyzer.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(env_dir)), where.stdout + where.stderr

    version = subprocess.run([str(exe), "--version"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("cachewhy 0."), version.stderr
    assert subprocess.run([str(exe), "--help"], cwd=work, env=env, capture_output=True, timeout=60).returncode == 0

    store = tmp_path / "store"
    for name in ("multistage-warm", "multistage-change"):
        res = subprocess.run([str(exe), "analyze", "--store", str(store), "--context", str(work), "--metadata-file",
                              str(RAWJSON / f"{name}.meta.json"), str(RAWJSON / f"{name}.jsonl")],
                             cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    assert "Why: 1 root cause" in res.stdout and "Dockerfile:6" in res.stdout and "COPY src/ ./src/" in res.stdout
    assert "cache hits 3/8 steps (38%)" in res.stdout
    shown = subprocess.run([str(exe), "show", "--store", str(store)], cwd=work, env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0 and "Why: 1 root cause" in shown.stdout
