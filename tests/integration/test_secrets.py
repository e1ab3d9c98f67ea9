"""Secrets stay secret: a build-arg value, an ENV set from it and a secret
mount's content appear in no output format, in no terminal line and nowhere
in the store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cachewhy

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]


def test_values_never_leave_the_build(tmp_path: Path):
    arg_value = f"s3cr3t-arg-{uuid.uuid4().hex[:8]}"
    file_value = f"s3cr3t-file-{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM local/busybox:latest\n"
        f"RUN echo {uuid.uuid4().hex} > /nonce\n"
        "ARG TOKEN\n"
        "ENV DERIVED=prefix-$TOKEN\n"
        'RUN test -n "$TOKEN" && echo "token is set"\n'
        "RUN --mount=type=secret,id=tok test -s /run/secrets/tok\n"
    )
    secret = tmp_path / "secret.txt"
    secret.write_text(file_value)
    store = tmp_path / "store"
    out = tmp_path / "out"
    out.mkdir()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(out / "summary.md")}
    streams = []
    for value in ("one", "two"):  # the second build names the changed arg
        res = run_cachewhy(
            "build", "--store", str(store), "--report-json", str(out / "r.json"), "--report-md", str(out / "r.md"),
            "--report-sarif", str(out / "r.sarif"), "--dot", str(out / "g.dot"), "--svg", str(out / "g.svg"),
            "--html", str(out / "r.html"), *COMMON, "--build-arg", f"TOKEN={arg_value}-{value}",
            "--secret", f"id=tok,src={secret}", str(ctx), env=env)
        assert res.returncode == 0, res.stderr.decode()
        streams += [res.stdout, res.stderr]
    report = (out / "r.json").read_text()
    assert '"build-arg-changed"' in report  # the change is still named
    files = [p for p in [*out.rglob("*"), *store.rglob("*")] if p.is_file()]
    assert len(files) >= 8
    for needle in (arg_value, file_value):
        for p in files:
            assert needle.encode() not in p.read_bytes(), f"{needle} found in {p}"
        for data in streams:
            assert needle.encode() not in data
    # nor in what the other commands show from the store
    for args in (("show", "last"), ("history",), ("diff", "^1", "last"), ("show", "--report-json", "-", "last")):
        res = run_cachewhy(*args, "--store", str(store))
        assert res.returncode == 0, (args, res.stderr.decode())
        for needle in (arg_value, file_value):
            assert needle.encode() not in res.stdout + res.stderr, args


def test_show_values_shows_this_builds_values_where_the_cause_is(tmp_path: Path):
    """--show-values puts the current build's value beside its hash in this run's report;
    the previous value was never stored, so it stays a hash, and the store stays clean."""
    arg_value = f"s3cr3t-arg-{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM local/busybox:latest\n"
        f"RUN echo {uuid.uuid4().hex} > /nonce\n"
        "ARG TOKEN\n"
        'RUN test -n "$TOKEN" && echo "token is set"\n'
    )
    store = tmp_path / "store"
    out = tmp_path / "out"
    out.mkdir()
    first = run_cachewhy("build", "--store", str(store), *COMMON, "--build-arg", f"TOKEN={arg_value}-one", str(ctx))
    assert first.returncode == 0, first.stderr.decode()
    second = run_cachewhy("build", "--store", str(store), "--show-values", "--width", "200",
                          "--report-json", str(out / "r.json"),
                          "--report-md", str(out / "r.md"), *COMMON, "--build-arg", f"TOKEN={arg_value}-two",
                          str(ctx))
    assert second.returncode == 0, second.stderr.decode()
    text = second.stderr.decode()
    why = text.split("\nLINE ")[0]  # the "Why:" section, above the step table
    cause = next(line for line in why.splitlines() if "build-arg changed: TOKEN changed" in line)
    assert f'"{arg_value}-two" (h:' in cause  # the value, and still its hash
    assert f"{arg_value}-one" not in text  # the previous build's value was never kept
    for name in ("r.json", "r.md"):  # this run's report files show it too: the user asked
        assert f"{arg_value}-two" in (out / name).read_text()
    for p in store.rglob("*"):  # never the store, stored report included
        if p.is_file():
            assert arg_value.encode() not in p.read_bytes(), p
    # a stored report has no values to show: said once, nothing revealed
    show = run_cachewhy("show", "--store", str(store), "--show-values", "last")
    assert show.returncode == 0 and arg_value.encode() not in show.stderr + show.stdout
    assert b"--show-values: no values to show" in show.stderr
