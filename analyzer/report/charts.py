"""The trends page's charts, drawn by matplotlib as inline SVG.

matplotlib is the optional extra `charts` (`pip install 'cachewhy[charts]'`):
it is large (with NumPy, ~40 MB) and only this page needs it. Its Figure API is
used without pyplot, so no GUI backend is ever chosen and nothing global is
changed. Text stays text in the SVG (`svg.fonttype: none`) and ids are salted
with a fixed string, so the same trends give the same page. docs/trends.md says
why matplotlib.
"""

from __future__ import annotations

import io
import re
from typing import Any

from analyzer.report.rows import fmt_span

# one colour per cause kind, in the order of the legend; the rest grey
_KIND_COLOURS = ["#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#2e7d32", "#00838f", "#ad1457", "#5d4037"]
_CACHED, _REBUILT, _FAILED, _ABSENT = "#a5d6a7", "#ffb74d", "#8b0000", "#f2f2f2"
_PROLOGUE = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->|<metadata>.*?</metadata>", re.DOTALL)


def available() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


_RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "cachewhy-trends", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False}


def _styled(fn: Any) -> Any:
    """Draw and save under cachewhy's style only (matplotlib's rc_context): the
    caller's matplotlib settings are left as they were."""
    import functools  # noqa: PLC0415

    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        import matplotlib  # noqa: PLC0415

        with matplotlib.rc_context(_RC):  # type: ignore[arg-type]  # its stubs list every key as a Literal
            return fn(*a, **k)
    return wrapper


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return _PROLOGUE.sub("", buf.getvalue()).strip()


def _labels(project: dict) -> list[str]:
    if project["per"] == "day":
        return [s["label"][5:] for s in project["series"]]  # MM-DD
    return [str(i + 1) for i in range(len(project["series"]))]


def _ticks(ax: Any, labels: list[str]) -> None:
    step = max(1, len(labels) // 12)
    ax.set_xticks(range(0, len(labels), step), [labels[i] for i in range(0, len(labels), step)])


@_styled
def hit_ratio(project: dict) -> str:
    """The hit ratio per day or per build, as a line."""
    fig = _figure(6.4, 2.2)
    ax = fig.add_subplot()
    ys = [s["hit_ratio"] * 100 if s["hit_ratio"] is not None else float("nan") for s in project["series"]]
    ax.plot(range(len(ys)), ys, marker="o", markersize=3, color="#1565c0", linewidth=1.6)
    ax.set_ylim(0, 105)
    ax.set_ylabel("cache hits %")
    ax.set_xlabel("day" if project["per"] == "day" else "build (oldest first)")
    _ticks(ax, _labels(project))
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


@_styled
def lost_by_cause(project: dict) -> str:
    """Time lost per day or per build, stacked by root cause kind."""
    fig = _figure(6.4, 2.4)
    ax = fig.add_subplot()
    kinds = [k["kind"] for k in project["lost_by_kind"]]
    xs = list(range(len(project["series"])))
    bottom = [0.0] * len(xs)
    scale, unit = (60.0, "min") if project["time_lost_s"] >= 600 else (1.0, "s")
    for i, kind in enumerate(kinds):
        ys = [(s["lost_by_kind"].get(kind) or 0.0) / scale for s in project["series"]]
        ax.bar(xs, ys, bottom=bottom, color=_KIND_COLOURS[i] if i < len(_KIND_COLOURS) else "#9e9e9e",
               label=f"{kind} ({fmt_span(project['lost_by_kind'][i]['time_lost_s'])})", width=0.8)
        bottom = [b + y for b, y in zip(bottom, ys)]
    ax.set_ylabel(f"time lost ({unit})")
    _ticks(ax, _labels(project))
    if kinds:  # above the plot, where no bar can hide it
        fig.legend(loc="outside upper left", fontsize=8, frameon=False, ncols=min(3, len(kinds)))
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


@_styled
def strip(project: dict) -> str:
    """Builds (columns, oldest first) x steps (rows, in Dockerfile order): cached,
    rebuilt, failed or not run, as Depot draws a step's hits."""
    from matplotlib.colors import ListedColormap  # noqa: PLC0415

    st = project["strip"]
    rows = st["cells"]
    code = {"C": 0, "R": 1, "F": 2, ".": 3, "-": 3}
    grid = [[code.get(c, 3) for c in row] for row in rows]
    n_steps, n_builds = len(grid), len(st["builds"])
    fig = _figure(9.6, min(0.6 + 0.16 * n_steps, 9.0))
    ax = fig.add_subplot()
    if n_steps and n_builds:
        ax.pcolormesh(grid, cmap=ListedColormap([_CACHED, _REBUILT, _FAILED, _ABSENT]), vmin=-0.5, vmax=3.5,
                      edgecolors="white", linewidth=0.5)
    ax.invert_yaxis()
    labels = [f"{s['line'] or '-'} {s['instruction'][:28]}" for s in st["steps"]]
    ax.set_yticks([i + 0.5 for i in range(n_steps)], labels, fontsize=7)
    ax.set_xticks([])  # the page's heading says what the cells are
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    return _svg(fig)
