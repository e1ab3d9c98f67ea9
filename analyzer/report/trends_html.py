"""`cachewhy trends --html FILE`: one self-contained page.

The same rules as the build report's page (report/html.py): inline CSS, no
scripts, nothing loaded, the same Content-Security-Policy, all build text
escaped. Per project: the figures, a hit-ratio line, the time lost stacked by
cause, a builds x steps strip of cached/rebuilt cells, the regressions and the
costliest lines. The charts are matplotlib's inline SVG (report/charts.py);
without the `charts` extra the page says how to get them and keeps the tables.
"""

from __future__ import annotations

from analyzer import __version__
from analyzer.report import escape as esc
from analyzer.report.html import _CSS, CSP
from analyzer.report.rows import fmt_span
from analyzer.report.trends_text import fmt_when, project_title, regression_sentence, short_path

_MORE_CSS = """
.chart { border: 1px solid var(--line); border-radius: 8px; padding: 6px; background: #fff; margin: 8px 0; }
.chart svg { max-width: 100%; height: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 12px; }
ul.regressions li { margin: 4px 0; }
h3 { font-size: 15px; margin: 18px 0 6px; }
section.project { margin-top: 24px; }
"""

NO_CHARTS = ("Charts need matplotlib, which is not installed: <code>pip install 'cachewhy[charts]'</code> "
             "(or <code>pip install matplotlib</code> in cachewhy's environment), then run "
             "<code>cachewhy trends --html</code> again. The tables below have the same figures.")


def _regression_html(r: dict) -> str:
    # the sentence of the terminal, with its `code` spans as <code>; escaped first
    parts = regression_sentence(r).split("`")
    return "".join(f"<code>{esc.html(p)}</code>" if i % 2 else esc.html(p) for i, p in enumerate(parts))


def _charts(p: dict) -> list[str]:
    from analyzer.report import charts  # noqa: PLC0415

    out = ['<div class="charts">',
           f'<div class="chart"><h3>Hit ratio per {p["per"]}</h3>{charts.hit_ratio(p)}</div>',
           f'<div class="chart"><h3>Time lost per {p["per"]}, by cause</h3>{charts.lost_by_cause(p)}</div>',
           "</div>"]
    if p["strip"]["cells"]:
        n = len(p["strip"]["builds"])
        out.append(f'<div class="chart"><h3>Steps of the newest {n} builds</h3><p class="meta">A column per '
                   "build, oldest first; a row per step of the newest build: green cached, orange rebuilt, "
                   f"dark red failed, grey not run.</p>{charts.strip(p)}</div>")
    return out


def render(model: dict) -> str:
    from analyzer.report import charts  # noqa: PLC0415

    drawn = charts.available()
    since = model.get("since")
    period = f"since {fmt_when(since)}" if since is not None else "all recorded builds"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>cachewhy trends: {model['builds']} builds</title>",
           f"<style>{_CSS}{_MORE_CSS}</style>", "</head>", "<body>",
           f"<h1>Cache misses over {model['builds']} builds</h1>",
           f'<p class="meta">{esc.html(period)} · read from {esc.html(model.get("source") or "-")}</p>']
    if not drawn:
        out.append(f'<div class="note" id="no-charts">{NO_CHARTS}</div>')
    if not model["projects"]:
        out.append("<p>No builds in this period.</p>")
    if model["projects"]:
        out += ["<table><tr><th>Project</th><th>Builds</th><th>Failed</th><th>Hit ratio</th><th>Time lost</th>"
                "<th>Regressions</th></tr>"]
        for p in model["projects"]:
            ratio = f"{p['hit_ratio']:.0%}" if p["hit_ratio"] is not None else "-"
            out.append(f"<tr><td><code>{esc.html(short_path(p['context'], 80))}</code> {esc.html(project_title(p))}"
                       f"</td><td class=\"num\">{p['builds']}</td><td class=\"num\">{p['failed']}</td>"
                       f"<td class=\"num\">{ratio}</td><td class=\"num\">{fmt_span(p['time_lost_s'])}</td>"
                       f"<td class=\"num\">{len(p['regressions'])}</td></tr>")
        out.append("</table>")
    for p in model["projects"]:
        ratio = f"{p['hit_ratio']:.0%}" if p["hit_ratio"] is not None else "-"
        out += ['<section class="project">',
                f"<h2><code>{esc.html(short_path(p['context'], 100))}</code> {esc.html(project_title(p))}</h2>",
                '<div class="cards">',
                f'<div class="card"><b>{p["builds"]}</b><span>builds</span></div>',
                f'<div class="card"><b>{ratio}</b><span>cache hits</span></div>',
                f'<div class="card{" bad" if p["time_lost_s"] else ""}"><b>{fmt_span(p["time_lost_s"])}</b>'
                "<span>lost to cache misses</span></div>",
                f'<div class="card{" bad" if p["regressions"] else ""}"><b>{len(p["regressions"])}</b>'
                "<span>regressions</span></div>", "</div>"]
        out.append("<h3>Regressions</h3>")
        if p["regressions"]:
            out.append('<ul class="regressions">' + "".join(f"<li>{_regression_html(r)}</li>"
                                                            for r in p["regressions"]) + "</ul>")
        else:
            out.append("<p>None: no line went from cached to rebuilt in most builds.</p>")
        if drawn:
            out += _charts(p)
        if p["lost_by_kind"]:
            out += ["<h3>Time lost by cause</h3>",
                    "<table><tr><th>Cause</th><th>Time lost</th><th>Root misses</th></tr>"]
            out += [f"<tr><td>{esc.html(k['kind'])}</td><td class=\"num\">{fmt_span(k['time_lost_s'])}</td>"
                    f"<td class=\"num\">{k['roots']}</td></tr>" for k in p["lost_by_kind"]]
            out.append("</table>")
        if p["lines"]:
            out += ["<h3>Costliest lines</h3>", "<table><tr><th>Line</th><th>Instruction</th><th>Misses</th>"
                    "<th>Time</th></tr>"]
            out += [f"<tr><td class=\"num\">{ln['line'] or '-'}</td>"
                    f"<td><code>{esc.html(esc.one_line(ln['instruction']))}</code></td>"
                    f"<td class=\"num\">{ln['misses']}</td><td class=\"num\">{fmt_span(ln['time_s'])}</td></tr>"
                    for ln in p["lines"]]
            out.append("</table>")
        out.append("</section>")
    for note in model.get("notes") or []:
        out.append(f'<div class="note">{esc.html(note)}</div>')
    out += [f"<footer>cachewhy {esc.html(__version__)} · cachewhy trends</footer>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
