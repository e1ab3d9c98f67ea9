"""The report model: one JSON-ready dict per build, read by every format.

Schema "cachewhy.report/v1", documented in docs/report-json.md.
"""

from __future__ import annotations

from typing import Any

from analyzer.explain import Analysis, Cause
from analyzer.model import CauseDict, Report
from analyzer.notes import texts

SCHEMA = "cachewhy.report/v1"


def _cause(c: Cause) -> CauseDict:
    out: CauseDict = {"kind": c.kind, "detail": c.detail}
    if c.files is not None:
        files = c.files or {}
        out["files"] = {"added": list(files.get("added") or []), "modified": list(files.get("modified") or []),
                        "removed": list(files.get("removed") or [])}
    if c.root_id:
        out["root"] = c.root_id
    return out


def build_report(analysis: Analysis) -> Report:
    cur = analysis.current
    project = cur.get("project") or {}
    steps = cur.get("steps") or []
    ids = {s["digest"]: s["id"] for s in steps}
    dockerfile = project.get("dockerfile")
    cacheable = [s for s in steps if s.get("keyword") not in (None, "FROM")]
    cached = sum(1 for s in cacheable if s.get("status") == "cached")
    rebuilt = sum(1 for s in cacheable if s.get("status") == "rebuilt")
    failed = sum(1 for s in cacheable if s.get("status") == "failed")
    rebuilt_time = sum(s.get("duration_s") or 0.0 for s in cacheable if s.get("status") == "rebuilt")
    roots = analysis.roots
    report: Report = {
        "schema": SCHEMA,
        "build": {
            "ref": cur.get("id"),
            "context": project.get("context"),
            "dockerfile": dockerfile,
            "target": project.get("target"),
            "platforms": project.get("platforms") or [],
            "started": cur.get("created"),
            "duration_s": cur.get("duration_s"),
            "exit_code": cur.get("exit_code"),
            "complete": cur.get("complete"),
        },
        "previous": {"ref": analysis.previous.get("id")} if analysis.previous else None,
        "summary": {
            "cached": cached,
            "rebuilt": rebuilt,
            "hit_ratio": round(cached / (cached + rebuilt), 4) if cached + rebuilt else None,
            "failed": failed,
            "rebuilt_time_s": round(rebuilt_time, 3),
            "root_causes": len(roots),
            "time_lost_s": round(sum(m.time_lost_s for m in roots), 3),
        },
        "steps": [
            {
                "id": s["id"],
                "name": s.get("name"),
                "stage": s.get("stage"),
                "instruction": s.get("instruction"),
                "dockerfile": dockerfile if s.get("line") else None,
                "line": s.get("line"),
                "end_line": s.get("end_line") or s.get("line"),  # a multi-line instruction's last line
                "status": s.get("status"),
                "duration_s": s.get("duration_s"),
                "inputs": [ids[d] for d in s.get("inputs") or [] if d in ids],
                "also_at": list(s.get("also_at") or []),
                "error": s.get("error"),
            }
            for s in steps
        ],
        "misses": [
            {
                "id": m.step["id"],
                "line": m.step.get("line"),
                "end_line": m.step.get("end_line") or m.step.get("line"),
                "instruction": m.step.get("instruction") or "",
                "stage": m.step.get("stage"),
                "root": m.root,
                "caused_by": list(m.caused_by),
                "followers": list(m.followers),
                "time_lost_s": m.time_lost_s,
                "cause": _cause(m.cause),
                "also": [_cause(c) for c in m.also],
            }
            for m in analysis.misses
        ],
        "notes": texts(analysis.notes),
    }
    from analyzer.advice import attach  # noqa: PLC0415 - issue 6: fixes under root misses

    return attach(report, cur.get("dockerfile_text"), project.get("context"))
