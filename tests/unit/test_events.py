"""Tests for analyzer.events: reading buildx `--progress=rawjson` streams.

Fixture lines follow the shapes captured from buildx 0.29 (one object per
line, Go's encoder: no spaces, `<>&` escaped as \\u003c \\u003e \\u0026) and
buildx 0.13 (the same objects pretty-printed).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.events import (
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES,
    MAX_STATUS_IDS,
    BuildEvents,
    EventDecoder,
    Vertex,
    VertexLog,
    Warning,
    load_file,
    parse_time,
    read_events,
)


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def compact(obj: dict) -> str:
    """One line as buildx 0.29 writes it."""
    return json.dumps(obj, separators=(",", ":")) + "\n"


def pretty(obj: dict) -> list[str]:
    """The lines buildx 0.13 writes for one object."""
    return [ln + "\n" for ln in json.dumps(obj, indent=2).split("\n")]


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


BASE, BUILDER, COPY_A, CTX, DEF = dg(1), dg(2), dg(3), dg(4), dg(5)

RUN_NAME = "[builder 1/2] RUN echo build-1 > build.txt"
# Go escapes '>' as \u003e.
_RUN = '{"vertexes":[{"digest":"' + BUILDER + '","inputs":["' + BASE + '"],' + (
    '"name":"[builder 1/2] RUN echo build-1 \\u003e build.txt"'
)
ANNOUNCE = _RUN + "}]}\n"
START = _RUN + ',"started":"2026-11-28T01:46:03.385148944Z"}]}\n'
COMPLETE = _RUN + ',"started":"2026-11-28T01:46:03.385148944Z","completed":"2026-11-28T01:46:03.526786051Z"}]}\n'
WORKDIR_ANNOUNCE = compact({"vertexes": [{"digest": COPY_A, "inputs": [BASE], "name": "[base 2/4] WORKDIR /app"}]})
WORKDIR_CACHED = compact(
    {
        "vertexes": [
            {
                "digest": COPY_A,
                "inputs": [BASE],
                "name": "[base 2/4] WORKDIR /app",
                "started": "2026-11-28T01:46:22.956680242Z",
                "completed": "2026-11-28T01:46:22.956680242Z",
                "cached": True,
            }
        ]
    }
)
LOG_LINE = '{"logs":[{"vertex":"' + BUILDER + '","stream":1,"data":"YWFhCg==","timestamp":"2026-11-28T01:46:03.4Z"}]}\n'
STATUS_LINE = compact(
    {
        "statuses": [
            {
                "id": "transferring context:",
                "vertex": CTX,
                "name": "transferring",
                "current": 50,
                "timestamp": "2026-11-28T01:46:02.9Z",
                "started": "2026-11-28T01:46:02.8Z",
                "completed": "2026-11-28T01:46:02.9Z",
            }
        ]
    }
)
EPILOGUE = [
    "Dockerfile:8\n",
    "--------------------\n",
    "   6 |     COPY --chmod=644 src/ ./src/\n",
    "   7 |     COPY --link src/x.txt /linked/x.txt\n",
    '   8 | >>> RUN echo "mode=$MODE v=$VERSION" > /tmp/o && ls /cache\n',
    "--------------------\n",
    (
        'ERROR: failed to build: failed to solve: process "/bin/sh -c echo \\"mode=$MODE v=$VERSION\\" '
        '> /tmp/o && ls /cache" did not complete successfully: exit code: 1\n'
    ),
]


# --------------------------------------------------------------------------
# Vertex folding


def test_executed_step_announce_start_complete():
    ev = read_events([ANNOUNCE, START, COMPLETE])
    v = ev.vertices[BUILDER]
    assert v.name == RUN_NAME
    assert v.inputs == [BASE]
    assert v.started == "2026-11-28T01:46:03.385148944Z"
    assert v.completed == "2026-11-28T01:46:03.526786051Z"
    assert v.cached is False
    assert v.error is None
    assert v.updates == 3
    assert v.first_started == v.started
    assert v.duration_s() == pytest.approx(0.141637107, abs=1e-9)
    assert ev.objects == 3
    assert ev.messages == []
    assert ev.skipped == 0


def test_announced_only_vertex_has_no_times():
    ev = read_events([ANNOUNCE])
    v = ev.vertices[BUILDER]
    assert v.started is None and v.completed is None
    assert v.duration_s() is None
    assert v.updates == 1


def test_cached_step():
    ev = read_events([WORKDIR_ANNOUNCE, WORKDIR_CACHED])
    v = ev.vertices[COPY_A]
    assert v.cached is True
    assert v.name == "[base 2/4] WORKDIR /app"
    assert v.duration_s() == 0.0
    assert v.updates == 2


def test_cached_flag_survives_a_later_update_without_it():
    later = compact({"vertexes": [{"digest": COPY_A, "name": "[base 2/4] WORKDIR /app"}]})
    ev = read_events([WORKDIR_ANNOUNCE, WORKDIR_CACHED, later])
    assert ev.vertices[COPY_A].cached is True


def test_failed_step_keeps_error_and_stderr():
    err = 'process "/bin/sh -c ls /cache" did not complete successfully: exit code: 1'
    lines = [
        compact({"vertexes": [{"digest": BUILDER, "name": "[base 5/7] RUN ls /cache", "started": "2026-11-28T01:46:03Z"}]}),
        compact({"logs": [{"vertex": BUILDER, "stream": 2, "data": b64("ls: /cache: No such file\n"),
                           "timestamp": "2026-11-28T01:46:03.1Z"}]}),
        compact({"vertexes": [{"digest": BUILDER, "name": "[base 5/7] RUN ls /cache", "started": "2026-11-28T01:46:03Z",
                               "completed": "2026-11-28T01:46:03.2Z", "error": err}]}),
    ]
    ev = read_events(lines + EPILOGUE)
    v = ev.vertices[BUILDER]
    assert v.error == err
    assert v.duration_s() == pytest.approx(0.2)
    assert ev.logs[BUILDER].text() == "ls: /cache: No such file\n"
    assert ev.logs[BUILDER].streams == {2}


def test_same_digest_twice_in_one_line_restart():
    # "[internal] load build definition" completed and restarted in one line.
    name = "[internal] load build definition from Dockerfile"
    line = compact(
        {
            "vertexes": [
                {"digest": DEF, "name": name, "started": "2026-11-28T01:46:01.5Z", "completed": "2026-11-28T01:46:01.6Z"},
                {"digest": DEF, "name": name, "started": "2026-11-28T01:46:01.7Z"},
            ]
        }
    )
    ev = read_events([line])
    v = ev.vertices[DEF]
    assert list(ev.vertices) == [DEF]
    assert v.updates == 2
    assert v.started == "2026-11-28T01:46:01.7Z"  # the restart
    assert v.first_started == "2026-11-28T01:46:01.5Z"
    assert v.completed == "2026-11-28T01:46:01.6Z"  # absent field keeps its value
    assert v.duration_s() is None  # the second run has not completed
    done = compact({"vertexes": [{"digest": DEF, "name": name, "started": "2026-11-28T01:46:01.7Z",
                                  "completed": "2026-11-28T01:46:02Z"}]})
    ev.feed_line(done)
    assert v.duration_s() == pytest.approx(0.3)
    assert v.first_started == "2026-11-28T01:46:01.5Z"


def test_first_started_is_the_earliest_by_time_not_by_text():
    # "…03.1Z" sorts after "…03.17Z" as text but is earlier.
    lines = [
        compact({"vertexes": [{"digest": DEF, "started": "2026-11-28T01:46:03.17Z"}]}),
        compact({"vertexes": [{"digest": DEF, "started": "2026-11-28T01:46:03.1Z"}]}),
        compact({"vertexes": [{"digest": DEF, "started": "2026-11-28T01:46:04Z"}]}),
    ]
    v = read_events(lines).vertices[DEF]
    assert v.first_started == "2026-11-28T01:46:03.1Z"
    assert v.started == "2026-11-28T01:46:04Z"


def test_vertices_keep_first_seen_order():
    lines = [
        compact({"vertexes": [{"digest": dg(9), "name": "a"}, {"digest": dg(3), "name": "b"}]}),
        compact({"vertexes": [{"digest": dg(7), "name": "c"}, {"digest": dg(9), "name": "a2"}]}),
    ]
    ev = read_events(lines)
    assert list(ev.vertices) == [dg(9), dg(3), dg(7)]
    assert ev.vertices[dg(9)].name == "a2"


def test_progress_group_of_copy_link():
    pg = {"id": "x123", "name": "[base 4/7] COPY --link src/x.txt /linked/x.txt", "weak": True}
    ev = read_events([compact({"vertexes": [{"digest": COPY_A, "name": pg["name"], "progressGroup": pg}]})])
    assert ev.vertices[COPY_A].progress_group == pg


def test_unknown_fields_are_ignored():
    line = compact(
        {
            "vertexes": [{"digest": BUILDER, "name": "n", "future": {"x": 1}}],
            "newThing": [1, 2, 3],
        }
    )
    ev = read_events([line])
    assert ev.vertices[BUILDER].name == "n"
    assert ev.objects == 1 and ev.skipped == 0 and ev.messages == []


def test_vertex_constructor_defaults():
    v = Vertex("sha256:x")
    assert (v.inputs, v.name, v.cached, v.updates, v.duration_s()) == ([], "", False, 0, None)


# --------------------------------------------------------------------------
# Pretty-printed objects (buildx 0.13) and plain text


def test_pretty_printed_object():
    obj = json.loads(COMPLETE)
    lines = pretty(obj)
    assert lines[0] == "{\n" and lines[-1] == "}\n" and len(lines) > 5
    ev = read_events(lines)
    assert ev.objects == 1
    assert ev.messages == []
    assert ev.vertices[BUILDER].name == RUN_NAME
    assert ev.vertices[BUILDER].duration_s() == pytest.approx(0.141637107)


def test_pretty_objects_with_plain_warning_and_error_epilogue():
    warning = "WARNING: local cache import at /tmp/cache not found due to err: could not read /tmp/cache/index.json\n"
    lines = (
        [warning]
        + pretty(json.loads(ANNOUNCE))
        + pretty(json.loads(START))
        + pretty(json.loads(LOG_LINE))
        + pretty(json.loads(COMPLETE))
        + EPILOGUE
    )
    ev = read_events(lines)
    assert ev.objects == 4
    assert ev.vertices[BUILDER].updates == 3
    assert ev.logs[BUILDER].data == b"aaa\n"
    assert ev.messages == [ln.rstrip("\n") for ln in [warning] + EPILOGUE]
    assert ev.error_message() == EPILOGUE[-1].rstrip("\n")
    assert ev.error_message().startswith("ERROR: failed to build: failed to solve: process")


def test_one_line_and_pretty_objects_mixed():
    lines = [ANNOUNCE] + pretty(json.loads(START)) + [LOG_LINE] + pretty(json.loads(COMPLETE)) + [STATUS_LINE]
    ev = read_events(lines)
    assert ev.objects == 5
    assert ev.messages == []
    assert ev.vertices[BUILDER].updates == 3
    assert ev.statuses[CTX]["transferring context:"]["current"] == 50


def test_pretty_object_cut_short_by_plain_text_becomes_messages():
    cut = pretty(json.loads(START))[:4]
    lines = cut + ["ERROR: failed to build: context canceled\n"] + [COMPLETE]
    ev = read_events(lines)
    assert ev.messages == [ln.rstrip("\n") for ln in cut] + ["ERROR: failed to build: context canceled"]
    assert ev.objects == 1  # COMPLETE still folded
    assert ev.vertices[BUILDER].completed is not None
    assert ev.error_message() == "ERROR: failed to build: context canceled"


def test_pretty_object_cut_short_by_a_new_object():
    cut = pretty(json.loads(START))[:3]
    ev = read_events(cut + pretty(json.loads(COMPLETE)))
    assert ev.objects == 1
    assert ev.messages == [ln.rstrip("\n") for ln in cut]


def test_truncated_pretty_object_at_eof():
    cut = pretty(json.loads(COMPLETE))[:-2]
    ev = read_events([ANNOUNCE] + cut)
    assert ev.objects == 1
    assert ev.messages == [ln.rstrip("\n") for ln in cut]


def test_truncated_one_line_object_at_eof():
    ev = read_events([ANNOUNCE, COMPLETE[:57]])
    assert ev.objects == 1
    assert ev.messages == [COMPLETE[:57]]
    assert ev.vertices[BUILDER].completed is None


def test_broken_pretty_object_lines_become_messages():
    lines = ["{\n", '  "vertexes": [\n', '    {"digest": }\n', "  ]\n", "}\n", LOG_LINE]
    ev = read_events(lines)
    assert ev.messages == [ln.rstrip("\n") for ln in lines[:5]]
    assert ev.logs[BUILDER].data == b"aaa\n"


def test_non_object_json_values_are_messages():
    ev = read_events(["[1,2]\n", '"x"\n', "42\n", "null\n", ANNOUNCE])
    assert ev.messages == ["[1,2]", '"x"', "42", "null"]
    assert ev.objects == 1


def test_garbage_and_binary_lines(tmp_path):
    p = tmp_path / "stderr.rawjson"
    p.write_bytes(
        b"\x00\xff\xfe garbage \x80\x81\n"
        + ANNOUNCE.encode()
        + b"{\"vertexes\":[{\"digest\":\"\xff\xfe\"}]}\n"
        + b"{\"logs\":[{\"vertex\":\"x\",\"data\":\"\x00\x01\"}]}\n"
        + b"}}}{{{\n"
        + COMPLETE.encode()
    )
    ev = load_file(p)
    assert ev.vertices[BUILDER].completed == "2026-11-28T01:46:03.526786051Z"
    assert ev.messages[0] == "\x00\ufffd\ufffd garbage \ufffd\ufffd"
    assert "}}}{{{" in ev.messages
    # The object with a replacement-character digest is still an object.
    assert ev.vertices["\ufffd\ufffd"].updates == 1


def test_crlf_line_endings():
    lines = [ln.replace("\n", "\r\n") for ln in [ANNOUNCE, START, LOG_LINE, COMPLETE] + EPILOGUE]
    ev = read_events(lines)
    assert ev.objects == 4
    assert ev.logs[BUILDER].data == b"aaa\n"
    assert ev.messages[0] == "Dockerfile:8"
    assert ev.error_message().endswith("exit code: 1")


def test_crlf_pretty_printed():
    lines = [ln.replace("\n", "\r\n") for ln in pretty(json.loads(COMPLETE))]
    ev = read_events(lines)
    assert ev.objects == 1 and ev.messages == []


def test_lines_without_newlines_and_blank_lines():
    ev = read_events([ANNOUNCE.rstrip("\n"), "", "   \n", "\n", COMPLETE.rstrip("\n")])
    assert ev.objects == 2
    assert ev.messages == []


def test_objects_written_back_to_back_on_one_line():
    ev = read_events([ANNOUNCE.rstrip("\n") + START.rstrip("\n") + " trailing text\n"])
    assert ev.objects == 2
    assert ev.vertices[BUILDER].started is not None
    assert ev.messages == ["trailing text"]


def test_chunk_with_several_lines_fed_at_once():
    ev = BuildEvents()
    ev.feed_line(ANNOUNCE + START + "ERROR: boom\n")
    ev.feed_line("".join(pretty(json.loads(COMPLETE))))
    ev.close()
    assert ev.vertices[BUILDER].updates == 3
    assert ev.error_message() == "ERROR: boom"


# --------------------------------------------------------------------------
# Incremental use


def test_feed_line_returns_changed_digests():
    ev = BuildEvents()
    assert ev.feed_line(ANNOUNCE) == [BUILDER]
    assert ev.feed_line(LOG_LINE) == []
    assert ev.feed_line(STATUS_LINE) == []
    both = compact({"vertexes": [{"digest": COPY_A}, {"digest": BUILDER}, {"digest": COPY_A}]})
    assert ev.feed_line(both) == [COPY_A, BUILDER]
    assert ev.feed_line("ERROR: x\n") == []


def test_feed_line_pretty_object_completes_on_closing_brace():
    ev = BuildEvents()
    lines = pretty(json.loads(START))
    for ln in lines[:-1]:
        assert ev.feed_line(ln) == []
    assert ev.feed_line(lines[-1]) == [BUILDER]
    assert ev.vertices[BUILDER].started is not None


def test_close_flushes_unterminated_object():
    ev = BuildEvents()
    for ln in pretty(json.loads(START))[:-1]:
        ev.feed_line(ln)
    assert ev.messages == []
    ev.close()
    assert ev.messages[0] == "{"
    assert ev.objects == 0


def test_apply_folds_one_solve_status():
    ev = BuildEvents()
    assert ev.apply(json.loads(COMPLETE)) == [BUILDER]
    assert ev.apply({"logs": [{"vertex": BUILDER, "stream": 1, "data": "YWFhCg=="}]}) == []
    assert ev.logs[BUILDER].text() == "aaa\n"
    assert ev.apply([1, 2]) == []  # type: ignore[arg-type]
    assert ev.skipped == 1
    assert ev.objects == 2


def test_event_decoder_items():
    dec = EventDecoder()
    assert dec.feed_line(ANNOUNCE) == [json.loads(ANNOUNCE)]
    assert dec.feed_line("Dockerfile:8\n") == ["Dockerfile:8"]
    assert dec.feed_line("\n") == []
    assert dec.feed_line("{\n") == []
    assert dec.pending
    assert dec.feed_line('  "logs": []\n') == []
    assert dec.feed_line("}\n") == [{"logs": []}]
    assert not dec.pending
    assert dec.feed_line("{") == []
    assert dec.close() == ["{"]
    assert dec.close() == []
    assert dec.feed_line(b"ERROR: bytes\n") == ["ERROR: bytes"]  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Logs


def log_line(vertex: str, data: bytes, stream: int = 1) -> str:
    return compact({"logs": [{"vertex": vertex, "stream": stream, "data": b64(data),
                              "timestamp": "2026-11-28T01:46:03.4Z"}]})


def test_logs_decode_per_vertex_and_stream():
    ev = read_events(
        [
            LOG_LINE,
            log_line(BUILDER, b"warning: x\n", stream=2),
            log_line(CTX, b"\xff\xfebinary\n"),
        ]
    )
    lg = ev.logs[BUILDER]
    assert lg.data == b"aaa\nwarning: x\n"
    assert lg.text() == "aaa\nwarning: x\n"
    assert lg.streams == {1, 2}
    assert lg.total_bytes == 15
    assert ev.logs[CTX].text() == "\ufffd\ufffdbinary\n"
    assert ev.objects == 3


def test_several_log_entries_in_one_object_and_no_stream():
    obj = {"logs": [{"vertex": BUILDER, "data": b64("a\n")}, {"vertex": BUILDER, "stream": 2, "data": b64("b\n")},
                    {"data": b64("orphan\n")}]}
    ev = read_events([compact(obj)])
    assert ev.logs[BUILDER].data == b"a\nb\n"
    assert ev.logs[BUILDER].streams == {2}
    assert ev.logs[""].data == b"orphan\n"


def test_log_tail_is_bounded_and_keeps_the_end():
    chunks = [f"line {i:05d} {'x' * (i % 37)}\n".encode() for i in range(3000)]
    ev = read_events([log_line(BUILDER, c, stream=1 + i % 2) for i, c in enumerate(chunks)], log_limit=1000)
    lg = ev.logs[BUILDER]
    whole = b"".join(chunks)
    assert lg.total_bytes == len(whole)
    assert lg.data == whole[-1000:]
    assert lg.text().endswith("line 02999 " + "x" * (2999 % 37) + "\n")
    assert lg.truncated
    assert lg.streams == {1, 2}


def test_log_tail_default_limit_is_64k():
    chunk = bytes(range(256)) * 16  # 4 KiB
    n = 100
    ev = read_events([log_line(BUILDER, chunk[i:] + chunk[:i]) for i in range(n)])
    whole = b"".join(chunk[i:] + chunk[:i] for i in range(n))
    lg = ev.logs[BUILDER]
    assert lg.total_bytes == len(whole) == 409600
    assert len(lg.data) == 65536
    assert lg.data == whole[-65536:]


def test_log_tail_with_reads_between_writes():
    ev = BuildEvents(log_limit=10)
    pieces = [b"0123", b"45678", b"9abcdefgh", b"ij", b""]
    seen = b""
    for p in pieces:
        ev.feed_line(log_line(BUILDER, p))
        seen += p
        assert ev.logs[BUILDER].data == seen[-10:]
        assert ev.logs[BUILDER].total_bytes == len(seen)


def test_one_log_chunk_larger_than_the_limit():
    big = bytes(i % 251 for i in range(200_000))
    ev = read_events([log_line(BUILDER, big), LOG_LINE], log_limit=4096)
    assert ev.logs[BUILDER].data == (big + b"aaa\n")[-4096:]
    assert ev.logs[BUILDER].total_bytes == len(big) + 4


def test_log_limit_zero_counts_only():
    ev = read_events([LOG_LINE, LOG_LINE], log_limit=0)
    assert ev.logs[BUILDER].data == b""
    assert ev.logs[BUILDER].total_bytes == 8


def test_ten_megabyte_single_line():
    data = bytes(i % 256 for i in range(10 * 1024 * 1024))
    line = log_line(BUILDER, data)
    assert len(line) > 10 * 1024 * 1024
    garbage = "x" * (10 * 1024 * 1024) + "\n"
    ev = read_events([line, garbage, "{" + garbage])
    assert ev.logs[BUILDER].total_bytes == len(data)
    assert ev.logs[BUILDER].data == data[-65536:]
    assert ev.messages == ["x" * MAX_MESSAGE_CHARS, "{" + "x" * (MAX_MESSAGE_CHARS - 1)]


def test_vertex_log_constructor():
    lg = VertexLog("v", data=b"hello", streams=[1], limit=3)
    assert lg.data == b"llo"
    assert lg.total_bytes == 5
    assert lg.streams == {1}
    lg.append(b"!", stream=2)
    assert (lg.data, lg.total_bytes, lg.streams) == (b"lo!", 6, {1, 2})
    assert lg == VertexLog("v", data=b"lo!", total_bytes=6, streams={1, 2}, limit=3)
    assert "3 bytes" in repr(lg)


# --------------------------------------------------------------------------
# Warnings and statuses


def test_build_check_warning_decoded():
    short = "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)"
    detail = "The 'as' keyword should match the case of the 'from' keyword"
    dockerfile = "FROM local/busybox:latest as base\nRUN true\n" * 1000
    obj = {
        "warnings": [
            {
                "vertex": DEF,
                "level": 1,
                "short": b64(short),
                "detail": [b64(detail), b64("second \xe9")],
                "url": "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
                "sourceInfo": {
                    "filename": "Dockerfile",
                    "data": b64(dockerfile),
                    "definition": {"def": [b64(b"\x0a\x00" * 100)], "metadata": {}, "Source": {}},
                    "language": "Dockerfile",
                },
                "range": [{"start": {"line": 2}, "end": {"line": 2}}, {"start": {"line": 5, "character": 3},
                                                                     "end": {"line": 7}}],
            }
        ]
    }
    ev = read_events([compact(obj)])
    assert ev.warnings == [
        Warning(
            vertex=DEF,
            level=1,
            short=short,
            detail=[detail, "second \xe9"],
            url="https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
            filename="Dockerfile",
            ranges=[(2, 2), (5, 7)],
        )
    ]
    assert not hasattr(ev.warnings[0], "data")


def test_minimal_warning_and_missing_range_end():
    ev = read_events([compact({"warnings": [{"short": b64("no vertex")},
                                            {"vertex": DEF, "range": [{"start": {"line": 4}}]}]})])
    w0, w1 = ev.warnings
    assert (w0.vertex, w0.level, w0.short, w0.detail, w0.url, w0.filename, w0.ranges) == (
        None, 0, "no vertex", [], None, None, [])
    assert w1.ranges == [(4, 4)] and w1.short == ""


def test_statuses_keep_last_per_vertex_and_id():
    def status(i: int, current: int, vertex: str = CTX, **kw) -> str:
        return compact({"statuses": [{"id": f"id{i}", "vertex": vertex, "current": current,
                                      "timestamp": "2026-11-28T01:46:02Z", **kw}]})

    lines = [status(1, 10), status(2, 5, total=100), status(1, 99, completed="2026-11-28T01:46:03Z"), STATUS_LINE]
    ev = read_events(lines)
    per = ev.statuses[CTX]
    assert list(per) == ["id1", "id2", "transferring context:"]
    assert per["id1"]["current"] == 99 and per["id1"]["completed"] == "2026-11-28T01:46:03Z"
    assert per["id2"]["total"] == 100
    assert per["transferring context:"]["name"] == "transferring"


def test_statuses_are_bounded_per_vertex():
    ev = read_events(
        compact({"statuses": [{"id": f"exporting layer {i}", "vertex": BUILDER, "current": i, "timestamp": "t"}]})
        for i in range(MAX_STATUS_IDS + 5)
    )
    per = ev.statuses[BUILDER]
    assert len(per) == MAX_STATUS_IDS
    assert ev.statuses_dropped == 5
    assert f"exporting layer {MAX_STATUS_IDS + 4}" in per  # the newest are kept
    assert "exporting layer 0" not in per


# --------------------------------------------------------------------------
# Malformed objects


def test_wrong_types_are_skipped_and_counted():
    lines = [
        compact({"vertexes": {"digest": BUILDER}}),  # not a list
        compact({"vertexes": [{"name": "no digest"}, {"digest": 7}, {"digest": ""}, "str", None]}),
        compact({"vertexes": [{"digest": BUILDER, "inputs": "sha256:x", "name": 5, "started": 1,
                               "completed": ["x"], "cached": "yes", "error": 0, "progressGroup": "g"}]}),
        compact({"vertexes": [{"digest": COPY_A, "inputs": [1, 2]}]}),
        compact({"logs": [{"vertex": BUILDER, "data": "not base64!"}, {"vertex": BUILDER, "data": "YWJj"},
                          {"vertex": BUILDER, "data": 12}, {"vertex": 3, "data": "YWJj"},
                          {"vertex": BUILDER, "data": "YWJj", "stream": [1]}, {"vertex": BUILDER}, 4]}),
        compact({"logs": "YWJj"}),
        compact({"statuses": [{"vertex": CTX}, {"id": 5}, {"id": "a", "vertex": 5}, []]}),
        compact({"statuses": {"id": "x"}}),
        compact({"warnings": [{"vertex": 5}, {"short": "***"}, {"detail": "x", "level": "1"}, 7,
                              {"sourceInfo": "Dockerfile", "range": [{"start": "x"}], "url": 5}]}),
        compact({"warnings": "w"}),
        compact({"vertexes": None, "logs": None}),
    ]
    ev = read_events(lines)
    assert list(ev.vertices) == [BUILDER, COPY_A]
    v = ev.vertices[BUILDER]
    assert (v.inputs, v.name, v.started, v.completed, v.cached, v.error, v.progress_group) == (
        [], "", None, None, False, None, None)
    assert v.updates == 1
    assert ev.vertices[COPY_A].inputs == []
    # "YWJj" twice (one of them with a bad stream, which is skipped on its own)
    assert ev.logs[BUILDER].data == b"abcabc"
    assert ev.logs[BUILDER].streams == set()
    assert ev.statuses == {}
    assert len(ev.warnings) == 3  # the one with a bad vertex is dropped, the rest kept with what decodes
    assert ev.skipped == 35
    assert ev.objects == len(lines)
    assert ev.messages == []


def test_json_nesting_too_deep_is_a_message():
    deep = "{" + '"a":[' * 100_000 + "]" * 100_000 + "}\n"
    ev = read_events([deep, ANNOUNCE])
    assert ev.objects == 1
    assert len(ev.messages) == 1


def test_non_string_lines_do_not_crash():
    ev = read_events([b"ERROR: from bytes\n", ANNOUNCE.encode(), 42])  # type: ignore[list-item]
    assert ev.error_message() == "ERROR: from bytes"
    assert ev.vertices[BUILDER].updates == 1
    assert ev.messages[-1] == "42"


# --------------------------------------------------------------------------
# Messages and errors


def test_error_message_is_the_last_error_line_in_full():
    assert read_events([ANNOUNCE]).error_message() is None
    long_error = "ERROR: failed to build: " + "y" * 10_000
    ev = read_events(["ERROR: first\n", "Dockerfile:8\n", long_error + "\n", "some trailing line\n"])
    assert ev.error_message() == long_error
    assert ev.messages[2] == long_error[:MAX_MESSAGE_CHARS]


def test_messages_are_bounded_but_keep_start_and_end():
    n = MAX_MESSAGES + 2500
    ev = read_events([f"line {i}\n" for i in range(n)] + ["ERROR: the end\n"])
    assert len(ev.messages) <= MAX_MESSAGES
    assert len(ev.messages) + ev.messages_dropped == n + 1
    assert ev.messages[0] == "line 0"
    assert ev.messages[-2:] == [f"line {n - 1}", "ERROR: the end"]
    assert ev.error_message() == "ERROR: the end"


def test_add_message_directly():
    ev = BuildEvents()
    ev.add_message("WARNING: x\r\n")
    ev.add_message("")
    assert ev.messages == ["WARNING: x"]


def test_missing_dockerfile_only_error_line():
    line = "ERROR: failed to build: failed to solve: failed to read dockerfile: open Dockerfile: no such file or directory\n"
    ev = read_events([line])
    assert ev.vertices == {} and ev.objects == 0
    assert ev.error_message() == line.rstrip("\n")


# --------------------------------------------------------------------------
# Time


def _dt(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T01:46:03.17875921Z", _dt("2026-11-28T01:46:03.178759Z") + 0.00000021),
        ("2026-11-28T01:46:03.385148944Z", _dt("2026-11-28T01:46:03.385148Z") + 0.000000944),
        ("2026-11-28T01:46:03Z", _dt("2026-11-28T01:46:03+00:00")),
        ("2026-11-28T01:46:03.5Z", _dt("2026-11-28T01:46:03.500000+00:00")),
        ("2026-11-28T01:46:03.5+00:00", _dt("2026-11-28T01:46:03.500000+00:00")),
        ("2026-11-28T03:46:03+02:00", _dt("2026-11-28T01:46:03+00:00")),
        ("2026-11-27T20:16:03-05:30", _dt("2026-11-28T01:46:03+00:00")),
        ("1970-01-01T00:00:00Z", 0.0),
        ("2024-02-29T12:00:00Z", _dt("2024-02-29T12:00:00+00:00")),
        ("2000-03-01T00:00:00.000000001Z", _dt("2000-03-01T00:00:00+00:00") + 1e-9),
        ("1969-12-31T23:59:59Z", -1.0),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [None, "", "garbage", "2026-11-28", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
     "2026-11-28T24:00:00Z", "2026-11-28T01:46:03.Z", "2026-11-28T01:46:03Zjunk", "2026-11-28T01:46:03+25:00",
     "２０２６-11-28T01:46:03Z", "2026-11-28T01:46:03.1a3Z", "2026-11-28T01:46:03.\u0661\u0662Z",
     "2026-11-28T01:46:03.1_0Z", "2026-11-28T01:46:03x5Z", 12345, b"2026-11-28T01:46:03Z"],
)
def test_parse_time_rejects(text):
    assert parse_time(text) is None


def test_parse_time_more_than_nine_digits_truncates():
    assert parse_time("2026-11-28T01:46:03.1234567891Z") == parse_time("2026-11-28T01:46:03.123456789Z")


def test_parse_time_nanosecond_order():
    assert parse_time("2026-11-28T01:46:03.1Z") < parse_time("2026-11-28T01:46:03.17Z") < parse_time(
        "2026-11-28T01:46:04Z")


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 12, 31)),
       st.integers(0, 999_999_999), st.integers(0, 9))
def test_parse_time_agrees_with_datetime(when, nanos, digits):
    from analyzer.events import _parse_ns

    base = when.replace(microsecond=0).isoformat()
    frac = f"{nanos:09d}"[:digits]
    text = base + ("." + frac if digits else "") + "Z"
    want_ns = int(datetime.fromisoformat(base + "+00:00").timestamp()) * 10**9 + (
        int(frac.ljust(9, "0")) if digits else 0)
    # The first call fills the per-second cache, the second uses it; an
    # explicit offset takes the general path.
    assert _parse_ns(text) == _parse_ns(text) == _parse_ns(text[:-1] + "+00:00") == want_ns
    assert parse_time(text) == pytest.approx(want_ns / 1e9, abs=1e-6)


def test_duration_s():
    v = Vertex(BUILDER, started="2026-11-28T01:46:03.999999999Z", completed="2026-11-28T01:46:05.000000001Z")
    assert v.duration_s() == pytest.approx(1.000000002, abs=1e-12)
    assert Vertex(BUILDER, started="2026-11-28T01:46:03Z").duration_s() is None
    assert Vertex(BUILDER, completed="2026-11-28T01:46:03Z").duration_s() is None
    assert Vertex(BUILDER, started="bad", completed="2026-11-28T01:46:03Z").duration_s() is None
    later_start = Vertex(BUILDER, started="2026-11-28T01:46:04Z", completed="2026-11-28T01:46:03Z")
    assert later_start.duration_s() is None
    offset = Vertex(BUILDER, started="2026-11-28T01:46:03Z", completed="2026-11-28T02:46:04+01:00")
    assert offset.duration_s() == 1.0


# --------------------------------------------------------------------------
# Files


def test_load_file(tmp_path):
    p = tmp_path / "build.rawjson"
    p.write_text("".join([ANNOUNCE, START, LOG_LINE, COMPLETE, WORKDIR_ANNOUNCE, WORKDIR_CACHED, STATUS_LINE]
                         + EPILOGUE), encoding="utf-8")
    ev = load_file(p)
    assert [v.name for v in ev.vertices.values()] == [RUN_NAME, "[base 2/4] WORKDIR /app"]
    assert [v.cached for v in ev.vertices.values()] == [False, True]
    assert ev.logs[BUILDER].text() == "aaa\n"
    assert len(ev.messages) == len(EPILOGUE)
    assert ev.error_message().endswith("exit code: 1")
    assert load_file(str(p)).objects == 7


def test_load_file_keeps_carriage_returns_inside_lines(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"progress 10%\rprogress 20%\r\n" + ANNOUNCE.encode())
    ev = load_file(p)
    assert ev.messages == ["progress 10%\rprogress 20%"]
    assert ev.objects == 1


# --------------------------------------------------------------------------
# Properties

_digests = st.sampled_from([dg(i) for i in range(6)])
_times = st.builds(
    lambda s, ns: f"2026-11-28T01:46:{s:02d}" + (f".{ns:09d}".rstrip("0") if ns else "") + "Z",
    st.integers(0, 59),
    st.integers(0, 999_999_999),
)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_vertex = st.fixed_dictionaries(
    {"digest": _digests},
    optional={
        "inputs": st.lists(_digests, max_size=3),
        "name": _text,
        "started": _times,
        "completed": _times,
        "cached": st.just(True),
        "error": _text,
        "progressGroup": st.fixed_dictionaries({"id": _text, "name": _text}, optional={"weak": st.just(True)}),
    },
)


def _log_entry(vertex: str | None, stream: int | None, data: bytes, timestamp: str) -> dict:
    """A VertexLog in Go's field order (vertex, stream, data, timestamp)."""
    entry: dict = {}
    if vertex is not None:
        entry["vertex"] = vertex
    if stream is not None:
        entry["stream"] = stream
    entry["data"] = b64(data)
    entry["timestamp"] = timestamp
    return entry


