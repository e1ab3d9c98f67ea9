"""Bad input gets a clear one-line error and an exit code, never a traceback
(the corpus and its expected messages are in testdata/bad/expected.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import RAWJSON, REPO, TESTDATA

BAD = TESTDATA / "bad"
CASES = {k: v for k, v in json.loads((BAD / "expected.json").read_text()).items() if not k.startswith("_")}


def run_analyze(args: list[str], tmp_path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    argv = [a.replace("FILE", str(BAD)).replace("RAWJSON", str(RAWJSON)) for a in args]
    return subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--store", str(tmp_path / "store"), *argv],
                          cwd=REPO, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                          env=dict(os.environ, COLUMNS="120"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path):
    case = CASES[name]
    res = run_analyze(case["args"], tmp_path)
    err = res.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert res.returncode == case["exit"], err
    # the report on stdout, an error on stderr
    assert case["says"] in (res.stdout.decode(errors="replace") if case["exit"] == 0 else err), err
    if case["exit"] != 0:
        # one line, starting with the program's name
        assert err.strip().count("\n") == 0 and err.startswith("cachewhy: "), err


def test_a_ten_megabyte_log_line(tmp_path):
    """A step that printed 10 MB in one go: one huge line, bounded memory, no error."""
    lines = (RAWJSON / "multistage-change.jsonl").read_text().splitlines()
    vertex = next(json.loads(l)["vertexes"][0]["digest"] for l in lines if '"[builder 2/2] RUN' in l)
    import base64

    huge = json.dumps({"logs": [{"vertex": vertex, "stream": 1, "data": base64.b64encode(b"x" * 7_500_000).decode(),
                                 "timestamp": "2026-11-28T04:12:30Z"}]})
    assert len(huge) > 10_000_000
    log = tmp_path / "huge.jsonl"
    log.write_text("\n".join([*lines[:20], huge, *lines[20:]]) + "\n")
    res = run_analyze([str(log)], tmp_path)
    err = res.stderr.decode(errors="replace")
    assert res.returncode == 0 and "Traceback" not in err
    assert "RUN cat config.txt" in res.stdout.decode()


def test_stdin_cut_mid_stream(tmp_path):
    data = (RAWJSON / "multistage-change.jsonl").read_bytes()
    res = run_analyze(["-"], tmp_path, stdin=data[: len(data) // 2])
    err = res.stderr.decode(errors="replace")
    assert res.returncode == 0 and "Traceback" not in err
    assert "the events stop before the build did" in res.stdout.decode()
