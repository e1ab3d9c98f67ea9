"""The record travels with the build cache, on the real engine.

A CI job starts with an empty record store on a fresh runner: each test
exports the cache (and cachewhy's record with it) from one build, evicts
this test's own cache records from the engine (what a fresh runner lacks),
and builds again with `--cache-from` and a FRESH store, so the only baseline
there is the imported record. Registries are this test's own
`docker-registry` on 127.0.0.1 (tests/conftest.py `registry`).
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from tests.integration.test_causes import (
    CONTEXT_DF,
    CONTEXT_FILES,
    assert_cascade,
    assert_root,
    evict_cache,  # noqa: F401 - the fixture, used by name
    files_of,
    new_project,  # noqa: F401 - the fixture, used by name
)

pytestmark = pytest.mark.engine

RECORD_FILE = "cachewhy-record.json"

MODE_MIN_DF = ("FROM local/busybox:latest AS builder\n"
               "RUN echo NONCE > /nonce\n"
               "RUN echo built-NONCE > /out.txt\n"
               "\n"
               "FROM local/busybox:latest\n"
               "RUN echo NONCE final > /nonce\n"
               "COPY --from=builder /out.txt /\n"
               "RUN cat /out.txt\n")


def _cache(kind: str, tmp_path: Path, registry_addr: str | None, name: str) -> tuple[str, str]:
    """The --cache-to and --cache-from values of one cache of `kind`."""
    if kind == "registry":
        ref = f"{registry_addr}/cw/{name}:main"
        return f"type=registry,ref={ref}", f"type=registry,ref={ref}"
    folder = tmp_path / f"cache-{name}"
    return f"type=local,dest={folder}", f"type=local,src={folder}"


@pytest.fixture(params=["local", "registry"])
def cache_kind(request):
    """Each test once with type=local, once with type=registry (its own registry)."""
    if request.param == "registry":
        return "registry", request.getfixturevalue("registry")
    return "local", None


def _fresh_store(p) -> None:
    """A new runner: nothing in the record store."""
    p.store = p.root / f"store-fresh-{p.builds}"
    assert not p.store.exists()


def _notes(b) -> list[str]:
    return b.report.get("notes") or []


def _note_with(b, *words: str) -> str:
    found = [n for n in _notes(b) if all(w in n for w in words)]
    assert found, f"no note with {words}: {_notes(b)}\n{b.describe()}"
    return found[0]


# ------------------------------------------------------------------ round trips

def test_imported_record_explains_a_changed_file(new_project, tmp_path, cache_kind, evict_cache):
    kind, addr = cache_kind
    cache_to, cache_from = _cache(kind, tmp_path, addr, "ctx")
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    first = p.build("--cache-to", f"{cache_to},mode=max")
    first_id = first.report["build"]["ref"]
    if kind == "registry":
        assert f"record {first_id} pushed to {addr}/cw/ctx:main-cachewhy" in first.err, first.describe()
    else:
        written = json.loads((tmp_path / "cache-ctx" / RECORD_FILE).read_text())
        assert written["id"] == first_id
        assert (tmp_path / "cache-ctx" / "index.json").is_file()  # BuildKit's own export is there too
        assert not [f for f in (tmp_path / "cache-ctx").iterdir() if f.name.startswith(".cachewhy")]

    evict_cache(p.nonce)
    with open(p.path("src/a.txt"), "a") as f:
        f.write("more\n")
    _fresh_store(p)
    b = p.build("--cache-from", cache_from)

    assert b.report["previous"]["ref"] == first_id, b.describe()
    _note_with(b, f"compared with the record imported with --cache-from {cache_from}", first_id)
    assert b.step_at(2)["status"] == "cached", b.describe()  # from the imported cache
    root = assert_root(b, 3, "context-changed")
    assert files_of(root)["modified"] == ["src/a.txt"], root["cause"]
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1, b.describe()


def test_imported_mode_min_record_names_the_missing_stage(new_project, tmp_path, cache_kind, evict_cache):
    """mode=min exports the final stage's layers only: once a final-stage step
    before the COPY --from changes, the builder stage must be rebuilt, and the
    imported cache did not hold it."""
    kind, addr = cache_kind
    cache_to, cache_from = _cache(kind, tmp_path, addr, "min")
    p = new_project(MODE_MIN_DF)
    first = p.build("--cache-to", f"{cache_to},mode=min")
    evict_cache(p.nonce)
    p.write("Dockerfile", MODE_MIN_DF.replace("NONCE final", "NONCE final, edited"))
    _fresh_store(p)
    b = p.build("--cache-from", cache_from)

    assert b.report["previous"]["ref"] == first.report["build"]["ref"], b.describe()
    edited = assert_root(b, 6, "instruction-changed")
    builder = assert_root(b, 2, "cache-import-missing")
    assert cache_from in builder["cause"]["detail"], builder["cause"]
    assert sorted(m["line"] for m in b.roots) == [2, 6], b.describe()
    assert_cascade(b, 3, builder)
    assert set(b.miss_at(7)["caused_by"]) == {builder["id"], edited["id"]}, b.describe()


def test_imported_record_wins_over_the_local_store(new_project, tmp_path, evict_cache):
    """The local store has a newer build, but the cache imported is the other one's."""
    cache = tmp_path / "cache"
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    exported = p.build("--cache-to", f"type=local,dest={cache}")
    p.write("src/b.txt", "beta 2\n")
    local = p.build()  # newer, in the same store; not exported
    evict_cache(p.nonce)
    b = p.build("--cache-from", f"type=local,src={cache}")
    assert b.report["previous"]["ref"] == exported.report["build"]["ref"] != local.report["build"]["ref"]
    root = assert_root(b, 3, "context-changed")
    assert files_of(root)["modified"] == ["src/b.txt"], root["cause"]


