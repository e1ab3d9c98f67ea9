"""The gRPC stubs in analyzer/buildkit/ are those scripts/gen-protos.sh makes
from protos/*.proto, and the conversions of BuildKit's messages to the shapes
the pipeline reads (rawjson status dicts, the logs blob, the provenance)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
STUBS = ["control_pb2.py", "control_pb2_grpc.py", "content_pb2.py", "content_pb2_grpc.py"]


def _have_grpc_tools() -> bool:
    return importlib.util.find_spec("grpc_tools") is not None


_VERSION_LINES = re.compile(rb"^(GRPC_GENERATED_VERSION = .*|# Protobuf Python Version: .*)$", re.MULTILINE)


def _stamps(data: bytes) -> list[bytes]:
    return _VERSION_LINES.findall(data)


def test_stubs_match_protos(tmp_path):
    if not _have_grpc_tools():
        if os.environ.get("CI") == "true":
            pytest.fail("grpcio-tools is not installed: it is in the `test` extra (pip install -e '.[test]')")
        pytest.skip("grpcio-tools is not installed (pip install -e '.[dev]')")
    res = subprocess.run(["bash", str(REPO / "scripts" / "gen-protos.sh"), str(tmp_path)],
                         check=False, capture_output=True, text=True,
                         env=dict(os.environ, PYTHON=sys.executable), timeout=120)
    assert res.returncode == 0, res.stderr
    for name in STUBS:
        committed = (REPO / "analyzer" / "buildkit" / name).read_bytes()
        fresh = (tmp_path / name).read_bytes()
        if _stamps(committed) == _stamps(fresh):  # the same grpcio-tools: byte for byte
            assert fresh == committed, f"analyzer/buildkit/{name} is stale: run scripts/gen-protos.sh"
        else:  # another grpcio-tools: the descriptors and the services must still be the same
            def serialized(data: bytes) -> list[bytes]:
                return re.findall(rb"AddSerializedFile\((b'.*?')\)\n", data) + re.findall(rb"'/[\w.]+/\w+'", data)
            assert serialized(fresh) == serialized(committed), \
                f"analyzer/buildkit/{name} does not match protos/: run scripts/gen-protos.sh"


def test_field_numbers_as_upstream():
    from analyzer.buildkit import content_pb2, control_pb2

    def numbers(msg) -> dict[str, int]:
        return {f.name: f.number for f in msg.DESCRIPTOR.fields}

    assert numbers(control_pb2.BuildHistoryRequest) == {"ActiveOnly": 1, "Ref": 2, "EarlyExit": 3, "Filter": 4,
                                                        "Limit": 5}
    rec = numbers(control_pb2.BuildHistoryRecord)
    assert (rec["Ref"], rec["FrontendAttrs"], rec["error"], rec["CreatedAt"], rec["logs"], rec["Result"],
            rec["Results"], rec["numCachedSteps"], rec["numTotalSteps"]) == (1, 3, 5, 6, 8, 10, 11, 15, 16)
    assert numbers(control_pb2.Vertex) == {"digest": 1, "inputs": 2, "name": 3, "cached": 4, "started": 5,
                                           "completed": 6, "error": 7}
    assert numbers(control_pb2.VertexLog) == {"vertex": 1, "timestamp": 2, "stream": 3, "msg": 4}
    assert numbers(control_pb2.Descriptor) == {"media_type": 1, "digest": 2, "size": 3, "annotations": 5}
    assert numbers(control_pb2.BuildResultInfo) == {"ResultDeprecated": 1, "Attestations": 2, "Results": 3}
    assert numbers(content_pb2.ReadContentRequest) == {"digest": 1, "offset": 2, "size": 3}
    assert numbers(control_pb2.UsageRecord)["RecordType"] == 10
    svc = control_pb2.DESCRIPTOR.services_by_name["Control"]
    assert svc.full_name == "moby.buildkit.v1.Control"
    assert sorted(m.name for m in svc.methods) == ["DiskUsage", "Info", "ListenBuildHistory", "Status"]
    assert content_pb2.DESCRIPTOR.services_by_name["Content"].full_name == "containerd.services.content.v1.Content"


def _status():
    from analyzer.buildkit import control_pb2

    resp = control_pb2.StatusResponse()
    v = resp.vertexes.add(digest="sha256:aa", name="[2/3] RUN make", cached=False, inputs=["sha256:bb"])
    v.started.FromNanoseconds(1_795_842_717_123_456_789)
    v.completed.FromNanoseconds(1_795_842_718_500_000_000)
    resp.vertexes.add(digest="sha256:bb", name="[1/3] FROM x", cached=True)
    lg = resp.logs.add(vertex="sha256:aa", stream=1, msg=b"hello\n")
    lg.timestamp.FromSeconds(1_795_842_718)
    st = resp.statuses.add(ID="extracting", vertex="sha256:bb", current=3, total=9)
    st.timestamp.FromSeconds(1_795_842_718)
    w = resp.warnings.add(vertex="sha256:aa", level=1, short=b"JSONArgsRecommended", detail=[b"use JSON"])
    w.info.filename = "Dockerfile"
    w.ranges.add().start.line = 3
    return resp


def test_status_to_rawjson_folds_like_a_log():
    from analyzer.buildkit.history import status_to_rawjson
    from analyzer.events import BuildEvents, parse_time

    d = status_to_rawjson(_status())
    assert d["vertexes"][0] == {"digest": "sha256:aa", "inputs": ["sha256:bb"], "name": "[2/3] RUN make",
                                "started": "2026-11-28T05:11:57.123456789Z", "completed": "2026-11-28T05:11:58.5Z"}
    assert d["vertexes"][1] == {"digest": "sha256:bb", "name": "[1/3] FROM x", "cached": True}
    assert d["logs"][0]["data"] == base64.b64encode(b"hello\n").decode()
    json.dumps(d)  # the shape of rawjson: plain JSON
    ev = BuildEvents()
    assert ev.apply(d) == ["sha256:aa", "sha256:bb"]
    vx = ev.vertices["sha256:aa"]
    assert vx.cached is False or vx.cached is None
    assert parse_time(vx.completed) - parse_time(vx.started) == pytest.approx(1.376543211, abs=1e-6)
    assert ev.vertices["sha256:bb"].cached is True
    assert ev.logs["sha256:aa"].data == b"hello\n"
    assert ev.statuses["sha256:bb"]["extracting"]["total"] == 9
    assert ev.skipped == 0


def test_logs_blob_frames():
    from analyzer.buildkit.connect import decode_logs_blob

    one = _status().SerializeToString()
    two = type(_status())(vertexes=[{"digest": "sha256:cc"}]).SerializeToString()
    blob = len(one).to_bytes(4, "little") + one + len(two).to_bytes(4, "little") + two
    frames = decode_logs_blob(blob)
    assert [len(f.vertexes) for f in frames] == [2, 1]
    assert frames[1].vertexes[0].digest == "sha256:cc"
    assert len(decode_logs_blob(blob + b"\x10\x00\x00\x00abc")) == 2  # a cut last frame is left out
    assert decode_logs_blob(b"") == []


def test_predicate_raw_or_in_toto():
    from analyzer.buildkit.history import predicate_of

    pred = {"buildType": "https://mobyproject.org/buildkit@v1", "buildConfig": {}}
    assert predicate_of(json.dumps(pred).encode()) == pred
    stmt = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v1",
            "subject": [], "predicate": {"buildDefinition": {}}}
    assert predicate_of(json.dumps(stmt).encode()) == {"buildDefinition": {}}
    assert predicate_of(b"not json") is None
    assert predicate_of(b"[1]") is None


def test_provenance_descriptor_by_predicate_type():
    from analyzer.buildkit import control_pb2
    from analyzer.buildkit.history import identity, provenance_descriptor

    rec = control_pb2.BuildHistoryRecord(Ref="r1", FrontendAttrs={"filename": "Dockerfile", "target": "app",
                                                                  "build-arg:X": "secret"})
    rec.Result.Attestations.add(media_type="application/vnd.in-toto+json", digest="sha256:sbom",
                                annotations={"in-toto.io/predicate-type": "https://spdx.dev/Document"})
    assert provenance_descriptor(rec) is None
    rec.Result.Attestations.add(media_type="application/vnd.in-toto+json", digest="sha256:prov",
                                annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"})
    assert provenance_descriptor(rec).digest == "sha256:prov"
    assert identity(rec) == {"filename": "Dockerfile", "target": "app"}  # build-arg values are not identity


def test_select_refs():
    from analyzer.sources.history import select
    from analyzer.errors import InputError

    recs = [SimpleNamespace(Ref=r) for r in ("abc123", "abd456", "xyz789")]
    assert select(recs, None) == 0
    assert select(recs, "^2") == 2
    assert select(recs, "default/default/xyz789") == 2
    assert select(recs, "abd") == 1
    for bad in ("ab", "nope", "^3"):
        with pytest.raises(InputError):
            select(recs, bad)
    with pytest.raises(InputError):
        select([], None)


def test_eviction_note():
    from analyzer.buildkit import control_pb2
    from analyzer.sources.history import eviction_note

    a = control_pb2.UsageRecord(ID="a", Size=2_000_000)
    a.CreatedAt.FromSeconds(1000)
    b = control_pb2.UsageRecord(ID="b", Size=500_000)
    b.CreatedAt.FromSeconds(1000 + 3600)
    note = eviction_note([a, b], now=1000 + 2 * 86400)
    assert "2 entries, 2.5 MB" in note and "oldest entry is 2d old" in note


def test_history_fast_path_imports_no_grpc():
    code = ("import sys; from analyzer.commands import history; "
            "assert 'grpc' not in sys.modules, 'history imported grpc'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_error_source_of_a_failed_build():
    from analyzer.buildkit import control_pb2
    from analyzer.buildkit.history import error_source

    text = "FROM x\nRUN false\n"
    st = control_pb2.RPCStatus(code=2, message="process did not complete")
    st.details.add(type_url="github.com/moby/buildkit/stack.Stack+json", value=b"{}")
    src = {"info": {"filename": "Dockerfile", "data": base64.b64encode(text.encode()).decode()},
           "ranges": [{"start": {"line": 2}, "end": {"line": 2}}]}
    st.details.add(type_url="github.com/moby/buildkit/errdefs.Source+json", value=json.dumps(src).encode())
    assert error_source(st.SerializeToString()) == text
    pb = control_pb2.ErrSource()
    pb.info.data = text.encode()
    st2 = control_pb2.RPCStatus(code=2)
    st2.details.add(type_url="type.googleapis.com/moby.buildkit.v1.errdefs.Source", value=pb.SerializeToString())
    assert error_source(st2.SerializeToString()) == text
    assert error_source(control_pb2.RPCStatus(code=2).SerializeToString()) is None
    assert error_source(b"\xff\xff garbage") is None


# ------------------------------------------------- the client against an in-process server


@pytest.fixture
def fake_daemon(tmp_path):
    """A gRPC server on a unix socket with a history of one build; None for the
    servicers not given (their calls answer UNIMPLEMENTED, as an old BuildKit's)."""
    from concurrent import futures

    import grpc

    from analyzer.buildkit import content_pb2, content_pb2_grpc, control_pb2, control_pb2_grpc

    servers = []

    def start(with_history: bool = True):
        frame = _status().SerializeToString()
        blobs = {"sha256:logs": len(frame).to_bytes(4, "little") + frame,
                 "sha256:prov": json.dumps({"predicateType": "https://slsa.dev/provenance/v1",
                                            "predicate": {"buildDefinition": {}}}).encode()}

        class Control(control_pb2_grpc.ControlServicer):
            def ListenBuildHistory(self, request, context):
                rec = control_pb2.BuildHistoryRecord(Ref="ref1", FrontendAttrs={"filename": "Dockerfile"})
                rec.CreatedAt.FromSeconds(1_795_842_717)
                rec.logs.digest = "sha256:logs"
                rec.Result.Attestations.add(digest="sha256:prov", annotations={
                    "in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"})
                yield control_pb2.BuildHistoryEvent(type=control_pb2.COMPLETE, record=rec)

        class Content(content_pb2_grpc.ContentServicer):
            def Read(self, request, context):
                data = blobs.get(request.digest)
                if data is None:
                    context.abort(grpc.StatusCode.NOT_FOUND, "no such blob")
                for i in range(0, len(data), 7):  # in small chunks
                    yield content_pb2.ReadContentResponse(offset=i, data=data[i:i + 7])

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        if with_history:
            control_pb2_grpc.add_ControlServicer_to_server(Control(), server)
            content_pb2_grpc.add_ContentServicer_to_server(Content(), server)
        path = tmp_path / "bk.sock"
        server.add_insecure_port(f"unix:{path}")
        server.start()
        servers.append(server)
        return f"unix://{path}"

    yield start
    for s in servers:
        s.stop(None)


def test_client_reads_history_logs_and_provenance(fake_daemon):
    from analyzer.buildkit.connect import Client
    from analyzer.buildkit.history import fetch_build

    with Client(fake_daemon()) as client:
        records = client.history()
        assert [r.Ref for r in records] == ["ref1"]
        fetched = fetch_build(client, records[0])
    assert fetched.predicate == {"buildDefinition": {}}
    assert [v["digest"] for v in fetched.statuses[0]["vertexes"]] == ["sha256:aa", "sha256:bb"]
    assert not fetched.failed and fetched.notes == []


def test_client_old_builder_is_engine_error(fake_daemon):
    from analyzer.buildkit.connect import Client
    from analyzer.errors import EngineError

    with Client(fake_daemon(with_history=False)) as client, pytest.raises(EngineError) as err:
        client.history()
    assert "does not support build history" in str(err.value) and err.value.exit_code == 3


def test_closing_a_channel_hides_only_grpcs_own_thread_errors(monkeypatch):
    # watch ended by Ctrl-C: the cancelled stream can still be in grpc's channel spin
    # thread when the channel closes, which then fails inside grpc/_channel.py
    import threading

    from analyzer.buildkit import connect

    shown: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: shown.append(args.exc_type.__name__))
    connect._quiet_grpc_threads()
    connect._quiet_grpc_threads()  # once is enough: closing twice adds no second hook
    spin: dict = {}
    exec(compile("def spin():\n    tag = None\n    tag()\n", "/venv/site-packages/grpc/_channel.py", "exec"), spin)
    for target in (spin["spin"], lambda: 1 / 0):
        t = threading.Thread(target=target)
        t.start()
        t.join()
    assert shown == ["ZeroDivisionError"]  # grpc's own is dropped; anyone else's still shows
