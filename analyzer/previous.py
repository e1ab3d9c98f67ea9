"""Builds named on the command line (a record id, ^N, a record file, a log)
and the store whose hash key a build's values are hashed with, so that they
compare with the build they are set against."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.errors import InputError
from analyzer.model import Record

if TYPE_CHECKING:
    from analyzer.events import BuildEvents
    from analyzer.notes import Note
    from analyzer.store import Store


@dataclass
class Named:
    """A build given by reference: a stored record or a log to be analysed."""

    ref: str
    record: Record | None = None  # a stored record
    key_dir: Path | None = None  # where the hash key of its values is, when known
    events: "BuildEvents | None" = None  # a log, not yet made into a record
    notes: "list[Note]" = field(default_factory=list)

    @property
    def is_log(self) -> bool:
        return self.events is not None


def _sniff(path: Path) -> str:
    """'record', 'report' or 'log', from the first bytes of a file."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b'"cachewhy.record/' in head:
        return "record"
    if b'"cachewhy.report/' in head:
        return "report"
    return "log"


def name_build(ref: str, store: "Store", what: str) -> Named:
    """Read what `ref` names: `-` (a log on stdin), a file (a record or a log),
    else a reference into the store (id, id prefix, ^N, last)."""
    from analyzer.sources.log import read_log  # noqa: PLC0415

    if ref == "-":
        return Named(ref, events=read_log("-"))
    path = Path(os.path.expanduser(ref))
    if path.is_file():
        kind = _sniff(path)
        if kind == "report":
            raise InputError(f"{what} {ref} is a JSON report, not a record: give its record "
                             f"(`cachewhy history` lists them) or the build's log")
        if kind == "record":
            from analyzer.store import parse_record  # noqa: PLC0415

            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read {ref}: {exc.strerror or exc}") from None
            record = parse_record(data, f"record file {ref}")
            return Named(ref, record=record, key_dir=key_dir(path.resolve().parent))
        return Named(ref, events=read_log(str(path)))
    if path.is_dir():
        raise InputError(f"{what} {ref} is a directory, not a record or a log")
    record = store.load(ref)
    return Named(ref, record=record, key_dir=key_dir(store.root))


def key_dir(folder: Path) -> Path | None:
    """`folder` when it holds a store's hash key (read, never made, here)."""
    return folder if (folder / "hash.key").is_file() else None


def key_store(named: list[Named], store: "Store", *, writing: bool) -> "Store | None":
    """The store whose hash key the records made from logs use for build-arg
    and ENV values: the store written to; else the key of the record they are
    compared with, so that equal values hash equally; else the store's own
    key if it has one (None: a fixed key, for logs compared with each other).
    A record hashed with another key is told apart by its `hash_key_id`, and
    explain then says its values were not compared."""
    from analyzer.store import Store  # noqa: PLC0415

    if writing:
        return store
    dirs = sorted({n.key_dir for n in named if n.record is not None and n.key_dir is not None})
    if dirs:
        return Store(dirs[0])
    if (store.root / "hash.key").is_file():
        return store
    return None
