"""GitHub Actions workflow annotations: one line per root cause.

    ::warning file=Dockerfile,line=6,title=cachewhy%3A context-changed::Dockerfile:6 COPY src/ ./src/ — context changed: …

(GitHub shows the title as "cachewhy: context-changed": `:` and `,` are
percent-encoded in property values, `%`, CR and LF everywhere.)

`::notice` for a kind whose SARIF level is `note` (`no-previous-build`:
nothing is wrong, there was just nothing to compare with; analyzer/causes.py). The file is relative to GITHUB_WORKSPACE (else the working
directory) so GitHub puts the annotation on the Dockerfile's line; a
Dockerfile outside it keeps its absolute path, a Dockerfile from stdin none.
"""

from __future__ import annotations

import os
from pathlib import Path

from analyzer import causes
from analyzer.report import escape as esc
from analyzer.report.rows import fmt_time, kind_text, relative_path, root_rows
from analyzer.model import Report


def render(report: Report, base: Path | None = None) -> str:
    """The annotation lines, each ending with a newline; "" when nothing was rebuilt."""
    path = (report.get("build") or {}).get("dockerfile")
    file = relative_path(path, base)
    if file is None and path and path != "-" and "://" not in path:
        file = os.path.abspath(path)
    out = []
    for row in root_rows(report, base):
        props = []
        if file:
            props.append(f"file={esc.workflow_prop(file)}")
            if line := row.miss.get("line"):
                props.append(f"line={int(line)}")
        title = "cachewhy prediction: " if report.get("prediction") is not None else "cachewhy: "
        props.append(f"title={esc.workflow_prop(title + row.kind)}")
        message = f"{row.where} {esc.truncate(row.instruction, 200)} \u2014 {kind_text(row.kind)}"
        if row.detail:
            message += f": {row.detail}"
        n = row.steps_rebuilt
        if report.get("prediction") is not None:
            message += f" ({n} step{'s' if n != 1 else ''} will rebuild, about {fmt_time(row.time_lost_s)})"
        else:
            message += f" ({n} step{'s' if n != 1 else ''} rebuilt, {fmt_time(row.time_lost_s)} lost)"
        out.append(f"::{causes.annotation_level(row.kind)} {','.join(props)}::{esc.workflow_data(message)}\n")
    return "".join(out)
