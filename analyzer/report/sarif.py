"""SARIF 2.1.0: root causes for code-scanning views (GitHub code scanning, IDEs).

One rule per cause kind (id = the kind), one result per root miss, located at
the Dockerfile line, relative to the working directory (GITHUB_WORKSPACE on
GitHub) when the Dockerfile is under it. Levels: `warning`, `note` for
`no-previous-build`. JSON escapes all build text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from analyzer import __version__, causes
from analyzer.report import escape as esc
from analyzer.report.rows import (
    fmt_time,
    kind_text,
    relative_path,
    root_rows,
    workspace,
)
from analyzer.model import Report

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/cachewhy/cachewhy"

def _rule(kind: str) -> dict:
    name = "".join(w.capitalize() for w in kind.split("-"))
    k = causes.BY_NAME.get(kind)
    summary = k.summary if k else kind
    return {
        "id": kind,
        "name": name,
        "shortDescription": {"text": f"Cache miss: {kind_text(kind)}"},
        "fullDescription": {"text": f"A BuildKit cache miss started at this step: {summary}."},
        "helpUri": causes.doc_url(kind) or "",
        "help": {"text": f"{summary[:1].upper()}{summary[1:]}. See {causes.doc_url(kind) or ''}"},
        "defaultConfiguration": {"level": causes.sarif_level(kind)},
        "properties": {"tags": ["docker", "build-cache"]},
    }


def _artifact(report: Report, base: Path) -> tuple[dict | None, dict | None]:
    """(artifactLocation, originalUriBaseIds) of the Dockerfile, or (None, None) when it has no file."""
    path = (report.get("build") or {}).get("dockerfile")
    rel = relative_path(path, base)
    if rel is not None:
        root = Path(os.path.abspath(base)).as_uri().rstrip("/") + "/"
        return {"uri": quote(rel), "uriBaseId": "%SRCROOT%"}, {"%SRCROOT%": {"uri": root}}
    if path and path != "-" and "://" not in path:
        return {"uri": Path(os.path.abspath(path)).as_uri()}, None
    return None, None


def sarif_log(report: Report, base: Path | None = None) -> dict:
    from analyzer.explain import KINDS  # noqa: PLC0415

    base = base or workspace()
    build = report.get("build") or {}
    rows = root_rows(report, base)
    kinds = list(KINDS) + sorted({r.kind for r in rows} - set(KINDS))
    index = {k: i for i, k in enumerate(kinds)}
    artifact, base_ids = _artifact(report, base)
    results = []
    for r in rows:
        m = r.miss
        text = f"{r.where} {r.instruction}: {kind_text(r.kind)}"
        if r.detail:
            text += f": {r.detail}"
        text += (f". {r.steps_rebuilt} step{'s' if r.steps_rebuilt != 1 else ''} rebuilt"
                 f"{' (' + r.lines + ')' if r.lines else ''}, {fmt_time(r.time_lost_s)} lost.")
        for also in r.also:
            text += f" Also: {also}."
        fix = next(iter(m.get("advice") or []), None)  # issue 6: the root's first fix
        if fix is not None:
            text += f" Fix: {esc.one_line(fix.get('message') or '').replace('`', '')}"
            if fix.get("saved_s"):
                text += f" (would have saved {fmt_time(fix['saved_s'])})"
            text += "."
        result: dict = {
            "ruleId": r.kind,
            "ruleIndex": index[r.kind],
            "level": causes.sarif_level(r.kind),
            "message": {"text": text},
            "properties": {
                "time_lost_s": r.time_lost_s,
                "files": (m.get("cause") or {}).get("files") or {"added": [], "modified": [], "removed": []},
                "steps_rebuilt": r.steps_rebuilt,
                "stage": m.get("stage"),
                "instruction": m.get("instruction") or "",
                "step_id": m.get("id"),
                **({"fix": {"rule": fix.get("rule"), "message": fix.get("message"),
                            "saved_s": fix.get("saved_s")}} if fix is not None else {}),
            },
        }
        if artifact is not None:
            region: dict = {}
            if line := m.get("line"):
                start = int(line)
                # an instruction continued over several lines (\ or a heredoc) spans them
                last = m.get("end_line")
                end = int(last) if isinstance(last, int) and last > start else start
                region = {"startLine": start, "endLine": end,
                          "snippet": {"text": esc.clean(m.get("instruction") or "")}}
            physical: dict = {"artifactLocation": dict(artifact)}
            if region:
                physical["region"] = region
            result["locations"] = [{"physicalLocation": physical}]
        results.append(result)
    run: dict = {
        "tool": {"driver": {
            "name": "cachewhy",
            "version": __version__,
            "semanticVersion": __version__,
            "informationUri": INFORMATION_URI,
            "rules": [_rule(k) for k in kinds],
        }},
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {
            "build_ref": build.get("ref"),
            "previous_ref": previous["ref"] if (previous := report.get("previous")) else None,
            "exit_code": build.get("exit_code"),
            "summary": report.get("summary") or {},
            "notes": list(report.get("notes") or []),
        },
    }
    if base_ids:
        run["originalUriBaseIds"] = base_ids
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render(report: Report, base: Path | None = None) -> str:
    text = json.dumps(sarif_log(report, base), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    # bidi controls only occur inside JSON strings: as \u escapes they read the same to a
    # program and cannot reorder what a person reads (escape.py)
    return esc.BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
