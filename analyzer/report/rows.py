"""The rows every report format shows, as plain text: shared by the terminal,
Markdown, HTML, SARIF, DOT and annotations, which escape them as they write.

Seconds, cause-kind words, paths relative to the workspace, the root-cause
rows, the step rows and the headline facts are made here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from analyzer import causes
from analyzer.report import escape as esc
from analyzer.model import Report, ReportMiss, ReportStep

MAX_FILES = 10  # per root cause; more are counted, not named

# Vertices without a Dockerfile line that took less than this are summed into
# one row, so the table stays on one screen; slower ones (an export, a big
# context transfer) are shown.
QUIET_INTERNAL_S = 0.5


def fmt_time(seconds: object, missing: str = "") -> str:
    """Seconds as every output shows them: `1.1s`, `2m05.3s`; `missing` when there is no number."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return missing
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:04.1f}s"


def fmt_span(seconds: float | None) -> str:
    """12.3s, 4m05s, 2h14m: time summed over many builds (trends), compact."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m}m{s:02d}s"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h}h{m:02d}m"


def kind_text(kind: str) -> str:
    """What the terminal calls a cause kind ("context changed")."""
    return causes.label(kind)


def workspace() -> Path:
    """Where paths in CI output are relative to: GITHUB_WORKSPACE, else the working directory."""
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())


def relative_path(path: str | None, base: Path | None = None) -> str | None:
    """`path` relative to `base` (default: workspace()) in POSIX form when it is under it, else None."""
    if not path or path == "-" or "://" in path:
        return None
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(base or workspace()))
    except ValueError:
        return None
    return rel.as_posix()


def dockerfile_name(report: Report, base: Path | None = None) -> str:
    """The Dockerfile as a reader of a CI report knows it: relative to the workspace, else its name."""
    path = (report.get("build") or {}).get("dockerfile")
    rel = relative_path(path, base)
    if rel:
        return rel
    if not path or path == "-":
        return "Dockerfile"
    return path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class RootRow:
    """One root cause as the tables show it (text unescaped)."""

    miss: ReportMiss
    where: str  # "Dockerfile:6"
    instruction: str
    kind: str
    detail: str
    also: list[str]
    files: list[tuple[str, str]]  # (path, "added" | "modified" | "removed")
    more_files: int
    steps_rebuilt: int
    lines: str  # "lines 6-13"
    time_lost_s: float


def root_rows(report: Report, base: Path | None = None) -> list[RootRow]:
    misses = report.get("misses") or []
    by_id = {m["id"]: m for m in misses}
    name = dockerfile_name(report, base)
    rows = []
    for m in misses:
        if not m.get("root"):
            continue
        cause = m["cause"]
        changes = cause.get("files")
        files: list[tuple[str, str]] = []
        if changes:
            files += [(f, "added") for f in changes.get("added") or []]
            files += [(f, "modified") for f in changes.get("modified") or []]
            files += [(f, "removed") for f in changes.get("removed") or []]
        followers = [by_id[f] for f in m.get("followers") or [] if f in by_id]
        lines = sorted({line for x in [m, *followers] if (line := x.get("line"))})
        rows.append(RootRow(
            miss=m,
            where=f"{name}:{m['line']}" if m.get("line") else name,
            instruction=esc.one_line(m.get("instruction") or ""),
            kind=str(cause.get("kind") or "unknown"),
            detail=esc.one_line(cause.get("detail") or ""),
            also=[f"{kind_text(a.get('kind') or '')}: {esc.one_line(a.get('detail') or '')}"
                  for a in m.get("also") or []],
            files=files[:MAX_FILES],
            more_files=max(0, len(files) - MAX_FILES),
            steps_rebuilt=1 + len(followers),
            lines=(f"lines {lines[0]}-{lines[-1]}" if len(lines) > 1 else (f"line {lines[0]}" if lines else "")),
            time_lost_s=float(m.get("time_lost_s") or 0.0),
        ))
    return rows


@dataclass
class StepRow:
    """One row of the step table (text unescaped)."""

    line: int | None
    stage: str
    status: str
    time: str
    instruction: str
    why: str
    step: ReportStep = field(repr=False)

    @property
    def place(self) -> str:
        """The LINE cell: `12`, or `12-15` for an instruction on several lines
        (continuation lines, heredoc bodies), which is one step and one row."""
        if self.line is None:
            return ""
        end = self.step.get("end_line") if self.step.get("line") == self.line else None
        return f"{self.line}-{end}" if isinstance(end, int) and end > self.line else str(self.line)


def step_rows(report: Report) -> tuple[list[StepRow], list[ReportStep]]:
    """The step table: Dockerfile steps in line order, slow internal vertices after them;
    returns (rows, quiet) where quiet are the quick internal/source vertices summed in one row."""
    misses = {m["id"]: m for m in report.get("misses") or []}
    by_id = {m["id"]: m for m in misses.values()}
    rows: list[StepRow] = []
    quiet: list[ReportStep] = []
    for s in report.get("steps") or []:
        status = s.get("status") or "internal"
        if (s.get("line") is None and status in ("internal", "source")
                and (s.get("duration_s") or 0.0) < QUIET_INTERNAL_S):
            quiet.append(s)
            continue
        took = "" if status in ("cached", "skipped") else fmt_time(s.get("duration_s"))
        label = esc.one_line(s.get("instruction") or s.get("name") or "")
        why = ""
        m = misses.get(s["id"])
        if m is not None:
            kind = kind_text((m.get("cause") or {}).get("kind") or "")
            if m.get("root"):
                why = f"root: {kind}"
            else:
                roots = [by_id[r] for r in m.get("caused_by") or [] if r in by_id]
                at = ", ".join(f"line {r['line']}" for r in roots if r.get("line"))
                why = f"follows {at}" if at else f"follows: {kind}"
            for a in m.get("also") or []:  # the step's other causes, under it in every format
                why += f"; also: {kind_text(a.get('kind') or '')}: {esc.one_line(a.get('detail') or '')}"
        if status == "failed" and s.get("error"):
            why = (why + "; " if why else "") + "error: " + esc.truncate(esc.one_line(s["error"]), 300)
        rows.append(StepRow(s.get("line"), s.get("stage") or "", status, took, label, why, s))
        for other in s.get("also_at") or []:
            rows.append(StepRow(other.get("line"), other.get("stage") or "", status, "",
                                esc.one_line(other.get("instruction") or label), why, s))
    rows.sort(key=lambda r: (r.line is None, r.line or 0))
    return rows, quiet


def headline(report: Report) -> str:
    """"38% cache hits, 1.1s lost, exit 0" (plain text)."""
    summ = report.get("summary") or {}
    build = report.get("build") or {}
    pred = report.get("prediction")
    if pred is not None:  # a prediction: nothing ran yet
        n = summ.get("rebuilt") or 0
        return (f"{n} step{'s' if n != 1 else ''} will rebuild, about {fmt_time(pred.get('expected_s') or 0.0)}"
                if n else "nothing will be rebuilt")
    parts = []
    ratio = summ.get("hit_ratio")
    parts.append(f"{ratio:.0%} cache hits" if ratio is not None else "no cacheable steps ran")
    parts.append(f"{fmt_time(summ.get('time_lost_s') or 0.0)} lost")
    if summ.get("failed"):
        parts.append(f"{summ['failed']} failed")
    if build.get("exit_code") is not None:
        parts.append(f"exit {build['exit_code']}")
    if build.get("complete") is False:
        parts.append("interrupted")
    return ", ".join(parts)


def facts(report: Report) -> list[str]:
    """The footer's facts, as in the terminal: hits, rebuilt time, build time, exit code."""
    summ = report.get("summary") or {}
    build = report.get("build") or {}
    cached, rebuilt = summ.get("cached") or 0, summ.get("rebuilt") or 0
    out = []
    if report.get("prediction") is not None:
        maybe = summ.get("may_rebuild") or 0
        if cached + rebuilt + maybe:
            out.append(f"predicted hits {cached}/{cached + rebuilt + maybe} steps")
        if maybe:
            out.append(f"{maybe} may rebuild")
        return out
    if cached + rebuilt:
        out.append(f"cache hits {cached}/{cached + rebuilt} steps")
    if rebuilt:
        out.append(f"{rebuilt} rebuilt step{'s' if rebuilt != 1 else ''} took {fmt_time(summ.get('rebuilt_time_s'))}")
    if build.get("duration_s") is not None:
        out.append(f"build {fmt_time(build['duration_s'])}")
    if build.get("exit_code") is not None:
        out.append(f"exit {build['exit_code']}")
    return out


def status_counts(report: Report) -> str:
    counts: dict[str, int] = {}
    for s in report.get("steps") or []:
        if s.get("line") is not None:
            counts[s.get("status") or "internal"] = counts.get(s.get("status") or "internal", 0) + 1
    order = ["cached", "rebuilt", "may-rebuild", "failed", "canceled", "skipped", "running", "source", "internal"]
    return ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
