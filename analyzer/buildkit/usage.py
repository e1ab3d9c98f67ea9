"""What the builder's cache (DiskUsage) says of a build's steps.

BuildKit names each cache record after the work that made it: a file
operation (COPY, ADD) by its vertex name (`[3/4] COPY src/ /src/`), a RUN by
`mount / from exec <args>`; and it lists the records a record was made on
(`Parents`). A step that ran in a build made a record of that description on
its input's record. Another record of the same description on the same parent
made before the build began is an earlier result of the same work on the same
input, still held: the cache was not evicted, so the step missed because its
cache key did not match, and what keys it beyond its op and inputs is the
content it reads (the build context). Checked on the engine: docs/history.md.

But a record can outlive its cache key: on this engine, pruning the records
built on a step's result (two levels deep) made BuildKit rebuild that step
although its record was still listed. So the earlier record counts only when
what the previous build made on it is listed too (`after`): nothing below it
was pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

#: slack around a step's start and end when matching record creation times to it
#: (both clocks are the daemon's; records are made within the step's run)
_SLACK_S = 1.0


@dataclass(frozen=True)
class StepRun:
    """One step that ran in a build: its vertex digest, the descriptions its
    result record may carry, and when it ran (POSIX seconds)."""

    digest: str
    descriptions: frozenset[str]
    started: float
    completed: float
    #: the descriptions of the steps the previous build made on this step's result
    #: (the later steps of its stage), each of which must still be held on the earlier record
    after: tuple[frozenset[str], ...] = ()


def _seconds(ts: Any) -> float:
    return ts.seconds + ts.nanos / 1e9


def descriptions(vertex_name: str | None, op: dict | None) -> frozenset[str]:
    """The Description a step's result record may carry, from its vertex name and LLB op."""
    out = set()
    if vertex_name:
        out.add(vertex_name)
    exec_op = ((op or {}).get("Op") or {}).get("exec") or {}
    args = (exec_op.get("meta") or {}).get("args")
    if isinstance(args, list) and args:
        out.add("mount / from exec " + " ".join(str(a) for a in args))
    return frozenset(out)


def held_earlier(usage: Iterable[Any], runs: Iterable[StepRun], build_started: float,
                 previous_started: float) -> dict[str, float]:
    """Digest -> creation time of the earlier record, for each step whose result
    made in this build has a twin (same Description, same Parents) made before
    the build began and made or used since the previous build began (so not
    another project's result of the same-looking work, long unused)."""
    usage = list(usage)
    by_desc: dict[str, list[Any]] = {}
    children: dict[str, list[Any]] = {}
    for rec in usage:
        if rec.Description:
            by_desc.setdefault(rec.Description, []).append(rec)
        for parent in rec.Parents:
            children.setdefault(parent, []).append(rec)

    def intact(rec: Any, after: tuple[frozenset[str], ...]) -> bool:
        """Are the records of all the steps made on `rec` still there?"""
        below: set[str] = set()
        todo = list(children.get(rec.ID, []))
        while todo:
            r = todo.pop()
            below.add(r.Description)
            todo.extend(children.get(r.ID, []))
        return all(descs & below for descs in after)

    out: dict[str, float] = {}
    for run in runs:
        recs = [r for d in run.descriptions for r in by_desc.get(d, [])]
        made_now = [r for r in recs
                    if build_started <= _seconds(r.CreatedAt)
                    and run.started - _SLACK_S <= _seconds(r.CreatedAt) <= run.completed + _SLACK_S]
        parents_now = {tuple(sorted(r.Parents)) for r in made_now}
        earlier = [_seconds(r.CreatedAt) for r in recs
                   if _seconds(r.CreatedAt) < build_started and tuple(sorted(r.Parents)) in parents_now
                   and max(_seconds(r.CreatedAt), _seconds(r.LastUsedAt)) >= previous_started - _SLACK_S
                   and intact(r, run.after)]
        if earlier:
            out[run.digest] = max(earlier)
    return out