def test_against_wins_over_the_imported_record(new_project, tmp_path):
    cache = tmp_path / "cache"
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    first = p.build()
    p.build("--cache-to", f"type=local,dest={cache}")
    b = p.build("--cache-from", f"type=local,src={cache}", "--against", first.report["build"]["ref"])
    assert b.report["previous"]["ref"] == first.report["build"]["ref"]
    assert not [n for n in _notes(b) if "--cache-from" in n], _notes(b)


# ------------------------------------------------------------------ --baseline

def test_baseline_file_from_another_store(new_project, tmp_path):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    first = p.build()
    first_id = first.report["build"]["ref"]
    handed = tmp_path / "artifact" / "record.json"  # what a CI job uploads and the next downloads
    handed.parent.mkdir()
    shutil.copy(p.store / f"{first_id}.json", handed)
    p.write("src/sub/c.txt", "gamma 2\n")
    _fresh_store(p)
    b = p.build("--baseline", str(handed))
    assert b.report["previous"]["ref"] == first_id, b.describe()
    _note_with(b, f"compared with the record given with --baseline {handed}", first_id)
    root = assert_root(b, 3, "context-changed")
    assert files_of(root)["modified"] == ["src/sub/c.txt"], root["cause"]
    assert len(b.roots) == 1, b.describe()


# ------------------------------------------------------------------ failures never fail the build

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


def test_registry_down_is_a_note(new_project):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    first = p.build()
    ref = f"127.0.0.1:{_closed_port()}/cw/down:main"
    # ignore-error: BuildKit's own export to the dead registry must not fail the build either
    b = p.build("--cache-from", f"type=registry,ref={ref}", "--cache-to", f"type=registry,ref={ref},ignore-error=true")
    assert b.rc == 0
    note = _note_with(b, f"--cache-from type=registry,ref={ref}", "cannot reach")
    assert f"compared with the previous build {first.report['build']['ref']} of the local store" in note
    assert b.report["previous"]["ref"] == first.report["build"]["ref"]
    assert f"--cache-to type=registry,ref={ref},ignore-error=true: the record was not exported" in b.err
    assert "the build is not affected" in b.err


def test_missing_artifact_is_a_note(new_project, registry):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    ref = f"{registry}/cw/empty:main"
    b = p.build("--cache-from", f"type=registry,ref={ref}")
    assert b.rc == 0
    _note_with(b, f"no record at {ref}-cachewhy", "none exported there yet", "no previous build to compare with")
    assert b.report["previous"] is None


def test_corrupt_record_in_a_cache_folder_is_a_note(new_project, tmp_path):
    cache = tmp_path / "cache"
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    first = p.build("--cache-to", f"type=local,dest={cache}")
    (cache / RECORD_FILE).write_text('{"schema": "cachewhy.record/v1", "id": ')  # a torn write
    b = p.build("--cache-from", f"type=local,src={cache}")
    assert b.rc == 0
    _note_with(b, "no record imported", "truncated", "of the local store")
    assert b.report["previous"]["ref"] == first.report["build"]["ref"]  # the local store's, as without import


def test_corrupt_baseline_file_keeps_a_failing_build_exit_code(new_project, tmp_path):
    p = new_project("FROM local/busybox:latest\nRUN echo NONCE && exit 3\n")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2, 3]\n")
    cache = tmp_path / "cache"
    b = p.build("--baseline", str(bad), "--cache-to", f"type=local,dest={cache}", rc=1)
    _note_with(b, f"--baseline {bad}", "not a record", "no previous build to compare with")
    assert not (cache / RECORD_FILE).exists()  # a failed build exports nothing


def test_missing_baseline_file_is_a_note(new_project, tmp_path):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    b = p.build("--baseline", str(tmp_path / "nowhere.json"))
    _note_with(b, f"--baseline {tmp_path / 'nowhere.json'}: no such file", "no previous build")
    assert b.report["previous"] is None


# ------------------------------------------------------------------ build args across stores

ARG_DF = ("FROM local/busybox:latest\n"
          "ARG V\n"
          "RUN echo NONCE $V > /v\n")


def test_build_arg_change_against_a_record_of_another_runner(new_project, tmp_path, monkeypatch):
    """Values are hashed with a key of the store; with the same CACHEWHY_HASH_KEY
    on both runners a changed build arg is named, without it cachewhy cannot
    tell and says so (never a false "PATH changed" for every step)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CACHEWHY_HASH_KEY", "shared by the CI jobs")
    p = new_project(ARG_DF)
    p.build("--build-arg", "V=one", "--cache-to", f"type=local,dest={cache}")
    _fresh_store(p)
    b = p.build("--build-arg", "V=two", "--cache-from", f"type=local,src={cache}")
    root = assert_root(b, 3, "build-arg-changed")
    assert "V changed" in root["cause"]["detail"] and "one" not in root["cause"]["detail"]
    assert not [n for n in _notes(b) if "hash key" in n], _notes(b)

    monkeypatch.delenv("CACHEWHY_HASH_KEY")
    _fresh_store(p)
    b = p.build("--build-arg", "V=three", "--cache-from", f"type=local,src={cache}")
    root = assert_root(b, 3, "unknown")
    assert "the value of V could not be compared" in root["cause"]["detail"], root["cause"]
    _note_with(b, "another store's hash key", "CACHEWHY_HASH_KEY")
    assert len(b.roots) == 1, b.describe()
