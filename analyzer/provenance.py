"""BuildKit's SLSA provenance (mode=max): the LLB definition of every step,
the vertex digest -> step mapping and the Dockerfile line ranges.

It comes from buildx's `--metadata-file` (`buildx.build.provenance`, in the
SLSA v0.2 shape) or from a build's history record (v0.2, or v1 on newer
BuildKit). Both shapes are read here into one small model.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.errors import InputError

_BK_METADATA = "https://mobyproject.org/buildkit@v1#metadata"


@dataclass
class LLBStep:
    id: str  # "stepN": per build, not a stable identity
    op: dict  # pb.Op as JSON, local session attributes already removed by BuildKit
    inputs: list[str]  # "stepM:outputIndex"

    @property
    def input_ids(self) -> list[str]:
        return [i.split(":", 1)[0] for i in self.inputs]


@dataclass
class SourceFile:
    filename: str
    text: str | None


@dataclass
class Provenance:
    steps: dict[str, LLBStep] = field(default_factory=dict)
    digest_to_step: dict[str, str] = field(default_factory=dict)
    locations: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)  # step -> (source, start, end)
    sources: list[SourceFile] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)  # frontend attributes: build-arg:X, target, no-cache ...
    materials: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (uri, {alg: digest})
    secrets: list[str] = field(default_factory=list)  # secret ids only

    def vertex_lines(self, source_index: int = 0) -> dict[str, list[tuple[int, int]]]:
        """Vertex digest -> its (first, last) Dockerfile line ranges in the given
        source file, in line order. A base image used by two stages is one
        vertex with two ranges."""
        out: dict[str, list[tuple[int, int]]] = {}
        for digest, step_id in self.digest_to_step.items():
            ranges = sorted({(a, b) for s, a, b in self.locations.get(step_id, []) if s == source_index})
            if ranges:
                out[digest] = ranges
        return out

    def op_for(self, digest: str) -> LLBStep | None:
        step_id = self.digest_to_step.get(digest)
        return self.steps.get(step_id) if step_id else None

    @property
    def dockerfile_text(self) -> str | None:
        return self.sources[0].text if self.sources else None


def from_predicate(pred: dict) -> Provenance:
    """Read a SLSA v0.2 or v1 provenance predicate."""
    if not isinstance(pred, dict):
        raise InputError("provenance is not a JSON object")
    if "buildDefinition" in pred:  # SLSA v1
        bdef = pred.get("buildDefinition") or {}
        build_config = (bdef.get("internalParameters") or {}).get("buildConfig") or {}
        bk_meta = ((pred.get("runDetails") or {}).get("metadata") or {}).get("buildkit_metadata") or {}
        request = (bdef.get("externalParameters") or {}).get("request") or {}
        args = request.get("args") or {}
        secrets = request.get("secrets") or []
        materials = [(d.get("uri", ""), d.get("digest") or {}) for d in bdef.get("resolvedDependencies") or []]
    else:  # SLSA v0.2
        build_config = pred.get("buildConfig") or {}
        bk_meta = (pred.get("metadata") or {}).get(_BK_METADATA) or {}
        params = (pred.get("invocation") or {}).get("parameters") or {}
        args = params.get("args") or {}
        secrets = params.get("secrets") or []
        materials = [(m.get("uri", ""), m.get("digest") or {}) for m in pred.get("materials") or []]
    prov = Provenance(
        args={str(k): str(v) for k, v in args.items()} if isinstance(args, dict) else {},
        materials=[(u, d) for u, d in materials if isinstance(d, dict)],
        secrets=[s.get("id", "") for s in secrets if isinstance(s, dict)],
    )
    for raw in build_config.get("llbDefinition") or []:
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            prov.steps[raw["id"]] = LLBStep(raw["id"], raw.get("op") or {}, list(raw.get("inputs") or []))
    mapping = build_config.get("digestMapping") or {}
    if isinstance(mapping, dict):
        prov.digest_to_step = {str(k): str(v) for k, v in mapping.items()}
    source = bk_meta.get("source") or {}
    for step_id, entry in (source.get("locations") or {}).items():
        for loc in (entry or {}).get("locations") or []:
            idx = int(loc.get("sourceIndex") or 0)
            for r in loc.get("ranges") or []:
                start = int((r.get("start") or {}).get("line") or 0)
                end = int((r.get("end") or {}).get("line") or start)
                if start:
                    prov.locations.setdefault(step_id, []).append((idx, start, end))
    for info in source.get("infos") or []:
        text = None
        if isinstance(info.get("data"), str):
            try:
                text = base64.b64decode(info["data"]).decode("utf-8", errors="replace")
            except ValueError:
                text = None
        prov.sources.append(SourceFile(str(info.get("filename") or "Dockerfile"), text))
    return prov


@dataclass
class Metadata:
    """What buildx wrote to --metadata-file."""

    ref: str | None  # builder/node/ref
    provenance: dict[str, Provenance]  # platform ("" for a single platform) -> provenance
    raw_keys: list[str]
    problems: list[str] = field(default_factory=list)  # provenance present but unreadable

    def primary(self) -> Provenance | None:
        if not self.provenance:
            return None
        return self.provenance.get("") or next(iter(self.provenance.values()))


def load_metadata(path: str | Path) -> Metadata:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read metadata file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"metadata file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"metadata file {path} is not a JSON object")
    provs: dict[str, Provenance] = {}
    problems: list[str] = []
    for key, value in data.items():
        if key == "buildx.build.provenance" or key.startswith("buildx.build.provenance/"):
            platform = key.partition("/")[2]
            prov = from_predicate(value) if isinstance(value, dict) else None
            if prov is None or not prov.steps:
                # another predicate type, or mode=min: nothing to map steps with
                problems.append(f"{key} in {Path(path).name} has no build definition cachewhy can read "
                                "(another provenance format, or BUILDX_METADATA_PROVENANCE=min)")
                continue
            provs[platform] = prov
    ref = data.get("buildx.build.ref")
    return Metadata(ref=ref if isinstance(ref, str) else None, provenance=provs, raw_keys=sorted(data),
                    problems=problems)
