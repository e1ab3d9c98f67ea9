"""The terminal report: the step table in Dockerfile order and a footer."""

from __future__ import annotations

from analyzer.console import neutralise_tree
from analyzer.graph import Status
from analyzer.report import fit
from analyzer.report.rows import QUIET_INTERNAL_S, fmt_time, kind_text
from analyzer.model import Advice, Report, ReportStep

MAY_REBUILD = "may-rebuild"  # a prediction's status of a step it cannot tell (analyzer/predict.py)

_COLOURS = {
    Status.CACHED: "\x1b[32m", Status.REBUILT: "\x1b[33m", Status.FAILED: "\x1b[31;1m",
    Status.CANCELED: "\x1b[31m", Status.SOURCE: "\x1b[2m", Status.INTERNAL: "\x1b[2m",
    Status.SKIPPED: "\x1b[2m", Status.RUNNING: "\x1b[35m",
}
_RESET = "\x1b[0m"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _lines(step: ReportStep) -> str:
    """The LINE column: `12`, or `12-15` for an instruction on several lines
    (continuation lines, heredoc bodies): one step, one row."""
    line, end = step.get("line"), step.get("end_line")
    if line is None:
        return ""
    return f"{line}-{end}" if isinstance(end, int) and end > line else str(line)


_STATUS = {s.value: s for s in Status}


def step_table(report: Report, log_tails: dict[str, str] | None = None, width: int = 100,
               colour: bool = False, all_rows: bool = False) -> str:
    """Every step of the build in Dockerfile order with its cache status and time."""
    report, log_tails = neutralise_tree(report), neutralise_tree(log_tails or {})
    rows: list[tuple[str, str, Status, str, str, ReportStep]] = []
    quiet: list[ReportStep] = []
    for s in report.get("steps") or []:
        status = _STATUS.get(s.get("status") or "", Status.INTERNAL)
        if s.get("status") == MAY_REBUILD:
            status = Status.RUNNING  # not cached, not known to rebuild: shown as "may-rebuild"
        if (not all_rows and s.get("line") is None and status in (Status.INTERNAL, Status.SOURCE)
                and (s.get("duration_s") or 0.0) < QUIET_INTERNAL_S):
            quiet.append(s)
            continue
        line = _lines(s)
        took = "" if status in (Status.CACHED, Status.SKIPPED) else fmt_time(s.get("duration_s"))
        label = s.get("instruction") or s.get("name") or ""
        rows.append((line, s.get("stage") or "", status, took, _one_line(label), s))
        for other in s.get("also_at") or []:
            rows.append((str(other.get("line")), other.get("stage") or "", status, "",
                         _one_line(other.get("instruction") or label), s))
    # one vertex can stand at several lines: keep Dockerfile order
    rows.sort(key=lambda r: (not r[0], int(r[0].partition("-")[0]) if r[0] else 0))
    hidden = ""
    if not all_rows and len(rows) > TERMINAL_ROWS:
        rows, hidden = _screenful(rows)
    w_line = max([4] + [len(r[0]) for r in rows])
    w_stage = min(16, max([5] + [len(r[1]) for r in rows]))
    w_status = 8 if not report.get("prediction") else 11
    w_time = max([4] + [len(r[3]) for r in rows])
    fixed = w_line + w_stage + w_status + w_time + 8
    w_text = max(20, width - fixed)
    name = ((report.get("build") or {}).get("dockerfile") or "Dockerfile").rsplit("/", 1)[-1]
    if name == "-":
        name = "Dockerfile"
    out = [fit.cut(f"{'LINE':>{w_line}}  {'STAGE':<{w_stage}}  {'STATUS':<{w_status}}  {'TIME':>{w_time}}  "
                   f"INSTRUCTION ({name})", width)]
    also_of = {m.get("id"): m.get("also") or [] for m in report.get("misses") or [] if not m.get("root")}
    for line, stage, status, took, text, step in rows:
        text = fit.cut(text, w_text)
        stage = fit.cut(stage, w_stage)
        st = f"{_label(step, status):<{w_status}}"
        if colour:
            st = _COLOURS.get(status, "") + st + _RESET
        out.append(f"{line:>{w_line}}  {stage:<{w_stage}}  {st}  {took:>{w_time}}  {text}")
        under = " " * (w_line + w_stage + w_status + 6)  # under the STATUS column
        if line == _lines(step):  # a step's second row (also_at) repeats nothing
            for also in also_of.get(step.get("id")) or []:  # a cascade's own causes, under its row
                out.extend(fit.wrap(f"also: {kind_text(also.get('kind') or '')}: "
                                    f"{_one_line(also.get('detail') or '')}", width, under, under + "  "))
        if status is Status.FAILED:
            indent = " " * (w_line + 2)
            if error := step.get("error"):  # wrapped; when too long, its middle goes: the end says what failed
                out.extend(fit.wrap_end(f"error: {_one_line(error)}", width, indent, indent + "       ", 4))
            for log_line in (log_tails.get(step.get("id") or "") or "").splitlines()[-8:]:
                out.append(fit.cut(f"{indent}| {log_line}", width))
    if hidden:
        out.extend(fit.wrap(hidden, width, " " * (w_line + 2), " " * (w_line + 4)))
    if quiet:
        took = fmt_time(sum(s.get("duration_s") or 0.0 for s in quiet))
        row = (f"{'':>{w_line}}  {'':<{w_stage}}  {'internal':<{w_status}}  {took:>{w_time}}  "
               f"{len(quiet)} internal and source vertices")
        what = " (loading the definition, context, metadata\u2026)"
        out.append(row + what if fit.width_of(row + what) <= width else fit.cut(row, width))
    return fit.block("\n".join(out), width)


