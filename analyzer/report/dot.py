"""The build graph in Graphviz DOT, and as SVG through Graphviz's `dot`.

One node per step (`line: instruction`), filled by status: cached green, root
miss red and bold, cascaded miss orange, sources and internal vertices grey,
failed dark red. Edges follow the steps' inputs. Each stage is a
`cluster_<stage>` subgraph; a step shared by several stages (a base image)
stands outside them. Each root miss has a note with its cause. Internal
vertices without a Dockerfile line are drawn small, and only when a step
reads them (the build context). Nodes and edges are sorted: the same report
always gives the same bytes.
"""

from __future__ import annotations

import shutil
import subprocess

from analyzer.errors import CachewhyError
from analyzer.report import escape as esc
from analyzer.report.rows import fmt_time, headline, kind_text, root_rows
from analyzer.model import Report, ReportStep

LABEL_CHARS = 48

# status -> (fill, border, font colour)
_STYLE = {
    "cached": ("#d9f2d9", "#2e7d32", "#1b3d1b"),
    "rebuilt": ("#ffe0b2", "#ef6c00", "#4a2500"),  # a cascaded miss
    "root": ("#ffcdd2", "#c62828", "#5c0000"),
    "failed": ("#8b0000", "#5c0000", "#ffffff"),
    "canceled": ("#ffffff", "#9e9e9e", "#757575"),
    "skipped": ("#ffffff", "#bdbdbd", "#9e9e9e"),
    "running": ("#e1bee7", "#6a1b9a", "#2e0b3d"),
    "source": ("#eeeeee", "#9e9e9e", "#424242"),
    "internal": ("#f5f5f5", "#bdbdbd", "#616161"),
}
INSTALL_HINT = ("Graphviz's `dot` is not installed: install Graphviz (Debian/Ubuntu: "
                "`apt-get install graphviz`, macOS: `brew install graphviz`)")


def _label(step: ReportStep) -> str:
    text = esc.truncate(esc.one_line(step.get("instruction") or step.get("name") or step.get("id") or ""),
                        LABEL_CHARS)
    if step.get("line") is None:
        return esc.truncate(esc.one_line((step.get("name") or "").removeprefix("[internal] ")), LABEL_CHARS)
    lines = [f"{step['line']}: {text}"]
    for other in step.get("also_at") or []:
        other_text = esc.one_line(other.get("instruction") or "")
        lines.append(esc.truncate(f"{other.get('line')}: {other_text}", LABEL_CHARS + 4))
    return "\n".join(lines)


def _attrs(**attrs: object) -> str:
    """`[k="v", …]`: every value a quoted, escaped DOT string."""
    return "[" + ", ".join(f"{k}={esc.dot_str(v)}" for k, v in attrs.items()) + "]"


def _id(prefix: str, step_id: str) -> str:
    return esc.dot_str(prefix + step_id)


