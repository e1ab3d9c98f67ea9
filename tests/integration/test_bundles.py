"""`cachewhy explain` of `.dockerbuild` bundles, made on the real engine with
`docker buildx history export` (what docker/build-push-action uploads)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cachewhy
from tests.integration.test_explain_history import _git, _git_project, _refs_named
from tests.integration.test_explain_truth import _build, _project, _roots

pytestmark = pytest.mark.engine


def _export(ref: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["docker", "buildx", "history", "export", "-o", str(dest), ref],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return dest


def _two_builds(tmp_path: Path) -> tuple[str, list[str]]:
    ctx, name, _ = _project(tmp_path)
    _build(ctx, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _build(ctx, name)
    return name, _refs_named(name)


def test_a_bundle_against_another_bundle(tmp_path):
    name, refs = _two_builds(tmp_path)
    first, second = _export(refs[1], tmp_path / "first.dockerbuild"), _export(refs[0], tmp_path / "second.dockerbuild")
    md = tmp_path / "report.md"
    res = run_cachewhy("explain", str(second), "--against", str(first), "--report-json", "-",
                       "--report-md", str(md), "--width", "80", timeout=180)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    report = json.loads(res.stdout)
    assert report["build"]["ref"] == f"bundle {refs[0]}"
    assert report["previous"] == {"ref": f"bundle {refs[1]}"}
    # no snapshot and no view of a builder's cache in a bundle: the evidence does not decide
    assert _roots(report) == [(3, "unknown")]
    assert "not compared: the context files it reads (src)" in report["misses"][0]["cause"]["detail"]
    assert any("a bundle carries no view of the builder's cache" in n for n in report["notes"])
    assert err.splitlines()[0].startswith(f"Build {refs[0]} ({name}), ")
    assert "Dockerfile:3" in md.read_text()
    # the gates apply as to any build
    gated = run_cachewhy("explain", str(second), "--against", str(first), "--fail-on", "unknown", timeout=180)
    assert gated.returncode == 4, gated.stderr.decode()
    # alone, a bundle of one build has nothing to compare with
    alone = run_cachewhy("explain", str(second), "--report-json", "-", timeout=180)
    assert alone.returncode == 0
    assert _roots(json.loads(alone.stdout)) == [(3, "no-previous-build")]
    assert any("among the bundles" in n for n in json.loads(alone.stdout)["notes"])


def test_a_folder_of_bundles_explains_each_against_the_previous_of_its_project(tmp_path):
    name, refs = _two_builds(tmp_path / "a")
    other_ctx, other_name, _ = _project(tmp_path / "b")
    _build(other_ctx, other_name)
    other = _refs_named(other_name)[0]
    folder = tmp_path / "artifacts"  # as a CI artifact download lays them out: a folder per build
    _export(refs[1], folder / "build-1" / "x.dockerbuild")
    _export(other, folder / "build-2" / "y.dockerbuild")
    _export(refs[0], folder / "build-3" / "z.dockerbuild")
    res = run_cachewhy("explain", str(folder), "--report-json", "-", "--width", "200", timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    reports = json.loads(res.stdout)
    # oldest first, as they ran (not as the files are named)
    assert [r["build"]["ref"] for r in reports] == [f"bundle {refs[1]}", f"bundle {refs[0]}", f"bundle {other}"]
    assert [r["previous"] for r in reports] == [None, {"ref": f"bundle {refs[1]}"}, None]
    assert _roots(reports[1]) == [(3, "unknown")]
    paragraphs = res.stderr.decode()  # the JSON on stdout: the paragraphs on stderr
    assert f"Build {refs[0]} ({name})" in paragraphs and f"Build {other} ({other_name})" in paragraphs
    gated = run_cachewhy("explain", str(folder), "--fail-on", "unknown", timeout=300)
    assert gated.returncode == 4


def test_a_bundle_of_git_builds_names_the_files_with_repo(tmp_path):
    ctx, name = _git_project(tmp_path)
    _build(ctx, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _git(tmp_path, "commit", "-qam", "two")
    _build(ctx, name)
    refs = _refs_named(name)
    folder = tmp_path / "bundles"
    _export(refs[1], folder / "1.dockerbuild")
    _export(refs[0], folder / "2.dockerbuild")
    res = run_cachewhy("explain", str(folder / "2.dockerbuild"), "--against", str(folder / "1.dockerbuild"),
                       "--repo", str(tmp_path), "--report-json", "-", cwd=REPO.parent, timeout=180)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    assert _roots(report) == [(3, "context-changed")]
    assert report["misses"][0]["cause"]["files"]["modified"] == ["src/a.txt"]


@pytest.mark.parametrize("content", [b"", b"not a tar at all", b"\x1f\x8b\x08\x00broken"])
def test_a_file_that_is_not_a_bundle_is_one_line_exit_2(tmp_path, content):
    bad = tmp_path / "bad.dockerbuild"
    bad.write_bytes(content)
    res = run_cachewhy("explain", str(bad), timeout=60)
    err = res.stderr.decode().strip()
    assert res.returncode == 2, err
    assert len(err.splitlines()) == 1 and "not a build record bundle" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cachewhy("explain", str(empty), timeout=60)
    assert res.returncode == 2 and "no .dockerbuild file in it" in res.stderr.decode()
