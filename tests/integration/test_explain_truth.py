"""`cachewhy explain` of plain `docker buildx build` builds (issue 14): causes
found by elimination from the builder's cache, the build it names, the engine's
self-test skipped, the previous build found anywhere in the history, builds
that stopped before their steps never a baseline, another platform compared.

Builds carry a unique BUILDKIT_BUILD_NAME and are found by it in a history
that other tests share.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import BASE_IMAGE, run_cachewhy
from tests.integration.test_causes import evict, images, multi_platform_base  # noqa: F401 - fixtures
from tests.integration.test_explain_history import _refs_named

pytestmark = pytest.mark.engine

DOCKERFILE = """\
FROM {base}
RUN echo {nonce} > /nonce
COPY src/ /src-{nonce}/
RUN cat /src-{nonce}/*.txt > /all
RUN echo done > /done
"""


def _project(tmp_path: Path, text: str = DOCKERFILE) -> tuple[Path, str, str]:
    nonce = uuid.uuid4().hex[:12]
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(text.format(base=BASE_IMAGE, nonce=nonce))
    (ctx / "src" / "a.txt").write_text("one\n")
    return ctx, f"cw-truth-{nonce}", nonce


def _build(ctx: Path, name: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", "buildx", "build", "--network=none", "--output=type=cacheonly",
                          "--build-arg", f"BUILDKIT_BUILD_NAME={name}", *args, str(ctx)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert (res.returncode == 0) == ok, res.stderr[-3000:]
    return res


def _explain(*args: str) -> tuple[dict, str]:
    res = run_cachewhy("explain", *args, "--report-json", "-", "--width", "80", timeout=180)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    return json.loads(res.stdout), err


def _roots(report: dict) -> list[tuple[int, str]]:
    return [(m["line"], m["cause"]["kind"]) for m in report["misses"] if m["root"]]


def test_an_edited_file_is_context_changed_by_elimination(tmp_path):
    """Same instruction, op, base and args, and the builder's cache still holds
    the COPY's previous result: only the file content can differ."""
    ctx, name, _ = _project(tmp_path)
    _build(ctx, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _build(ctx, name)
    refs = _refs_named(name)
    report, err = _explain(refs[0])
    assert report["previous"] == {"ref": f"history {refs[1]}"}
    assert _roots(report) == [(3, "context-changed")]
    cause = next(m for m in report["misses"] if m["root"])["cause"]
    assert "files" not in cause  # BuildKit keeps no snapshot: the files are not named, nor guessed
    assert cause["detail"].startswith("src changed, by elimination: same instruction text, LLB op")
    assert "is still in the builder's cache (DiskUsage)" in cause["detail"]
    assert "`cachewhy build` or give --repo" in cause["detail"]
    flat = " ".join(err.split())
    assert "context changed: src changed, by elimination" in flat


def test_an_evicted_copy_is_not_blamed_on_the_context(tmp_path):
    """The COPY's cache records pruned, nothing edited: its previous result is
    gone, so nothing says the context changed. (BuildKit then rebuilds line 2
    too, whose record is still listed: its cache key went with the COPY's.)"""
    ctx, name, nonce = _project(tmp_path)
    _build(ctx, name)
    evict(f"COPY src/ /src-{nonce}/")  # the COPY and all built on it; line 2's RUN stays
    _build(ctx, name)
    refs = _refs_named(name)
    report, _ = _explain(refs[0])
    assert _roots(report) == [(2, "cache-evicted")]
    assert all(m["cause"]["kind"] != "context-changed" for m in report["misses"])


def test_the_first_line_names_the_build_and_the_engine_check_is_skipped(tmp_path):
    ctx, name, _ = _project(tmp_path)
    _build(ctx, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _build(ctx, name)
    ref = _refs_named(name)[0]
    # what scripts/engine.sh up builds to check the engine, after the project's build
    check = tmp_path / "check"
    check.mkdir()
    (check / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo ok\n")
    _build(check, "cachewhy-engine-check")
    res = run_cachewhy("explain", "--width", "80", timeout=180)  # the newest build of a project
    err = res.stdout.decode()  # the report, on stdout as every command's that wraps no build
    assert res.returncode == 0, res.stderr.decode()
    first, second = err.splitlines()[:2]  # 80 columns: what it built goes on the second line
    assert re.fullmatch(rf"Build {ref} \({name}\), \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d", first), first
    assert second == "  Dockerfile"
    assert "Dockerfile:3" in err
    since = run_cachewhy("explain", "--since", "10m", "--width", "200", timeout=300)
    assert "cachewhy-engine-check" not in since.stdout.decode() + since.stderr.decode()
    assert f"Build {ref} ({name})" in since.stdout.decode()


def test_the_previous_build_is_found_beyond_the_newest_few(tmp_path):
    """Eight builds of other Dockerfiles of the same name in between: the
    project's previous build is still found."""
    ctx, name, _ = _project(tmp_path)
    _build(ctx, name)
    for i in range(8):
        other = tmp_path / f"other{i}"
        other.mkdir()
        (other / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo other {i} {name} > /o\n")
        _build(other, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _build(ctx, name)
    refs = _refs_named(name)
    assert len(refs) == 10
    report, _ = _explain(refs[0])
    assert report["previous"] == {"ref": f"history {refs[-1]}"}
    assert _roots(report) == [(3, "context-changed")]


def test_a_build_stopped_by_a_dockerfile_error_is_never_the_baseline(tmp_path):
    """Typo, fix, rebuild: compared with the build before the typo."""
    ctx, name, _ = _project(tmp_path)
    _build(ctx, name)
    good = (ctx / "Dockerfile").read_text()
    (ctx / "Dockerfile").write_text(good.replace("RUN echo done", "RUNN echo done"))
    _build(ctx, name, ok=False)
    (ctx / "Dockerfile").write_text(good)
    (ctx / "src" / "a.txt").write_text("two\n")
    _build(ctx, name)
    refs = _refs_named(name)
    assert len(refs) == 3
    report, _ = _explain(refs[0])
    assert report["previous"] == {"ref": f"history {refs[2]}"}
    assert _roots(report) == [(3, "context-changed")]
    assert any("stopped before any step" in n and "never a baseline" in n for n in report["notes"])


def test_cachewhy_build_never_takes_a_stepless_record_as_baseline(tmp_path):
    """Through `cachewhy build`: a Dockerfile error, then --check, then the
    fixed build: compared with the last build that ran steps."""
    ctx, name, _ = _project(tmp_path)
    store = str(tmp_path / "store")
    common = ["build", "--store", store, "--network=none", "--output=type=cacheonly"]
    first = run_cachewhy(*common, str(ctx), timeout=300)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    good = (ctx / "Dockerfile").read_text()
    (ctx / "Dockerfile").write_text(good.replace("RUN echo done", "RUNN echo done"))
    assert run_cachewhy(*common, str(ctx), timeout=300).returncode == 1
    (ctx / "Dockerfile").write_text(good)
    assert run_cachewhy(*common, "--check", str(ctx), timeout=300).returncode == 0
    (ctx / "src" / "a.txt").write_text("two\n")
    res = run_cachewhy(*common, "--report-json", "-", str(ctx), timeout=300)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    report = json.loads(res.stdout)
    assert _roots(report) == [(3, "context-changed")]
    cause = next(m for m in report["misses"] if m["root"])["cause"]
    assert cause["files"]["modified"] == ["src/a.txt"]


def test_another_platform_is_platform_changed(tmp_path, multi_platform_base):  # noqa: F811
    ctx, name, _ = _project(tmp_path, f"FROM {multi_platform_base}\n" + "RUN echo {nonce} > /nonce\nRUN uname -m > /m\n")
    _build(ctx, name, "--platform", "linux/386")
    _build(ctx, name, "--platform", "linux/amd64")
    refs = _refs_named(name)
    report, err = _explain(refs[0])
    assert report["previous"] == {"ref": f"history {refs[1]}"}
    assert _roots(report) == [(2, "platform-changed")]
    assert "linux/386 \u2192 linux/amd64" in report["misses"][0]["cause"]["detail"]
    assert err.splitlines()[1] == "  Dockerfile --platform linux/amd64"
    # back on linux/386: compared with the build of that platform, all cached
    _build(ctx, name, "--platform", "linux/386")
    again, _ = _explain(_refs_named(name)[0])
    assert again["previous"] == {"ref": f"history {refs[1]}"}
    assert _roots(again) == []


def test_a_copy_whose_followers_were_pruned_is_not_blamed_on_the_context(tmp_path):
    """The records built on the COPY pruned, the COPY's own record left: BuildKit
    rebuilds the COPY all the same (its cache key went with them), so its
    record being listed proves nothing, and explain says it does not know."""
    ctx, name, nonce = _project(tmp_path)
    _build(ctx, name)
    evict(f"cat /src-{nonce}/")  # lines 4 and 5, not the COPY
    _build(ctx, name)
    refs = _refs_named(name)
    report, _ = _explain(refs[0])
    assert all(kind != "context-changed" for _, kind in _roots(report)), report["misses"]
