"""The test suite never touches the user's home: records, docker and buildx state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.engine


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and modification time (ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def test_a_part_of_the_suite_leaves_home_as_it_was(tmp_path: Path) -> None:
    # A user's home as a fresh machine has it: a docker config with the buildx
    # plugin, a note of their own. The suite runs with this HOME and no
    # DOCKER_CONFIG, XDG_* or CACHEWHY_STORE of its own, as a user's shell has.
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / "notes.txt").write_text("mine\n")
    plugins = Path(os.environ["DOCKER_CONFIG"]) / "cli-plugins" if os.environ.get("DOCKER_CONFIG") else None
    if plugins is not None and plugins.is_dir():
        (home / ".docker" / "cli-plugins").symlink_to(plugins)
    (home / ".docker" / "config.json").write_text("{}\n")
    before = tree(home)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_CONFIG", "CACHEWHY_STORE", "PYTEST_CURRENT_TEST") and not k.startswith("XDG_")}
    env["HOME"] = str(home)
    # builds with the default store, analyze, show, history, diff
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                          "tests/integration/test_build.py::test_cold_warm_and_one_file_change",
                          "tests/unit/test_commands.py"],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    out = res.stdout.decode(errors="replace")
    assert res.returncode == 0, out[-3000:]
    assert " passed" in out and "skipped" not in out.split("\n")[-2], out[-1000:]
    assert tree(home) == before
    assert not (home / ".local").exists()
