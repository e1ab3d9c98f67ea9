"""A build of BuildKit's history made into what the pipeline reads.

* `status_to_rawjson`: a StatusResponse protobuf as the dict `--progress=rawjson`
  writes (the shape `BuildEvents.apply` folds);
* `fetch_build`: one history record's progress (its logs blob, else a Status
  replay), its provenance predicate and its identity (Dockerfile name, target,
  platform, build name).

Imports grpc only through `connect`, which the callers import.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any

SLSA_PREFIX = "https://slsa.dev/provenance/"
_PRED_TYPE = "in-toto.io/predicate-type"
#: FrontendAttrs that say which project a build is (BuildKit has no context path:
#: buildx sends the context through the session, by name only)
IDENTITY_ATTRS = ("filename", "target", "build-arg:BUILDKIT_BUILD_NAME", "vcs:source", "vcs:localdir:context",
                  "vcs:localdir:dockerfile", "context")
#: the build name scripts/engine.sh gives its self-test build: explain and watch skip it
ENGINE_CHECK_NAME = "cachewhy-engine-check"


def rfc3339(ts: Any) -> str:
    """A protobuf Timestamp as BuildKit's JSON writes it (UTC, nanoseconds, Z)."""
    t = _dt.datetime.fromtimestamp(ts.seconds, tz=_dt.timezone.utc)
    frac = f".{ts.nanos:09d}".rstrip("0").rstrip(".") if ts.nanos else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def status_to_rawjson(resp: Any) -> dict:
    """One StatusResponse as a rawjson SolveStatus dict (fields left out when unset)."""
    out: dict[str, list] = {}
    vertexes = []
    for v in resp.vertexes:
        d: dict[str, Any] = {"digest": v.digest}
        if v.inputs:
            d["inputs"] = list(v.inputs)
        if v.name:
            d["name"] = v.name
        if v.cached:
            d["cached"] = True
        if v.HasField("started"):
            d["started"] = rfc3339(v.started)
        if v.HasField("completed"):
            d["completed"] = rfc3339(v.completed)
        if v.error:
            d["error"] = v.error
        vertexes.append(d)
    if vertexes:
        out["vertexes"] = vertexes
    statuses = []
    for s in resp.statuses:
        d = {"id": s.ID, "vertex": s.vertex, "current": s.current}
        if s.name:
            d["name"] = s.name
        if s.total:
            d["total"] = s.total
        if s.HasField("timestamp"):
            d["timestamp"] = rfc3339(s.timestamp)
        if s.HasField("started"):
            d["started"] = rfc3339(s.started)
        if s.HasField("completed"):
            d["completed"] = rfc3339(s.completed)
        statuses.append(d)
    if statuses:
        out["statuses"] = statuses
    logs = []
    for lg in resp.logs:
        d = {"vertex": lg.vertex, "stream": lg.stream, "data": _b64(lg.msg)}
        if lg.HasField("timestamp"):
            d["timestamp"] = rfc3339(lg.timestamp)
        logs.append(d)
    if logs:
        out["logs"] = logs
    warnings = []
    for w in resp.warnings:
        d = {"vertex": w.vertex, "level": w.level, "short": _b64(w.short), "detail": [_b64(x) for x in w.detail]}
        if w.url:
            d["url"] = w.url
        if w.HasField("info"):
            d["sourceInfo"] = {"filename": w.info.filename, "data": _b64(w.info.data), "language": w.info.language}
        if w.ranges:
            d["range"] = [{"start": {"line": r.start.line, "character": r.start.character},
                           "end": {"line": r.end.line, "character": r.end.character}} for r in w.ranges]
        warnings.append(d)
    if warnings:
        out["warnings"] = warnings
    return out


def predicate_of(blob: bytes) -> dict | None:
    """The SLSA predicate of a provenance attestation blob: the raw predicate,
    or an in-toto statement carrying it under `predicate`."""
    try:
        data = json.loads(blob)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("predicate"), dict) and str(data.get("predicateType", SLSA_PREFIX)).startswith(SLSA_PREFIX):
        return data["predicate"]
    return data


def provenance_descriptor(record: Any) -> Any | None:
    """The provenance attestation of a record (its Result, else any platform's)."""
    results = [record.Result] if record.HasField("Result") else []
    results += [record.Results[k] for k in sorted(record.Results)]
    for res in results:
        for att in res.Attestations:
            if att.annotations.get(_PRED_TYPE, "").startswith(SLSA_PREFIX):
                return att
    return None


