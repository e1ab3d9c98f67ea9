"""The Markdown report: for GitHub job summaries, GitLab, Jenkins and PR comments.

A headline (hit ratio, time lost, exit code), the root causes table (biggest
time loss first), then the step table folded away in <details>. The rows
come from analyzer/report/rows.py; this module escapes them for Markdown
(analyzer/report/escape.py) as it writes them.
"""

from __future__ import annotations

from analyzer import causes
from analyzer.report import escape as esc
from analyzer.report.rows import (
    RootRow,
    dockerfile_name,
    facts,
    fmt_time,
    headline,
    kind_text,
    root_rows,
    status_counts,
    step_rows,
)

from analyzer.model import Report

ADVICE_DOCS = "https://github.com/cachewhy/cachewhy/blob/main/docs/advice/{rule}.md"


# --- Markdown ----------------------------------------------------------------

def _cause_link(kind: str) -> str:
    text = esc.md(kind_text(kind))
    url = causes.doc_url(kind)
    return f"[{text}]({url})" if url else text


def _advice_lines(roots: list[RootRow]) -> list[str]:
    """One bullet per root miss with advice: the first fix (docs/advice/), and its time saved."""
    out = []
    for r in roots:
        for a in (r.miss.get("advice") or [])[:1]:
            saved = f" (would have saved {esc.md(fmt_time(a['saved_s']))})" if a.get("saved_s") else ""
            rule = esc.md(str(a.get("rule") or ""))
            parts = esc.one_line(a.get("message") or "").split("`")
            text = "".join(esc.md_code(p) if i % 2 else esc.md(p) for i, p in enumerate(parts))
            out.append(f"- **fix** {esc.md(r.where)}: {text}{saved} ([{rule}]({ADVICE_DOCS.format(rule=rule)}))")
    return [*out, ""] if out else []


def render(report: Report) -> str:
    """The whole Markdown report, ending with a newline."""
    build = report.get("build") or {}
    prev = report.get("previous")
    pred = report.get("prediction")
    out = [f"### cachewhy {'prediction' if pred is not None else ''}: {esc.md(headline(report))}".replace(" :", ":"),
           ""]
    where = esc.md_code(dockerfile_name(report))
    compared = (f"compared with build {esc.md_code(prev.get('ref'))}" if prev
                else "no previous build to compare with")
    out += [f"{where}, {compared}: " + " · ".join(esc.md(f) for f in facts(report)) + ".", ""]

    roots = root_rows(report)
    if not report.get("misses"):
        out += ["Nothing will be rebuilt." if pred is not None else "Nothing was rebuilt.", ""]
    elif roots:
        total = sum(r.time_lost_s for r in roots)
        n = len(roots)
        lost = f"about {fmt_time(total)} to rebuild" if pred is not None else f"{fmt_time(total)} lost"
        out += [f"**{n} root cause{'s' if n != 1 else ''}**, {esc.md(lost)}:", ""]
        out += [("| Dockerfile:line | instruction | cause | detail | files | steps to rebuild | time |"
                 if pred is not None else
                 "| Dockerfile:line | instruction | cause | detail | files | steps rebuilt | time lost |"),
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
                       f"{esc.md(fmt_time(r.time_lost_s))} |")
        out.append("")
        out += _advice_lines(roots)  # issue 6
    for m in (pred or {}).get("may_rebuild") or []:  # issue 15: what a prediction cannot tell
        where = f"{dockerfile_name(report)}:{m.get('line')}" if m.get("line") else dockerfile_name(report)
        out.append(f"- **may rebuild** {esc.md(where)} {esc.md_code(esc.truncate(m.get('instruction') or '', 120))}: "
                   f"{esc.md(m.get('reason') or '')}")
    if (pred or {}).get("may_rebuild"):
        out.append("")
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
        out.append(f"| {row.place} | {esc.md(row.stage)} | {esc.md(row.status)} | "
                   f"{esc.md(row.time)} | {esc.md_code(esc.truncate(row.instruction, 120))} | {esc.md(row.why)} |")
    if quiet:
        took = fmt_time(sum(s.get("duration_s") or 0.0 for s in quiet))
        out.append(f"|  |  | internal | {esc.md(took)} | {len(quiet)} internal and source vertices |  |")
    out += ["", "</details>", ""]
    if build.get("ref"):
        out += [f"<sub>cachewhy build record {esc.md_code(build['ref'])}</sub>", ""]
    return "\n".join(out)