_log = st.builds(
    _log_entry,
    st.none() | _digests | st.just(""),
    st.none() | st.integers(0, 3),
    st.binary(max_size=200),
    _times,
)
_status = st.fixed_dictionaries(
    {"id": _text, "current": st.integers(0, 10**6), "timestamp": _times},
    optional={"vertex": _digests, "name": _text, "total": st.integers(0, 10**6), "started": _times,
              "completed": _times},
)
_warning = st.fixed_dictionaries(
    {},
    optional={"vertex": _digests, "level": st.integers(0, 3), "short": _text.map(b64),
              "detail": st.lists(_text.map(b64), max_size=2), "url": _text,
              "sourceInfo": st.fixed_dictionaries({"filename": _text, "data": _text.map(b64)}),
              "range": st.lists(st.fixed_dictionaries({"start": st.fixed_dictionaries({"line": st.integers(1, 99)}),
                                                       "end": st.fixed_dictionaries({"line": st.integers(1, 99)})}),
                                max_size=2)},
)
_solve_status = st.fixed_dictionaries(
    {},
    optional={
        "vertexes": st.lists(_vertex, min_size=1, max_size=4),
        "statuses": st.lists(_status, min_size=1, max_size=3),
        "logs": st.lists(_log, min_size=1, max_size=3),
        "warnings": st.lists(_warning, min_size=1, max_size=2),
    },
)


