"""A build `cachewhy build` ran: buildx's arguments, its result, the events
read from its stderr and the metadata file it wrote (read once, here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from analyzer import notes as N
from analyzer.notes import Note
from analyzer.sources import BuildArgValues, BuildInput, Invocation

if TYPE_CHECKING:
    from analyzer.buildx import BuildArgs, RunResult
    from analyzer.events import BuildEvents


def from_run(events: "BuildEvents", args: "BuildArgs", result: "RunResult", *, dockerfile_text: str | None,
             dockerfile_path: Path | None, snapshot: dict | None,
             named_snapshots: dict | None = None) -> BuildInput:
    """The input of a build run here; the Dockerfile read before the build wins
    over the provenance's copy (it is the file the user edits)."""
    from analyzer.provenance import load_metadata  # noqa: PLC0415
    from analyzer.record import redact_argv  # noqa: PLC0415

    prov, notes = None, []
    if result.metadata_path is not None:
        metadata = load_metadata(result.metadata_path)
        prov = metadata.primary()
        notes = [Note(N.PROVENANCE_UNREADABLE, N.PROVENANCE, p) for p in metadata.problems]
    if dockerfile_text is None and prov is not None:
        dockerfile_text = prov.dockerfile_text
    invocation = Invocation(
        # `-q` is cachewhy's to read (it keeps buildx's stdout), yet part of the command line
        argv=redact_argv((["--quiet"] if getattr(args, "quiet", False) else []) + args.argv), context=args.context, target=args.target, platforms=list(args.platforms),
        build_args=BuildArgValues(args.build_args), no_cache=args.no_cache,
        no_cache_filter=list(args.no_cache_filter), cache_from=list(args.cache_from),
        cache_to=list(args.cache_to), builder=args.builder,
    )
    return BuildInput(
        label="this build", events=events, invocation=invocation, started=result.started, ended=result.ended,
        exit_code=result.returncode, interrupted=result.interrupted, provenance=prov,
        dockerfile_text=dockerfile_text, dockerfile_path=dockerfile_path, snapshot=snapshot,
        named_snapshots=named_snapshots, notes=notes,
    )
