"""An option one edit away from one of cachewhy's is refused before buildx starts;
buildx's own options pass through."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from analyzer.errors import UsageError
from analyzer.options import _one_edit, check_typos
from tests.conftest import REPO


def run_build(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, bool]:
    marker = tmp_path / "docker-ran"
    fake = tmp_path / "docker.py"
    fake.write_text(f"import sys\nopen({str(marker)!r}, 'w').write(' '.join(sys.argv[1:]))\nsys.exit(0)\n")
    env = dict(os.environ, CACHEWHY_DOCKER=f"{sys.executable} {fake}", CACHEWHY_LIVE="none")
    res = subprocess.run([sys.executable, "-m", "analyzer", "build", "--store", str(tmp_path / "store"), *args],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    return res, marker.exists()


@pytest.mark.parametrize(("typo", "meant"), [
    ("--report-jsn", "--report-json"), ("--report-josn", "--report-json"), ("--widht", "--width"),
    ("--stroe", "--store"), ("--baselin", "--baseline"), ("--fail-onn", "--fail-on"),
    ("--show-value", "--show-values"), ("--html5", "--html"),
])
def test_a_typo_of_a_cachewhy_option_is_refused_before_the_build(tmp_path, typo, meant) -> None:
    res, ran = run_build(tmp_path, typo, "r.json", str(tmp_path))
    assert res.returncode == 2
    assert res.stderr == f"cachewhy: unknown option {typo} (did you mean {meant}?)\n"
    assert res.stdout == ""
    assert not ran  # buildx never started
    res, ran = run_build(tmp_path, f"{typo}=r.json", str(tmp_path))
    assert res.returncode == 2 and not ran


def test_buildx_options_and_far_ones_pass_through(tmp_path) -> None:
    # --load, --pull, --push, --check are buildx's; --frobnicate is near nothing of ours
    res, ran = run_build(tmp_path, "--load", "--pull", "--call", "check", "-t", "--widht", "--frobnicate",
                         str(tmp_path))
    assert ran, res.stderr
    sent = (tmp_path / "docker-ran").read_text().split()
    # `-t --widht`: the value of buildx's -t, not an option
    assert sent[sent.index("--load"):] == ["--load", "--pull", "--call", "check", "-t", "--widht", "--frobnicate",
                                           str(tmp_path)]
    # after `--`, everything is buildx's
    res, ran = run_build(tmp_path, "--", "--report-jsn", str(tmp_path))
    assert ran and "--report-jsn" in (tmp_path / "docker-ran").read_text()


def test_one_edit() -> None:
    assert _one_edit("--dto", "--dot") and _one_edit("--dot", "--dots") and _one_edit("--widht", "--width")
    assert not _one_edit("--load", "--live") and not _one_edit("--dot", "--dot")
    with pytest.raises(UsageError, match=r"did you mean --a or --b\?"):
        check_typos(["--c"], {"--a", "--b"}, set(), set(), set())