def _summary(ev: BuildEvents) -> tuple:
    return (
        [(d, v.inputs, v.name, v.started, v.completed, v.cached, v.error, v.progress_group, v.updates,
          v.first_started, v.duration_s()) for d, v in ev.vertices.items()],
        {k: (lg.data, lg.total_bytes, lg.streams) for k, lg in ev.logs.items()},
        ev.warnings,
        ev.statuses,
        ev.objects,
        ev.skipped,
        ev.messages,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_solve_status, max_size=12), st.integers(0, 300))
def test_pretty_printed_stream_folds_like_one_line_stream(objs, limit):
    one_line = [compact(o) for o in objs]
    pretty_lines = [ln for o in objs for ln in pretty(o)]
    a = read_events(one_line, log_limit=limit)
    b = read_events(pretty_lines, log_limit=limit)
    assert _summary(a) == _summary(b)
    # Incremental feeding and apply() agree with read_events.
    c = BuildEvents(log_limit=limit)
    for ln in one_line:
        c.feed_line(ln)
    c.close()
    d = BuildEvents(log_limit=limit)
    for o in objs:
        d.apply(o)
    assert _summary(c) == _summary(a) == _summary(d)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", dg(1), dg(2)]), st.binary(max_size=300), st.integers(0, 2)),
                max_size=40),
       st.integers(0, 500))
