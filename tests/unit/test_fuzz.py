"""Fuzzing the two readers of untrusted input (issue 18): the log reader and the
record reader. Whatever the bytes, cachewhy answers with a report or one line
of error, never an internal error or a traceback.

The budget is fixed (examples per test, derandomized) so the run is the same
in CI every time; CACHEWHY_FUZZ_EXAMPLES raises it for a longer local hunt."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analyzer.cli import main
from analyzer.events import Lines, read_events

EXAMPLES = int(os.environ.get("CACHEWHY_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

DIGESTS = [f"sha256:{c * 64}" for c in "0123"] + ["sha256:" + "abcdefabcdef" + "0" * 52, "", "x"]
NAMES = ["[1/3] FROM docker.io/library/alpine:3", "[2/3] RUN make", "[3/3] COPY . /app",
         "[internal] load build context", "[stage-1 2/2] RUN \x1b[31m::error::x", "", "[9/2] RUN"]
TIMES = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01.5Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
         "not a time", "2026-02-30T00:00:00Z", ""]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=20))
json_any = st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                        max_size=4), max_leaves=12)

vertex = st.fixed_dictionaries({}, optional={
    "digest": st.sampled_from(DIGESTS) | json_leaf,
    "name": st.sampled_from(NAMES) | st.text(max_size=30),
    "inputs": st.lists(st.sampled_from(DIGESTS), max_size=4) | json_any,
    "started": st.sampled_from(TIMES) | json_leaf,
    "completed": st.sampled_from(TIMES) | json_leaf,
    "cached": st.booleans() | json_leaf,
    "error": st.sampled_from(["", "context canceled", "process \"/bin/sh -c make\" failed"]) | json_leaf,
})
status_obj = st.fixed_dictionaries({}, optional={
    "vertexes": st.lists(vertex, max_size=4) | json_any,
    "statuses": st.lists(st.dictionaries(st.sampled_from(["id", "vertex", "name", "current", "total",
                                                          "timestamp", "started", "completed"]),
                                         json_leaf, max_size=5), max_size=3) | json_any,
    "logs": st.lists(st.fixed_dictionaries({"vertex": st.sampled_from(DIGESTS), "stream": st.integers(0, 3),
                                            "data": st.binary(max_size=40).map(
                                                lambda b: __import__("base64").b64encode(b).decode()) | json_leaf,
                                            "timestamp": st.sampled_from(TIMES)}), max_size=3),
    "warnings": json_any,
})
# vertices that fold (a digest and a name from the sets above), with odd fields besides
sound_vertex = st.builds(lambda d, n, rest: {**rest, "digest": d, "name": n}, st.sampled_from(DIGESTS[:5]),
                         st.sampled_from(NAMES), vertex)
line = st.one_of(st.lists(sound_vertex, min_size=1, max_size=3).map(lambda vs: json.dumps({"vertexes": vs})),
                 st.lists(sound_vertex, min_size=1, max_size=3).map(lambda vs: json.dumps({"vertexes": vs})),
                 status_obj.map(json.dumps), st.text(max_size=60), st.sampled_from(
    ["{", "}", "{\"vertexes\":[", "]}", "ERROR: failed to solve", "::error::x", "\x00\x00", "#5 DONE 0.1s"]))


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHEWHY_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("CACHEWHY_LIVE", "none")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _one_answer(capsys, args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    assert "internal error" not in out + err and "Traceback" not in out + err, (out + err)[-2000:]
    if code != 0:
        assert code == 2 and err.count("\n") == 1, err
    event(f"exit {code}")
    return code, out, err


@FUZZ
@given(lines=st.lists(line, max_size=25), chunked=st.booleans())
def test_fuzz_the_log_reader(capsys, tmp_path, lines, chunked):
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    # the bounded line reader gives the lines a text reader would
    got = list(Lines(io.BytesIO(data), max_line=1 << 20))
    want = data.decode("utf-8", "replace").split("\n")
    assert "".join(got) == "\n".join(want)
    read_events(got)  # folds without error
    log = tmp_path / "fuzz.log"
    log.write_bytes(data)
    args = ["analyze", "--no-record", "--report-json", str(tmp_path / "r.json")]
    if chunked:
        args += ["--report-md", str(tmp_path / "r.md"), "--html", str(tmp_path / "r.html")]
    code, out, err = _one_answer(capsys, [*args, str(log)])
    for stream in (out, err):
        assert "\x1b" not in stream and "\x00" not in stream
    if code == 0:
        json.loads((tmp_path / "r.json").read_text())


_RECORD: dict = {}


def _good_record(tmp_path: Path, capsys) -> dict:
    """A real record, made once by analyzing a small log."""
    if not _RECORD:
        log = tmp_path / "good.log"
        log.write_text("\n".join(json.dumps({"vertexes": [v]}) for v in [
            {"digest": DIGESTS[0], "name": NAMES[0], "started": TIMES[0], "completed": TIMES[1]},
            {"digest": DIGESTS[1], "name": NAMES[1], "inputs": [DIGESTS[0]], "started": TIMES[0],
             "completed": TIMES[1]},
            {"digest": DIGESTS[2], "name": NAMES[2], "inputs": [DIGESTS[1]], "started": TIMES[0],
             "completed": TIMES[1]}]) + "\n")
        (tmp_path / "Dockerfile").write_text("FROM alpine:3\nRUN make\nCOPY . /app\n")
        assert main(["analyze", "--dockerfile", str(tmp_path / "Dockerfile"), str(log)]) == 0
        capsys.readouterr()
        (path,) = (tmp_path / "store").glob("2*.json")
        _RECORD.update(json.loads(path.read_text()))
    return json.loads(json.dumps(_RECORD))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@FUZZ
@given(data=st.data())
def test_fuzz_the_record_reader(capsys, tmp_path, data):
    record = _good_record(tmp_path, capsys)
    paths = [p for p in _paths(record) if p and p[0] != "report"]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        target = record
        try:
            for k in path[:-1]:
                target = target[k]
            target[path[-1]] = data.draw(json_any)
        except (KeyError, IndexError, TypeError):
            continue
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(record))
    log = tmp_path / "now.log"
    log.write_text(json.dumps({"vertexes": [{"digest": DIGESTS[1], "name": NAMES[1], "started": TIMES[0],
                                              "completed": TIMES[1]}]}) + "\n")
    code, out, err = _one_answer(capsys, ["analyze", "--previous", str(previous), "--no-record", str(log)])
    if code != 0:
        assert str(previous) in err or "previous" in err, err  # the one line names the bad record
