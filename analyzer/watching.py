"""Builds of a builder's history explained one at a time: `cachewhy explain`
for one build or every recent one, `cachewhy watch` as each completes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer import notes as N
from analyzer.errors import CachewhyError, InputError
from analyzer.model import Record
from analyzer.notes import Note
from analyzer.report import fit

if TYPE_CHECKING:
    from analyzer.pipeline import Outcome
    from analyzer.store import Store


def explain_build(client: Any, records: list[Any], index: int, *, store: "Store",
                  against: str | None, repo: str | None = None, pool: set[str] | None = None) -> "Outcome":
    """Fetch, compare and analyse the build at records[index]: compared with the
    record `against` names, else with the previous build of the same identity
    in the history (its context files read from git where buildx recorded revisions).
    `client`: a builder's (connect.Client) or bundles' (buildkit/bundle.BundleSet);
    `pool`: the refs of the builds to compare with (--against OTHER.dockerbuild)."""
    from analyzer.buildkit.history import describe, fetch_build  # noqa: PLC0415
    from analyzer.pipeline import analyse, make_record  # noqa: PLC0415
    from analyzer.sources import Baseline  # noqa: PLC0415
    from analyzer.sources.history import (  # noqa: PLC0415
        dockerfile_of,
        from_history,
        has_steps,
        no_previous_note,
        previous_candidates,
        reached_steps,
    )

    prefix = getattr(client, "record_prefix", "history")  # how reports name its builds
    current = fetch_build(client, records[index])
    notes: list[Note] = []
    previous_record: Record | None = None
    fallback: str | None = None  # a failed build has no provenance: the lines of the one before
    keys: Store | None = None
    git = None  # both builds' context files, read from git where buildx recorded revisions
    if against:
        from analyzer.previous import name_build  # noqa: PLC0415

        named = name_build(against, store, "--against")
        if named.record is None:
            raise InputError(f"--against {against}: give a stored record (id, ^N) or a record file")
        previous_record = named.record
        fallback = previous_record.get("dockerfile_text")
        keys = store if named.key_dir is not None else None
    else:
        from analyzer.vcs import contexts_from_git  # noqa: PLC0415

        tried = stepless = 0
        for fetched, alike in previous_candidates(client, records, index, current, pool):
            if not reached_steps(fetched):
                stepless += 1  # a Dockerfile error: it says nothing of the steps
                continue
            tried += 1
            if not alike:
                continue
            git = contexts_from_git(fetched.record.FrontendAttrs, current.record.FrontendAttrs, repo)
            try:
                prev_input = from_history(fetched, label=f"previous build ({describe(fetched.record)})",
                                          snapshot=git.before, prefix=prefix)
                made = make_record(prev_input, Baseline())
            except InputError:
                made = None
            if made is None or not has_steps(made.record):
                stepless += 1  # a Dockerfile error, --check, --call: it says nothing of the steps
                git = None
                continue
            if git.note:
                notes.append(Note(N.GIT, N.CONTEXT, git.note))
            previous_record = made.record
            fallback = dockerfile_of(fetched.predicate)
            notes += prev_input.source_notes()
            if stepless:
                notes.append(Note(N.STEPLESS_PASSED, N.BASELINE,
                                  f"{stepless} newer build(s) of this Dockerfile stopped before any step (a "
                                  "Dockerfile error, --check, --call): never a baseline, passed over"))
            break
        else:
            if pool is not None:
                notes.append(Note(N.NO_BASELINE, N.BASELINE,
                                  f"--against: none of its {len(pool)} build(s) ran steps of a Dockerfile sharing "
                                  "at least half of this one's lines: not compared"))
            else:
                notes.append(no_previous_note(records, index, tried, stepless,
                                              "among the bundles" if prefix == "bundle" else "in the builder's history"))
    inp = from_history(current, label="this build",
                       fallback=(current.error_dockerfile or fallback) if current.predicate is None else None,
                       snapshot=git.now if git is not None else None, client=client, prefix=prefix)
    return analyse(input=inp, baseline=Baseline(previous_record, notes, keys))


def paragraph(outcome: "Outcome", label: str, width: int) -> str:
    """What a build's report says, in a few sentences."""
    summary = outcome.report.get("summary") or {}
    cached, rebuilt = summary.get("cached") or 0, summary.get("rebuilt") or 0
    code = (outcome.record.get("exit_code") if isinstance(outcome.record, dict) else None) or 0
    parts = [f"Build {label} \u2014 {'failed' if code else 'completed'}:"]
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
            instr = fit.cut(" ".join(str(m.step.get("instruction") or "").split()), 60)  # a cut is marked
            parts.append(f"{where} {instr} \u2014 {m.cause.kind}: {m.cause.detail}"
                         f" ({1 + len(m.followers)} step{'s' if m.followers else ''} rebuilt, "
                         f"{m.time_lost_s:.1f}s).")
    elif rebuilt == 0 and cached:
        parts.append("everything came from the cache.")
    prev = outcome.analysis.previous
    if prev is not None and prev.get("id"):
        parts.append(f"(compared with {prev['id']})")
    # broken at spaces only: cause kinds (context-changed) stay whole, to be found as printed
    return "\n".join(fit.wrap(" ".join(parts), width))


def explained(client: Any, records: list[Any], index: int, *, store: Any, width: int,
              repo: str | None = None) -> "tuple[str, Outcome | None]":
    """The paragraph of the build at records[index] and its outcome; or a line
    saying why it could not be explained, and None."""
    from analyzer.buildkit.history import headline  # noqa: PLC0415

    label = headline(records[index])
    try:
        outcome = explain_build(client, records, index, store=store, against=None, repo=repo)
    except CachewhyError as exc:
        return "\n".join(fit.wrap(f"Build {label}: could not be explained: {exc}", width)), None
    return paragraph(outcome, label, width), outcome