#: The terminal answers in one screen: at most this many root causes and table
#: rows; the report files (--report-json, --report-md, --html) hold every one.
TERMINAL_ROOTS = 10
TERMINAL_ROWS = 40
_EVERY_ONE = "every one is in --report-md FILE or --report-json FILE"


def _screenful(rows: list) -> tuple[list, str]:
    """The rows a big build's table shows, in Dockerfile order: the steps that
    did not come from the cache (failed ones first, then the slowest, when
    even those are too many); and a line saying what was left out."""
    keep = [r for r in rows if r[2] is not Status.CACHED]
    if len(keep) > TERMINAL_ROWS:
        first = sorted(range(len(keep)), key=lambda i: (keep[i][2] is not Status.FAILED,
                                                        -(keep[i][5].get("duration_s") or 0.0)))
        keep = [keep[i] for i in sorted(first[:TERMINAL_ROWS])]
    cached = sum(1 for r in rows if r[2] is Status.CACHED)
    others = len(rows) - len(keep) - cached
    parts = ([f"{cached} cached"] if cached else []) + ([f"{others} quicker"] if others else [])
    return keep, f"\u2026 {len(rows) - len(keep)} more rows not shown ({', '.join(parts)}); {_EVERY_ONE}"


def _label(step: ReportStep, status: Status) -> str:
    return MAY_REBUILD if step.get("status") == MAY_REBUILD else status.value


def footer(report: Report, width: int | None = None) -> str:
    """The summary line; with `width`, broken between its parts to fit."""
    text = _prediction_footer(report) if report.get("prediction") else _footer(report)
    return text if width is None else "\n".join(fit.join_wrapped(text.split(" \u00b7 "), " \u00b7 ", width, "  "))


def _footer(report: Report) -> str:
    summ = report.get("summary") or {}
    build = report.get("build") or {}
    cached, rebuilt = summ.get("cached") or 0, summ.get("rebuilt") or 0
    parts = []
    if cached + rebuilt == 0:
        parts.append("no cacheable steps ran")
    else:
        parts.append(f"cache hits {cached}/{cached + rebuilt} steps ({cached / (cached + rebuilt):.0%})")
    if rebuilt:
        parts.append(f"{rebuilt} rebuilt step{'s' if rebuilt != 1 else ''} took {fmt_time(summ.get('rebuilt_time_s'))}")
    if summ.get("failed"):
        parts.append(f"{summ['failed']} failed")
    if build.get("duration_s") is not None:
        parts.append(f"build {fmt_time(build['duration_s'])}")
    if build.get("exit_code") is not None:
        parts.append(f"exit {build['exit_code']}")
    return " \u00b7 ".join(parts)


