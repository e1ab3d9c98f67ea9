"""Where `cachewhy trends` reads builds from: the store's own index, or an index
made in memory from record files and `.dockerbuild` bundles handed to it (a
folder downloaded from CI). A bundle's builds are explained as `cachewhy explain`
explains them (each against the previous build of its project among the
bundles); their records and reports are made in memory, never stored."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

from analyzer import index as ix
from analyzer.errors import InputError

Loader = Callable[[str], "dict | None"]


def from_store(path: str | None) -> tuple[sqlite3.Connection, Loader, list[str], list[str], str]:
    """(index, record loader, ids indexed whose record files are gone, problems, source)."""
    from analyzer.store import StoreError, open_store  # noqa: PLC0415

    store = open_store(path)
    db, absent, problems = store.indexed()

    def load(rid: str) -> dict | None:
        try:
            return dict(store.load(rid))
        except StoreError:
            return None

    return db, load, absent, problems, f"store {store.root}"


def from_paths(paths: list[str], store_dir: str | None = None
               ) -> tuple[sqlite3.Connection, Loader, list[str], str]:
    """(index in memory, loader, problems, source) of record files, bundles and folders of them."""
    from analyzer.buildkit import bundle  # noqa: PLC0415
    from analyzer.store import StoreError, _entry_from_record, parse_record  # noqa: PLC0415

    files: list[Path] = []
    bundles: list[str] = []
    for raw in paths:
        p = Path(os.path.expanduser(raw))
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix == ".json" and not f.name.startswith("."))
            bundles += bundle.find_bundles(str(p))
        elif p.is_file() and bundle.is_bundle(str(p)):
            bundles.append(str(p))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{raw}: no such record file, bundle or folder")
    db = ix.connect(":memory:")
    records: dict[str, dict] = {}  # plain dicts: trends reads them as JSON, keys it does not know included
    problems: list[str] = []
    made: list[dict] = []
    for f in files:
        try:
            made.append(dict(parse_record(f.read_bytes(), f"record file {f}")))
        except StoreError as e:
            problems.append(f"{e}; skipped")
        except OSError as e:
            problems.append(f"cannot read {f}: {e.strerror or e}; skipped")
    n_files = len(made)
    if bundles:
        made += _explained_bundles(bundles, store_dir, problems)
    with ix.transaction(db):
        for rec in made:
            if rec["id"] in records:
                problems.append(f"build {rec['id']} read twice; the first kept")
                continue
            records[rec["id"]] = rec
            ix.add(db, _entry_from_record(rec, rec["id"], ix.summary_from_report(rec)), rec, scan=False)  # type: ignore[arg-type]
    where = paths[0] if len(paths) == 1 else f"{len(paths)} paths"
    what = [f"{n_files} record file{'s' if n_files != 1 else ''}"] if n_files or not bundles else []
    if bundles:
        n = len(made) - n_files
        what.append(f"{n} build{'s' if n != 1 else ''} of {len(bundles)} bundle{'s' if len(bundles) != 1 else ''}")
    return db, records.get, problems, f"{' and '.join(what)} in {where}"


def _explained_bundles(paths: list[str], store_dir: str | None, problems: list[str]) -> list[dict]:
    """The records (report included) of the bundles' builds, as `explain FOLDER` makes them."""
    from analyzer.buildkit import bundle  # noqa: PLC0415
    from analyzer.buildkit.history import is_engine_check  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415
    from analyzer.watching import explain_build  # noqa: PLC0415

    sets = bundle.load(paths)
    history = sets.history()
    store = open_store(store_dir)  # its hash key only: values are compared as the store's records are
    out = []
    for index in reversed(range(len(history))):  # oldest first, as they ran
        if is_engine_check(history[index]):
            continue
        try:
            outcome = explain_build(sets, history, index, store=store, against=None)
        except Exception as exc:  # noqa: BLE001 - one build that cannot be explained is said, not fatal
            problems.append(f"bundle build {getattr(history[index], 'Ref', '?')}: could not be explained ({exc}); "
                            "skipped")
            continue
        rec = dict(outcome.record)
        rec["report"] = outcome.report
        out.append(rec)
    return out
