"""`cachewhy trends` as text: the terminal's compact form (sparklines, a small
table, within the width) and Markdown for a weekly CI summary. Both read the
model of analyzer/trends.py; build text is cleaned (escape.py) before it is shown."""

from __future__ import annotations

import os
import textwrap
import time

from analyzer.report import escape as esc
from analyzer.report.rows import fmt_span

SPARK = " \u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
SPARK_POINTS = 24
_HOME = os.path.expanduser("~")


def fmt_when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def short_path(path: str, width: int) -> str:
    p = esc.one_line(path)
    if _HOME not in ("", "/") and p.startswith(_HOME + os.sep):
        p = "~" + p[len(_HOME):]
    return p if len(p) <= width else "\u2026" + p[-(width - 1):]


def sparkline(values: list[float | None], top: float | None = None) -> str:
    """One character per value, scaled to `top` (default the largest); None is a gap."""
    vals = [v for v in values if v is not None]
    hi = top if top is not None else (max(vals) if vals else 0.0)
    out = []
    for v in values:
        if v is None:
            out.append("\u00b7")
        elif hi <= 0:
            out.append(SPARK[1])
        else:
            out.append(SPARK[max(1, min(8, int(round(v / hi * 8))))])
    return "".join(out)


def project_title(p: dict) -> str:
    name = (p.get("dockerfile") or "Dockerfile").rsplit("/", 1)[-1] or "Dockerfile"
    target = f" --target {p['target']}" if p.get("target") else ""
    return f"{name}{target}"


def regression_sentence(r: dict, markdown: bool = False) -> str:
    """"`RUN npm ci` (line 14) has rebuilt in 17 of 20 builds since 2026-11-20 14:02,
    when …: 41m00s lost since"."""
    code = (lambda t: esc.md_code(t)) if markdown else (lambda t: f"`{esc.one_line(t)}`")
    plain = esc.md if markdown else esc.one_line
    where = f" (line {r['line']})" if r.get("line") else ""
    head = (f"{code(esc.truncate(esc.one_line(r['instruction']), 60))}{where} has rebuilt in {r['missed']} of "
            f"{r['of']} builds since {fmt_when(r['since'])}")
    cause = r.get("cause")
    if cause is None:
        if r.get("no_cause") == "not in its report":
            why = f", cause unknown (the report of build {plain(r['first_build'])} does not name this miss)"
        else:
            why = f", cause unknown (the record of build {plain(r['first_build'])} could not be read)"
    else:
        detail = esc.truncate(esc.one_line(cause.get("detail") or ""), 120)
        what = f"{cause['kind']}{': ' + plain(detail) if detail else ''}"
        if cause.get("same_line"):
            why = f", when {what}"
        else:
            instr = esc.truncate(esc.one_line(cause.get("instruction") or ""), 40)
            why = f", when line {cause.get('line')} {code(instr)} missed ({what})"
    also = ""
    if r.get("also"):
        lines = ", ".join(str(a["line"]) for a in r["also"] if a.get("line"))
        also = f"; with it line{'s' if len(r['also']) > 1 else ''} {lines}" if lines else ""
    return f"{head}{why}{also}: {fmt_span(r['time_lost_s'])} lost since"


def _header(model: dict) -> str:
    since = model.get("since")
    period = f"since {fmt_when(since)}" if since is not None else "all recorded builds"
    n = len(model["projects"])
    return (f"cachewhy trends: {model['builds']} build{'s' if model['builds'] != 1 else ''} of {n} "
            f"project{'s' if n != 1 else ''}, {period}")


