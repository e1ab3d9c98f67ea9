"""`.dockerbuild` bundles: build records exported from a builder's history.

`docker buildx history export` writes one (docker/build-push-action uploads
one per build): a gzip-compressed tar of an OCI layout. Each manifest of its
index.json is one build: its config (`application/vnd.buildkit.historyrecord.v0`)
is the BuildHistoryRecord as JSON, with buildx's `localState` (the context and
Dockerfile paths on the machine that built it) beside the record's fields; its
layers are the progress (`application/vnd.buildkit.status.v0`, the frames the
Control API's logs blob holds), the provenance (`application/vnd.in-toto+json`),
the trace, and a failed build's error. Blobs are content-addressed, so the
blobs of several bundles are one store.

A BundleSet answers what explain asks of a builder (history, read_blob,
status) from the bundles alone. It has no view of a builder's cache.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.errors import EngineError, InputError

RECORD_TYPE = "application/vnd.buildkit.historyrecord.v0"
SUFFIX = ".dockerbuild"
#: a bundle's blobs are small (records, logs, provenance); a bigger member is skipped
_MAX_BLOB = 256 << 20


@dataclass
class BundleSet:
    """The build records of one or more bundles, newest first."""

    records: list[Any] = field(default_factory=list)
    local_states: dict[str, dict[str, str]] = field(default_factory=dict)  # ref -> buildx's localState
    origin: dict[str, str] = field(default_factory=dict)  # ref -> the bundle file it came from
    blobs: dict[str, bytes] = field(default_factory=dict)  # "sha256:…" -> content
    label: str = "bundles"
    record_prefix: str = "bundle"  # reports name its builds `bundle REF`

    # what explain asks of a builder -------------------------------------
    def history(self) -> list[Any]:
        return list(self.records)

    def read_blob(self, digest: str, limit: int = _MAX_BLOB) -> bytes:
        try:
            return self.blobs[digest]
        except KeyError:
            raise EngineError(f"the bundle holds no blob {digest}") from None

    def status(self, ref: str) -> list[Any]:
        return []  # a bundle keeps the progress only as its logs blob

    def disk_usage(self) -> list[Any]:
        raise EngineError("a bundle carries no view of the builder's cache")

    def project(self, record: Any) -> dict[str, str]:
        """What buildx knew of the build's project (context, Dockerfile paths)."""
        state = self.local_states.get(record.Ref) or {}
        return {f"local:{k}": str(v) for k, v in state.items() if k in ("LocalPath", "DockerfilePath") and v}

    def close(self) -> None:
        pass


def is_bundle(path: str) -> bool:
    """A `.dockerbuild` file (by its name), or a folder to look for them in."""
    return path.endswith(SUFFIX) and os.path.isfile(path)


def find_bundles(folder: str) -> list[str]:
    """The `.dockerbuild` files under a folder (a downloaded CI artifact set), sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files) if f.endswith(SUFFIX)]
    return out


def load(paths: list[str]) -> BundleSet:
    """Read bundles into one set; InputError for a file that is not a bundle."""
    out = BundleSet(label=paths[0] if len(paths) == 1 else f"{len(paths)} bundles")
    for path in paths:
        _read_one(path, out)
    out.records.sort(key=lambda r: (r.CreatedAt.seconds, r.CreatedAt.nanos), reverse=True)
    return out


def _members(path: str) -> dict[str, bytes]:
    """name -> content of the tar (gzip-compressed or not) at `path`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path} is not a build record bundle: its gzip data is damaged ({exc})") from None
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for m in tar:
                if m.isfile() and m.size <= _MAX_BLOB:
                    data = tar.extractfile(m)
                    if data is not None:
                        out[m.name.removeprefix("./")] = data.read()
    except tarfile.TarError as exc:
        raise InputError(f"{path} is not a build record bundle (`docker buildx history export` writes one): "
                         f"{exc}") from None
    return out


def _read_one(path: str, into: BundleSet) -> None:
    members = _members(path)
    if "index.json" not in members:
        raise InputError(f"{path} is not a build record bundle: it holds no OCI index.json")
    for name, data in members.items():
        if name.startswith("blobs/sha256/"):
            into.blobs["sha256:" + name.rsplit("/", 1)[1]] = data
    try:
        index = json.loads(members["index.json"])
        manifests = [json.loads(into.blobs[m["digest"]]) for m in index.get("manifests") or []]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: its OCI index or a manifest is unreadable ({exc})") from None
    found = 0
    for manifest in manifests:
        config = (manifest or {}).get("config") or {}
        if config.get("mediaType") != RECORD_TYPE or config.get("digest") not in into.blobs:
            continue
        try:
            raw = json.loads(into.blobs[config["digest"]])
        except ValueError:
            raise InputError(f"{path}: the build record {config['digest']} is not JSON") from None
        record = _record(raw, path)
        if record.Ref in into.origin:  # the same build in two bundles: once
            continue
        into.records.append(record)
        into.origin[record.Ref] = path
        if isinstance(raw.get("localState"), dict):
            into.local_states[record.Ref] = raw["localState"]
        found += 1
    if not found:
        raise InputError(f"{path} holds no build record ({RECORD_TYPE})")


def _timestamps(value: Any) -> Any:
    """The record JSON with its {seconds, nanos} timestamps in RFC 3339, as protobuf's JSON reader wants."""
    if isinstance(value, dict):
        if set(value) <= {"seconds", "nanos"} and "seconds" in value:
            t = _dt.datetime.fromtimestamp(int(value["seconds"]), tz=_dt.timezone.utc)
            return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{int(value.get('nanos') or 0):09d}Z"
        return {k: _timestamps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_timestamps(v) for v in value]
    return value


def _record(raw: dict, path: str) -> Any:
    from google.protobuf import json_format  # noqa: PLC0415

    from analyzer.buildkit import control_pb2  # noqa: PLC0415

    data = _timestamps({k: v for k, v in raw.items() if k != "localState"})
    if isinstance(data.get("error"), dict):  # its details are typed Any values: code and message suffice
        data["error"] = {k: v for k, v in data["error"].items() if k in ("code", "message")}
    record = control_pb2.BuildHistoryRecord()
    try:
        json_format.ParseDict(data, record, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise InputError(f"{path}: its build record is not one BuildKit writes ({exc})") from None
    if not record.Ref:
        raise InputError(f"{path}: its build record has no ref")
    return record


def describe_origin(bundles: BundleSet, record: Any) -> str:
    return Path(bundles.origin.get(record.Ref, "")).name