def test_log_tail_matches_a_plain_concatenation(entries, limit):
    lines = []
    for vertex, data, stream in entries:
        entry = {"vertex": vertex, "stream": stream, "data": b64(data), "timestamp": "2026-11-28T01:46:03Z"}
        if stream == 0:
            del entry["stream"]  # Go's omitempty
        lines.append(compact({"logs": [entry]}))
    ev = read_events(lines, log_limit=limit)
    want: dict[str, bytes] = {}
    for vertex, data, _ in entries:
        want[vertex] = want.get(vertex, b"") + data
    assert {k: lg.total_bytes for k, lg in ev.logs.items()} == {k: len(v) for k, v in want.items()}
    assert {k: lg.data for k, lg in ev.logs.items()} == {k: v[max(0, len(v) - limit):] for k, v in want.items()}


_line_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet='{}[]":,0123456789 \tabcdefghijklmnopqrstuvwxyz\\\r\n=+/', max_size=80),
    st.sampled_from([ANNOUNCE, START, COMPLETE, LOG_LINE, STATUS_LINE, "{", "}", "{\n", "}\n", "  ", "[1]",
                     '{"logs":[{"vertex":"x","stream":1,"data":"YQ==","timestamp":"t"}]}',
                     '{"vertexes":[{"digest":"d","inputs":[{}]}]}', '{"statuses":[{"id":[]}]}',
                     '{"logs":[{"vertex":"x","stream":{},"data":"YQ=="}]}'] + EPILOGUE),
    _solve_status.map(compact),
    _solve_status.map(lambda o: json.dumps(o, indent=2)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line_text, max_size=25))
