"""The shapes of a build record (`cachewhy.record/v1`) and of its report
(`cachewhy.report/v1`), as typed dicts: the JSON on disk is exactly these
dicts, so typing them changes no byte of it.

record.py makes a Record, report/model.py a Report; the store, explain,
advice and every renderer read them. docs/record-json.md and
docs/report-json.md describe every field. Keys a v1 writer has always
written are required; keys added during v1 (or written only sometimes) are
in the `total=False` half of each type, so an older file still fits.
"""

from __future__ import annotations

from typing import Any, Optional, TypedDict

# --- the record -----------------------------------------------------------------


class AlsoAt(TypedDict):
    """Another Dockerfile place of the same vertex (a shared base image)."""

    line: int
    stage: Optional[str]
    instruction: Optional[str]  # None in a record of the first v1 shape whose line was blank


class ContextInput(TypedDict, total=False):
    """A context folder a step reads: a COPY/ADD source or a bind mount."""

    source: str  # the local source's name: "context", or a named context
    path: str  # the path in it ("/src")
    include: list[str]
    exclude: list[str]
    mount: Optional[str]  # for a bind mount: where it is mounted


class _RecordStepBase(TypedDict):
    id: str  # the digest's first 12 hex digits
    digest: str  # BuildKit's vertex digest ("sha256:…")
    name: str  # `[stage i/n] KEYWORD`, never with expanded values
    keyword: Optional[str]  # FROM, RUN, COPY…; None for internal vertices
    stage: Optional[str]
    index: Optional[int]  # i of `[stage i/n]`
    line: Optional[int]  # the Dockerfile line of the instruction
    also_at: list[AlsoAt]
    instruction: Optional[str]  # the Dockerfile text, build-arg values scrubbed
    status: str  # graph.Status: cached, rebuilt, failed, canceled, skipped, source, internal, running
    cached: bool
    started: Optional[float]  # POSIX seconds
    completed: Optional[float]
    duration_s: Optional[float]
    error: Optional[str]
    inputs: list[str]  # digests of the vertices it reads
    platform: Optional[str]


class RecordStep(_RecordStepBase, total=False):
    end_line: Optional[int]  # the instruction's last line (continuations, heredocs); records since 0.1
    # from the provenance only
    op: dict[str, Any]  # the LLB op, env values and secrets hashed
    op_hash: str  # sha256 of the canonical op
    image_inputs: list[str]  # docker-image:// identifiers with digests
    context_inputs: list[ContextInput]
    remote_inputs: list[str]  # https:// and git sources


class Project(TypedDict):
    """What makes two builds the same project: compared across builds."""

    context: str  # absolute path, "-" for stdin, a URL for a remote context
    dockerfile: str  # absolute path, "-" when unknown
    target: Optional[str]
    platforms: list[str]


class Invocation(TypedDict):
    argv: list[str]  # buildx's arguments, build-arg values left out
    builder: Optional[str]
    no_cache: bool
    no_cache_filter: list[str]
    cache_from: list[str]
    cache_to: list[str]


class _RecordBase(TypedDict):
    schema: str  # "cachewhy.record/v1"
    id: str
    created: float  # POSIX seconds: when the build started
    completed_at: float
    duration_s: float
    complete: bool  # False: interrupted, or a log that ends mid-build
    exit_code: int
    interrupted: Optional[str]  # the signal or reason, when interrupted
    project: Project
    invocation: Invocation
    build_args: dict[str, Optional[str]]  # name -> keyed hash of the value ("h:…")
    buildx_ref: Optional[str]
    has_provenance: bool
    hash_key_id: str  # which store key hashed the values
    dockerfile_text: Optional[str]
    materials: list[list[Optional[str]]]  # [uri, "alg:digest"]
    messages: list[str]  # buildx's WARNING/ERROR lines, scrubbed
    steps: list[RecordStep]
    snapshot: Optional[dict[str, Any]]  # the context snapshot (snapshot.py), or None


class Record(_RecordBase, total=False):
    named_snapshots: Optional[dict[str, dict[str, Any]]]  # --build-context NAME=DIR -> its snapshot
    report: Report  # the report shown when the build ended (`cachewhy show`)
    prediction: dict[str, Any]  # `build --predict`: how the prediction scored (predict.score)


# --- the report -----------------------------------------------------------------


class ReportBuild(TypedDict):
    ref: Optional[str]
    context: Optional[str]
    dockerfile: Optional[str]
    target: Optional[str]
    platforms: list[str]
    started: Optional[float]
    duration_s: Optional[float]
    exit_code: Optional[int]
    complete: Optional[bool]


class PreviousRef(TypedDict):
    ref: Optional[str]


class _SummaryBase(TypedDict):
    cached: int
    rebuilt: int
    hit_ratio: Optional[float]  # None when no cacheable step ran
    failed: int
    rebuilt_time_s: float
    root_causes: int
    time_lost_s: float


class Summary(_SummaryBase, total=False):
    may_rebuild: int  # a prediction's steps it cannot tell


class _ReportStepBase(TypedDict):
    id: str
    name: Optional[str]
    stage: Optional[str]
    instruction: Optional[str]
    dockerfile: Optional[str]
    line: Optional[int]
    status: Optional[str]
    duration_s: Optional[float]
    inputs: list[str]  # ids of the steps it reads
    also_at: list[AlsoAt]
    error: Optional[str]


class ReportStep(_ReportStepBase, total=False):
    end_line: Optional[int]


class FileChanges(TypedDict):
    added: list[str]
    modified: list[str]
    removed: list[str]


class _CauseBase(TypedDict):
    kind: str  # a name of analyzer/causes.py
    detail: str


class CauseDict(_CauseBase, total=False):
    files: FileChanges  # context-changed roots
    root: str  # a cascade's root miss id


class Advice(TypedDict):
    rule: str  # a name of advice.TABLE
    message: str
    lines: list[int]
    saved_s: Optional[float]


class _MissBase(TypedDict):
    id: str
    line: Optional[int]
    instruction: str
    stage: Optional[str]
    root: bool
    caused_by: list[str]  # cascades: their roots' ids
    followers: list[str]  # roots: their cascade's ids
    time_lost_s: float
    cause: CauseDict
    also: list[CauseDict]


class ReportMiss(_MissBase, total=False):
    end_line: Optional[int]
    advice: list[Advice]  # roots only, when a rule applies


class _ReportBase(TypedDict):
    schema: str  # "cachewhy.report/v1"
    build: ReportBuild
    previous: Optional[PreviousRef]
    summary: Summary
    steps: list[ReportStep]
    misses: list[ReportMiss]
    notes: list[str]


class Report(_ReportBase, total=False):
    advice: list[Advice]  # advice tied to no miss (a cached download)
    prediction: dict[str, Any]  # a prediction's report (`cachewhy predict`): predict.py
