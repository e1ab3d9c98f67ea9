"""The Markdown report: for GitHub job summaries, GitLab, Jenkins and PR comments.

A headline (hit ratio, time lost, exit code), the root causes table (biggest
time loss first), then the step table folded away in <details>. The helpers
at the top turn the report into plain rows; the Markdown and HTML formats
escape them (analyzer/report/escape.py) as they write them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.report import escape as esc
from analyzer.report.text import _KIND_TEXT, _QUIET_INTERNAL_S, _fmt_time

CAUSE_DOCS = "https://github.com/cachewhy/cachewhy/blob/main/docs/causes/{kind}.md"
ADVICE_DOCS = "https://github.com/cachewhy/cachewhy/blob/main/docs/advice/{rule}.md"
MAX_FILES = 10  # per root cause; more are counted, not named


# --- plain rows, shared by the table formats ---------------------------------

def fmt_time(seconds: float | None) -> str:
    return _fmt_time(seconds)


def kind_text(kind: str) -> str:
    """What the terminal calls a cause kind ("context changed")."""
    return _KIND_TEXT.get(kind, kind)


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


def dockerfile_name(report: dict, base: Path | None = None) -> str:
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

    miss: dict
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


def root_rows(report: dict, base: Path | None = None) -> list[RootRow]:
    misses = report.get("misses") or []
    by_id = {m["id"]: m for m in misses}
    name = dockerfile_name(report, base)
    rows = []
    for m in misses:
        if not m.get("root"):
            continue
        cause = m.get("cause") or {}
        files: list[tuple[str, str]] = []
        for change in ("added", "modified", "removed"):
            files.extend((f, change) for f in (cause.get("files") or {}).get(change) or [])
        followers = [by_id[f] for f in m.get("followers") or [] if f in by_id]
        lines = sorted({x["line"] for x in [m, *followers] if x.get("line")})
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
    step: dict = field(repr=False)


def step_rows(report: dict) -> tuple[list[StepRow], list[dict]]:
    """The step table: Dockerfile steps in line order, slow internal vertices after them;
    returns (rows, quiet) where quiet are the quick internal/source vertices summed in one row."""
    misses = {m["id"]: m for m in report.get("misses") or []}
    by_id = {m["id"]: m for m in misses.values()}
    rows: list[StepRow] = []
    quiet: list[dict] = []
    for s in report.get("steps") or []:
        status = s.get("status") or "internal"
        if (s.get("line") is None and status in ("internal", "source")
                and (s.get("duration_s") or 0.0) < _QUIET_INTERNAL_S):
            quiet.append(s)
            continue
        took = "" if status in ("cached", "skipped") else _fmt_time(s.get("duration_s"))
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
        if status == "failed" and s.get("error"):
            why = (why + "; " if why else "") + "error: " + esc.truncate(esc.one_line(s["error"]), 300)
        rows.append(StepRow(s.get("line"), s.get("stage") or "", status, took, label, why, s))
        for other in s.get("also_at") or []:
            rows.append(StepRow(other.get("line"), other.get("stage") or "", status, "",
                                esc.one_line(other.get("instruction") or label), why, s))
    rows.sort(key=lambda r: (r.line is None, r.line or 0))
    return rows, quiet


def headline(report: dict) -> str:
    """"38% cache hits, 1.1s lost, exit 0" (plain text)."""
    summ = report.get("summary") or {}
    build = report.get("build") or {}
    parts = []
    ratio = summ.get("hit_ratio")
    parts.append(f"{ratio:.0%} cache hits" if ratio is not None else "no cacheable steps ran")
    parts.append(f"{_fmt_time(summ.get('time_lost_s') or 0.0)} lost")
    if summ.get("failed"):
        parts.append(f"{summ['failed']} failed")
    if build.get("exit_code") is not None:
        parts.append(f"exit {build['exit_code']}")
    if build.get("complete") is False:
        parts.append("interrupted")
    return ", ".join(parts)


def facts(report: dict) -> list[str]:
    """The footer's facts, as in the terminal: hits, rebuilt time, build time, exit code."""
    summ = report.get("summary") or {}
    build = report.get("build") or {}
    cached, rebuilt = summ.get("cached") or 0, summ.get("rebuilt") or 0
    out = []
    if cached + rebuilt:
        out.append(f"cache hits {cached}/{cached + rebuilt} steps")
    if rebuilt:
        out.append(f"{rebuilt} rebuilt step{'s' if rebuilt != 1 else ''} took {_fmt_time(summ.get('rebuilt_time_s'))}")
    if build.get("duration_s") is not None:
        out.append(f"build {_fmt_time(build['duration_s'])}")
    if build.get("exit_code") is not None:
        out.append(f"exit {build['exit_code']}")
    return out