def render(report: Report) -> str:
    """The DOT text of the build graph, ending with a newline."""
    steps = {s["id"]: s for s in report.get("steps") or [] if s.get("id")}
    misses = {m["id"]: m for m in report.get("misses") or []}
    roots = {r.miss["id"]: r for r in root_rows(report)}

    # steps with a Dockerfile line, and the vertices without one that a step reads
    shown = {i for i, s in steps.items() if s.get("line") is not None}
    small = {inp for i in shown for inp in steps[i].get("inputs") or [] if inp in steps} - shown
    shown |= small
    edges = sorted({(inp, i) for i in shown for inp in steps[i].get("inputs") or [] if inp in shown})

    def order(i: str) -> tuple:
        s = steps[i]
        return (s.get("line") is None, s.get("line") or 0, i)

    def node(i: str) -> str:
        s = steps[i]
        status = s.get("status") or "internal"
        key = "root" if i in roots else status if status in _STYLE else "internal"
        fill, border, font = _STYLE[key]
        attrs: dict[str, object] = {"label": _label(s), "fillcolor": fill, "color": border, "fontcolor": font}
        tip = f"{s.get('stage') or ''} {status}".strip()
        if s.get("duration_s") is not None and status not in ("cached", "skipped"):
            tip += f", {fmt_time(s['duration_s'])}"
        if i in roots:
            attrs.update(penwidth=2.5, style="rounded,filled,bold")
            tip += f"; root miss: {kind_text(roots[i].kind)}: {roots[i].detail}"
        elif i in misses:
            cause = misses[i].get("cause") or {}
            tip += f"; {kind_text(cause.get('kind') or '')}: {esc.one_line(cause.get('detail') or '')}"
        if status in ("canceled", "skipped"):
            attrs["style"] = "rounded,filled,dashed"
        if i in small:
            attrs.update(fontsize=8, height=0.25, style="filled,dotted")
        if s.get("error"):
            tip += f"; error: {esc.truncate(esc.one_line(s['error']), 300)}"
        attrs["tooltip"] = tip
        return f"{_id('s_', i)} {_attrs(**attrs)};"

    # stage clusters, in order of their first line; shared steps stay outside
    clusters: dict[str, list[str]] = {}
    outside: list[str] = []
    for i in sorted(shown, key=order):
        s = steps[i]
        stages = {s.get("stage")} | {o.get("stage") for o in s.get("also_at") or []}
        if (stage := s.get("stage")) and len(stages) == 1 and i not in small:
            clusters.setdefault(stage, []).append(i)
        else:
            outside.append(i)

    title = f"cachewhy: {headline(report)}"
    out = [
        "digraph cachewhy {",
        "  graph " + _attrs(rankdir="TB", fontname="Helvetica", fontsize=12, label=title, labelloc="t",
                            labeljust="l", nodesep=0.3, ranksep=0.35, tooltip=title) + ";",
        "  node " + _attrs(shape="box", style="rounded,filled", fontname="Helvetica", fontsize=10, height=0.3,
                           margin="0.12,0.04") + ";",
        "  edge " + _attrs(color="#9e9e9e", arrowsize=0.6) + ";",
    ]
    out += [f"  {node(i)}" for i in outside]
    for stage, ids in clusters.items():
        out.append(f"  subgraph {esc.dot_str('cluster_' + stage)} {{")
        out.append("    graph " + _attrs(label=f"stage {stage}", style="rounded,dashed", color="#9e9e9e",
                                          fontsize=10, tooltip=f"stage {stage}") + ";")
        out += [f"    {node(i)}" for i in ids]
        out.append("  }")
    for src, dst in edges:
        cascade = _attrs(color="#ef6c00", penwidth=1.5) if src in misses and dst in misses else ""
        out.append(f"  {_id('s_', src)} -> {_id('s_', dst)}" + (f" {cascade};" if cascade else ";"))
    for i in sorted(roots, key=order):
        r = roots[i]
        n = r.steps_rebuilt
        text = f"{kind_text(r.kind)}: {esc.truncate(r.detail, 80)}" if r.detail else kind_text(r.kind)
        text += f"\n{n} step{'s' if n != 1 else ''} rebuilt, {fmt_time(r.time_lost_s)} lost"
        if r.files and not all(path in r.detail for path, _ in r.files):  # names the detail lacks
            names = ", ".join(esc.one_line(path) for path, _ in r.files[:3])
            more = len(r.files) - 3 + r.more_files
            text += f"\n{esc.truncate(names, 60)}" + (f" (+{more})" if more > 0 else "")
        out.append(f"  {_id('cause_', i)} " + _attrs(
            shape="note", style="filled", fillcolor="#fff8e1", color="#c62828", fontcolor="#5c0000", fontsize=9,
            label=text, tooltip=f"{kind_text(r.kind)}: {r.detail}") + ";")
        out.append(f"  {_id('cause_', i)} -> {_id('s_', i)} "
                   + _attrs(style="dashed", color="#c62828", arrowhead="none", constraint="false") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_available() -> bool:
    return shutil.which("dot") is not None


def to_svg(dot_text: str) -> str:
    """Render DOT text with Graphviz's `dot -Tsvg`; CachewhyError when it is missing or fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise CachewhyError(INSTALL_HINT)
    try:
        res = subprocess.run([exe, "-Tsvg"], input=dot_text.encode("utf-8"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CachewhyError(f"Graphviz's `dot` failed: {exc}") from None
    if res.returncode != 0:
        err = esc.one_line(res.stderr.decode("utf-8", "replace"))
        raise CachewhyError(f"Graphviz's `dot` failed (exit {res.returncode}): {esc.truncate(err, 300)}")
    return res.stdout.decode("utf-8", "replace")


def render_svg(report: Report) -> str:
    """The build graph as SVG (needs Graphviz's `dot`)."""
    return to_svg(render(report))