def identity(record: Any) -> dict[str, str]:
    attrs = record.FrontendAttrs
    return {k: attrs[k] for k in IDENTITY_ATTRS if attrs.get(k)}


def platforms(record: Any) -> list[str]:
    """The platforms a build was for (sorted; [] when the builder's default)."""
    return sorted(p.strip() for p in (record.FrontendAttrs.get("platform") or "").split(",") if p.strip())


def is_engine_check(record: Any) -> bool:
    """A build that only checks the engine works (scripts/engine.sh up): no one's project."""
    return record.FrontendAttrs.get("build-arg:BUILDKIT_BUILD_NAME") == ENGINE_CHECK_NAME


def describe(record: Any) -> str:
    """A short label: `ref (name)`."""
    name = record.FrontendAttrs.get("build-arg:BUILDKIT_BUILD_NAME")
    return f"{record.Ref}" + (f" ({name})" if name else "")


def headline(record: Any) -> str:
    """Which build: `ref (name), YYYY-MM-DD HH:MM:SS, Dockerfile --target T --platform P`."""
    import time  # noqa: PLC0415

    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.CreatedAt.seconds))
    attrs = record.FrontendAttrs
    what = attrs.get("vcs:localdir:dockerfile", "").rstrip("/") + "/" if attrs.get("vcs:localdir:dockerfile") else ""
    what += attrs.get("filename") or "Dockerfile"
    if attrs.get("target"):
        what += f" --target {attrs['target']}"
    if attrs.get("platform"):
        what += f" --platform {attrs['platform']}"
    return f"{describe(record)}, {when}, {what.removeprefix('./')}"


@dataclass
class Fetched:
    record: Any
    statuses: list[dict]  # rawjson dicts, in order
    predicate: dict | None
    notes: list[str] = field(default_factory=list)
    error_dockerfile: str | None = None  # a failed build's Dockerfile, from its error's source

    @property
    def failed(self) -> bool:
        return self.record.HasField("error") and self.record.error.code != 0


def fetch_build(client: Any, record: Any) -> Fetched:
    """The progress and provenance of one history record."""
    from analyzer.buildkit.connect import decode_logs_blob  # noqa: PLC0415
    from analyzer.errors import EngineError  # noqa: PLC0415

    notes: list[str] = []
    responses = None
    if record.HasField("logs") and record.logs.digest:
        try:
            responses = decode_logs_blob(client.read_blob(record.logs.digest))
        except EngineError as exc:
            notes.append(f"build {record.Ref}: its logs blob could not be read ({exc}); its progress was replayed")
    if responses is None:
        responses = client.status(record.Ref)
    predicate = None
    desc = provenance_descriptor(record)
    if desc is not None:
        try:
            predicate = predicate_of(client.read_blob(desc.digest))
        except EngineError as exc:
            notes.append(f"build {record.Ref}: its provenance could not be read: {exc}")
        if predicate is None and not notes:
            notes.append(f"build {record.Ref}: its provenance attestation is not a JSON predicate")
    elif not (record.HasField("error") and record.error.code):
        notes.append(f"build {record.Ref}: its history record has no provenance attestation")
    fetched = Fetched(record, [status_to_rawjson(r) for r in responses], predicate, notes)
    if fetched.failed and record.HasField("externalError") and record.externalError.digest:
        try:
            fetched.error_dockerfile = error_source(client.read_blob(record.externalError.digest))
        except EngineError:
            pass
    return fetched


def error_source(blob: bytes) -> str | None:
    """The source text (the Dockerfile) a failed build's error carries: its
    externalError blob is a google.rpc.Status whose details hold an
    `errdefs.Source`, JSON-encoded (`…errdefs.Source+json`) or as protobuf."""
    from analyzer.buildkit import control_pb2  # noqa: PLC0415

    status = control_pb2.RPCStatus()
    try:
        status.ParseFromString(blob)
    except Exception:  # noqa: BLE001 - a blob of another shape: no source
        return None
    for detail in status.details:
        url = detail.type_url
        data: bytes | None = None
        if url.endswith("errdefs.Source+json"):
            try:
                info = (json.loads(detail.value) or {}).get("info") or {}
                data = base64.b64decode(info.get("data") or "")
            except (ValueError, TypeError, AttributeError):
                continue
        elif url.endswith("errdefs.Source"):
            src = control_pb2.ErrSource()
            try:
                src.ParseFromString(detail.value)
            except Exception:  # noqa: BLE001
                continue
            data = src.info.data
        if data:
            return data.decode("utf-8", errors="replace")
    return None
