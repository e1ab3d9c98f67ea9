"""One self-contained HTML page: the root causes, the build graph, the steps.

No external resources and no scripts: inline CSS, the graph as inline SVG
when Graphviz's `dot` is installed (else a note says how to get it), and a
Content-Security-Policy that forbids scripts and loads, so a page made from
any build is safe to open. All build text is escaped (escape.html).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from analyzer import __version__, causes
from analyzer.errors import CachewhyError
from analyzer.report import dot
from analyzer.report import escape as esc
from analyzer.report.markdown import ADVICE_DOCS
from analyzer.report.rows import (
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

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa;
  --cached:#d9f2d9; --cached-b:#2e7d32; --rebuilt:#ffe0b2; --rebuilt-b:#ef6c00;
  --root:#ffcdd2; --root-b:#c62828; --failed:#8b0000; --grey:#eeeeee; --grey-b:#9e9e9e; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--fg); background: var(--bg);
  font: 14px/1.45 -apple-system, "Segoe UI", "Helvetica Neue", Helvetica, Arial, "DejaVu Sans", sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
code { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
  background: var(--soft); padding: 1px 4px; border-radius: 4px; word-break: break-word; }
.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 4px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 130px; background: var(--soft); }
.card b { display: block; font-size: 22px; }
.card span { color: var(--muted); font-size: 12px; }
.card.bad { border-color: var(--root-b); background: #fff5f5; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.where { white-space: nowrap; font-weight: 600; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; white-space: nowrap;
  border: 1px solid var(--grey-b); background: var(--grey); }
.badge.cached { background: var(--cached); border-color: var(--cached-b); }
.badge.rebuilt { background: var(--rebuilt); border-color: var(--rebuilt-b); }
.badge.root { background: var(--root); border-color: var(--root-b); font-weight: 600; }
.badge.failed { background: var(--failed); border-color: var(--failed); color: #fff; }
.badge.canceled, .badge.skipped { background: #fff; border-style: dashed; }
tr.root td { background: #fff5f5; }
tr.failed td { background: #fdecea; }
ul.files { margin: 0; padding-left: 16px; }
.change { color: var(--muted); font-size: 12px; }
.cause a { color: inherit; }
.note { border-left: 4px solid var(--grey-b); background: var(--soft); padding: 8px 12px; margin: 8px 0; }
.graph { overflow: auto; border: 1px solid var(--line); border-radius: 8px; padding: 8px; background: #fff; }
.graph svg { max-width: 100%; height: auto; }
.legend { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 8px; font-size: 12px; color: var(--muted); }
details summary { cursor: pointer; color: var(--muted); margin: 4px 0; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""

_XML_PROLOGUE = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", re.DOTALL)


def _graph_svg(report: Report) -> tuple[str | None, str | None]:
    """(inline SVG, None), or (None, why there is none)."""
    if not dot.dot_available():
        return None, ("The build graph needs Graphviz's <code>dot</code>, which was not installed when this "
                      "page was written (Debian/Ubuntu: <code>apt-get install graphviz</code>, macOS: "
                      "<code>brew install graphviz</code>). The tables above have the same information.")
    try:
        svg = dot.render_svg(report)
    except CachewhyError as exc:
        return None, f"The build graph could not be drawn: {esc.html(exc)}"
    svg = _XML_PROLOGUE.sub("", svg).strip()
    return svg, None


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge {esc.html(status)}">{esc.html(text or status)}</span>'


def _cause_link(kind: str) -> str:
    text = esc.html(kind_text(kind))
    url = causes.doc_url(kind)
    if url is None:
        return text
    # a link for when the page is opened online; nothing is loaded from it
    return f'<a href="{esc.html(url)}">{text}</a>'


def _started(report: Report) -> str:
    ts = (report.get("build") or {}).get("started")
    if not isinstance(ts, (int, float)) or ts < 1e9:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fixes(report: Report, roots: list) -> list[str]:
    """Issue 6's advice: the first fix of each root (with the time it would
    have saved), then the advice tied to no miss; each links its rule's page."""
    items = []
    for where, advice in [*((r.where, a) for r in roots for a in (r.miss.get("advice") or [])[:1]),
                          *((None, a) for a in report.get("advice") or [])]:
        rule = str(advice.get("rule") or "")
        # `code` in the message becomes <code>; everything is escaped first
        parts = esc.one_line(advice.get("message") or "").split("`")
        text = "".join(f"<code>{esc.html(p)}</code>" if i % 2 else esc.html(p) for i, p in enumerate(parts))
        saved = f" (would have saved {esc.html(fmt_time(advice['saved_s']))})" if advice.get("saved_s") else ""
        head = f'<span class="where">{esc.html(where)}</span>: ' if where else ""
        link = f' <a href="{esc.html(ADVICE_DOCS.format(rule=rule))}">{esc.html(rule)}</a>' if rule else ""
        items.append(f"<li>{head}{text}{saved}{link}</li>")
    return ['<h3>Fixes</h3><ul class="fixes">' + "".join(items) + "</ul>"] if items else []


