"""`cachewhy watch`: a one-paragraph explanation of each build as it completes
on the builder, whoever started it. Ctrl-C ends it."""

from __future__ import annotations

import sys
from typing import Any

from analyzer.buildkit.address import parse_target
from analyzer.errors import CachewhyError, UsageError
from analyzer.options import Parser, builder_options, store_options, width_options

SUMMARY = """\
watch [--builder NAME]
      explain each build as it completes on the builder, in one paragraph"""


def parser() -> Parser:
    return Parser("watch", "cachewhy watch [--builder NAME] [--store DIR] [--width N]", """\
Follows the builder's build history and, as each build completes (started
by anyone: plain `docker buildx build`, compose, an IDE), prints one
paragraph to stdout: its cache hits, and each root cause of its cache misses
with the Dockerfile line, compared with the previous build of the same
Dockerfile in the history (as `cachewhy explain` does). Ctrl-C ends it.""",
                  "Exit codes: 0 when ended by Ctrl-C, 3 when the builder cannot be reached.",
                  parents=[builder_options(), store_options(), width_options()])


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv)
    if opts is None:
        return 0
    if opts.args:
        raise UsageError(f"watch takes no arguments, not {' '.join(opts.args)}")
    width = opts.report_width
    target = parse_target(opts.found())

    from analyzer.buildkit.connect import Client  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415

    store = open_store(opts.store)
    client = Client(target)
    try:
        known = {r.Ref for r in client.history()}  # also checks that the builder answers
        sys.stderr.write(f"cachewhy: watching {client.label} for builds (Ctrl-C ends)\n")
        sys.stderr.flush()
        for event in client.watch():
            if event.type != 1 or not event.record.Ref or event.record.Ref in known:  # 1: COMPLETE
                continue
            known.add(event.record.Ref)
            _explain_one(client, event.record.Ref, store, width)
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()
    return 0


def _explain_one(client: Any, ref: str, store: Any, width: int) -> None:
    try:
        records = client.history()
    except CachewhyError as exc:
        from analyzer.report.fit import wrap  # noqa: PLC0415

        text = "\n".join(wrap(f"Build {ref}: could not be explained: {exc}", width))
    else:
        from analyzer.buildkit.history import is_engine_check  # noqa: PLC0415

        index = next((i for i, r in enumerate(records) if r.Ref == ref), None)
        if index is None or is_engine_check(records[index]):
            return
        from analyzer.watching import explained  # noqa: PLC0415

        text, _ = explained(client, records, index, store=store, width=width)
    sys.stdout.write(text + "\n\n")
    sys.stdout.flush()