def render_text(model: dict, width: int = 80, source: str = "") -> str:
    width = max(width, 60)
    out = [esc.truncate(_header(model), width)]
    if source:
        out.append(esc.truncate(f"read from {esc.one_line(source)}", width))
    if not model["projects"]:
        out.append("no builds in this period (--since all reads every recorded build)")
        return "\n".join(out) + "\n"
    for p in model["projects"]:
        out.append("")
        ratio = f"{p['hit_ratio']:.0%}" if p["hit_ratio"] is not None else "-"
        tail = (f"  {project_title(p)}: {p['builds']} builds, hits {ratio}, "
                f"{fmt_span(p['time_lost_s'])} lost")
        out.append(short_path(p["context"], max(20, width - len(tail))) + tail)
        pts = p["series"][-SPARK_POINTS:]
        unit = "day" if p["per"] == "day" else "build"
        hits = sparkline([s["hit_ratio"] for s in pts], top=1.0)
        lost = sparkline([s["time_lost_s"] for s in pts])
        last = pts[-1] if pts else None
        last_hits = f"{last['hit_ratio']:.0%}" if last and last["hit_ratio"] is not None else "-"
        out.append(f"  hits/{unit:<5} {hits:<{SPARK_POINTS}}  last {last_hits:>4}")
        out.append(f"  lost/{unit:<5} {lost:<{SPARK_POINTS}}  last {fmt_span(last['time_lost_s']) if last else '-':>4}"
                   f"  most {fmt_span(max((s['time_lost_s'] for s in pts), default=0.0))}")
        if p["lost_by_kind"]:
            parts = [f"{k['kind']} {fmt_span(k['time_lost_s'])}" for k in p["lost_by_kind"]]
            out.extend(textwrap.wrap("lost by cause: " + " \u00b7 ".join(parts), width, initial_indent="  ",
                                     subsequent_indent="    ", break_on_hyphens=False))
        if p["lines"]:
            room = width - 23
            out.append(f"  {'LINE':>4}  {'COSTLIEST LINES':<{room}} {'MISSES':>6}  {'TIME':>6}")
            for ln in p["lines"]:
                where = f"{ln['line']:>4}" if ln["line"] else "   -"
                instr = esc.truncate(esc.one_line(ln["instruction"]), room)
                out.append(f"  {where}  {instr:<{room}} {ln['misses']:>6}  {fmt_span(ln['time_s']):>6}")
        if p["regressions"]:
            out.append("  regressions")
            for r in p["regressions"]:
                out.extend(textwrap.wrap(regression_sentence(r), width, initial_indent="    ",
                                         subsequent_indent="      ", break_on_hyphens=False))
        else:
            out.append("  no regressions")
    for note in model.get("notes") or []:
        out.extend(textwrap.wrap(f"note: {note}", width))
    return "\n".join(out) + "\n"


def render_markdown(model: dict, source: str = "") -> str:
    out = [f"## {esc.md(_header(model))}", ""]
    if source:
        out += [f"Read from {esc.md(source)}.", ""]
    if not model["projects"]:
        return "\n".join(out + ["No builds in this period.", ""])
    out += ["| Project | Builds | Failed | Hit ratio | Time lost | Regressions |",
            "|---|---:|---:|---:|---:|---:|"]
    for p in model["projects"]:
        ratio = f"{p['hit_ratio']:.0%}" if p["hit_ratio"] is not None else "-"
        out.append(f"| {esc.md_code(p['context'])} {esc.md(project_title(p))} | {p['builds']} | {p['failed']} | "
                   f"{ratio} | {fmt_span(p['time_lost_s'])} | {len(p['regressions'])} |")
    for p in model["projects"]:
        out += ["", f"### {esc.md(short_path(p['context'], 100))} ({esc.md(project_title(p))})", ""]
        unit = "day" if p["per"] == "day" else "build"
        pts = p["series"][-SPARK_POINTS:]
        out.append(f"Hits per {unit}: `{sparkline([s['hit_ratio'] for s in pts], top=1.0)}` · "
                   f"time lost per {unit}: `{sparkline([s['time_lost_s'] for s in pts])}`")
        if p["regressions"]:
            out += ["", "**Regressions**", ""]
            out += [f"- {regression_sentence(r, markdown=True)}" for r in p["regressions"]]
        if p["lost_by_kind"]:
            out += ["", "| Cause | Time lost | Root misses |", "|---|---:|---:|"]
            out += [f"| {esc.md(k['kind'])} | {fmt_span(k['time_lost_s'])} | {k['roots']} |" for k in p["lost_by_kind"]]
        if p["lines"]:
            out += ["", "| Line | Instruction | Misses | Time |", "|---:|---|---:|---:|"]
            out += [f"| {ln['line'] or '-'} | {esc.md_code(esc.truncate(esc.one_line(ln['instruction']), 80))} | "
                    f"{ln['misses']} | {fmt_span(ln['time_s'])} |" for ln in p["lines"]]
    for note in model.get("notes") or []:
        out += ["", f"> {esc.md(note)}"]
    return "\n".join(out) + "\n"