def test_arbitrary_lines_never_raise(lines):
    ev = read_events(lines, log_limit=64)
    for lg in ev.logs.values():
        assert len(lg.data) <= 64
        lg.text()
    ev.error_message()
    inc = BuildEvents(log_limit=64)
    for ln in lines:
        inc.feed_line(ln)
    inc.close()
    assert _summary(inc) == _summary(ev)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["digest", "inputs", "name", "started", "completed", "cached", "error", "progressGroup",
                         "id", "vertex", "data", "stream", "level", "short", "detail", "url", "sourceInfo",
                         "range", "start", "end", "line", "filename", "x"]), children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["vertexes", "statuses", "logs", "warnings", "other"]),
                       st.one_of(_json, st.lists(_json, max_size=4)), max_size=4))
def test_apply_never_raises_on_wrong_types(obj):
    ev = BuildEvents(log_limit=16)
    ev.apply(obj)
    ev.feed_line(compact(obj))
    for v in ev.vertices.values():
        assert isinstance(v.digest, str) and isinstance(v.name, str) and isinstance(v.cached, bool)
        assert all(isinstance(i, str) for i in v.inputs)
        v.duration_s()
    for lg in ev.logs.values():
        assert isinstance(lg.data, bytes) and len(lg.data) <= 16
        assert all(isinstance(s, int) for s in lg.streams)
    for w in ev.warnings:
        assert isinstance(w.short, str) and isinstance(w.level, int)
        assert all(isinstance(a, int) and isinstance(b, int) for a, b in w.ranges)


