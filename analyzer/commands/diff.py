"""`cachewhy diff A B`: two builds compared step by step."""

from __future__ import annotations

import os
import sys
from typing import cast

from analyzer import notes as N
from analyzer.errors import InputError, UsageError
from analyzer.gates import Gates
from analyzer.model import Record, Report
from analyzer.notes import Note
from analyzer.options import Parser, gate_options, output_options, store_options, width_options
from analyzer.outputs import Outputs
from analyzer.report.rows import fmt_time

SUMMARY = """\
diff [OPTIONS] A B
      compare two builds (records or rawjson logs) step by step: why B
      rebuilt what it rebuilt, compared with A"""

def parser() -> Parser:
    p = Parser("diff", "cachewhy diff [OPTIONS] A B", """\
Compares build B with build A: the same "Why:" answer as `cachewhy build`
gives (B's cache misses and their causes, as if A were the build before it),
then every Dockerfile step with its status in A and in B and what changed.
A and B are each a record (id, id prefix, ^N, `last`, or a record file) or a
rawjson log (`-` for stdin, for one of them):

  cachewhy diff ^1 ^0
  cachewhy diff --metadata-a a.json --metadata-b b.json a.log b.log

The report the output options write is B's, compared with A.""", """\
The comparison goes to stdout; to stderr when an output option sends a
report there (`--report-json -`). Notes and errors go to stderr.
Exit codes: 0, 4 when a gate trips (on B's report), 2 for bad arguments or an
unusable record or log.""", parents=[store_options(), output_options(), gate_options(), width_options()])
    p.add_argument("--metadata-a", metavar="FILE", help="buildx's --metadata-file of log A (provenance)")
    p.add_argument("--metadata-b", metavar="FILE", help="the same for log B")
    p.add_argument("--dockerfile-a", metavar="FILE",
                   help="the Dockerfile of log A, to map steps to lines without provenance")
    p.add_argument("--dockerfile-b", metavar="FILE", help="the same for log B")
    return p



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
    matches = match_steps(b_steps, a_steps)
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


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv)
    if opts is None:
        return 0
    found = opts.found()
    refs = opts.args
    if len(refs) != 2:
        raise UsageError(f"diff takes two builds A and B, not {len(refs)}" + (f": {' '.join(refs)}" if refs else ""))
    if refs.count("-") > 1:
        raise UsageError("diff: only one of A and B can be read from stdin")
    outputs = Outputs.from_options(found)
    gates = Gates.from_options(found)
    width = opts.report_width
    for opt in ("metadata_a", "metadata_b", "dockerfile_a", "dockerfile_b"):
        value = found.get(opt)
        if value is not None and not os.path.isfile(str(value)):
            raise InputError(f"--{opt.replace('_', '-')} {value}: no such file")

    from analyzer.deliver import shown_report  # noqa: PLC0415
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.pipeline import make_record  # noqa: PLC0415
    from analyzer.previous import key_store, name_build  # noqa: PLC0415
    from analyzer.report.model import build_report  # noqa: PLC0415
    from analyzer.sources import Baseline  # noqa: PLC0415
    from analyzer.sources.log import from_log, log_ref, read_metadata  # noqa: PLC0415
    from analyzer.store import open_store, project_key  # noqa: PLC0415

    store = open_store(opts.store)
    named = [name_build(ref, store, label) for ref, label in zip(refs, ("A", "B"))]
    for n, side in zip(named, ("a", "b")):
        if not n.is_log and (found.get(f"metadata_{side}") or found.get(f"dockerfile_{side}")):
            raise UsageError(f"--metadata-{side}/--dockerfile-{side} are for a log; {side.upper()} is a record")
    keys = key_store(named, store, writing=False)
    notes: list[Note] = []
    records: list[dict] = []  # A and B, read as the JSON they are
    known: dict[str, str] = {}  # hash -> value of the logs' own values, for --show-values
    for n, side in zip(named, ("a", "b")):
        if n.events is not None:
            inp = from_log(n.events, label=side.upper(),
                           metadata=read_metadata(found.get(f"metadata_{side}")),  # type: ignore[arg-type]
                           dockerfile=found.get(f"dockerfile_{side}"), record_id=log_ref(n.ref))  # type: ignore[arg-type]
            made = make_record(inp, Baseline(keys=keys))  # a record only: B's report is made below, against A
            rec = made.record
            if outputs.show_values:
                known.update(made.known_values())
            if not rec.get("has_provenance"):
                notes.append(Note(N.PREVIOUS_NO_PROVENANCE, N.COMPARISON,
                                  f"{side.upper()} ({n.ref}): no provenance: steps were matched by name; ops, "
                                  "base images and remote sources could not be compared"))
            notes += inp.source_notes()
            records.append(cast(dict, rec))
        else:
            records.append(cast(dict, n.record))  # not a log: a stored record or a record file
    a, b = records

    try:
        same = project_key(a["project"]) == project_key(b["project"])
    except Exception:  # noqa: BLE001 - a damaged project only loses this note
        same = True
    if not same and not (named[0].is_log or named[1].is_log):
        notes.append(Note(N.DIFFERENT_PROJECTS, N.COMPARISON,
                          "A and B are builds of different projects (context, Dockerfile, target or platforms "
                          "differ): their steps were matched by stage and instruction"))

    analysis = explain(b, a)
    analysis.notes[:0] = notes
    report = shown_report(build_report(analysis), lambda: known, outputs)

    from analyzer.outputs import write_outputs  # noqa: PLC0415

    write_outputs(report, outputs)
    from analyzer.outputs import report_stream  # noqa: PLC0415

    out = report_stream(outputs)
    rows = step_rows(a, b, cast(dict, report))
    text = render(report, a, b, rows, width, colour=out.isatty() and "NO_COLOR" not in os.environ)
    try:
        from analyzer import console  # noqa: PLC0415

        console.write(out, text + "\n", trusted=True)  # the colours of text.root_causes
        out.flush()
    except BrokenPipeError:
        pass
    return gates.apply(report, 0)


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
