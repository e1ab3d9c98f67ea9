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