def _prediction_footer(report: Report) -> str:
    summ = report.get("summary") or {}
    pred = report["prediction"]
    cached, rebuilt, maybe = summ.get("cached") or 0, summ.get("rebuilt") or 0, summ.get("may_rebuild") or 0
    total = cached + rebuilt + maybe
    parts = [f"predicted hits {cached}/{total} steps" if total else "no cacheable steps"]
    if rebuilt:
        parts.append(f"{rebuilt} will rebuild, about {fmt_time(pred.get('expected_s'))}"
                     + (f" + {pred['steps_without_time']} new" if pred.get("steps_without_time") else ""))
    if maybe:
        parts.append(f"{maybe} may rebuild")
    if pred.get("cache") != "checked":
        parts.append("cache assumed")
    return " \u00b7 ".join(parts)


def render(report: Report, log_tails: dict[str, str] | None = None, width: int = 100, colour: bool = False) -> str:
    """The whole terminal report: the answer first, then the table, then the footer."""
    return "\n".join(["", root_causes(report, width=width, colour=colour), "",
                      step_table(report, log_tails, width=width, colour=colour), footer(report, width)])


def root_causes(report: Report, width: int = 100, colour: bool = False) -> str:
    """The answer first: root misses, biggest time loss first, with file and line."""
    report = neutralise_tree(report)
    misses = report.get("misses") or []
    roots = [m for m in misses if m.get("root")]
    pred = report.get("prediction")
    if not misses:
        prev = report.get("previous")
        stopped = (report.get("build") or {}).get("complete") is False
        head = (("Why: nothing was rebuilt before the build stopped" if stopped else "Why: nothing was rebuilt")
                + (f" (compared with build {prev['ref']})" if prev else ""))
        if pred:
            head = _fit_head("Prediction: nothing will be rebuilt",
                             f"(compared with build {prev['ref']})" if prev else "", width)
        return fit.block("\n".join([*_wrap_head(head, width), *_may_rebuild(report, width),
                                    *_notes(report, width), *_unmissed_advice(report, width)]), width)
    by_id = {m["id"]: m for m in misses}
    name = (report.get("build") or {}).get("dockerfile") or "Dockerfile"
    name = name.rsplit("/", 1)[-1]
    if name == "-":  # a log analysed without its Dockerfile's path
        name = "Dockerfile"
    total = sum(m.get("time_lost_s") or 0 for m in roots)
    prev = report.get("previous")
    head = (f"Why: {len(roots)} root cause{'s' if len(roots) != 1 else ''}, {fmt_time(total)} lost"
            + (f" (compared with build {prev['ref']})" if prev else " (no previous build to compare with)"))
    if pred:
        head = _fit_head(f"Prediction: {len(roots)} root cause{'s' if len(roots) != 1 else ''}, about "
                         f"{fmt_time(total)} to rebuild",
                         f"(compared with build {prev['ref']})" if prev else "(no previous build to compare with)", width)
    out = _wrap_head(head, width)
    bold, reset = ("\x1b[1m", _RESET) if colour else ("", "")
    for m in roots[:TERMINAL_ROOTS]:
        where = f"{name}:{m.get('line')}" if m.get("line") else name
        instr = _one_line(m.get("instruction") or "")
        cause = m["cause"]
        text = f"{kind_text(cause['kind'])}: {_one_line(cause.get('detail') or '')}"
        left = f"  {where:<14} {instr}"
        row = f"{left}   {text}"
        if fit.width_of(row) <= width:
            out.append(bold + row + reset)
        else:  # the cause gets lines of its own under the instruction
            out.append(bold + fit.cut(left, width) + reset)
            out.extend(fit.wrap(text, width, " " * 17, " " * 19))
        followers = [by_id[f] for f in m.get("followers") or [] if f in by_id]
        lines = [line for x in [m, *followers] if (line := x.get("line"))]
        span = (f" (lines {min(lines)}-{max(lines)})" if lines and min(lines) != max(lines)
                else (f" (line {lines[0]})" if lines else ""))
        n = 1 + len(followers)
        verb = "will rebuild" if pred else "rebuilt"
        out.extend(fit.wrap(f"\u2192 {n} step{'s' if n != 1 else ''} {verb}, "
                            f"{fmt_time(m.get('time_lost_s') or 0)}{span}", width, " " * 17, " " * 19))
        for also in m.get("also") or []:
            out.extend(fit.wrap(f"also: {kind_text(also['kind'])}: {_one_line(also.get('detail') or '')}", width,
                                " " * 17, " " * 23))
        for advice in (m.get("advice") or [])[:1]:  # issue 6: the first fix, in rule priority order
            out.extend(fix_lines(advice, width))
    rest = roots[TERMINAL_ROOTS:]
    if rest:
        out.extend(fit.wrap(f"\u2026 {len(rest)} more root cause{'s' if len(rest) != 1 else ''}, "
                            f"{fmt_time(sum(m.get('time_lost_s') or 0 for m in rest))} lost in all; {_EVERY_ONE}",
                            width, "  ", "    "))
    out.extend(_may_rebuild(report, width))
    out.extend(_notes(report, width))
    out.extend(_unmissed_advice(report, width))
    return fit.block("\n".join(out), width)


