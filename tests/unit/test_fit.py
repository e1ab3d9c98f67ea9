"""analyzer/report/fit.py and the renderers that use it: every line within
the width, cuts marked with `…`, an error's end kept."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from analyzer.report import fit, text

NOT_FOUND = ('failed to compute cache key: failed to calculate checksum of ref '
             '7afyw8lmhq02pcxqgqzymgqoo::bax2zwcfjwiglpi90okijtvhs: "/nothere.txt": not found')


def test_width_of_ignores_colour_and_counts_wide_characters() -> None:
    assert fit.width_of("\x1b[32mcached\x1b[0m") == 6
    assert fit.width_of("日本") == 4 and fit.width_of("e\u0301") == 1


@pytest.mark.parametrize("width", [20, 40, 80])
def test_cut_wrap_and_block_stay_within(width: int) -> None:
    long = "word " * 60 + "x" * 200
    assert all(fit.width_of(x) <= width for x in fit.wrap(long, width, "  ", "      "))
    assert fit.width_of(fit.cut(long, width)) == width and fit.cut(long, width).endswith("\u2026")
    assert fit.cut("short", width) == "short"
    assert all(fit.width_of(x) <= width for x in fit.block(long + "\n" + long, width).splitlines())
    assert all(fit.width_of(x) <= width for x in fit.join_wrapped(["part one", "x" * 90, "three"], " · ", width))


def test_cut_middle_keeps_the_end() -> None:
    got = fit.cut_middle(NOT_FOUND, 60)
    assert fit.width_of(got) <= 60 and got.endswith('"/nothere.txt": not found') and "\u2026" in got
    lines = fit.wrap_end("error: " + NOT_FOUND, 50, "  ", "         ", 2)
    assert len(lines) == 2 and all(fit.width_of(x) <= 50 for x in lines)
    assert " ".join(lines).endswith('"/nothere.txt": not found')


def _report(**step: object) -> dict:
    base = {"id": "s1", "line": 3, "stage": "stage-0", "status": "failed", "duration_s": 0.1,
            "instruction": "COPY nothere.txt /"}
    return {"steps": [{**base, **step}], "build": {"dockerfile": "Dockerfile"}, "summary": {}, "misses": []}


def test_a_failed_step_s_error_keeps_its_meaningful_end() -> None:
    table = text.step_table(_report(error=NOT_FOUND), width=80)
    assert all(fit.width_of(x) <= 80 for x in table.splitlines())
    assert '"/nothere.txt": not found' in " ".join(table.split())


def test_also_causes_are_shown_under_their_step() -> None:
    report = _report(status="rebuilt", id="s2", line=7, instruction="RUN make")
    report["misses"] = [{"id": "s2", "root": False, "line": 7, "cause": {"kind": "stage-changed", "detail": "x"},
                         "also": [{"kind": "build-arg-changed", "detail": "VERSION (hash 1a2b → 3c4d)"}]}]
    lines = text.step_table(report, width=80).splitlines()
    row = next(i for i, x in enumerate(lines) if "RUN make" in x)
    assert lines[row + 1].strip() == "also: build-arg changed: VERSION (hash 1a2b → 3c4d)"


def test_notes_and_the_why_header_wrap() -> None:
    report = {"misses": [], "notes": ["n " * 80], "previous": {"ref": "x" * 90}, "build": {}}
    got = text.root_causes(report, width=80).splitlines()
    assert len(got) > 3 and all(fit.width_of(x) <= 80 for x in got)
    assert got[0].startswith("Why: nothing was rebuilt")


def test_explain_since_paragraph_marks_its_cuts() -> None:
    from analyzer.watching import paragraph  # noqa: PLC0415
    from analyzer.explain import Cause, Miss  # noqa: PLC0415

    instr = "RUN " + "apt-get install -y something " * 5
    miss = Miss({"line": 4, "instruction": instr}, True, Cause("instruction-changed", "the RUN line changed"),
                time_lost_s=2.0)
    outcome = SimpleNamespace(report={"summary": {"cached": 1, "rebuilt": 1}}, record={"exit_code": 0},
                              analysis=SimpleNamespace(misses=[miss], previous=None))
    got = paragraph(outcome, "abc (my-build)", 80)  # type: ignore[arg-type]
    assert all(fit.width_of(x) <= 80 for x in got.splitlines())
    assert "RUN apt-get install -y something apt-get install -y somethi\u2026 \u2014" in " ".join(got.split())


def test_also_causes_in_markdown_and_html() -> None:
    from analyzer.report import html, markdown  # noqa: PLC0415

    report = _report(status="rebuilt", id="s2", line=7, instruction="RUN make")
    report["misses"] = [{"id": "s2", "root": False, "line": 7, "caused_by": [],
                         "cause": {"kind": "stage-changed", "detail": "x"},
                         "also": [{"kind": "build-arg-changed", "detail": "VERSION changed"}]}]
    md = markdown.render(report)
    row = next(x for x in md.splitlines() if "RUN make" in x)
    assert "also: build-arg changed: VERSION changed" in row
    page = html.render(report)
    cell = page[page.index("<code>RUN make</code>"):]
    assert "also: build-arg changed: VERSION changed" in cell[:cell.index("</tr>")]


class _Tty:
    """A terminal's stream: what Progress writes, and isatty."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("mode", ["plain", "tty"])
def test_live_progress_lines_fit(mode: str) -> None:
    import re  # noqa: PLC0415
    import time  # noqa: PLC0415

    from analyzer import dockerfile  # noqa: PLC0415
    from analyzer.events import BuildEvents  # noqa: PLC0415
    from analyzer.progress import Progress  # noqa: PLC0415
    from tests.conftest import PROJECTS, RAWJSON  # noqa: PLC0415

    df = dockerfile.parse((PROJECTS / "multistage" / "Dockerfile").read_text())
    stream = _Tty()
    progress = Progress(mode, df, stream=stream, width=40)  # type: ignore[arg-type]
    events = BuildEvents()
    lines = (RAWJSON / "multistage-cold.jsonl").read_text().splitlines()
    for n, line in enumerate(lines):
        changed = events.feed_line(line)
        if changed:
            progress._last_draw = 0.0  # noqa: SLF001 - draw every update, not every 0.12 s
            progress.update(events, changed)
        if n == len(lines) // 2:
            time.sleep(0.01)
    progress.finish(events)
    shown = re.sub(r"\x1b\[[0-9]*F\x1b\[J", "\n", stream.text)
    assert shown.strip(), "nothing was drawn"
    wide = [x for x in shown.splitlines() if fit.width_of(x) > 40]
    assert not wide, wide
    assert "\u2026" in shown  # the long labels were cut, and say so