_go_log_entry = st.builds(
    _log_entry,
    st.one_of(_digests, st.text(max_size=8), st.none()),
    st.one_of(st.integers(0, 2), st.none()),
    st.binary(max_size=100),
    _times,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_go_log_entry, min_size=1, max_size=4), max_size=10), st.integers(0, 120))
def test_log_lines_fold_the_same_on_one_line_pretty_printed_or_applied(batches, limit):
    # One-line objects go straight to the parser; pretty-printed ones are
    # collected first; apply() takes objects. All must agree.
    objs = [{"logs": b} for b in batches]
    fast = read_events([compact(o) for o in objs], log_limit=limit)
    slow = read_events([ln for o in objs for ln in pretty(o)], log_limit=limit)
    applied = BuildEvents(log_limit=limit)
    for o in objs:
        applied.apply(o)
    assert _summary(fast) == _summary(slow) == _summary(applied)


def test_what_orjson_refuses_the_standard_parser_still_reads():
    # orjson decodes the lines; NaN, a lone surrogate escape and a number
    # beyond a double are JSON to Python's json module, so they stay readable.
    orjson = pytest.importorskip("orjson")

    odd = [
        '{"vertexes":[{"digest":"sha256:aa","name":"RUN echo \\ud800","newField":NaN}]}',
        '{"vertexes":[{"digest":"sha256:bb","name":"RUN big","progressGroup":{"weight":1e400}}]}',
    ]
    for line in odd:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(line)
    ev = read_events(odd)
    assert ev.skipped == 0 and ev.objects == 2
    assert ev.vertices["sha256:aa"].name == "RUN echo \ud800"
    assert ev.vertices["sha256:bb"].name == "RUN big"


def test_a_step_with_few_big_chunks_keeps_only_about_its_tail():
    # BuildKit sends a step's output in a few dozen chunks of up to 16 KiB: fewer
    # than the 64 of a counting batch, so counting by bytes too keeps memory bounded.
    import base64 as b64

    ev = BuildEvents(log_limit=8 * 1024)
    written = b""
    for i in range(40):
        chunk = bytes([65 + i % 26]) * 12_000
        written += chunk
        ev.apply({"logs": [{"vertex": BUILDER, "stream": 1, "data": b64.b64encode(chunk).decode(),
                            "timestamp": "2026-11-28T01:46:03Z"}]})
        lg = ev.logs[BUILDER]
        assert sum(map(len, lg._chunks)) * 3 // 4 <= 4 * lg.limit + 16 * 1024
    lg = ev.logs[BUILDER]
    assert lg.data == written[-8 * 1024:] and lg.total_bytes == len(written)
