"""Where `cachewhy trends` reads builds from: the store's own index, or an index
made in memory from record files handed to it (a folder downloaded from CI)."""

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


def from_paths(paths: list[str]) -> tuple[sqlite3.Connection, Loader, list[str], str]:
    """(index in memory, loader, problems, source) of record files and folders of them."""
    from analyzer.store import StoreError, _entry_from_record, parse_record  # noqa: PLC0415

    files: list[Path] = []
    for raw in paths:
        p = Path(os.path.expanduser(raw))
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix == ".json" and not f.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{raw}: no such record file or folder")
    db = ix.connect(":memory:")
    records: dict[str, dict] = {}  # plain dicts: trends reads them as JSON, keys it does not know included
    problems: list[str] = []
    with ix.transaction(db):
        for f in files:
            try:
                rec = parse_record(f.read_bytes(), f"record file {f}")
            except StoreError as e:
                problems.append(f"{e}; skipped")
                continue
            except OSError as e:
                problems.append(f"cannot read {f}: {e.strerror or e}; skipped")
                continue
            if rec["id"] in records:
                problems.append(f"record file {f}: build {rec['id']} read twice; the first kept")
                continue
            records[rec["id"]] = dict(rec)
            ix.add(db, _entry_from_record(rec, rec["id"], ix.summary_from_report(rec)), rec, scan=False)
    where = paths[0] if len(paths) == 1 else f"{len(paths)} paths"
    return db, records.get, problems, f"{len(records)} record file{'s' if len(records) != 1 else ''} in {where}"
