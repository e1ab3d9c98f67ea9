"""A build that ran elsewhere, from its `--progress=rawjson` log and, when
given, buildx's --metadata-file (read once, here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer import confined
from analyzer import notes as N
from analyzer.errors import InputError
from analyzer.notes import Note
from analyzer.buildx import dockerfile_path_of
from analyzer.sources import BuildInput, from_events, logged_invocation

if TYPE_CHECKING:
    from analyzer.events import BuildEvents
    from analyzer.provenance import Metadata


def read_log(where: str) -> "BuildEvents":
    """The folded events of a log file, or of stdin for `-`; InputError when
    the input is unusable (missing, empty, binary, not a rawjson log)."""
    from analyzer.events import NotALog, load_file, read_stream  # noqa: PLC0415

    label = "stdin" if where == "-" else where
    if where == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("LOG is `-` but stdin is a terminal: pipe the log in "
                             "(docker buildx build --progress=rawjson … 2>&1 | cachewhy analyze -)")
        try:
            events = read_stream(sys.stdin.buffer)
        except OSError as exc:
            raise InputError(f"cannot read stdin: {exc.strerror or exc}") from None
        except NotALog as exc:
            raise InputError(f"stdin is not a build log: {exc}") from None
    else:
        try:
            events = load_file(where)
        except OSError as exc:
            raise InputError(f"cannot read {where}: {exc.strerror or exc}") from None
        except NotALog as exc:
            raise InputError(f"{where} is not a build log: {exc}") from None
    if not events.vertices:
        raise InputError(_why_no_events(label, events))
    return events


def _why_no_events(label: str, events: "BuildEvents") -> str:
    hint = "is it the stderr of `docker buildx build --progress=rawjson`?"
    msgs = events.messages
    if not events.objects and not msgs:
        return f"{label} is empty: no build events to analyse"
    if any("\x00" in m or m.count("\ufffd") > 2 for m in msgs[:50]):
        return f"{label} is binary data, not a build log ({hint})"
    if any(m.startswith("#") and m[1:2].isdigit() for m in msgs[:50]):
        return (f"{label} is a --progress=plain log, which names no cache keys: "
                f"build with --progress=rawjson to analyse it")
    if events.objects:
        return f"{label} holds {events.objects} JSON object(s) but no build step ({hint})"
    return f"{label} holds no build events, only {len(msgs)} line(s) of text ({hint})"


def log_ref(where: str) -> str:
    """How a report names a build known only from its log."""
    return "stdin" if where == "-" else f"log {where}"


def read_metadata(path: str | None) -> "Metadata | None":
    """buildx's --metadata-file of a logged build (InputError when unreadable)."""
    if not path:
        return None
    from analyzer.provenance import load_metadata  # noqa: PLC0415

    return load_metadata(path)


def from_log(events: "BuildEvents", *, label: str, metadata: "Metadata | None" = None,
             dockerfile: str | None = None, context: str | None = None, fallback: str | None = None,
             record_id: str | None = None, snapshot: dict | None = None) -> BuildInput:
    """The input of a logged build. `fallback`: a Dockerfile text that maps its
    steps to lines when neither its provenance nor a Dockerfile does (the
    other build's, when two logs are compared)."""
    prov = metadata.primary() if metadata is not None else None
    invocation = logged_invocation(prov, dockerfile, context)
    df_path = dockerfile_path_of(dockerfile, invocation.context_dir)
    given: str | None = None
    if dockerfile:
        try:
            given = confined.read_beside(dockerfile)
        except OSError as exc:
            raise InputError(f"cannot read --dockerfile {dockerfile}: {exc.strerror or exc}") from None
    elif df_path is not None and df_path.is_file() and (prov is None or prov.dockerfile_text is None):
        try:
            given = confined.read_beside(df_path)
        except OSError:
            given = None
    problems = [Note(N.PROVENANCE_UNREADABLE, N.PROVENANCE, p) for p in (metadata.problems if metadata else [])]
    return from_events(events, label=label, invocation=invocation, provenance=prov, given_text=given,
                       given_name=dockerfile or str(df_path), dockerfile_path=df_path,
                       fallback=(fallback, "other") if fallback is not None else None, notes=problems,
                       record_id=record_id, snapshot=snapshot)
