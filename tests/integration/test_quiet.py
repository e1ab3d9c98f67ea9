"""`cachewhy build -q` leaves stdout as `docker buildx build -q` does: the image id only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_cold, run_cachewhy

pytestmark = pytest.mark.engine

OUTPUTS = {
    "docker": [],  # the docker driver's default: the image in the engine
    "cacheonly": ["--output=type=cacheonly"],
    "local": ["--output=type=local,dest={tmp}/out-local"],
    "tar": ["--output=type=tar,dest={tmp}/out.tar"],
    "oci": ["--output=type=oci,dest={tmp}/out-oci.tar"],
}


def _expected(iidfile: Path) -> str:
    return (iidfile.read_text() if iidfile.exists() else "") + "\n"


@pytest.mark.parametrize("kind", OUTPUTS)
def test_quiet_stdout_is_buildx_quiet_stdout(project, tmp_path, kind) -> None:
    ctx = project("multistage")
    make_cold(ctx / "Dockerfile")
    out = [a.format(tmp=tmp_path) for a in OUTPUTS[kind]]

    def iid(name: str) -> list[str]:  # buildx refuses --iidfile with the local and tar exporters
        return [] if kind in ("local", "tar") else ["--iidfile", str(tmp_path / name)]

    # buildx itself: -q prints what it writes to --iidfile (or an empty line)
    ref = subprocess.run(["docker", "buildx", "build", "-q", "--network=none", *out, *iid("ref.iid"), str(ctx)], capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    assert ref.stdout == _expected(tmp_path / "ref.iid")
    assert ref.stdout == "\n" if kind in ("cacheonly", "local", "tar") else re.fullmatch(r"sha256:[0-9a-f]{64}\n",
                                                                                         ref.stdout)
    # cachewhy: the same stdout; its report still on stderr, no progress
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), "-q", "--network=none", *out, *iid("cw.iid"),
                       str(ctx), env={"CACHEWHY_LIVE": "plain"})
    err = res.stderr.decode()
    assert res.returncode == 0, err
    assert res.stdout.decode() == _expected(tmp_path / "cw.iid")
    if kind != "docker":  # the default exporter's image id changes from build to build
        assert res.stdout.decode() == ref.stdout
    assert "Why: nothing was rebuilt" in err and "cache hits 8/8 steps (100%)" in err
    assert "quiet cannot be used" not in err
    assert not re.search(r"^\s*\d+ (WORKDIR|COPY|RUN) ", err, flags=re.M)  # no live progress lines

    # --quiet, and with --live none: nothing of cachewhy's on stderr at all
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), "--live", "none", "--quiet", "--network=none",
                       *out, *iid("cw2.iid"), str(ctx))
    assert res.returncode == 0
    assert res.stdout.decode() == _expected(tmp_path / "cw2.iid")
    assert res.stderr.decode() == ""


def test_quiet_failed_build(project, tmp_path) -> None:
    ctx = project("failing")
    ref = subprocess.run(["docker", "buildx", "build", "-q", "--network=none", "--output=type=cacheonly", str(ctx)],
                         capture_output=True, text=True, timeout=300)
    res = run_cachewhy("build", "--store", str(tmp_path / "store"), "-q", "--network=none",
                       "--output=type=cacheonly", str(ctx), env={"CACHEWHY_LIVE": "plain"})
    assert ref.returncode != 0 and res.returncode == ref.returncode
    assert res.stdout.decode() == ref.stdout == ""
    err = res.stderr.decode()
    assert "failed" in err and "Why:" in err  # the report of the failed build, on stderr