def _notes(report: Report, width: int) -> list[str]:
    return [x for n in report.get("notes") or [] for x in fit.wrap(f"note: {_one_line(n)}", width, "  ", "        ")]


def _wrap_head(head: str, width: int) -> list[str]:
    """The head's lines (from _fit_head), each wrapped to the width."""
    return [x for part in head.split("\n") for x in fit.wrap(part, width, part[: len(part) - len(part.lstrip())],
                                                             "  ")]


def _fit_head(head: str, compared: str, width: int) -> str:
    """The head line, with what it compared with on a line of its own when both do not fit."""
    if not compared:
        return head
    return f"{head} {compared}" if len(head) + 1 + len(compared) <= width else f"{head}\n  {compared}"


def _may_rebuild(report: Report, width: int) -> list[str]:
    """A prediction's steps whose rebuild cannot be told from disk, with why."""
    rows = (report.get("prediction") or {}).get("may_rebuild") or []
    name = ((report.get("build") or {}).get("dockerfile") or "Dockerfile").rsplit("/", 1)[-1]
    if name in ("", "-"):
        name = "Dockerfile"
    out = []
    for r in rows[:TERMINAL_ROOTS]:
        where = f"{name}:{r.get('line')}" if r.get("line") else name
        out.extend(fit.wrap(f"may rebuild: {where} {fit.cut(_one_line(r.get('instruction') or ''), 40)}: "
                            f"{r.get('reason')}", width, "  ", " " * 6))
    if len(rows) > TERMINAL_ROOTS:
        out.extend(fit.wrap(f"\u2026 {len(rows) - TERMINAL_ROOTS} more steps may rebuild; {_EVERY_ONE}", width,
                            "  ", "    "))
    return out


def _unmissed_advice(report: Report, width: int) -> list[str]:
    """Advice tied to no miss (issue 6: a cached download that may be stale), under the roots."""
    return [line for a in report.get("advice") or [] for line in fit.wrap(
        "fix: " + _one_line(a.get("message") or "").replace("`", ""), width, "  ", " " * 7)]


def fix_lines(advice: Advice, width: int = 100) -> list[str]:
    """`fix: …` under a root in the "Why:" section, wrapped; with the time it would have saved."""
    saved = advice.get("saved_s")
    text = "fix: " + _one_line(advice.get("message") or "").replace("`", "")
    if saved:
        text += f" (would have saved {fmt_time(saved)})"
    return fit.wrap(text, width, " " * 17, " " * 22)