def render(report: Report) -> str:
    """The whole page, ending with a newline."""
    build = report.get("build") or {}
    summ = report.get("summary") or {}
    prev = report.get("previous")
    name = dockerfile_name(report)
    title = f"cachewhy: {name}: {headline(report)}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="cachewhy">',
        f"<title>{esc.html(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        "<h1>Why was this build slow?</h1>",
    ]
    meta = [f"<code>{esc.html(build.get('dockerfile') or name)}</code>"]
    if build.get("target"):
        meta.append(f"target <code>{esc.html(build['target'])}</code>")
    if build.get("platforms"):
        meta.append("platforms " + ", ".join(f"<code>{esc.html(p)}</code>" for p in build["platforms"]))
    if build.get("ref"):
        meta.append(f"build <code>{esc.html(build['ref'])}</code>")
    meta.append(f"compared with build <code>{esc.html(prev.get('ref'))}</code>" if prev
                else "no previous build to compare with")
    if _started(report):
        meta.append(f"started {_started(report)}")
    if build.get("complete") is False:
        meta.append("<b>interrupted</b>")
    out.append(f'<p class="meta">{" · ".join(meta)}</p>')

    cached, rebuilt = summ.get("cached") or 0, summ.get("rebuilt") or 0
    ratio = summ.get("hit_ratio")
    cards = [
        ("", f"{ratio:.0%}" if ratio is not None else "–", f"cache hits ({cached}/{cached + rebuilt} steps)"),
        ("bad" if (summ.get("time_lost_s") or 0) > 0 else "", fmt_time(summ.get("time_lost_s") or 0.0),
         f"lost to {summ.get('root_causes') or 0} root cause{'s' if summ.get('root_causes') != 1 else ''}"),
        ("", str(rebuilt), "steps rebuilt"),
    ]
    if build.get("duration_s") is not None:
        cards.append(("", fmt_time(build["duration_s"]), "build time"))
    if build.get("exit_code") is not None:
        cards.append(("bad" if build["exit_code"] else "", str(build["exit_code"]), "exit code"))
    out.append('<div class="cards">' + "".join(
        f'<div class="card {cls}"><b>{esc.html(value)}</b><span>{esc.html(label)}</span></div>'
        for cls, value, label in cards) + "</div>")
    out.append("</header>")

    # root causes
    out.append('<section id="causes">')
    roots = root_rows(report)
    if not report.get("misses"):
        out.append("<h2>Root causes</h2><p>Nothing was rebuilt.</p>")
    else:
        total = sum(r.time_lost_s for r in roots)
        out.append(f"<h2>Root causes: {len(roots)}, {esc.html(fmt_time(total))} lost</h2>")
        out.append("<table><thead><tr><th>Dockerfile:line</th><th>instruction</th><th>cause</th><th>detail</th>"
                   "<th>files</th><th>steps rebuilt</th><th>time lost</th></tr></thead><tbody>")
        for r in roots:
            detail = esc.html(r.detail)
            for also in r.also:
                detail += f"<br>also: {esc.html(also)}"
            files = ""
            if r.files:
                files = '<ul class="files">' + "".join(
                    f'<li><code>{esc.html(path)}</code> <span class="change">{esc.html(change)}</span></li>'
                    for path, change in r.files)
                if r.more_files:
                    files += f"<li>… and {r.more_files} more</li>"
                files += "</ul>"
            rebuilt_cell = str(r.steps_rebuilt) + (f"<br><span class=\"change\">{esc.html(r.lines)}</span>"
                                                  if r.lines else "")
            out.append(
                f'<tr><td class="where">{esc.html(r.where)}</td><td><code>{esc.html(r.instruction)}</code></td>'
                f'<td class="cause"><span class="badge root">{_cause_link(r.kind)}</span></td>'
                f"<td>{detail}</td><td>{files}</td><td class=\"num\">{rebuilt_cell}</td>"
                f'<td class="num">{esc.html(fmt_time(r.time_lost_s))}</td></tr>')
        out.append("</tbody></table>")
    out.extend(_fixes(report, roots))
    for note in report.get("notes") or []:
        out.append(f'<p class="note">note: {esc.html(note)}</p>')
    out.append("</section>")

    # the graph
    out.append('<section id="graph"><h2>Build graph</h2>')
    svg, why_not = _graph_svg(report)
    if svg is not None:
        out.append('<div class="legend">' + " ".join([
            _badge("cached"), _badge("root", "root miss"), _badge("rebuilt", "cascaded miss"),
            _badge("failed"), _badge("source", "source / internal")]) + "</div>")
        out.append(f'<div class="graph">{svg}</div>')
    else:
        out.append(f'<p class="note">{why_not}</p>')
    out.append("</section>")

    # the steps
    rows, quiet = step_rows(report)
    root_ids = {r.miss["id"] for r in roots}
    counts = status_counts(report)
    out.append(f'<section id="steps"><h2>Steps</h2><details open><summary>{esc.html(counts or "no steps")}'
               "</summary>")
    out.append("<table><thead><tr><th>line</th><th>stage</th><th>status</th><th>time</th><th>instruction</th>"
               "<th>why</th></tr></thead><tbody>")
    for row in rows:
        sid = row.step.get("id")
        cls = "root" if sid in root_ids else ("failed" if row.status == "failed" else "")
        badge = _badge("root", "rebuilt (root)") if sid in root_ids else _badge(row.status)
        out.append(
            f'<tr class="{cls}"><td class="num">{row.place}</td>'
            f"<td>{esc.html(row.stage)}</td><td>{badge}</td><td class=\"num\">{esc.html(row.time)}</td>"
            f"<td><code>{esc.html(row.instruction)}</code></td><td>{esc.html(row.why)}</td></tr>")
    if quiet:
        took = fmt_time(sum(s.get("duration_s") or 0.0 for s in quiet))
        out.append(f'<tr><td></td><td></td><td>{_badge("internal")}</td><td class="num">{esc.html(took)}</td>'
                   f"<td>{len(quiet)} internal and source vertices (loading the definition, context, "
                   "metadata…)</td><td></td></tr>")
    out.append("</tbody></table></details>")
    out.append(f'<p class="meta">{esc.html(" · ".join(facts(report)))}</p></section>')
    out.append(f"<footer>Written by cachewhy {esc.html(__version__)}.</footer>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
