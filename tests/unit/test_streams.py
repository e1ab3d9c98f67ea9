"""Commands that wrap no build print their report on stdout, notes and errors
on stderr (as git and `docker buildx history` do): `cachewhy show | less` and
`cachewhy analyze LOG | grep COPY` work without 2>&1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import RAWJSON, REPO


def cachewhy(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], cwd=REPO, input=stdin, capture_output=True,
                          timeout=120, env=dict(os.environ, COLUMNS="100"))


def analyze_two(store: str) -> None:
    for name in ("multistage-warm", "multistage-change"):
        res = cachewhy("analyze", "--store", store, "--context", "/work/ctx", "--metadata-file",
                       str(RAWJSON / f"{name}.meta.json"), str(RAWJSON / f"{name}.jsonl"))
        assert res.returncode == 0, res.stderr


def test_reports_go_to_stdout(tmp_path) -> None:
    store = str(tmp_path / "store")
    analyze_two(store)
    for args in (["analyze", "--no-record", str(RAWJSON / "multistage-change.jsonl")], ["show"], ["show", "^1"],
                 ["diff", "^1", "^0"]):
        res = cachewhy(*args, "--store", store)
        out, err = res.stdout.decode(), res.stderr.decode()
        assert res.returncode == 0, err
        assert "Why:" in out and "COPY src/ ./src/" in out, args
        assert err == "", args
    res = cachewhy("show", "--store", store)
    assert res.stdout.decode().startswith("Build ")  # the heading names the build, on stdout too


def test_a_report_written_to_stdout_sends_the_terminal_report_to_stderr(tmp_path) -> None:
    store = str(tmp_path / "store")
    analyze_two(store)
    for args in (["show", "--report-json", "-"], ["diff", "--report-json", "-", "^1", "^0"],
                 ["analyze", "--no-record", "--report-json", "-", str(RAWJSON / "multistage-change.jsonl")]):
        res = cachewhy(*args, "--store", store)
        assert res.returncode == 0
        assert json.loads(res.stdout)["schema"].startswith("cachewhy.report/"), args
        assert "Why:" in res.stderr.decode(), args


def test_errors_and_notes_stay_on_stderr(tmp_path) -> None:
    res = cachewhy("show", "--store", str(tmp_path / "empty"), "nosuchid")
    assert res.returncode == 2 and res.stdout == b"" and res.stderr.startswith(b"cachewhy: ")
    res = cachewhy("analyze", "--no-record", "--show-values", "--store", str(tmp_path / "s"),
                   str(RAWJSON / "multistage-change.jsonl"))
    assert res.returncode == 0 and b"Why:" in res.stdout
    assert b"--show-values" in res.stderr and b"--show-values" not in res.stdout


def test_a_pipe_to_grep(tmp_path) -> None:
    log = RAWJSON / "multistage-change.jsonl"
    cmd = f"{sys.executable} -m analyzer analyze --no-record {log} | grep -c 'COPY src/'"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=REPO, capture_output=True, timeout=120)
    assert res.returncode == 0 and int(res.stdout) >= 1


def test_explain_of_a_bundle_reports_on_stdout(tmp_path) -> None:
    bundles = REPO / "testdata" / "bundles"
    res = cachewhy("explain", str(bundles / "multistage-2.dockerbuild"), "--against",
                   str(bundles / "multistage-1.dockerbuild"), "--store", str(tmp_path / "store"))
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode()
    assert out.startswith("Build ") and "Why:" in out and "LINE " in out
    assert res.stderr == b""
