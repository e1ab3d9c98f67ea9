"""Unit tests for analyzer.store: records on disk, the index, refs, previous build."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from analyzer import store as st
from analyzer.errors import InputError
from analyzer.store import (
    SCHEMA,
    Store,
    StoreError,
    default_store_dir,
    new_id,
    open_store,
    project_key,
    user_store_dir,
)

PROJ_A = {"context": "/src/a", "dockerfile": "Dockerfile", "target": None,
          "platforms": ["linux/amd64"]}
PROJ_B = {"context": "/src/b", "dockerfile": "Dockerfile", "target": None,
          "platforms": ["linux/amd64"]}

_T0 = 1_700_000_000.0


def make_record(rid: str | None = None, *, created: float | None = None,
                project: dict | None = None, complete: bool = True,
                exit_code: int = 0, **extra) -> dict:
    rec = {
        "schema": SCHEMA,
        "id": rid or new_id(),
        "created": time.time() if created is None else created,
        "complete": complete,
        "project": dict(project or PROJ_A),
        "exit_code": exit_code,
    }
    rec.update(extra)
    return rec


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "records", fsync=False)


def index_ids(s: Store) -> list[str]:
    """The ids the SQLite index holds, oldest first, read by a connection of its own."""
    import sqlite3  # noqa: PLC0415

    db = sqlite3.connect(s.index_path)
    try:
        return [r[0] for r in db.execute("SELECT id FROM builds ORDER BY created, id")]
    finally:
        db.close()


def write_legacy_index(s: Store, entries: list[dict], extra: bytes = b"") -> None:
    """An index.jsonl as cachewhy wrote it before the SQLite index (and no index.db)."""
    s.root.mkdir(parents=True, exist_ok=True)
    data = b"".join(st._entry_line(e, False) for e in entries) + extra
    (s.root / st.LEGACY_INDEX_NAME).write_bytes(data)


def seed(s: Store, n: int, project: dict = PROJ_A, start: float = _T0) -> list[str]:
    ids = []
    for i in range(n):
        rid = f"r{i:04d}"
        s.save(make_record(rid, created=start + i, project=project))
        ids.append(rid)
    return ids


# --------------------------------------------------------------------------
# locations, ids, keys


def test_location_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CACHEWHY_STORE", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    if sys.platform == "darwin":
        want = tmp_path / "home/Library/Application Support/cachewhy/records"
    else:
        want = tmp_path / "home/.local/share/cachewhy/records"
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert user_store_dir() == tmp_path / "xdg/cachewhy/records"
        monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert user_store_dir() == want
    assert default_store_dir() == want
    assert Store().root == want
    monkeypatch.setenv("CACHEWHY_STORE", str(tmp_path / "env"))
    assert default_store_dir() == tmp_path / "env"
    assert open_store(None).root == tmp_path / "env"
    assert open_store(str(tmp_path / "arg")).root == tmp_path / "arg"
    assert Store(tmp_path / "arg").root == tmp_path / "arg"


def test_store_does_not_create_dir_until_save(store):
    assert store.list_records() == ([], [])
    assert store.find_previous(PROJ_A) is None
    assert not store.root.exists()


def test_new_id_sortable_and_unique():
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert [i.split("-")[0] for i in ids] == sorted(i.split("-")[0] for i in ids)
    assert len(ids[0]) == len("20240101T120000123456-0123abcd")
    assert st._ID_RE.match(ids[0])


def test_project_key():
    k = project_key(PROJ_A)
    assert len(k) == 64
    assert project_key(dict(PROJ_A)) == k
    assert project_key(PROJ_B) != k
    multi1 = dict(PROJ_A, platforms=["linux/amd64", "linux/arm64"])
    multi2 = dict(PROJ_A, platforms=["linux/arm64", "linux/amd64"])
    assert project_key(multi1) == project_key(multi2) != k
    assert project_key(dict(PROJ_A, target="test")) != k
    assert project_key(dict(PROJ_A, dockerfile="other.Dockerfile")) != k
    with pytest.raises(StoreError):
        project_key({"context": "/x"})


# --------------------------------------------------------------------------
# save / load


def test_round_trip(store):
    rec = make_record(steps=[{"digest": "sha256:1", "cached": True}], snapshot={"x": "ü"})
    path = store.save(rec, summary={"hit_ratio": 0.5})
    assert path == store.path_for(rec["id"])
    assert store.load(rec["id"]) == rec  # nothing added
    assert json.loads(path.read_text()) == rec
    (entry,), problems = store.list_records()
    assert problems == []
    assert entry == {
        "id": rec["id"], "created": rec["created"], "complete": True, "exit_code": 0,
        "project_key": project_key(PROJ_A), "context": "/src/a",
        "dockerfile": "Dockerfile", "target": None, "platforms": ["linux/amd64"],
        "summary": {"hit_ratio": 0.5},
    }


def test_permissions(store):
    rec = make_record()
    store.save(rec)
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path_for(rec["id"]).stat().st_mode) == 0o600
    assert stat.S_IMODE(store.index_path.stat().st_mode) == 0o600


def test_save_validates(store):
    good = make_record()
    for key in ("schema", "id", "created", "complete", "project", "exit_code"):
        bad = dict(good)
        del bad[key]
        with pytest.raises(StoreError, match=f"missing key {key}"):
            store.save(bad)
    bad_values = [
        ("schema", "cachewhy.record/v0"), ("id", ""), ("id", "../x"), ("id", ".hidden"),
        ("created", "yesterday"), ("created", float("nan")), ("complete", 1),
        ("exit_code", True), ("exit_code", 1.0),
        ("project", {"context": "/x"}),
        ("project", dict(PROJ_A, platforms="linux/amd64")),
        ("project", dict(PROJ_A, target=3)),
    ]
    for key, value in bad_values:
        with pytest.raises(StoreError):
            store.save(dict(good, **{key: value}))
    with pytest.raises(TypeError):
        store.save(good, summary=["no"])
    assert not store.root.exists() or list(store.root.iterdir()) == []
    assert issubclass(StoreError, InputError)


def test_atomic_write_leaves_no_temp(store):
    for _ in range(5):
        store.save(make_record())
    names = os.listdir(store.root)
    assert not [n for n in names if n.startswith(".tmp-")]
    assert sorted(n for n in names if n.endswith(".json")) == sorted(
        f"{e['id']}.json" for e in store.list_records()[0])


def test_crash_mid_write_is_ignored(store):
    rec = make_record("r0001", created=_T0)
    store.save(rec)
    # A writer died after writing part of its temp file, before os.replace.
    (store.root / ".tmp-r0002-deadbeef").write_text('{"schema": "cachewhy.rec')
    entries, problems = store.list_records()
    assert [e["id"] for e in entries] == ["r0001"] and problems == []
    assert store.load("last") == rec
    with pytest.raises(StoreError, match="no record matching"):
        store.load("r0002")
    # later saves still work
    store.save(make_record("r0003", created=_T0 + 3))
    assert [e["id"] for e in store.list_records()[0]] == ["r0003", "r0001"]


def test_save_again_replaces(store):
    rec = make_record("r1", complete=False)
    store.save(rec, summary={"n": 1})
    rec2 = dict(rec, complete=True, exit_code=1)
    store.save(rec2, summary={"n": 2})
    (entry,), _ = store.list_records()
    assert entry["complete"] is True and entry["exit_code"] == 1
    assert entry["summary"] == {"n": 2}
    assert store.load("r1") == rec2


def test_permission_error_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        s = Store(ro / "records", fsync=False)
        with pytest.raises(StoreError) as ei:
            s.save(make_record())
        assert str(ro / "records") in str(ei.value) and "\n" not in str(ei.value)
        s2 = Store(ro, fsync=False)
        with pytest.raises(StoreError, match=str(ro)):
            s2.save(make_record())
    finally:
        os.chmod(ro, 0o700)


def test_permission_error_simulated(store, monkeypatch):
    # Runs as root too: fake EACCES from the system calls the store makes.
    import errno

    store.save(make_record("r1", created=_T0))
    real_open = os.open

    def denied(path, *a, **k):
        if str(path).startswith(str(store.root)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(StoreError, match=f"^cannot write {store.root}/r2.json: Permission denied$"):
        store.save(make_record("r2"))
    assert not [n for n in os.listdir(store.root) if n.startswith(".tmp-")]
    monkeypatch.undo()

    def nolist(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "listdir", nolist)
    with pytest.raises(StoreError, match=f"^cannot read record store {store.root}: Permission denied$"):
        store.list_records()


def test_store_path_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    s = Store(f, fsync=False)
    with pytest.raises(StoreError, match="not a directory"):
        s.list_records()
    with pytest.raises(StoreError, match="not a directory"):
        s.save(make_record())


# --------------------------------------------------------------------------
# concurrency


def _steps_and_report(tag: int, i: int) -> dict:
    """Three steps (one rebuilt, a root miss) and the report that says so."""
    steps = [{"id": f"s{k}", "keyword": "RUN", "line": 2 + k, "instruction": f"RUN step {k}",
              "status": "rebuilt" if k == tag % 3 else "cached", "duration_s": 1.0 + k} for k in range(3)]
    misses = [{"id": f"s{tag % 3}", "line": 2 + tag % 3, "root": True, "time_lost_s": 1.0 + tag % 3,
               "cause": {"kind": "context-changed", "detail": f"writer {tag}"}}]
    return {"steps": steps, "report": {"summary": {"hit_ratio": 2 / 3, "time_lost_s": 1.0}, "misses": misses}}


def _writer(root: str, n: int, tag: int, go) -> None:
    s = Store(root)  # real fsyncs
    go.wait(10)
    for i in range(n):
        rec = make_record(complete=i % 3 != 0, exit_code=tag,
                          payload="x" * (tag * 100 + i), **_steps_and_report(tag, i))
        s.save(rec, summary={"writer": tag, "i": i})


def _mp_context():
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


@pytest.mark.parametrize("procs", [2, 8])
def test_concurrent_writers(tmp_path, procs):
    root = tmp_path / "records"
    ctx = _mp_context()
    go = ctx.Event()
    workers = [ctx.Process(target=_writer, args=(str(root), 20, t, go)) for t in range(procs)]
    for w in workers:
        w.start()
    go.set()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0] * procs
    s = Store(root)
    names = os.listdir(root)
    assert not [n for n in names if n.startswith(".tmp-")]
    files = [n for n in names if n.endswith(".json")]
    assert len(files) == procs * 20
    for n in files:  # every record whole
        rec = s.load(str(root / n))
        assert rec["id"] + ".json" == n
    # the index alone has every build and every step row (no repair from the record files yet)
    assert sorted(index_ids(s)) == sorted(n[:-5] for n in files)
    import sqlite3  # noqa: PLC0415

    db = sqlite3.connect(s.index_path)
    assert db.execute("SELECT count(*) FROM builds WHERE scan = 0").fetchone()[0] == procs * 20
    assert db.execute("SELECT count(*) FROM steps").fetchone()[0] == procs * 20 * 3
    roots = db.execute("SELECT b.exit_code, l.line, s.kind FROM steps s JOIN builds b ON b.n = s.build "
                       "JOIN lines l ON l.n = s.line WHERE s.root = 1").fetchall()
    assert sorted(roots) == sorted((t, 2 + t % 3, "context-changed") for t in range(procs) for _ in range(20))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    entries, problems = s.list_records()
    assert problems == [] and len(entries) == procs * 20
    per_writer = {t: sum(e["summary"]["writer"] == t for e in entries) for t in range(procs)}
    assert per_writer == {t: 20 for t in range(procs)}


# --------------------------------------------------------------------------
# corrupt records


CORRUPT = {
    "garbage": (b"\x00\x01 not json at all \xff", "corrupt"),
    "text": (b"hello world", "corrupt JSON"),
    "truncated": (b'{"schema": "cachewhy.record/v1", "id": "x", "crea', "truncated"),
    "empty": (b"", "empty file"),
    "array": (b"[1, 2]", "not a record"),
    "schema": (json.dumps(dict(make_record("x"), schema="something/else")).encode(),
               "not a cachewhy record"),
    "nokeys": (json.dumps({"schema": SCHEMA, "id": "x"}).encode(),
               "missing keys created, complete, project, exit_code"),
    "badtype": (json.dumps(dict(make_record("x"), complete="yes")).encode(), "complete"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_record(store, kind):
    data, message = CORRUPT[kind]
    seed(store, 2)
    bad = store.path_for(f"bad-{kind}")
    bad.write_bytes(data)
    entries, problems = store.list_records()
    assert [e["id"] for e in entries] == ["r0001", "r0000"]
    assert len(problems) == 1 and str(bad) in problems[0] and message in problems[0]
    assert "\n" not in problems[0]
    with pytest.raises(StoreError, match=message) as ei:
        store.load(f"bad-{kind}")
    assert str(bad) in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(StoreError, match=message):
        store.load(str(bad))
    # listing again reports it again, never fatally; rebuild reports it too
    assert len(store.list_records()[1]) == 1
    assert len(store.rebuild_index()) == 1
    assert [e["id"] for e in store.list_records()[0]] == ["r0001", "r0000"]


def test_odd_files_in_store(store):
    seed(store, 1)
    (store.root / "notes.txt").write_text("hi")
    (store.root / "with space.json").write_text("{}")
    (store.root / "subdir.json").mkdir()
    entries, problems = store.list_records()
    assert [e["id"] for e in entries] == ["r0000"]
    assert len(problems) == 2
    assert any("with space.json" in p for p in problems)
    assert any("subdir.json" in p and "directory" in p for p in problems)


# --------------------------------------------------------------------------
# the index


def test_index_one_row_per_save(store):
    ids = seed(store, 3)
    assert index_ids(store) == ids
    assert stat.S_IMODE(store.index_path.stat().st_mode) == 0o600


def test_index_missing_rows(store):
    import sqlite3  # noqa: PLC0415

    ids = seed(store, 5)
    db = sqlite3.connect(store.index_path)
    db.execute("DELETE FROM builds WHERE id >= 'r0002'")  # lost r0002..r0004
    db.commit()
    db.close()
    entries, problems = store.list_records()
    assert [e["id"] for e in entries] == ids[::-1] and problems == []
    # repaired: rows made again for the missing ids, without a summary
    assert sorted(index_ids(store)) == sorted(ids)
    assert store.list_records()[0] == entries


def test_index_missing_entirely(store):
    ids = seed(store, 4)
    store.index_path.unlink()
    assert [e["id"] for e in store.list_records()[0]] == ids[::-1]
    assert sorted(index_ids(store)) == sorted(ids)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty-header"])
def test_index_damaged_is_set_aside_and_rebuilt(store, damage):
    ids = seed(store, 4)
    store._close()  # another process finds the damage
    data = store.index_path.read_bytes()
    wal = Path(f"{store.index_path}-wal")
    wal.unlink(missing_ok=True)
    store.index_path.write_bytes({"truncated": data[:100], "garbage": b"not sqlite at all\n" * 100,
                                  "empty-header": b"SQLite format 3\x00" + b"\xff" * 4000}[damage])
    s2 = Store(store.root, fsync=False)
    entries, problems = s2.list_records()
    assert [e["id"] for e in entries] == ids[::-1] and problems == []
    assert sorted(index_ids(s2)) == sorted(ids)
    aside = [n for n in os.listdir(store.root) if n.startswith("index.db.damaged-")]
    assert len(aside) == 1  # kept for a post-mortem, not deleted
    s2.save(make_record("r0100", created=_T0 + 100))
    assert [e["id"] for e in s2.list_records()[0]] == ["r0100"] + ids[::-1]


def test_index_stale_rows(store):
    ids = seed(store, 4)
    os.unlink(store.path_for("r0002"))
    entries, problems = store.list_records()
    assert [e["id"] for e in entries] == ["r0003", "r0001", "r0000"] and problems == []
    assert store.find_previous(PROJ_A, before_id="r0003") == "r0001"
    assert ids


def test_repair_row_does_not_override_saved_row(store):
    from analyzer import index as ix  # noqa: PLC0415

    store.save(make_record("r1", created=_T0), summary={"hit": 1})
    entry = dict(store.list_records()[0][0], summary={})
    db = store.index()
    with ix.transaction(db):
        assert ix.add(db, entry, None, scan=True) is False
    assert store.list_records()[0][0]["summary"] == {"hit": 1}
    # and a later save wins
    store.save(make_record("r1", created=_T0), summary={"hit": 2})
    assert store.list_records()[0][0]["summary"] == {"hit": 2}


def test_rebuild_index_keeps_summaries(store):
    for i in range(3):
        store.save(make_record(f"r{i}", created=_T0 + i), summary={"i": i})
    store.path_for("r1").unlink()
    assert store.rebuild_index() == []
    assert index_ids(store) == ["r0", "r2"]
    assert [e["summary"] for e in store.list_records()[0]] == [{"i": 2}, {"i": 0}]
    store.index_path.unlink()
    assert store.rebuild_index() == []
    assert [e["summary"] for e in store.list_records()[0]] == [{}, {}]


# --------------------------------------------------------------------------
# the step rows, and the index of an older cachewhy (index.jsonl)


def test_step_rows_of_a_save(store):
    from analyzer import index as ix  # noqa: PLC0415

    rec = make_record("r1", created=_T0, **_steps_and_report(1, 0))
    rec["steps"].insert(0, {"id": "f", "keyword": "FROM", "line": 1, "status": "cached"})  # no work of its own
    store.save(rec, summary={"hit_ratio": 0.67})
    db = store.index()
    rows = db.execute("SELECT l.line, l.instruction, s.status, s.duration_s, s.kind, s.root, s.lost_s "
                      "FROM steps s JOIN lines l ON l.n = s.line ORDER BY s.pos").fetchall()
    assert rows == [(2, "RUN step 0", ix.CACHED, 1.0, None, 0, None),
                    (3, "RUN step 1", ix.REBUILT, 2.0, "context-changed", 1, 2.0),
                    (4, "RUN step 2", ix.CACHED, 3.0, None, 0, None)]
    assert db.execute("SELECT cached, rebuilt, steps FROM builds").fetchone() == (2, 1, 1)
    store.save(rec, summary={"hit_ratio": 0.67})  # saved again: replaced, not doubled
    assert ix.count_steps(db) == 3


def test_index_of_an_older_cachewhy_is_migrated(store):
    """index.jsonl (with a torn line, junk and a NUL tail, as a crash leaves it) becomes rows;
    the file itself is left as it was; step rows are filled from the records on demand."""
    recs = [make_record(f"r{i}", created=_T0 + i, **_steps_and_report(i, i)) for i in range(4)]
    store.root.mkdir(parents=True)
    for rec in recs:
        store.path_for(rec["id"]).write_text(json.dumps(rec))
    entries = [st._entry_from_record(r, r["id"], {"i": i}) for i, r in enumerate(recs[:3])]
    write_legacy_index(store, entries, b"garbage line\n[1,2]\n{\"id\": \"r0000\"}\n{\"id\":\"r9\x00\x00")
    legacy = store.legacy_index_path.read_bytes()
    assert not store.index_path.exists()
    got, problems = store.list_records()
    assert problems == [] and [e["id"] for e in got] == ["r3", "r2", "r1", "r0"]
    assert [e["summary"] for e in got[1:]] == [{"i": 2}, {"i": 1}, {"i": 0}]  # carried over
    assert got[0]["summary"]["hit_ratio"] == 2 / 3  # r3 was not in it: indexed from its record's report
    assert store.legacy_index_path.read_bytes() == legacy
    db = store.index()
    assert db.execute("SELECT value FROM meta WHERE key = 'migrated_from'").fetchone() == ("index.jsonl",)
    assert ix_count(db) == 3  # r3's rows, from the repair
    assert store.fill_steps() == (3, [])
    assert ix_count(db) == 12
    assert store.fill_steps() == (0, [])


def ix_count(db) -> int:
    return db.execute("SELECT count(*) FROM steps").fetchone()[0]


def test_list_limit_and_project(store):
    for i in range(6):
        store.save(make_record(f"r{i}", created=_T0 + i, project=PROJ_A if i % 2 else PROJ_B))
    entries, _ = store.list_records(limit=2)
    assert [e["id"] for e in entries] == ["r5", "r4"]
    entries, _ = store.list_records(project=PROJ_A)
    assert [e["id"] for e in entries] == ["r5", "r3", "r1"]
    entries, _ = store.list_records(limit=1, project=PROJ_B)
    assert [e["id"] for e in entries] == ["r4"]
    assert store.list_records(limit=0)[0] == []
    with pytest.raises(ValueError):
        store.list_records(limit=-1)


def test_list_orders_by_created_not_id(store):
    store.save(make_record("zzz", created=_T0))
    store.save(make_record("aaa", created=_T0 + 1))
    assert [e["id"] for e in store.list_records()[0]] == ["aaa", "zzz"]
    assert store.load("last")["id"] == "aaa"


# --------------------------------------------------------------------------
# references


def test_refs(store, tmp_path, monkeypatch):
    a = make_record("20240101T000000000001-aaaaaaaa", created=_T0)
    b = make_record("20240101T000000000002-bbbbbbbb", created=_T0 + 1)
    c = make_record("20240102T000000000003-cccccccc", created=_T0 + 2)
    for r in (a, b, c):
        store.save(r)
    assert store.load("last") == c
    assert store.load("^0") == c
    assert store.load("^1") == b
    assert store.load("^2") == a
    assert store.load("^") == b
    with pytest.raises(StoreError, match="holds 3 record"):
        store.load("^3")
    with pytest.raises(StoreError, match="bad record reference"):
        store.load("^x")
    assert store.load(a["id"]) == a
    assert store.load("20240102") == c
    assert store.load("20240101T000000000002") == b
    with pytest.raises(StoreError, match="ambiguous record prefix '20240101'") as ei:
        store.load("20240101")
    assert "2 records match" in str(ei.value)
    with pytest.raises(StoreError, match="no record matching '2025'"):
        store.load("2025")
    with pytest.raises(StoreError, match="empty record reference"):
        store.load("  ")
    with pytest.raises(StoreError, match="bad record reference"):
        store.load("no such thing")
    # paths: absolute, relative, copied outside the store
    assert store.load(store.path_for(a["id"])) == a
    outside = tmp_path / "elsewhere" / "saved.json"
    outside.parent.mkdir()
    outside.write_bytes(store.path_for(b["id"]).read_bytes())
    assert store.load(str(outside)) == b
    monkeypatch.chdir(outside.parent)
    assert store.load("saved.json") == b
    assert store.load(f"{c['id']}.json") == c  # falls back to the store
    assert store.load(f"./{'saved.json'}") == b
    with pytest.raises(StoreError, match="not found"):
        store.load(str(tmp_path / "missing.json"))


def test_refs_on_empty_store(store):
    with pytest.raises(StoreError, match="holds 0 record"):
        store.load("last")
    with pytest.raises(StoreError, match="no record matching"):
        store.load("2024")


# --------------------------------------------------------------------------
# previous build


def test_find_previous(store):
    store.save(make_record("a1", created=_T0 + 1, project=PROJ_A))
    store.save(make_record("b1", created=_T0 + 2, project=PROJ_B))
    store.save(make_record("a2", created=_T0 + 3, project=PROJ_A, exit_code=1))
    store.save(make_record("a3", created=_T0 + 4, project=PROJ_A, complete=False))
    store.save(make_record("b2", created=_T0 + 5, project=PROJ_B))
    # failed builds count; the interrupted one does not unless asked
    assert store.find_previous(PROJ_A) == "a2"
    assert store.find_previous(PROJ_A, include_incomplete=True) == "a3"
    assert store.find_previous(PROJ_B) == "b2"
    assert store.find_previous(PROJ_B, before_id="b2") == "b1"
    assert store.find_previous(PROJ_B, before_id="b1") is None
    assert store.find_previous(PROJ_A, before_id="a2") == "a1"
    assert store.find_previous(PROJ_A, before_id="a3", include_incomplete=True) == "a2"
    # other targets / platforms / dockerfiles are other projects
    assert store.find_previous(dict(PROJ_A, target="test")) is None
    assert store.find_previous(dict(PROJ_A, platforms=["linux/arm64"])) is None
    assert store.find_previous(dict(PROJ_A, platforms=["linux/amd64", "linux/amd64"])) == "a2"


def test_find_previous_before_unsaved_id(store):
    old = make_record("20240101T000000000000-00000000", created=_T0)
    new = make_record("20240301T000000000000-00000000", created=_T0 + 100)
    store.save(old)
    store.save(new)
    # the current build is not saved yet: its id (time-sorted) bounds the search
    assert store.find_previous(PROJ_A, before_id="20240201T000000000000-12345678") == old["id"]
    assert store.find_previous(PROJ_A, before_id=new_id()) == new["id"]


def test_find_previous_uses_index_only(store, monkeypatch):
    seed(store, 3)
    store.list_records()

    def boom(*a, **k):
        raise AssertionError("record file read")

    monkeypatch.setattr(Store, "_read_record", boom)
    assert store.find_previous(PROJ_A) == "r0002"
    assert len(store.list_records()[0]) == 3


# --------------------------------------------------------------------------
# schema versions


def _v0_to_v1(rec: dict) -> dict:
    rec = dict(rec)
    rec["schema"] = SCHEMA
    rec["complete"] = rec.pop("finished")
    rec["project"] = {"context": rec.pop("context"), "dockerfile": "Dockerfile",
                      "target": None, "platforms": []}
    return rec


def _v0_record(rid: str = "old1") -> dict:
    return {"schema": "cachewhy.record/v0", "id": rid, "created": _T0, "finished": True,
            "context": "/src/old", "exit_code": 0, "steps": []}


def test_schema_upgrade_hook(store, monkeypatch):
    seed(store, 1)
    store.path_for("old1").write_text(json.dumps(_v0_record()))
    # without an upgrader: a clear error, and skipped while listing
    with pytest.raises(StoreError, match="older cachewhy"):
        store.load("old1")
    assert len(store.list_records()[1]) == 1
    monkeypatch.setitem(st.UPGRADERS, "cachewhy.record/v0", _v0_to_v1)
    rec = store.load("old1")
    assert rec["schema"] == SCHEMA and rec["complete"] is True
    assert rec["project"]["context"] == "/src/old" and rec["steps"] == []
    entries, problems = store.list_records()
    assert problems == [] and [e["id"] for e in entries] == ["r0000", "old1"]
    assert store.find_previous(rec["project"]) == "old1"


def test_schema_upgrade_chain_and_failures(store, monkeypatch):
    rec = dict(_v0_record(), schema="cachewhy.record/vA")
    store.root.mkdir(parents=True)
    store.path_for("old1").write_text(json.dumps(rec))
    monkeypatch.setitem(st.UPGRADERS, "cachewhy.record/vA", lambda r: dict(r, schema="cachewhy.record/v0"))
    monkeypatch.setitem(st.UPGRADERS, "cachewhy.record/v0", _v0_to_v1)
    assert store.load("old1")["schema"] == SCHEMA
    # an upgrader failing on a damaged record is a StoreError, not a traceback
    store.path_for("old2").write_text(json.dumps({"schema": "cachewhy.record/v0", "id": "old2"}))
    with pytest.raises(StoreError, match="cannot upgrade from schema cachewhy.record/v0"):
        store.load("old2")
    # a loop is caught
    monkeypatch.setitem(st.UPGRADERS, "cachewhy.record/v0", lambda r: dict(r, schema="cachewhy.record/vA"))
    with pytest.raises(StoreError, match="upgrade loop"):
        store.load("old1")


def test_newer_schema(store):
    seed(store, 1)
    newer = dict(make_record("new1"), schema="cachewhy.record/v7", whatever={"x": 1})
    store.path_for("new1").write_text(json.dumps(newer))
    with pytest.raises(StoreError) as ei:
        store.load("new1")
    msg = str(ei.value)
    assert "new1.json was written by a newer cachewhy (schema cachewhy.record/v7)" in msg
    assert "\n" not in msg
    entries, problems = store.list_records()
    assert [e["id"] for e in entries] == ["r0000"]
    assert "newer cachewhy" in problems[0]


# --------------------------------------------------------------------------
# prune


def test_prune(store):
    ids = seed(store, 6)
    (store.root / ".tmp-old-00000000").write_text("x")
    os.utime(store.root / ".tmp-old-00000000", (0, 0))
    (store.root / ".tmp-fresh-00000000").write_text("x")
    assert store.prune(2) == ids[:4][::-1]
    assert [e["id"] for e in store.list_records()[0]] == ids[:3:-1]
    assert index_ids(store) == ids[4:]
    names = os.listdir(store.root)
    assert ".tmp-old-00000000" not in names and ".tmp-fresh-00000000" in names
    assert store.prune(10) == []
    assert store.prune(0) == ids[4:][::-1]
    assert store.list_records() == ([], [])
    with pytest.raises(ValueError):
        store.prune(-1)
    assert Store(store.root / "nope").prune(1) == []


# --------------------------------------------------------------------------
# scale


def test_list_10000_records(tmp_path, capsys):
    s = Store(tmp_path / "big", fsync=False)
    summary = {"hit_ratio": 0.83, "time_lost": 12.5,
               "top_cause": "COPY . /src: 3 files changed", "steps": 20, "misses": 4}
    projects = [dict(PROJ_A, context=f"/home/user/src/project-{i}") for i in range(7)]
    for i in range(10_000):
        s.save(make_record(created=_T0 + i, project=projects[i % 7],
                           steps=[{"n": j} for j in range(5)]), summary=summary)
    t0 = time.perf_counter()
    entries, problems = s.list_records(limit=None)
    elapsed = time.perf_counter() - t0
    assert len(entries) == 10_000 and problems == []
    assert entries[0]["created"] == _T0 + 9_999
    per_line = (s.index_path.stat().st_size + Path(f"{s.index_path}-wal").stat().st_size) / 10_000
    with capsys.disabled():
        print(f"\n[store] list_records(10,000): {elapsed * 1000:.1f} ms; "
              f"index {per_line:.0f} bytes/record")


# --------------------------------------------------------------------------
# a store written by an older cachewhy (testdata/store-v1-early/README.md)

EARLY = Path(__file__).resolve().parents[2] / "testdata" / "store-v1-early"
EARLY_IDS = ["20261128T064751446699-e3c3dca3", "20261128T064744030778-89009c0a"]  # newest first


def test_store_of_an_older_cachewhy(tmp_path):
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    root = tmp_path / "old"
    shutil.copytree(EARLY, root, ignore=shutil.ignore_patterns("project", "README.md"))
    index_before = (root / "index.jsonl").read_bytes()
    old = Store(root)
    entries, problems = old.list_records()
    assert problems == [] and [e["id"] for e in entries] == EARLY_IDS
    assert (root / "index.jsonl").read_bytes() == index_before  # its own index was read, nothing repaired
    newest = old.load("last")
    assert "other_lines" not in json.dumps(newest)  # settled into the current shape
    from_step = next(s for s in newest["steps"] if s["keyword"] == "FROM")
    assert from_step["also_at"] == [{"line": 8, "stage": "tools", "instruction": "FROM local/busybox:latest AS tools"}]
    assert all(d.startswith("sha256:") for _, d in newest["materials"])
    # the older record is the newest one's previous build
    assert old.find_previous(newest["project"], before_id=newest["id"]) == EARLY_IDS[1]
    assert old.find_previous(newest["project"]) == EARLY_IDS[0]

    def cachewhy(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "analyzer", *args, "--store", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)

    history = cachewhy("history", "--width", "200")
    assert history.returncode == 0, history.stderr
    assert all(i in history.stdout for i in EARLY_IDS) and "context-changed at Dockerfile:5" in history.stdout
    show = cachewhy("show", "last", "--width", "200")
    assert show.returncode == 0 and "Traceback" not in show.stderr
    assert f"compared with build {EARLY_IDS[1]}" in show.stdout
    assert "context changed: config.txt modified" in show.stdout
    assert "   8  tools    source          FROM local/busybox:latest AS tools" in show.stdout
    diff = cachewhy("diff", EARLY_IDS[1], EARLY_IDS[0], "--width", "200")
    assert diff.returncode == 0 and "context changed: config.txt modified" in diff.stdout


def test_an_index_busy_at_open_is_waited_for_not_replaced_by_one_in_memory(tmp_path, monkeypatch):
    """A second build opening index.db while the first is still making it can meet
    "database is locked" (both switch it to WAL): its row must still reach the file."""
    import sqlite3  # noqa: PLC0415

    from analyzer import index as ix  # noqa: PLC0415

    root = tmp_path / "records"
    Store(root).save(make_record())  # index.db exists
    real = ix.connect
    calls = []

    def busy_once(path, **kw):  # type: ignore[no-untyped-def]
        calls.append(str(path))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(path, **kw)

    monkeypatch.setattr(ix, "connect", busy_once)
    rec = make_record()
    Store(root).save(rec)
    monkeypatch.setattr(ix, "connect", real)
    assert rec["id"] in index_ids(Store(root))
    assert ":memory:" not in calls


def test_other_platforms_names_the_newest_build_of_the_same_project_for_other_platforms(store):
    amd = dict(PROJ_A, platforms=["linux/amd64"])
    i386 = dict(PROJ_A, platforms=["linux/386"])
    arm = dict(PROJ_A, platforms=["linux/arm64"])
    assert store.other_platforms(amd) is None  # nothing built yet
    store.save(make_record(project=i386, created=100.0))
    store.save(make_record(project=arm, created=200.0, complete=False))  # incomplete: never a baseline
    store.save(make_record(project=dict(i386, target="other"), created=300.0))  # another target
    assert store.other_platforms(amd) == ["linux/386"]
    assert store.other_platforms(i386) is None  # its own platforms are not "other"
    store.save(make_record(project=arm, created=400.0))
    assert store.other_platforms(amd) == ["linux/arm64"]
