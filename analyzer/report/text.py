"""The terminal report: the step table in Dockerfile order and a footer."""

from __future__ import annotations

from analyzer.graph import BuildGraph, Status, Step

_COLOURS = {
    Status.CACHED: "\x1b[32m", Status.REBUILT: "\x1b[33m", Status.FAILED: "\x1b[31;1m",
    Status.CANCELED: "\x1b[31m", Status.SOURCE: "\x1b[2m", Status.INTERNAL: "\x1b[2m",
    Status.SKIPPED: "\x1b[2m", Status.RUNNING: "\x1b[35m",
}
_RESET = "\x1b[0m"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:04.1f}s"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def step_table(graph: BuildGraph, width: int = 100, colour: bool = False,
               dockerfile_name: str = "Dockerfile") -> str:
    steps = graph.ordered()
    rows: list[tuple[str, str, Status, str, str, Step]] = []
    for s in steps:
        line = str(s.line) if s.line is not None else ""
        took = "" if s.status in (Status.CACHED, Status.SKIPPED) else _fmt_time(s.duration_s)
        rows.append((line, s.stage or "", s.status, took, _one_line(s.label), s))
        for other_line, _end, stage, text in s.other_locations:
            rows.append((str(other_line), stage or "", s.status, "", _one_line(text), s))
    # one vertex can stand at several lines: keep Dockerfile order
    rows.sort(key=lambda r: (not r[0], int(r[0]) if r[0] else 0))
    w_line = max([4] + [len(r[0]) for r in rows])
    w_stage = min(16, max([5] + [len(r[1]) for r in rows]))
    w_status = 8
    w_time = max([4] + [len(r[3]) for r in rows])
    fixed = w_line + w_stage + w_status + w_time + 8
    w_text = max(20, width - fixed)
    out = [f"{'LINE':>{w_line}}  {'STAGE':<{w_stage}}  {'STATUS':<{w_status}}  {'TIME':>{w_time}}  "
           f"INSTRUCTION ({dockerfile_name})"]
    for line, stage, status, took, text, step in rows:
        if len(text) > w_text:
            text = text[: w_text - 1] + "\u2026"
        stage = stage[:w_stage]
        st = f"{status.value:<{w_status}}"
        if colour:
            st = _COLOURS.get(status, "") + st + _RESET
        out.append(f"{line:>{w_line}}  {stage:<{w_stage}}  {st}  {took:>{w_time}}  {text}")
        if status is Status.FAILED:
            indent = " " * (w_line + 2)
            if step.error:
                out.append(f"{indent}error: {_one_line(step.error)[: width - len(indent) - 7]}")
            for log_line in (step.log_tail or "").splitlines()[-8:]:
                out.append(f"{indent}| {log_line[: width - len(indent) - 2]}")
    return "\n".join(out)


def footer(graph: BuildGraph, returncode: int, build_s: float | None) -> str:
    summ = graph.summary()
    parts = []
    if summ.hit_ratio is None:
        parts.append("no cacheable steps ran")
    else:
        parts.append(f"cache hits {summ.cached}/{summ.cached + summ.rebuilt} steps ({summ.hit_ratio:.0%})")
    if summ.rebuilt:
        parts.append(f"{summ.rebuilt} rebuilt step{'s' if summ.rebuilt != 1 else ''} took "
                     f"{_fmt_time(summ.rebuilt_time_s)}")
    if summ.failed:
        parts.append(f"{summ.failed} failed")
    if build_s is not None:
        parts.append(f"build {_fmt_time(build_s)}")
    parts.append(f"exit {returncode}")
    return " \u00b7 ".join(parts)