def status_counts(report: dict) -> str:
    counts: dict[str, int] = {}
    for s in report.get("steps") or []:
        if s.get("line") is not None:
            counts[s.get("status") or "internal"] = counts.get(s.get("status") or "internal", 0) + 1
    order = ["cached", "rebuilt", "failed", "canceled", "skipped", "running", "source", "internal"]
    return ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))


# --- Markdown ----------------------------------------------------------------

def _cause_link(kind: str) -> str:
    from analyzer.explain import KINDS  # noqa: PLC0415

    text = esc.md(kind_text(kind))
    return f"[{text}]({CAUSE_DOCS.format(kind=kind)})" if kind in KINDS else text


def _advice_lines(roots: list[RootRow]) -> list[str]:
    """One bullet per root miss with advice: the first fix (docs/advice/), and its time saved."""
    out = []
    for r in roots:
        for a in (r.miss.get("advice") or [])[:1]:
            saved = f" (would have saved {esc.md(_fmt_time(a['saved_s']))})" if a.get("saved_s") else ""
            rule = esc.md(str(a.get("rule") or ""))
            parts = esc.one_line(a.get("message") or "").split("`")
            text = "".join(esc.md_code(p) if i % 2 else esc.md(p) for i, p in enumerate(parts))
            out.append(f"- **fix** {esc.md(r.where)}: {text}{saved} ([{rule}]({ADVICE_DOCS.format(rule=rule)}))")
    return [*out, ""] if out else []


def render(report: dict) -> str:
    """The whole Markdown report, ending with a newline."""
    build = report.get("build") or {}
    prev = report.get("previous")
    out = [f"### cachewhy: {esc.md(headline(report))}", ""]
    where = esc.md_code(dockerfile_name(report))
    compared = (f"compared with build {esc.md_code(prev.get('ref'))}" if prev
                else "no previous build to compare with")
    out += [f"{where}, {compared}: " + " · ".join(esc.md(f) for f in facts(report)) + ".", ""]

    roots = root_rows(report)
    if not report.get("misses"):
        out += ["Nothing was rebuilt.", ""]
    elif roots:
        total = sum(r.time_lost_s for r in roots)
        n = len(roots)
        out += [f"**{n} root cause{'s' if n != 1 else ''}**, {esc.md(_fmt_time(total))} lost:", ""]
        out += ["| Dockerfile:line | instruction | cause | detail | files | steps rebuilt | time lost |",
                "|---|---|---|---|---|--:|--:|"]
        for r in roots:
            detail = esc.md(r.detail)
            for also in r.also:
                detail += f"<br>also: {esc.md(also)}"
            files = "<br>".join(f"{esc.md_code(path)} {change}" for path, change in r.files)
            if r.more_files:
                files += f"<br>… and {r.more_files} more"
            rebuilt = f"{r.steps_rebuilt}" + (f" ({esc.md(r.lines)})" if r.lines else "")
            out.append(f"| {esc.md(r.where)} | {esc.md_code(esc.truncate(r.instruction, 120))} | "
                       f"{_cause_link(r.kind)} | {detail} | {files} | {rebuilt} | "
                       f"{esc.md(_fmt_time(r.time_lost_s))} |")
        out.append("")
        out += _advice_lines(roots)  # issue 6
    for a in report.get("advice") or []:  # issue 6: advice tied to no miss (a cached download)
        parts = esc.one_line(a.get("message") or "").split("`")
        text = "".join(esc.md_code(p) if i % 2 else esc.md(p) for i, p in enumerate(parts))
        rule = esc.md(str(a.get("rule") or ""))
        out += [f"- **fix** {text} ([{rule}]({ADVICE_DOCS.format(rule=rule)}))", ""]
    for note in report.get("notes") or []:
        out.append(f"> note: {esc.md(note)}")
    if report.get("notes"):
        out.append("")

    rows, quiet = step_rows(report)
    counts = status_counts(report)
    out += [f"<details><summary>Steps ({esc.md(counts) if counts else 'none'})</summary>", "",
            "| line | stage | status | time | instruction | why |",
            "|--:|---|---|--:|---|---|"]
    for row in rows:
        out.append(f"| {row.line if row.line is not None else ''} | {esc.md(row.stage)} | {esc.md(row.status)} | "
                   f"{esc.md(row.time)} | {esc.md_code(esc.truncate(row.instruction, 120))} | {esc.md(row.why)} |")
    if quiet:
        took = _fmt_time(sum(s.get("duration_s") or 0.0 for s in quiet))
        out.append(f"|  |  | internal | {esc.md(took)} | {len(quiet)} internal and source vertices |  |")
    out += ["", "</details>", ""]
    if build.get("ref"):
        out += [f"<sub>cachewhy build record {esc.md_code(build['ref'])}</sub>", ""]
    return "\n".join(out)
