"""Where a report goes besides the terminal: files and stdout, one option per format.

Every format renders the report dict (report/model.py) to a string; this
module only knows the options and writes the strings, atomically. FORMATS is
the one table of formats: adding one is a line here and its module
(`render(report: Report) -> str`); the options, the help and the Outputs
fields all come from the table.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import TextIO

from analyzer.atomic import write_atomic
from analyzer.errors import CachewhyError
from analyzer.model import Report


@dataclass(frozen=True)
class Format:
    option: str  # the command-line option, taking FILE (`-`: stdout)
    attr: str  # the attribute of Outputs
    renderer: str  # "module:function", imported only when the format is asked for
    help: str

    def render(self) -> Callable[[Report], str]:
        module, _, func = self.renderer.partition(":")
        return getattr(importlib.import_module(module), func or "render")


FORMATS: tuple[Format, ...] = (
    Format("--report-json", "report_json", "analyzer.outputs:render_json", "the JSON report (cachewhy.report/v1)"),
    Format("--report-md", "report_md", "analyzer.report.markdown:render",
           "Markdown: root causes, steps folded (CI summaries, PR comments)"),
    Format("--report-sarif", "report_sarif", "analyzer.report.sarif:render",
           "SARIF 2.1.0: a result per root cause (code scanning)"),
    Format("--dot", "dot", "analyzer.report.dot:render", "the build graph in Graphviz DOT"),
    Format("--svg", "svg", "analyzer.report.dot:render_svg", "the build graph as SVG (needs Graphviz's `dot`)"),
    Format("--html", "html", "analyzer.report.html:render", "one self-contained HTML page: causes, graph, steps"),
)

# option -> attribute of Outputs
OUTPUT_OPTIONS = {f.option: f.attr for f in FORMATS}
# switches (no value) -> attribute of Outputs; for take_options(switches=...)
OUTPUT_SWITCHES = {"--show-values": "show_values"}


def _help() -> str:
    lines = []
    for f in FORMATS:
        head = f"  {f.option} FILE"
        text = textwrap.wrap(f"write {f.help}", width=57)
        first = f"{head:<20} {text[0]}" if len(head) <= 20 else f"{head}\n{'':20} {text[0]}"
        lines.append("\n".join([first, *(f"{'':20} {t}" for t in text[1:])]))
    lines.append(f"{'':20} (FILE `-` writes to stdout)")
    lines.append(f"{'  --show-values':<20} show build-arg and ENV values in this run's reports\n"
                 f"{'':20} (default: a short keyed hash); only the current\n"
                 f"{'':20} build's values are known, never stored ones")
    return "\n".join(lines) + "\n"


OUTPUT_HELP = _help()


def render_json(report: Report) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def _from_options(cls: type, found: dict[str, object]) -> Outputs:
    attrs = {*OUTPUT_OPTIONS.values(), *OUTPUT_SWITCHES.values()}
    return cls(**{k: v for k, v in found.items() if k in attrs})


def _requested(self: Outputs) -> list[tuple[Format, str]]:
    """The formats asked for, in table order, with their destinations."""
    return [(f, getattr(self, f.attr)) for f in FORMATS if getattr(self, f.attr)]


if TYPE_CHECKING:
    class Outputs:
        """What the make_dataclass below makes, as the type checker sees it."""

        show_values: bool

        def __init__(self, **fields: object) -> None: ...
        def __getattr__(self, attr: str) -> str | None: ...  # one field per FORMATS entry
        @classmethod
        def from_options(cls, found: dict[str, object]) -> Outputs: ...
        def requested(self) -> list[tuple[Format, str]]: ...
else:
    # One `str | None` field per format, named by the table: Outputs(report_md="x.md").
    Outputs = dataclasses.make_dataclass(
        "Outputs", [*((f.attr, "str | None", dataclasses.field(default=None)) for f in FORMATS),
                    ("show_values", bool, dataclasses.field(default=False))],
        namespace={"from_options": classmethod(_from_options), "requested": _requested,
                   "__doc__": "Where each format of FORMATS goes (None: not asked for)."},
    )
    Outputs.__module__ = __name__


def write_outputs(report: Report, outputs: Outputs) -> None:
    """Render and write every format asked for. One that fails does not stop the others;
    their errors are raised together at the end as one CachewhyError."""
    errors = []
    for fmt, dest in outputs.requested():
        try:
            write_file(dest, fmt.render()(report))
        except CachewhyError as exc:
            errors.append(f"{fmt.option}: {exc}")
    if errors:
        raise CachewhyError("; ".join(errors))


def write_file(dest: str, data: str) -> None:
    """Write `data` to `dest` (`-`: stdout) by a rename, so a reader never sees half a file."""
    if dest == "-":
        sys.stdout.write(data)
        sys.stdout.flush()
        return
    try:
        write_atomic(Path(dest), data.encode("utf-8"), fsync=False)
    except OSError as exc:
        raise CachewhyError(f"cannot write {dest}: {exc.strerror or exc}") from None


def append_file(dest: str, data: str) -> None:
    """Append `data` to `dest` (a file others write too, like GITHUB_STEP_SUMMARY)."""
    try:
        with open(dest, "a", encoding="utf-8") as f:
            f.write(data)
    except OSError as exc:
        raise CachewhyError(f"cannot append to {dest}: {exc.strerror or exc}") from None


def report_stream(outputs: Outputs | None) -> TextIO:
    """Where a command that wraps no build (analyze, show, diff, explain) shows
    its report: stdout, as git and `docker buildx history` do, so that it can
    be paged and grepped; stderr when one of the report formats is written to
    stdout (`--report-json -`). `build` keeps stdout for buildx."""
    if outputs is not None and any(dest == "-" for _, dest in outputs.requested()):
        return sys.stderr
    return sys.stdout


# --- GitHub Actions: automatic, no option needed --------------------------------

def stdout_carries_data(buildx_argv: list[str], outputs: Outputs | None = None) -> bool:
    """Whether something reads stdout as data: buildx's `--output -` (or `dest=-`),
    `-q` (the image id), `--call`/`--check` results, or one of our formats written to `-`."""
    if outputs is not None and any(dest == "-" for _, dest in outputs.requested()):
        return True
    argv = list(buildx_argv)
    for i, tok in enumerate(argv):
        if tok == "--":
            break
        name, eq, value = tok.partition("=")
        if not eq and i + 1 < len(argv):
            value = argv[i + 1]
        if name in ("-q", "--quiet", "--check") and not eq:
            return True
        if name == "--call" and value != "build":
            return True
        if name in ("-o", "--output"):
            parts = value.split(",")
            if value == "-" or "dest=-" in parts:
                return True
    return False


def github_hooks(report: Report, stdout_busy: bool = False) -> list[str]:
    """What a GitHub Actions job gets without asking: the Markdown report appended to
    $GITHUB_STEP_SUMMARY, and one workflow annotation per root cause (stdout; stderr when
    stdout carries data: the runner reads commands from both). Returns the errors."""
    errors: list[str] = []
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        from analyzer.report import markdown  # noqa: PLC0415

        try:
            append_file(summary, markdown.render(report) + "\n")
        except CachewhyError as exc:
            errors.append(f"GITHUB_STEP_SUMMARY: {exc}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from analyzer.report import annotations  # noqa: PLC0415

        lines = annotations.render(report)
        if lines:
            stream = sys.stderr if stdout_busy else sys.stdout
            try:
                from analyzer import console  # noqa: PLC0415

                console.write(stream, lines, command=True)  # the one place lines may start with `::`
                stream.flush()
            except BrokenPipeError:
                pass
    return errors
