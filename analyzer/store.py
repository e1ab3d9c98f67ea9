"""Keep build records on disk and find the previous build of a project.

Layout of a store directory (mode 0o700, files 0o600)::

    <root>/<id>.json      one record per build, written atomically
    <root>/index.db       the index: SQLite (analyzer/index.py), WAL journal
    <root>/index.db-wal   SQLite's journal and shared memory (…-shm)
    <root>/index.lock     flock(2) target serialising index creation and rewrites
    <root>/index.jsonl    the index of cachewhy before 0.2 (read once, to migrate; never written)
    <root>/.tmp-*         in-flight writes; ignored by every reader

A record is a JSON object built by other modules. The store checks the keys
it relies on (`REQUIRED_KEYS`, see `validate_record`) and treats everything
else as opaque; it adds nothing to the record (ids come from `new_id`).

Record files are the truth; the index is a cache that makes listing cheap
(one query plus one `os.listdir`, no record file parsed) and holds one row
per step of each build for `trends`. A save writes the record file, then its
index rows in one transaction. Readers repair what they see:

* an index row whose record file is gone is skipped;
* a record file without an index row (a crash between writing the record and
  indexing it, an index deleted by hand) is read, listed and indexed again
  (marked as a repair; its summary comes from the report the record keeps);
* a record saved again: the last save wins, a repair never replaces a save;
* an index file that is no SQLite database, or a damaged one, is set aside as
  ``index.db.damaged-<time>`` and made again from the record files;
* a store with an ``index.jsonl`` and no ``index.db`` (written by an older
  cachewhy) is migrated on first use: its lines (summaries included) become
  rows; their step rows are filled from the record files when `trends` first
  needs them (`Store.fill_steps`).

A corrupt record file met while listing is reported in the returned
``problems`` and skipped; `Store.load` raises `StoreError` with one line.
`Store.rebuild_index` rewrites the index from the record files (keeping the
summaries the old index had).

Record schema versions: `SCHEMA` is the version written. `UPGRADERS` maps an
older schema string to a function that takes such a record and returns one of
a newer schema; `load` applies them until the record is current. A newer
schema than this code knows is refused with a clear message.

`cachewhy.record/v1` itself changed shape before versions were enforced; the
records of its first shape (cachewhy up to commit eb9c182: `other_lines` in
place of `also_at`, bare sha256 materials, no `hash_key_id`) are settled into
the current shape as they are read (`settle_v1`). testdata/store-v1-early/ is
a store written by that cachewhy. The next change of shape gets a new version
and an entry in `UPGRADERS`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
import stat
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, cast

from analyzer.model import Project, Record

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX; O_APPEND alone then
    fcntl = None  # type: ignore[assignment]

from analyzer import index as ix
from analyzer.atomic import write_atomic
from analyzer.errors import InputError

SCHEMA = "cachewhy.record/v1"
_SCHEMA_RE = re.compile(r"cachewhy\.record/v(\d+)\Z")
SCHEMA_VERSION = 1

# old schema string -> function(record) -> record of a newer schema
UPGRADERS: dict[str, Callable[[dict], dict]] = {}

REQUIRED_KEYS = ("schema", "id", "created", "complete", "project", "exit_code")
PROJECT_KEYS = ("context", "dockerfile", "target", "platforms")

INDEX_NAME = "index.db"
LEGACY_INDEX_NAME = "index.jsonl"  # the JSON-lines index of cachewhy before the SQLite one
LOCK_NAME = "index.lock"
TMP_PREFIX = ".tmp-"
SUFFIX = ".json"
ENV_VAR = "CACHEWHY_STORE"

# What an id may look like: a safe file name (no separators, no leading dot).
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_STALE_TMP_SECONDS = 3600.0


class StoreError(InputError):
    """The record store or a record in it is unusable (one-line message)."""


# --------------------------------------------------------------------------
# locations


def user_store_dir() -> Path:
    """The per-user data folder for records (ignores `CACHEWHY_STORE`)."""
    try:
        home = Path.home()
    except (RuntimeError, KeyError) as e:
        raise StoreError(
            f"cannot find the home directory ({e}); use --store DIR or ${ENV_VAR}"
        ) from None
    if sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        # The XDG spec says relative values are invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / "cachewhy" / "records"


def default_store_dir() -> Path:
    """Where records go without --store: `$CACHEWHY_STORE`, else `user_store_dir()`."""
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(os.path.expanduser(env))
    return user_store_dir()


#: the prefix of a reference counted over every build of the store (`store:^1`)
STORE_WIDE = "store:"


def _here() -> str | None:
    """The current directory as records name a context (resolved), or None."""
    try:
        return str(Path.cwd().resolve())
    except OSError:
        return None


def open_store(path: str | None) -> Store:
    """The store at `path` (the --store argument), or the default one."""
    return Store(path)


# --------------------------------------------------------------------------
# ids, keys, validation


def new_id() -> str:
    """A record id, sortable by creation time (UTC) and unique across processes.

    ``YYYYmmddTHHMMSS`` + 6 digits of microseconds + ``-`` + 8 random hex
    digits, e.g. ``20240601T120000123456-9f2c01ab``.
    """
    ns = time.time_ns()
    sec, rest = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(sec))
    return f"{stamp}{rest // 1000:06d}-{secrets.token_hex(4)}"


def _check_project(project: Any, where: str) -> None:
    if not isinstance(project, dict):
        raise StoreError(f"{where}: 'project' is not an object")
    missing = [k for k in PROJECT_KEYS if k not in project]
    if missing:
        raise StoreError(f"{where}: project is missing {', '.join(missing)}")
    if not isinstance(project["context"], str) or not project["context"]:
        raise StoreError(f"{where}: project.context is not a non-empty string")
    if not isinstance(project["dockerfile"], str):
        raise StoreError(f"{where}: project.dockerfile is not a string")
    if project["target"] is not None and not isinstance(project["target"], str):
        raise StoreError(f"{where}: project.target is not a string or null")
    plats = project["platforms"]
    if not isinstance(plats, list) or not all(isinstance(p, str) for p in plats):
        raise StoreError(f"{where}: project.platforms is not a list of strings")


def project_key(project: Project | dict) -> str:
    """sha256 of the canonical JSON of context, dockerfile, target, platforms.

    Platforms are compared as a set (sorted, duplicates dropped). Builds with
    the same key are comparable.
    """
    _check_project(project, "project")
    canon = json.dumps(
        {
            "context": project["context"],
            "dockerfile": project["dockerfile"],
            "target": project["target"],
            "platforms": sorted(set(project["platforms"])),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_time(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_record(record: Any, where: str = "record") -> None:
    """Raise `StoreError` unless `record` has the keys the store relies on."""
    if not isinstance(record, dict):
        raise StoreError(f"{where}: not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise StoreError(f"{where}: missing key{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)}")
    if record["schema"] != SCHEMA:
        raise StoreError(f"{where}: schema is {record['schema']!r}, expected {SCHEMA!r}")
    if not isinstance(record["id"], str) or not record["id"]:
        raise StoreError(f"{where}: 'id' is not a non-empty string")
    if not _is_time(record["created"]):
        raise StoreError(f"{where}: 'created' is not a number of seconds")
    if not isinstance(record["complete"], bool):
        raise StoreError(f"{where}: 'complete' is not true or false")
    if not _is_int(record["exit_code"]):
        raise StoreError(f"{where}: 'exit_code' is not an integer")
    _check_project(record["project"], where)
    problem = _content_problem(record)
    if problem:
        raise StoreError(f"{where}: {problem}")


# Types of the fields the analysis reads, for a record from anywhere (another
# machine's store, a CI artifact, a shared cache): checked on read, so that a
# damaged or hostile record is one note, never an internal error later.
_STR, _NUM, _INT, _BOOL, _LIST, _DICT = "a string", "a number", "an integer", "true or false", "a list", "an object"
_TOP_FIELDS = {"steps": _LIST, "build_args": _DICT, "materials": _LIST, "snapshot": _DICT, "invocation": _DICT,
               "dockerfile_text": _STR, "messages": _LIST, "report": _DICT, "hash_key_id": _STR,
               "has_provenance": _BOOL, "duration_s": _NUM, "completed_at": _NUM, "interrupted": _STR}
_STEP_FIELDS = {"name": _STR, "keyword": _STR, "stage": _STR, "index": _INT, "line": _INT, "end_line": _INT,
                "also_at": _LIST, "instruction": _STR, "status": _STR, "cached": _BOOL, "started": _NUM,
                "completed": _NUM, "duration_s": _NUM, "error": _STR, "inputs": _LIST, "platform": _STR,
                "op": _DICT, "op_hash": _STR, "image_inputs": _LIST, "context_inputs": _LIST,
                "remote_inputs": _LIST}


def _type_ok(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == _STR:
        return isinstance(value, str)
    if kind == _NUM:
        return _is_time(value)
    if kind == _INT:
        return _is_int(value)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _LIST:
        return isinstance(value, list)
    return isinstance(value, dict)


def analysis_problem(record: Record | dict) -> str | None:
    """What keeps a valid record from being compared (steps without ids, repeated
    ids, fields of the wrong type), or None. Records written by cachewhy pass."""
    return _content_problem(cast(dict, record), strict=True)  # checked as the JSON it is


def _content_problem(record: dict, strict: bool = False) -> str | None:
    """What is wrong with the fields the analysis reads, or None; `strict`: each
    step as the analysis reads it too (the store itself keeps steps opaque)."""
    for key, kind in _TOP_FIELDS.items():
        if not _type_ok(record.get(key), kind):
            return f"'{key}' is not {kind}"
    args = record.get("build_args") or {}
    if not all(isinstance(v, str) or v is None for v in args.values()):
        return "'build_args' holds a value that is not a string"
    for m in record.get("materials") or []:
        if not (isinstance(m, list) and len(m) == 2 and isinstance(m[0], str) and _type_ok(m[1], _STR)):
            return "'materials' holds an entry that is not [uri, digest]"
    ids: set[str] = set()
    digests: set[str] = set()
    for n, step in enumerate(record.get("steps") or []):
        if not isinstance(step, dict):
            return f"step {n + 1} is not an object"
        if not strict:
            continue
        sid, digest = step.get("id"), step.get("digest")
        if not isinstance(sid, str) or not sid or not isinstance(digest, str) or not digest:
            return f"step {n + 1} has no id or digest"
        if sid in ids or digest in digests:
            return f"step {n + 1} repeats the id {sid!r} or its digest"
        ids.add(sid)
        digests.add(digest)
        for key, kind in _STEP_FIELDS.items():
            if not _type_ok(step.get(key), kind):
                return f"step {sid}: '{key}' is not {kind}"
        if not all(isinstance(i, str) for i in step.get("inputs") or []):
            return f"step {sid}: 'inputs' holds a value that is not a digest"
        if not all(isinstance(a, dict) and _type_ok(a.get("line"), _INT) for a in step.get("also_at") or []):
            return f"step {sid}: 'also_at' holds an entry that is not a line"
    return None


def upgrade_record(record: dict, where: str = "record") -> dict:
    """Bring a record of an older schema up to `SCHEMA` using `UPGRADERS`."""
    seen: set[str] = set()
    while True:
        schema = record.get("schema")
        if schema == SCHEMA or "schema" not in record:
            return record  # a missing schema is reported by validate_record
        if not isinstance(schema, str):
            raise StoreError(f"{where}: not a cachewhy record (schema {schema!r})")
        fn = UPGRADERS.get(schema)
        if fn is None:
            m = _SCHEMA_RE.match(schema)
            if m is None:
                raise StoreError(f"{where}: not a cachewhy record (schema {schema!r})")
            if int(m.group(1)) > SCHEMA_VERSION:
                raise StoreError(
                    f"{where} was written by a newer cachewhy (schema {schema}); "
                    f"this version reads {SCHEMA}: upgrade cachewhy"
                )
            raise StoreError(
                f"{where} was written by an older cachewhy (schema {schema}) "
                f"that this version cannot read"
            )
        if schema in seen:
            raise StoreError(f"{where}: schema upgrade loop at {schema}")
        seen.add(schema)
        try:
            record = fn(record)
        except StoreError:
            raise
        except Exception as e:  # an upgrader choking on a damaged old record
            raise StoreError(f"{where}: cannot upgrade from schema {schema}: {e}") from None
        if not isinstance(record, dict):
            raise StoreError(f"{where}: upgrade from schema {schema} gave no record")


_FROM_AS = re.compile(r"FROM\s.*\sAS\s+(\S+)\s*\Z", re.IGNORECASE).match


def settle_v1(record: dict) -> dict:
    """A `cachewhy.record/v1` record of the first shape, in the current one (in place).

    * a step's `other_lines` (the further lines of one vertex, e.g. a base image two
      stages start from) becomes `also_at`, each with the Dockerfile's text at that line;
    * a material's bare sha256 hex digest becomes "sha256:<hex>".
    A record of the current shape is returned unchanged."""
    lines: list[str] | None = None
    for step in record.get("steps") or []:
        if not isinstance(step, dict) or "other_lines" not in step:
            continue
        others = step.pop("other_lines")
        if "also_at" in step or not isinstance(others, list):
            continue
        if lines is None:
            text = record.get("dockerfile_text")
            lines = text.splitlines() if isinstance(text, str) else []
        also = []
        for n in others:
            if not _is_int(n):
                continue
            text = lines[n - 1].strip() if 0 < n <= len(lines) else ""
            named = _FROM_AS(text)  # "FROM image AS name": the stage's name
            also.append({"line": n, "stage": named.group(1) if named else None, "instruction": text or None})
        step["also_at"] = also
    materials = record.get("materials")
    if isinstance(materials, list):
        for m in materials:
            if (isinstance(m, list) and len(m) == 2 and isinstance(m[1], str)
                    and ":" not in m[1] and re.fullmatch(r"[0-9a-f]{64}", m[1])):
                m[1] = "sha256:" + m[1]
    return record


def _loads(text: str) -> Any:
    """JSON by orjson (a 6 MB record with a 50,000-file snapshot: a third of json's
    time), by json where orjson refuses (NaN, integers past 64 bits), whose errors
    say where the text is broken."""
    try:
        import orjson  # noqa: PLC0415

        return orjson.loads(text)
    except (ImportError, ValueError):
        return json.loads(text)


def parse_record(data: bytes, where: str) -> Record:
    """Decode, upgrade and validate the bytes of a record file."""
    if not data.strip():
        raise StoreError(f"{where}: empty file (truncated)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"{where}: corrupt (not UTF-8 text)") from None
    try:
        record = _loads(text)
    except (ValueError, RecursionError) as e:
        s = text.strip()
        if s.startswith("{") and not s.endswith("}"):
            raise StoreError(f"{where}: truncated file (incomplete JSON)") from None
        detail = (f" ({e.msg} at line {e.lineno} column {e.colno})"
                  if isinstance(e, json.JSONDecodeError) else "")
        raise StoreError(f"{where}: corrupt JSON{detail}") from None
    if not isinstance(record, dict):
        raise StoreError(f"{where}: not a record (JSON {type(record).__name__})")
    record = upgrade_record(record, where)
    validate_record(record, where)
    return cast(Record, settle_v1(record))  # checked by validate_record: a Record from here on


# --------------------------------------------------------------------------
# index entries, and the lines of the legacy JSON-lines index (migration)


def _entry_line(entry: dict, scan: bool) -> bytes:
    obj = dict(entry)
    if scan:
        obj["src"] = "scan"
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _entry_from_record(record: Record, rid: str, summary: dict | None) -> dict:
    p = record["project"]
    return {
        "id": rid,
        "created": record["created"],
        "complete": record["complete"],
        "exit_code": record["exit_code"],
        "project_key": project_key(p),
        "context": p["context"],
        "dockerfile": p["dockerfile"],
        "target": p["target"],
        "platforms": list(p["platforms"]),
        "summary": dict(summary) if summary else {},
    }


def _entry_from_line(obj: Any) -> tuple[dict, bool] | None:
    """A checked index entry and whether it came from a scan; None if unusable."""
    if not isinstance(obj, dict):
        return None
    rid = obj.get("id")
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        return None
    created, complete, code = obj.get("created"), obj.get("complete"), obj.get("exit_code")
    key = obj.get("project_key")
    if not (_is_time(created) and isinstance(complete, bool) and _is_int(code)
            and isinstance(key, str)):
        return None
    target = obj.get("target")
    plats = obj.get("platforms")
    summary = obj.get("summary")
    context = obj.get("context")
    dockerfile = obj.get("dockerfile")
    entry = {
        "id": rid,
        "created": created,
        "complete": complete,
        "exit_code": code,
        "project_key": key,
        "context": context if isinstance(context, str) else "-",
        "dockerfile": dockerfile if isinstance(dockerfile, str) else "",
        "target": target if isinstance(target, str) else None,
        "platforms": plats if isinstance(plats, list) else [],
        "summary": summary if isinstance(summary, dict) else {},
    }
    return entry, obj.get("src") == "scan"


def _parse_index(data: bytes) -> dict[str, tuple[dict, bool]]:
    out: dict[str, tuple[dict, bool]] = {}
    loads = json.loads
    for raw in data.split(b"\n"):
        if not raw or raw.isspace():
            continue
        try:
            got = _entry_from_line(loads(raw))
        except (ValueError, RecursionError):
            continue  # truncated or corrupt line
        if got is None:
            continue
        rid = got[0]["id"]
        prev = out.get(rid)
        if prev is not None and got[1] and not prev[1]:
            continue  # a repair line never overrides a saved one
        out[rid] = got
    return out


def _may_be_baseline(entry: dict, include_incomplete: bool = False) -> bool:
    """Whether an indexed build can be a later build's baseline: complete (unless
    asked otherwise), and not one that stopped before its steps (Dockerfile error,
    --check, --call: the summary's `no_steps`, which deliver.deliver writes), for
    every step of the next build would look new."""
    return (include_incomplete or bool(entry["complete"])) and not entry["summary"].get("no_steps")


def _sort_key(entry: dict) -> tuple[float, str]:
    return (entry["created"], entry["id"])


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_regular(path: Path | str) -> bytes:
    """The bytes of a regular file. A FIFO, a socket or a device in the store is never
    read (a FIFO would hang every command): IsADirectoryError for a directory, and
    OSError "not a regular file" for the rest, raised before any read."""
    fd = os.open(path, _READ_FLAGS)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# the store


class Store:
    """Records of one user's builds in one directory (see the module docstring).

    `root` is the --store argument; None means `default_store_dir()`. Nothing
    is created until the first write. `fsync=False` skips fsync calls (tests
    and bulk imports only).
    """

    def __init__(self, root: Path | str | None = None, *, fsync: bool = True) -> None:
        if root is None or (isinstance(root, str) and not root):
            root = default_store_dir()
        self.root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
        self.fsync = fsync
        self._db: sqlite3.Connection | None = None
        self._db_ident: tuple[int, int, int] | None = None  # (pid, st_dev, st_ino) of the open index

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    @property
    def legacy_index_path(self) -> Path:
        return self.root / LEGACY_INDEX_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    def path_for(self, record_id: str) -> Path:
        return self.root / f"{record_id}{SUFFIX}"

    # ---- low level -------------------------------------------------------

    def _oserror(self, what: str, e: OSError, path: Path | str | None = None) -> StoreError:
        where = path if path is not None else self.root
        return StoreError(f"{what} {where}: {e.strerror or e}")

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            raise StoreError(f"record store {self.root} exists and is not a directory") from None
        except OSError as e:
            raise self._oserror("cannot create record store", e) from None

    def _fsync_dir(self) -> None:
        if not self.fsync:
            return
        try:
            fd = os.open(self.root, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot fsync a directory
        finally:
            os.close(fd)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise self._oserror("cannot lock record store", e) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _scan_names(self) -> tuple[set[str], list[str]]:
        """Ids of the record files present, and problems with odd names."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return set(), []
        except NotADirectoryError:
            raise StoreError(f"record store {self.root} is not a directory") from None
        except OSError as e:
            raise self._oserror("cannot read record store", e) from None
        ids: set[str] = set()
        problems: list[str] = []
        match = _ID_RE.match
        for name in names:
            if not name.endswith(SUFFIX) or name.startswith("."):
                continue
            rid = name[: -len(SUFFIX)]
            if match(rid):
                ids.add(rid)
            else:
                problems.append(f"record file {self.root / name}: name is not a record id, skipped")
        return ids, problems

    def _read_legacy_index(self) -> dict[str, tuple[dict, bool]]:
        try:
            data = read_regular(self.legacy_index_path)  # a FIFO in its place is never waited on
        except OSError:
            return {}
        return _parse_index(data)

    # ---- the SQLite index ----------------------------------------------

    def _ident(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.index_path)
        except OSError:
            return None
        return (os.getpid(), st.st_dev, st.st_ino)

    def index(self, create: bool = True) -> sqlite3.Connection | None:
        """The open index (made, migrated or repaired as needed); None when the
        store does not exist yet and `create` is false. A store that cannot be
        written (read-only) gets an index in memory, rebuilt for this process."""
        if self._db is not None and self._db_ident == self._ident():
            return self._db
        self._close()
        if not self.root.exists():
            if not create:
                return None
            self._ensure_root()
        elif not self.root.is_dir():
            raise StoreError(f"record store {self.root} is not a directory")
        try:
            db = self._open_file()
        except (StoreError, OSError, sqlite3.OperationalError):
            db = ix.connect(":memory:")  # read-only store: list and repair in memory
            self._migrate(db)
            self._db, self._db_ident = db, self._ident()
            return db
        self._db, self._db_ident = db, self._ident()
        return db

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = self._db_ident = None

    def _open_file(self) -> sqlite3.Connection:
        if self.index_path.exists():
            try:
                return ix.connect(self.index_path, fsync=self.fsync)
            except (ix.IndexCorrupt, sqlite3.OperationalError):
                # damaged, or still being made by another process (its switch to WAL
                # can meet ours as "locked"): retry behind the lock the maker holds,
                # rather than fall back to an index in memory and lose this build's row
                pass
        with self._locked():  # one process makes (or remakes) the index and migrates
            if self.index_path.exists():
                try:
                    return ix.connect(self.index_path, fsync=self.fsync)
                except ix.IndexCorrupt:
                    aside = self.root / f"{INDEX_NAME}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
                    os.replace(self.index_path, aside)  # kept for a post-mortem; the records rebuild it
            for stale in ("-wal", "-shm"):  # a journal of another database file would be replayed
                try:
                    os.unlink(f"{self.index_path}{stale}")
                except FileNotFoundError:
                    pass
            ix.make_file(self.index_path)
            db = ix.connect(self.index_path, fsync=self.fsync)
            self._migrate(db)
            return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Rows from an older cachewhy's index.jsonl (left as it was): summaries
        and repair marks carry over; step rows come later from the record files."""
        legacy = self._read_legacy_index()
        if not legacy:
            return
        with ix.transaction(db):
            for entry, scan in sorted(legacy.values(), key=lambda es: _sort_key(es[0])):
                ix.add(db, entry, None, scan=scan)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('migrated_from', ?)", (LEGACY_INDEX_NAME,))

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn` in one write transaction of the index (waits for other writers)."""
        db = self.index()
        assert db is not None
        try:
            with ix.transaction(db):
                return fn(db)
        except sqlite3.Error as e:
            raise StoreError(f"cannot update index {self.index_path}: {e}") from None

    def _read_record(self, path: Path) -> Record:
        try:
            data = read_regular(path)
        except FileNotFoundError:
            raise StoreError(f"record file {path} not found") from None
        except IsADirectoryError:
            raise StoreError(f"record file {path} is a directory") from None
        except OSError as e:
            raise self._oserror("cannot read record file", e, path) from None
        return parse_record(data, f"record file {path}")

    def _entries(self) -> tuple[dict[str, dict], list[str]]:
        """All usable index entries of records present, repairing gaps."""
        db = self.index(create=False)
        if db is None:
            return {}, []
        try:  # before listdir: a save in between only adds a repair
            index = {e["id"]: e for e, _ in ix.entries(db)}
        except sqlite3.Error as e:
            raise StoreError(f"cannot read index {self.index_path}: {e}") from None
        ids, problems = self._scan_names()
        entries = {rid: e for rid, e in index.items() if rid in ids}
        repair: list[tuple[dict, Record]] = []
        for rid in sorted(ids - index.keys()):
            path = self.path_for(rid)
            try:
                record = self._read_record(path)
            except StoreError as e:
                if os.path.exists(path):  # not merely removed meanwhile
                    problems.append(f"{e}; skipped")
                continue
            entry = _entry_from_record(record, rid, ix.summary_from_report(record))
            entries[rid] = entry
            repair.append((entry, record))
        if repair:
            try:
                self._write(lambda db: [ix.add(db, e, r, scan=True) for e, r in repair])
            except StoreError:
                pass  # read-only store: list anyway
        return entries, problems

    # ---- public API ------------------------------------------------------

    def save(self, record: Record, summary: dict | None = None) -> Path:
        """Write `record` as ``<id>.json`` and index it; return the file's path.

        `summary` is a small JSON-able dict kept in the index (hit ratio,
        time lost, top cause...) for `list_records`. Saving an id again
        replaces the record and its index rows. The step rows come from the
        record's steps and the report it keeps (`index.step_rows`).
        """
        validate_record(record, "record to save")
        rid = record["id"]
        if not _ID_RE.match(rid):
            raise StoreError(f"record to save: id {rid!r} is not a safe file name")
        if summary is not None and not isinstance(summary, dict):
            raise TypeError("summary must be a dict")
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        entry = _entry_from_record(record, rid, summary)
        self._ensure_root()
        target = self.path_for(rid)
        self._write_file_atomic(target, f"{TMP_PREFIX}{rid}-", data)
        self._write(lambda db: ix.add(db, entry, record, scan=False))
        return target

    def _write_file_atomic(self, target: Path, tmp_prefix: str, data: bytes) -> None:
        try:
            write_atomic(target, data, mode=0o600, fsync=self.fsync, tmp_prefix=tmp_prefix)
        except OSError as e:
            raise self._oserror("cannot write", e, target) from None
        self._fsync_dir()

    def list_records(
        self, limit: int | None = None, project: dict | None = None
    ) -> tuple[list[dict], list[str]]:
        """Index entries, newest first, and one-line problems met on the way.

        Each entry: id, created, complete, exit_code, project_key, context,
        dockerfile, target, platforms, summary. `project` keeps only the
        records with its `project_key`; `limit` keeps the newest N.
        """
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        entries, problems = self._entries()
        values = list(entries.values())
        if project is not None:
            key = project_key(project)
            values = [e for e in values if e["project_key"] == key]
        ordered = sorted(values, key=_sort_key, reverse=True)
        if limit is not None:
            ordered = ordered[:limit]
        return ordered, problems

    def indexed(self) -> tuple[sqlite3.Connection, list[str], list[str]]:
        """The index made whole for a reader of its step rows (`trends`): record files
        it lacks are indexed, builds without step rows (a migrated index) get them.
        Returns the index, the ids indexed whose record files are gone, and the
        problems met. One query and one `os.listdir` when nothing needs repair."""
        db = self.index(create=False)
        if db is None:
            return ix.connect(":memory:"), [], []
        try:
            names = os.listdir(self.root)
        except OSError:
            names = None
        indexed = {r[0] for r in db.execute("SELECT id FROM builds")}
        problems: list[str] = []
        # the names of the record files present: what `_scan_names` checks one by one is
        # checked only when some file is not indexed (then `_entries` repairs and says why)
        ids = {n[:-len(SUFFIX)] for n in names if n.endswith(SUFFIX) and not n.startswith(".")} if names else set()
        if names is None or not ids <= indexed:
            _, problems = self._entries()
            ids, _ = self._scan_names()
        if db.execute("SELECT 1 FROM builds WHERE steps = 0 LIMIT 1").fetchone():
            _, more = self.fill_steps()
            problems += more
        return db, sorted(indexed - ids), problems

    def fill_steps(self) -> tuple[int, list[str]]:
        """Index the steps of builds indexed without them (a migrated index): read
        their record files. Returns how many builds were filled, and the problems."""
        db = self.index(create=False)
        if db is None:
            return 0, []
        todo = ix.without_steps(db)
        problems: list[str] = []
        loaded = []
        for rid in todo:
            path = self.path_for(rid)
            if not path.exists():
                continue
            try:
                loaded.append((rid, self._read_record(path)))
            except StoreError as e:
                problems.append(f"{e}; skipped")
        if loaded:
            try:
                def fill(db: sqlite3.Connection) -> None:
                    for rid, rec in loaded:
                        ix.set_steps(db, rid, rec)
                self._write(fill)
            except StoreError as e:
                problems.append(str(e))
        return len(loaded), problems

    def resolve(self, ref: str | os.PathLike[str]) -> Path:
        """The file a reference names: id, unique id prefix, path, ``^N``, ``last``.

        ``^N`` and ``last`` count the builds of the project in the current
        directory (the records whose context it is) when the store holds any,
        else every build; ``store:^N`` and ``store:last`` always count every
        build of the store: `diff ^1 ^0` never pairs two projects' builds."""
        text = os.fspath(ref).strip()
        if not text:
            raise StoreError("empty record reference")
        nth: int | None = None
        whole = text.startswith(STORE_WIDE)
        counted = text[len(STORE_WIDE):] if whole else text
        if counted == "last":
            nth = 0
        elif counted.startswith("^"):
            digits = counted[1:] or "1"
            if not digits.isdigit():
                raise StoreError(f"bad record reference {text!r}: use ^N with N >= 0")
            nth = int(digits)
        elif whole:
            raise StoreError(f"bad record reference {text!r}: {STORE_WIDE} goes with ^N or last")
        if nth is not None:
            entries, _ = self.list_records()
            here = None if whole else _here()
            mine = [e for e in entries if here is not None and e.get("context") == here]
            if mine:
                if nth >= len(mine):
                    raise StoreError(
                        f"no record {text}: the store holds {len(mine)} build(s) of the project in "
                        f"{here} ({STORE_WIDE}{counted} counts all {len(entries)} of the store)")
                return self.path_for(mine[nth]["id"])
            if nth >= len(entries):
                raise StoreError(
                    f"no record {text}: the store {self.root} holds {len(entries)} record(s)"
                )
            return self.path_for(entries[nth]["id"])
        seps = [os.sep] + ([os.altsep] if os.altsep else [])
        if any(s in text for s in seps) or text.endswith(SUFFIX):
            path = Path(os.path.expanduser(text))
            if path.is_file():
                return path
            inside = self.root / path.name
            if path.parent == Path(".") and inside.is_file():
                return inside
            raise StoreError(f"record file {text} not found")
        if not _ID_RE.match(text):
            raise StoreError(f"bad record reference {text!r}")
        exact = self.path_for(text)
        if exact.is_file():
            return exact
        ids, _ = self._scan_names()
        matches = sorted(rid for rid in ids if rid.startswith(text))
        if not matches:
            raise StoreError(f"no record matching {text!r} in {self.root}")
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
            raise StoreError(
                f"ambiguous record prefix {text!r}: {len(matches)} records match ({shown})"
            )
        return self.path_for(matches[0])

    def load(self, ref: str | os.PathLike[str]) -> Record:
        """The record `ref` names (see `resolve`), upgraded to `SCHEMA` and checked."""
        return self._read_record(self.resolve(ref))

    def find_previous(
        self,
        project: Project | dict,
        before_id: str | None = None,
        include_incomplete: bool = False,
    ) -> str | None:
        """Id of the newest comparable record, or None.

        Same `project_key`; older than `before_id` when given (by creation
        time if that record is indexed, else by id, which sorts by time);
        `complete` unless `include_incomplete`, in which case the newest
        record of either kind. Failed builds (exit_code != 0) count: the
        newest complete record wins whatever its exit code, unless it reached
        no Dockerfile step. Index only.
        """
        key = project_key(project)
        entries, _ = self._entries()
        candidates = [e for e in entries.values() if e["project_key"] == key]
        if before_id is not None:
            bound = entries.get(before_id)
            if bound is not None:
                limit = _sort_key(bound)
                candidates = [e for e in candidates if _sort_key(e) < limit]
            else:
                candidates = [e for e in candidates if e["id"] < before_id]
        candidates = [e for e in candidates if _may_be_baseline(e, include_incomplete)]
        if not candidates:
            return None
        return max(candidates, key=_sort_key)["id"]

    def _newest_baseline(self, keep: Callable[[dict], bool]) -> dict | None:
        """The newest index entry that may be a baseline and that `keep` accepts."""
        same = [e for e in self._entries()[0].values() if _may_be_baseline(e) and keep(e)]
        return max(same, key=_sort_key) if same else None

    def other_platforms(self, project: Project | dict) -> list[str] | None:
        """The platforms of the newest complete build of the same context, Dockerfile
        and target for other platforms (None: there is none). A build for platforms
        never built before is compared with it, so that its misses read
        `platform-changed` rather than having no previous build."""
        want = sorted(set(project["platforms"]))
        got = self._newest_baseline(
            lambda e: (e["context"], e["dockerfile"], e["target"]) == (project["context"], project["dockerfile"],
                                                                       project["target"])
            and sorted(set(e["platforms"])) != want)
        return list(got["platforms"]) if got else None

    def other_target(self, project: Project | dict) -> str | None:
        """Id of the newest complete build of the same context, Dockerfile and platforms
        for another target (None: there is none). The stages two targets share are one
        cache: a prediction for a target never built reads their statuses from it."""
        want = sorted(set(project["platforms"]))
        got = self._newest_baseline(
            lambda e: (e["context"], e["dockerfile"]) == (project["context"], project["dockerfile"])
            and e["target"] != project["target"] and sorted(set(e["platforms"])) == want)
        return str(got["id"]) if got else None

    def load_previous(self, project: Project | dict, before_id: str | None = None) -> tuple[Record | None, list[str]]:
        """The newest complete record of `project` that can be compared (see
        `find_previous`), and a note naming each bad one skipped on the way (damaged,
        of another shape, steps the analysis cannot read): one bad record never
        stops every later build of its project."""
        notes: list[str] = []
        for _ in range(20):
            ref = self.find_previous(project, before_id=before_id)
            if ref is None:
                return None, notes
            try:
                record = self.load(ref)
                problem = analysis_problem(record)
            except StoreError as exc:
                record, problem = None, str(exc)
            if record is not None and problem is None:
                return record, notes
            notes.append(f"the record {ref} was skipped as a baseline: {problem}")
            before_id = ref
        return None, notes

    def rebuild_index(self) -> list[str]:
        """Rewrite the index from the record files; return the problems met.

        Summaries (which only the index holds) are kept for records the old
        index knew.
        """
        ids, problems = self._scan_names()
        if not ids and not self.index_path.exists():
            return problems
        self._ensure_root()
        db = self.index()
        assert db is not None
        with self._locked():
            old = {e["id"]: (e, scan) for e, scan in ix.entries(db)}
            ids, _ = self._scan_names()
            fresh: list[tuple[dict, Record, bool]] = []
            for rid in sorted(ids):
                try:
                    record = self._read_record(self.path_for(rid))
                except StoreError as e:
                    problems.append(f"{e}; skipped")
                    continue
                prev = old.get(rid)
                summary = prev[0]["summary"] if prev else None
                scan = prev[1] if prev else True
                fresh.append((_entry_from_record(record, rid, summary), record, scan))

            def rewrite(db: sqlite3.Connection) -> None:
                ix.clear(db)
                for entry, record, scan in fresh:
                    ix.add(db, entry, record, scan=scan)
            self._write(rewrite)
        return problems

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` records; return the ids deleted.

        Also removes leftover ``.tmp-*`` files older than an hour and the
        index rows of records that are gone. Corrupt record files are left
        alone (see list_records).
        """
        if keep < 0:
            raise ValueError("keep must be >= 0")
        ordered, _ = self.list_records()
        doomed = [e["id"] for e in ordered[keep:]]
        for rid in doomed:
            try:
                os.unlink(self.path_for(rid))
            except FileNotFoundError:
                pass
            except OSError as e:
                raise self._oserror("cannot delete record", e, self.path_for(rid)) from None
        now = time.time()
        try:
            names = os.listdir(self.root)
        except OSError:
            names = []
        for name in names:
            if name.startswith(TMP_PREFIX):
                p = self.root / name
                try:
                    if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                        p.unlink()
                except OSError:
                    pass
        if not self.root.is_dir():
            return doomed
        db = self.index()
        assert db is not None
        ids, _ = self._scan_names()
        gone = [rid for rid in ix.ids(db) if rid not in ids]
        self._write(lambda db: ix.remove(db, gone))
        return doomed
