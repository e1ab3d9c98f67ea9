"""`cachewhy watch`: a one-paragraph explanation of each build as it completes
on the builder, whoever started it. Ctrl-C ends it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from analyzer.buildkit.address import BUILDER_HELP, BUILDER_OPTIONS, parse_target
from analyzer.errors import CachewhyError, UsageError
from analyzer.options import take_options, wants_help
from analyzer.report import fit

if TYPE_CHECKING:
    from analyzer.pipeline import Outcome

SUMMARY = """\
watch [--builder NAME]
      explain each build as it completes on the builder, in one paragraph"""

USAGE = f"""\
usage: cachewhy watch [--builder NAME] [--store DIR] [--width N]

Follows the builder's build history and, as each build completes (started
by anyone: plain `docker buildx build`, compose, an IDE), prints one
paragraph to stdout: its cache hits, and each root cause of its cache misses
with the Dockerfile line, compared with the previous build of the same
Dockerfile in the history (as `cachewhy explain` does). Ctrl-C ends it.

options:
{BUILDER_HELP}  --store DIR        where build records are kept  [CACHEWHY_STORE]
  --width N          width of the paragraphs           [COLUMNS]
  -h, --help         this help

Exit codes: 0 when ended by Ctrl-C, 3 when the builder cannot be reached.
"""

_OPTIONS = {**BUILDER_OPTIONS, "--store": "store", "--width": "width"}


def paragraph(outcome: "Outcome", label: str, width: int) -> str:
    """What a build's report says, in a few sentences."""
    summary = outcome.report.get("summary") or {}
    cached, rebuilt = summary.get("cached") or 0, summary.get("rebuilt") or 0
    code = (outcome.record.get("exit_code") if isinstance(outcome.record, dict) else None) or 0
    parts = [f"Build {label} {'failed' if code else 'completed'}:"]
    if cached + rebuilt:
        parts.append(f"cache hits {cached}/{cached + rebuilt} steps ({cached / (cached + rebuilt):.0%}).")
    else:
        parts.append("no Dockerfile steps.")
    roots = [m for m in outcome.analysis.misses if m.root]
    if roots:
        lost = sum(m.time_lost_s for m in roots)
        parts.append(f"{len(roots)} root cause{'s' if len(roots) != 1 else ''}, {lost:.1f}s lost:")
        for m in sorted(roots, key=lambda m: -m.time_lost_s):
            line = m.step.get("line")
            where = f"Dockerfile:{line}" if line else (m.step.get("name") or "a step")
            instr = fit.cut(" ".join(str(m.step.get("instruction") or "").split()), 60)  # cut: marked
            parts.append(f"{where} {instr} \u2014 {m.cause.kind}: {m.cause.detail}"
                         f" ({1 + len(m.followers)} step{'s' if m.followers else ''} rebuilt, "
                         f"{m.time_lost_s:.1f}s).")
    elif rebuilt == 0 and cached:
        parts.append("everything came from the cache.")
    prev = outcome.analysis.previous
    if prev is not None and prev.get("id"):
        parts.append(f"(compared with {prev['id']})")
    return "\n".join(fit.wrap(" ".join(parts), width))


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    from analyzer.commands.analyze import parse_width, positionals  # noqa: PLC0415

    found, rest = take_options(argv, _OPTIONS)
    extra = positionals(argv, rest, "watch")
    if extra:
        raise UsageError(f"watch takes no arguments, not {' '.join(extra)}")
    width = parse_width(found)
    target = parse_target(found)

    from analyzer.buildkit.connect import Client  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415

    store = open_store(found.get("store"))  # type: ignore[arg-type]
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


def explained(client: Any, records: list[Any], index: int, *, store: Any, width: int,
              repo: str | None = None) -> "tuple[str, Outcome | None]":
    """The paragraph of the build at records[index] and its outcome; or a line
    saying why it could not be explained, and None."""
    from analyzer.buildkit.history import describe  # noqa: PLC0415
    from analyzer.commands.explain import explain_build  # noqa: PLC0415

    label = describe(records[index])
    try:
        outcome = explain_build(client, records, index, store=store, against=None, repo=repo)
    except CachewhyError as exc:
        return "\n".join(fit.wrap(f"Build {label}: could not be explained: {exc}", width)), None
    return paragraph(outcome, label, width), outcome


def _explain_one(client: Any, ref: str, store: Any, width: int) -> None:
    try:
        records = client.history()
    except CachewhyError as exc:
        text = "\n".join(fit.wrap(f"Build {ref}: could not be explained: {exc}", width))
    else:
        index = next((i for i, r in enumerate(records) if r.Ref == ref), None)
        if index is None:
            return
        text, _ = explained(client, records, index, store=store, width=width)
    sys.stdout.write(text + "\n\n")
    sys.stdout.flush()
