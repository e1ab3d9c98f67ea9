"""`cachewhy diff`'s text: B's root causes against A, every Dockerfile step with
its status in A and in B and what changed, and a footer comparing the two."""

from __future__ import annotations

from typing import cast

from analyzer.model import Report
from analyzer.report.rows import fmt_time


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(0, n - 1)] + "\u2026"


def _ratio(report: dict) -> str:
    s = report.get("summary") or {}
    cached, rebuilt = s.get("cached") or 0, s.get("rebuilt") or 0
    if not cached + rebuilt:
        return "no cacheable steps ran"
    return f"cache hits {cached}/{cached + rebuilt} ({cached / (cached + rebuilt):.0%})"


def _summary(record: dict) -> dict:
    steps = [s for s in record.get("steps") or [] if s.get("keyword") not in (None, "FROM")]
    cached = sum(1 for s in steps if s.get("status") == "cached")
    rebuilt = sum(1 for s in steps if s.get("status") == "rebuilt")
    return {"summary": {"cached": cached, "rebuilt": rebuilt}}


def _what_changed(miss: dict | None, by_id: dict[str, dict], a_step: dict | None, b_step: dict | None) -> str:
    if b_step is None:
        return "not in B"
    if miss is not None:
        cause = miss.get("cause") or {}
        kind = cause.get("kind") or "unknown"
        if miss.get("root"):
            text = f"{kind}: {_one_line(cause.get('detail'))}"
        else:
            roots = [by_id[r] for r in miss.get("caused_by") or [] if r in by_id]
            where = ", ".join(f"line {r.get('line')}" if r.get("line") else (r.get("instruction") or r["id"])
                              for r in roots) or "a rebuilt step"
            root_kind = (roots[0].get("cause") or {}).get("kind") if roots else kind
            text = (f"stage-changed: follows {where} ({root_kind})" if kind == "stage-changed"
                    else f"follows {where} ({root_kind})")
        for also in miss.get("also") or []:
            text += f"; also {also.get('kind')}: {_one_line(also.get('detail'))}"
        return text
    if a_step is None:
        return "new in B"
    if b_step.get("status") == "cached" and a_step.get("status") in ("rebuilt", "failed"):
        return "cached now"
    return "-"


def step_rows(a: dict, b: dict, report: dict) -> list[tuple[str, str, str, str, str]]:
    """(line, instruction, status in A, status in B, what changed) for every Dockerfile step."""
    from analyzer.explain import match_stages, match_steps  # noqa: PLC0415

    a_steps = [s for s in a.get("steps") or [] if s.get("keyword") is not None]
    b_steps = [s for s in b.get("steps") or [] if s.get("keyword") is not None]
    matches = match_steps(b_steps, a_steps, b.get("dockerfile_text"), a.get("dockerfile_text"))
    # FROM lines are no steps to match_steps: pair them by stage (renamed ones too), then by text
    stages = match_stages(b_steps, a_steps)
    a_froms = [s for s in a_steps if s.get("keyword") == "FROM"]
    for s in b_steps:
        if s.get("keyword") != "FROM":
            continue
        want = {"stage": stages.get(s.get("stage") or ""), "instruction": s.get("instruction")}
        for key in ("stage", "instruction"):
            cand = next((x for x in a_froms if x.get(key) and x.get(key) == want[key]), None)
            if cand is not None:
                matches[s["id"]] = cand
                a_froms.remove(cand)
                break
    misses = {m["id"]: m for m in report.get("misses") or []}
    rows: list[tuple[tuple, tuple[str, str, str, str, str]]] = []
    used = {id(p) for p in matches.values()}
    for s in b_steps:
        p = matches.get(s["id"])
        line = s.get("line")
        row = (str(line) if line else "", _one_line(s.get("instruction") or s.get("name")),
               (p.get("status") if p else None) or "-", s.get("status") or "?",
               _what_changed(misses.get(s["id"]), misses, p, s))
        rows.append(((0, line or 0, s.get("started") or 0.0), row))
        for other in s.get("also_at") or []:  # one vertex at several lines (a shared base image)
            if other.get("line"):
                rows.append(((0, other["line"], s.get("started") or 0.0),
                             (str(other["line"]), _one_line(other.get("instruction") or row[1]), *row[2:])))
    for p in a_steps:
        if id(p) in used:
            continue
        line = p.get("line")
        rows.append(((1, line or 0, p.get("started") or 0.0),
                     (f"A:{line}" if line else "", _one_line(p.get("instruction") or p.get("name")),
                      p.get("status") or "?", "-", "not in B")))
    rows.sort(key=lambda r: r[0])
    return [r[1] for r in rows]


def render_table(rows: list[tuple[str, str, str, str, str]], width: int) -> str:
    w_line = max([4] + [len(r[0]) for r in rows])
    w_a = max([1] + [len(r[2]) for r in rows])
    w_b = max([1] + [len(r[3]) for r in rows])
    fixed = w_line + w_a + w_b + 8
    room = max(40, width - fixed)
    w_instr = min(max([11] + [len(r[1]) for r in rows]), max(20, room * 2 // 5))
    w_what = max(12, width - fixed - w_instr)
    out = [f"{'LINE':>{w_line}}  {'INSTRUCTION':<{w_instr}}  {'A':<{w_a}}  {'B':<{w_b}}  WHAT CHANGED"]
    for line, instr, sa, sb, what in rows:
        out.append(f"{line:>{w_line}}  {_clip(instr, w_instr):<{w_instr}}  {sa:<{w_a}}  {sb:<{w_b}}  "
                   f"{_clip(what, w_what)}".rstrip())
    return "\n".join(out)


def render(report: Report, a: dict, b: dict, rows: list, width: int, colour: bool = False) -> str:
    from analyzer.console import neutralise_tree  # noqa: PLC0415
    from analyzer.report import text  # noqa: PLC0415

    lines = ["", f"A: {a.get('id')}", f"B: {b.get('id')}", "",  # (ids and paths: cut by fit.block)
             text.root_causes(report, width=width, colour=colour), "",
             render_table(neutralise_tree(rows), width)]
    foot = []
    for label, rec, rep in (("A", a, None), ("B", b, cast(dict, report))):
        part = f"{label}: {_ratio(rep or _summary(rec))}"
        if rec.get("duration_s") is not None:
            part += f", build {fmt_time(rec['duration_s'], missing='-')}"
        part += f", exit {rec.get('exit_code')}"
        foot.append(part)
    lost = (report.get("summary") or {}).get("time_lost_s")
    if lost:
        foot.append(f"{fmt_time(lost, missing='-')} lost in B")
    from analyzer.report import fit  # noqa: PLC0415

    lines.extend(fit.join_wrapped(foot, " \u00b7 ", width, "  "))
    return fit.block("\n".join(lines), width)
