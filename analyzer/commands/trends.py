"""`cachewhy trends`: what cache misses cost over many builds, per project."""

from __future__ import annotations

import os
import sys
import time

from analyzer.errors import InputError, UsageError
from analyzer.options import Parser, limit_option, store_options

SUMMARY = """\
trends [--since 30d] [--project CONTEXT] [--limit N|all] [--json|--markdown]
       [--html FILE] [PATH…]
      per project over time: builds, hit ratio, time lost by cause,
      costliest lines, regressions"""

def parser() -> Parser:
    p = Parser("trends", """\
cachewhy trends [--store DIR] [--since 30d] [--project CONTEXT]
                       [--limit N|all] [--per day|build]
                       [--json | --markdown] [--html FILE] [PATH…]""", """\
What cache misses cost over many builds, per project (context, Dockerfile,
target), the project that lost most time first: the builds, the hit ratio and
the time lost per day or per build, the time lost by cause kind, the
Dockerfile lines whose misses cost most, and regressions: a line that went
from cached to rebuilt in most builds, since which build and why (the root
cause of that build's miss). The rule is in docs/trends.md.

Reads the store's index (no record file is parsed but those of a regression's
first build); with PATHs, reads these record files, `.dockerbuild` bundles
(`docker buildx history export`), or folders of them instead (e.g. downloaded
from CI); a bundle's builds are explained as `cachewhy explain FOLDER` does.""",
               parents=[store_options()])
    p.add_argument("--since", metavar="SPAN",
                   help="builds of the last SPAN: 30d (default), 12h, 2w, a date YYYY-MM-DD, or all")
    p.add_argument("--project", metavar="CONTEXT", action="append", dest="projects",
                   help="only the builds of this context directory (repeatable)")
    limit_option(p, None, "only the newest N builds of the period (default all)")
    p.add_argument("--per", metavar="day|build",
                   help="one point per day or per build (default: per build up to 60 builds of a project, "
                        "else per day)")
    p.add_argument("--json", action="store_true", help="the trends as JSON on stdout (schema cachewhy.trends/v1)")
    p.add_argument("--markdown", action="store_true", help="Markdown on stdout, e.g. for a weekly CI summary")
    p.add_argument("--html", metavar="FILE", help="a self-contained HTML page with charts "
                                                  "(`pip install 'cachewhy[charts]'` for the charts: matplotlib)")
    return p


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv)
    if opts is None:
        return 0
    found, paths = opts.found(), opts.args
    if found.get("json") and found.get("markdown"):
        raise UsageError("--json and --markdown both write to stdout: choose one")
    per = str(found.get("per") or "auto")
    if per not in ("auto", "day", "build"):
        raise UsageError(f"--per takes day or build, not {per!r}")
    limit = opts.limit
    now = time.time()
    from analyzer import trends  # noqa: PLC0415

    try:
        since = trends.parse_since(str(found.get("since") or "30d"), now)
    except ValueError as e:
        raise UsageError(str(e)) from None
    contexts = list(opts.projects) if opts.projects else None

    if paths:
        from analyzer.trends_sources import from_paths  # noqa: PLC0415

        db, load, problems, source = from_paths(paths, opts.store)
        absent: list[str] = []
    else:
        from analyzer.trends_sources import from_store  # noqa: PLC0415

        db, load, absent, problems, source = from_store(opts.store)
    for p in problems:
        sys.stderr.write(f"cachewhy: warning: {p}\n")
    model = trends.gather(db, since=since, now=now, contexts=contexts, limit=limit, per=per, absent=absent,
                          load=load)
    model["source"] = source
    if found.get("html"):
        _write_html(model, str(found["html"]))
    try:
        if found.get("json"):
            import json  # noqa: PLC0415

            sys.stdout.write(json.dumps(model, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        elif found.get("markdown"):
            from analyzer.report.trends_text import render_markdown  # noqa: PLC0415

            sys.stdout.write(render_markdown(model, source))
        else:
            from analyzer.report.trends_text import render_text  # noqa: PLC0415

            sys.stdout.write(render_text(model, _width(), source))
        sys.stdout.flush()
    except BrokenPipeError:  # `cachewhy trends | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _width() -> int:
    """The width every command uses (report/fit.py), within what this layout fits."""
    from analyzer.report.fit import default_width  # noqa: PLC0415

    return max(60, min(default_width(), 120))


def _write_html(model: dict, path: str) -> None:
    from pathlib import Path  # noqa: PLC0415

    from analyzer.atomic import write_atomic  # noqa: PLC0415
    from analyzer.report.trends_html import render  # noqa: PLC0415

    page = render(model)
    try:
        write_atomic(Path(os.path.abspath(path)), page.encode("utf-8"), mode=0o644)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None
