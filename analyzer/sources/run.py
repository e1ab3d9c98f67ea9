"""A build `cachewhy build` runs: what it is compared with and its context
snapshot, gathered while buildx works (RunBaseline), then buildx's arguments,
its result, the events read from its stderr and the metadata file it wrote
(read once, here) made into the pipeline's input (from_run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer import notes as N
from analyzer.errors import CachewhyError
from analyzer.model import Record
from analyzer.notes import Note
from analyzer.sources import BuildArgValues, BuildInput, Invocation

if TYPE_CHECKING:
    import threading

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


def _carry():  # type: ignore[no-untyped-def]
    """analyzer/baseline.py, imported only by builds that carry records with their
    cache: its registry client pulls in ssl and urllib, too slow for every build."""
    from analyzer import baseline  # noqa: PLC0415

    return baseline


class RunBaseline:
    """The store, the previous record (the baseline) and the context snapshot of this build.

    The baseline is, first that applies: the record `--against` names; the
    record file of `--baseline`; the record carried by the first
    `--cache-from type=local|registry` that has one of this build (it tells
    what the imported cache was built from: analyzer/baseline.py), fetched in
    a thread while buildx works; the previous build of the same project in the
    local store. After a successful build, `export` carries the new record
    with every `--cache-to type=local|registry`. None of this can fail the
    build: problems become notes."""

    def __init__(self, store: str | None, against: str | None, baseline: str | None,  # type: ignore[no-untyped-def]
                 args, df_path, df) -> None:
        from analyzer.record import follow_paths, project_of  # noqa: PLC0415
        from analyzer.store import open_store  # noqa: PLC0415

        self.notes: list[str] = []
        self.store = None
        self._previous: Record | None = None
        self.source: str | None = None  # where the baseline came from: against, baseline, cache-from, store
        self.cache_to = list(args.cache_to)
        self.context = args.context_dir
        self.df_path = df_path
        self.follow = follow_paths(df) if df is not None else None
        from analyzer.snapshot import named_context_dirs  # noqa: PLC0415

        self.named = named_context_dirs(args.build_contexts)  # --build-context NAME=DIR
        self.named_follow = {name: follow_paths(df, name) if df is not None else None for name in self.named}
        self._named_snapshots: dict | None = None
        self._thread: "threading.Thread | None" = None
        self._import = None
        self._snapshot: dict | None = None
        self._local: Record | None = None  # the local store's record: its snapshot is this machine's stat cache
        project = project_of(args, df_path)
        try:
            self.store = open_store(store)
            if against:
                self._local = self.store.load(against)
            else:
                self._local, skipped = self.store.load_previous(project)
                self.notes.extend(skipped)
                if self._local is None and (other := self.store.other_platforms(project)) is not None:
                    # never built for these platforms: the build for others tells what moved
                    self._local, skipped = self.store.load_previous({**project, "platforms": other})
                    self.notes.extend(skipped)
                    if self._local is not None:
                        self.notes.append(f"no earlier build for {', '.join(project['platforms']) or 'the default platform'}: "
                                          f"compared with the build for {', '.join(other) or 'the default platform'}")
        except CachewhyError as exc:
            if against:
                raise
            self.notes.append(f"no previous record: {exc}")
        self._previous = self._local
        self.source = ("against" if against else "store") if self._local is not None else None
        if against:
            if baseline:
                self.notes.append(f"--baseline {baseline} not used: --against {against} was given")
            return
        if baseline:
            try:
                record = _carry().read_record_file(baseline, f"--baseline {baseline}")
            except Exception as exc:  # noqa: BLE001 - a bad --baseline never stops the build
                msg = str(exc) if isinstance(exc, CachewhyError) else f"--baseline {baseline}: {exc!r}"
                self.notes.append(f"{msg}; {self._fallback()}")
                return
            self._previous, self.source = record, "baseline"
            self.notes.append(f"compared with the record given with --baseline {baseline} (build {record['id']})")
            why_not = _carry().mismatch(record, project)
            if why_not:
                self.notes.append(f"the --baseline record is of another build: {why_not}")
            return
        try:
            hint = _carry().foreign_cache_note(args.cache_from) if self._local is None and args.cache_from else None
            if hint:
                self.notes.append(hint)
            if any(_carry().parse_cache_spec(v).type in _carry().CARRIED_TYPES for v in args.cache_from):
                import threading  # noqa: PLC0415

                self._import = threading.Thread(target=self._import_record,
                                                args=(list(args.cache_from), project), daemon=True)
                self._import.start()
        except Exception as exc:  # noqa: BLE001 - the build goes on whatever happens here
            self.notes.append(f"no record imported with --cache-from: {exc!r}; {self._fallback()}")

    def _fallback(self) -> str:
        if self._local is not None:
            return f"compared with the previous build {self._local.get('id')} of the local store"
        return "no previous build to compare with"

    def _import_record(self, cache_from: list[str], project: dict) -> None:
        try:
            got = _carry().import_record(cache_from, project)
        except Exception as exc:  # noqa: BLE001 - the build goes on whatever happens here
            self.notes.append(f"no record imported with --cache-from: {exc!r}; {self._fallback()}")
            return
        if got.record is not None:
            self.notes.extend(got.notes)
            self._previous, self.source = got.record, "cache-from"
            self.notes.append(f"compared with the record imported with {got.source} (build {got.record['id']})")
        elif got.notes:
            self.notes.extend(got.notes[:-1])
            self.notes.append(f"{got.notes[-1]}; {self._fallback()}")

    @property
    def previous(self) -> Record | None:
        """The baseline record (waits for the --cache-from import)."""
        if self._import is not None:
            self._import.join()
            self._import = None
        return self._previous

    def export(self, record: Record | None, returncode: int) -> None:
        """Carry the record with the build cache (--cache-to type=local|registry) after a successful build."""
        if not self.cache_to or record is None or returncode != 0 or not record.get("complete"):
            return
        for line in _carry().export_record(self.cache_to, record):
            sys.stderr.write(f"cachewhy: {line}\n")

    def start_snapshot(self) -> None:
        import threading  # noqa: PLC0415

        if (self.context is None or not self.context.is_dir()) and not self.named:
            return
        self._thread = threading.Thread(target=self._take_snapshot, daemon=True)
        self._thread.start()

    def _take_snapshot(self) -> None:
        from analyzer import snapshot  # noqa: PLC0415

        if self.named:
            prev_named = self._local.get("named_snapshots") if self._local else None
            self._named_snapshots, problems = snapshot.snapshot_named(
                self.named, self.named_follow, prev_named if isinstance(prev_named, dict) else None)
            self.notes.extend(problems)
        if self.context is None or not self.context.is_dir():
            return
        try:
            prev = None  # a snapshot taken on this machine: another machine's stat data is no cache
            if self._local and (taken := self._local.get("snapshot")):
                try:
                    prev = snapshot.Snapshot.from_json(taken)
                except (ValueError, KeyError, TypeError):
                    prev = None
            excludes = snapshot.read_dockerignore(self.context, self.df_path)
            snap = snapshot.snapshot(self.context, excludes=excludes, follow=self.follow, previous=prev)
            self._snapshot = snap.to_json()
        except Exception as exc:  # a snapshot problem must not stop the report
            self.notes.append(f"the context could not be snapshotted: {exc}")

    def snapshot(self) -> dict | None:
        if self._thread is not None:
            self._thread.join()
        return self._snapshot

    def named_snapshots(self) -> dict | None:
        """Name -> snapshot of each named local build context (None: there are none)."""
        if self._thread is not None:
            self._thread.join()
        return self._named_snapshots
