"""Unit tests for analyzer.snapshot: context snapshots, .dockerignore matching, diffs."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from analyzer import snapshot as snapmod
from analyzer.snapshot import (
    Entry,
    FileChanges,
    IgnoreMatcher,
    Snapshot,
    diff,
    parse_dockerignore,
    read_dockerignore,
    snapshot,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(root: Path, rel: str, data: str | bytes = "x", mode: int | None = None) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    p.write_bytes(data)
    if mode is not None:
        p.chmod(mode)
    return p


def settle() -> None:
    """Wait out the racy window so the next snapshot's hashes can be trusted later."""
    time.sleep(snapmod.RACY_WINDOW_NS / 1e9 + 0.03)


def files(s: Snapshot) -> set[str]:
    return {p for p, e in s.entries.items() if e.type == "file"}


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    write(root, "Dockerfile", "FROM scratch\nCOPY . /app\n")
    write(root, "requirements.txt", "flask\n")
    write(root, "src/app.py", "print('hi')\n")
    write(root, "src/util.py", "X = 1\n")
    write(root, "src/data.json", "{}\n")
    write(root, "docs/readme.md", "# docs\n")
    return root


# --------------------------------------------------------------------------
# what counts as a change


def test_content_edit_is_modified(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "src/app.py", "print('bye')\n")
    ch = diff(a, snapshot(ctx))
    assert ch.modified == ["src/app.py"] and not ch.added and not ch.removed
    assert ch.mode_changes == {}
    assert bool(ch) and ch.total() == 1


def test_same_size_edit_is_modified(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "src/app.py", "print('HI')\n")
    assert diff(a, snapshot(ctx)).modified == ["src/app.py"]


def test_touch_is_not_a_change(ctx: Path) -> None:
    a = snapshot(ctx)
    os.utime(ctx / "src/app.py", ns=(1_000_000_000, 1_000_000_000))
    b = snapshot(ctx, previous=a)
    assert b.entries["src/app.py"].mtime_ns == 1_000_000_000
    ch = diff(a, b)
    assert not ch and ch.total() == 0


@pytest.mark.skipif(not IS_ROOT, reason="chown to another uid needs root")
def test_chown_is_not_a_change(ctx: Path) -> None:
    a = snapshot(ctx)
    os.chown(ctx / "src/app.py", 1234, 1234)
    os.chown(ctx / "src", 1234, 1234)
    assert not diff(a, snapshot(ctx, previous=a))


def test_chmod_is_modified_and_a_mode_change(ctx: Path) -> None:
    (ctx / "src/app.py").chmod(0o644)
    a = snapshot(ctx)
    (ctx / "src/app.py").chmod(0o600)
    b = snapshot(ctx, previous=a)
    ch = diff(a, b)
    assert ch.modified == ["src/app.py"]
    assert ch.mode_changes == {"src/app.py": (0o644, 0o600)}


def test_chmod_exec_bit_and_setuid_bits_count(ctx: Path) -> None:
    (ctx / "src/app.py").chmod(0o644)
    a = snapshot(ctx)
    (ctx / "src/app.py").chmod(0o4755)
    ch = diff(a, snapshot(ctx))
    assert ch.mode_changes == {"src/app.py": (0o644, 0o4755)}


def test_dir_mode_change_is_modified_with_slash(ctx: Path) -> None:
    (ctx / "src").chmod(0o755)
    a = snapshot(ctx)
    (ctx / "src").chmod(0o700)
    ch = diff(a, snapshot(ctx))
    assert ch.modified == ["src/"]
    assert ch.mode_changes == {"src/": (0o755, 0o700)}
    (ctx / "src").chmod(0o755)


def test_content_and_mode_change_is_not_only_a_mode_change(ctx: Path) -> None:
    (ctx / "src/app.py").chmod(0o644)
    a = snapshot(ctx)
    write(ctx, "src/app.py", "changed", mode=0o600)
    ch = diff(a, snapshot(ctx))
    assert ch.modified == ["src/app.py"] and ch.mode_changes == {}


def test_add_and_remove(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "src/new.py", "new")
    write(ctx, "lib/deep/mod.py", "m")
    (ctx / "src/util.py").unlink()
    ch = diff(a, snapshot(ctx))
    assert ch.added == ["lib/deep/mod.py", "src/new.py"]  # non-empty dirs: files only
    assert ch.removed == ["src/util.py"]
    assert ch.modified == []
    assert ch.total() == 3


def test_removed_tree_lists_files_only(ctx: Path) -> None:
    a = snapshot(ctx)
    (ctx / "docs/readme.md").unlink()
    (ctx / "docs").rmdir()
    assert diff(a, snapshot(ctx)).removed == ["docs/readme.md"]


def test_empty_dir_added_and_removed(ctx: Path) -> None:
    a = snapshot(ctx)
    (ctx / "newdir").mkdir()
    (ctx / "src/empty").mkdir()
    b = snapshot(ctx)
    assert b.entries["newdir"].type == "dir" and b.entries["newdir"].size == 0
    assert diff(a, b).added == ["newdir/", "src/empty/"]
    (ctx / "newdir").rmdir()
    assert diff(b, snapshot(ctx)).removed == ["newdir/"]


def test_empty_dir_gaining_a_file_lists_the_file(ctx: Path) -> None:
    (ctx / "newdir").mkdir()
    a = snapshot(ctx)
    write(ctx, "newdir/f", "1")
    assert diff(a, snapshot(ctx)).added == ["newdir/f"]


def test_file_replaced_by_dir(ctx: Path) -> None:
    write(ctx, "thing", "a file")
    a = snapshot(ctx)
    (ctx / "thing").unlink()
    write(ctx, "thing/inner.txt", "now a dir")
    ch = diff(a, snapshot(ctx))
    assert ch.removed == ["thing"]
    assert ch.added == ["thing/inner.txt"]
    assert ch.modified == []


def test_file_replaced_by_empty_dir_and_back(ctx: Path) -> None:
    write(ctx, "thing", "a file")
    a = snapshot(ctx)
    (ctx / "thing").unlink()
    (ctx / "thing").mkdir()
    b = snapshot(ctx)
    ch = diff(a, b)
    assert (ch.removed, ch.added) == (["thing"], ["thing/"])
    ch = diff(b, a)
    assert (ch.removed, ch.added) == (["thing/"], ["thing"])


def test_symlink_target_change_is_modified(ctx: Path) -> None:
    os.symlink("src/app.py", ctx / "link")
    a = snapshot(ctx)
    assert a.entries["link"].type == "symlink" and a.entries["link"].target == "src/app.py"
    os.unlink(ctx / "link")
    os.symlink("src/util.py", ctx / "link")
    assert diff(a, snapshot(ctx)).modified == ["link"]


def test_file_replaced_by_symlink_is_modified(ctx: Path) -> None:
    a = snapshot(ctx)
    (ctx / "requirements.txt").unlink()
    os.symlink("src/app.py", ctx / "requirements.txt")
    ch = diff(a, snapshot(ctx))
    assert ch.modified == ["requirements.txt"] and ch.mode_changes == {}


def test_dockerfile_is_an_ordinary_context_file(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "Dockerfile", "FROM scratch\nCOPY . /srv\n")
    assert diff(a, snapshot(ctx), under=["."]).modified == ["Dockerfile"]


def test_dockerfile_and_dockerignore_can_be_ignored(ctx: Path) -> None:
    write(ctx, ".dockerignore", "Dockerfile\n.dockerignore\n")
    s = snapshot(ctx)
    assert "Dockerfile" not in s.entries and ".dockerignore" not in s.entries
    write(ctx, ".dockerignore", "docs\n")
    s = snapshot(ctx)
    assert "Dockerfile" in s.entries and ".dockerignore" in s.entries


def test_entry_same_content_ignores_stat_cache_keys() -> None:
    a = Entry("file", 0o644, 3, "0" * 64, None, 1, 2, 3)
    b = Entry("file", 0o644, 3, "0" * 64, None, 9, 9, 9)
    assert a.same_content(b) and a != b
    assert not a.same_content(Entry("file", 0o600, 3, "0" * 64, None, 1, 2, 3))
    assert not a.same_content(Entry("symlink", 0o644, 3, "0" * 64, None, 1, 2, 3))
    assert not Entry("symlink", 0o777, 0, None, "a").same_content(Entry("symlink", 0o777, 0, None, "b"))


def test_recorded_fields(ctx: Path) -> None:
    p = write(ctx, "bin/tool", b"\x00\x01binary", mode=0o755)
    s = snapshot(ctx)
    e = s.entries["bin/tool"]
    st = p.stat()
    assert (e.type, e.mode, e.size) == ("file", 0o755, 8)
    import hashlib

    assert e.sha256 == hashlib.sha256(b"\x00\x01binary").hexdigest()
    assert (e.mtime_ns, e.ctime_ns, e.inode) == (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    assert e.target is None and e.error is None
    dst = (ctx / "bin").stat()
    assert s.entries["bin"] == Entry("dir", dst.st_mode & 0o7777, 0, None, None,
                                     dst.st_mtime_ns, dst.st_ctime_ns, dst.st_ino)
    assert all(not k.startswith(("./", "/")) and not k.endswith("/") for k in s.entries)
    assert s.root == str(ctx) and s.follow is None
    assert s.hashed_files == len(files(s)) and s.reused == 0
    assert s.hashed_bytes == sum(e.size for e in s.entries.values() if e.type == "file")


def test_large_file_and_empty_file_hashes(ctx: Path) -> None:
    import hashlib

    big = os.urandom(3 * snapmod.CHUNK + 12345)
    write(ctx, "big.bin", big)
    write(ctx, "empty", b"")
    s = snapshot(ctx)
    assert s.entries["big.bin"].sha256 == hashlib.sha256(big).hexdigest()
    assert s.entries["empty"].sha256 == hashlib.sha256(b"").hexdigest()


def test_threaded_hashing_gives_the_same_hashes(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(40):
        write(ctx, f"many/f{i}", os.urandom(1000 + i * 5000))
    one = snapshot(ctx)
    monkeypatch.setattr(snapmod, "_THREAD_FILE_MIN", 50_000)
    monkeypatch.setattr(snapmod, "_THREAD_MIN_BYTES", 1)
    monkeypatch.setattr(snapmod, "HASH_THREADS", 3)
    monkeypatch.setattr(snapmod, "_usable_cpus", lambda: 4)
    two = snapshot(ctx)
    assert {p: e.sha256 for p, e in one.entries.items()} == {p: e.sha256 for p, e in two.entries.items()}


def test_short_reads_are_read_to_the_end(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    data = os.urandom(5000)
    write(ctx, "f.bin", data)
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 7)))
    buf = bytearray(snapmod.CHUNK)
    sha, err, n, _ = snapmod._hash_file(str(ctx / "f.bin"), buf, memoryview(buf))
    assert (sha, err, n) == (hashlib.sha256(data).hexdigest(), None, 5000)


def test_missing_context_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        snapshot(tmp_path / "nope")
    write(tmp_path, "afile", "x")
    with pytest.raises(NotADirectoryError):
        snapshot(tmp_path / "afile")


# --------------------------------------------------------------------------
# .dockerignore


def test_ignored_files_only_dir_is_an_empty_dir(ctx: Path) -> None:
    write(ctx, ".dockerignore", "logs/*.log\n")
    a = snapshot(ctx)
    assert "logs" not in a.entries
    write(ctx, "logs/a.log", "1")
    write(ctx, "logs/b.log", "2")
    b = snapshot(ctx)
    assert b.entries["logs"].type == "dir"
    assert not any(p.startswith("logs/") for p in b.entries)
    assert diff(a, b).added == ["logs/"]
    write(ctx, "logs/keep.txt", "3")
    assert diff(a, snapshot(ctx)).added == ["logs/keep.txt"]


def test_ignore_is_anchored_at_the_root() -> None:
    m = IgnoreMatcher(["foo"])
    assert m.excluded("foo") and m.excluded("foo/bar/baz")
    assert not m.excluded("a/foo") and not m.excluded("foobar")


def test_star_is_top_level_only_and_doublestar_is_any_depth() -> None:
    m = IgnoreMatcher(["*.log"])
    assert m.excluded("x.log")
    assert not m.excluded("a/x.log")
    m = IgnoreMatcher(["**/*.log"])
    assert m.excluded("x.log") and m.excluded("a/x.log") and m.excluded("a/b/c/x.log")
    assert not m.excluded("a/x.txt")
    m = IgnoreMatcher(["a/**/z"])
    assert m.excluded("a/z") and m.excluded("a/b/z") and m.excluded("a/b/c/z/w")
    assert not m.excluded("b/a/z")
    m = IgnoreMatcher(["src/**"])
    assert m.excluded("src/a") and m.excluded("src/a/b") and not m.excluded("src")
    assert IgnoreMatcher(["**"]).excluded("anything/at/all")


def test_go_match_syntax() -> None:
    m = IgnoreMatcher(["file?.txt", "[ab].md", "[^x]y.cfg", "lit\\*.txt", "a.b"])
    assert m.excluded("file1.txt") and not m.excluded("file12.txt")
    assert m.excluded("a.md") and m.excluded("b.md") and not m.excluded("c.md")
    assert m.excluded("zy.cfg") and not m.excluded("xy.cfg")
    assert m.excluded("lit*.txt") and not m.excluded("litX.txt")
    assert m.excluded("a.b") and not m.excluded("axb")  # '.' is literal
    assert IgnoreMatcher(["a+(b)"]).excluded("a+(b)")
    assert not IgnoreMatcher(["*"]).excluded("") and IgnoreMatcher(["*"]).excluded("x/y")


def test_exception_and_last_match_wins() -> None:
    m = IgnoreMatcher(["*.log", "!keep.log"])
    assert m.excluded("a.log") and not m.excluded("keep.log")
    m = IgnoreMatcher(["!keep.log", "*.log"])  # the later pattern wins
    assert m.excluded("keep.log")
    m = IgnoreMatcher(["*", "!src", "src/*.tmp"])
    assert m.excluded("README") and not m.excluded("src") and not m.excluded("src/a.py")
    assert m.excluded("src/a.tmp")


def test_leading_slash_and_cleaning() -> None:
    m = IgnoreMatcher(["/abs", "./dot/../x", "trail/"])
    assert m.excluded("abs") and m.excluded("abs/child") and not m.excluded("a/abs")
    assert m.excluded("x") and m.excluded("trail/f")
    assert IgnoreMatcher(["/abs"]).excluded("/abs")  # leading '/' of the path is dropped too


def test_dir_pattern_excludes_the_whole_tree(ctx: Path) -> None:
    write(ctx, "node_modules/pkg/index.js", "x")
    write(ctx, "node_modules/.bin/tool", "x")
    write(ctx, "a/node_modules/kept.js", "x")
    s = snapshot(ctx, excludes=["node_modules"])
    assert not any(p == "node_modules" or p.startswith("node_modules/") for p in s.entries)
    assert "a/node_modules/kept.js" in s.entries
    m = IgnoreMatcher(["node_modules"])
    assert not m.may_include_below("node_modules")
    assert m.may_include_below("src")


def test_exception_below_an_excluded_dir_reincludes(ctx: Path) -> None:
    write(ctx, "build/keep/me.txt", "k")
    write(ctx, "build/other.o", "o")
    write(ctx, "build/keep2.txt", "k2")
    m = IgnoreMatcher(["build", "!build/keep"])
    assert m.excluded("build") and m.excluded("build/other.o")
    assert not m.excluded("build/keep") and not m.excluded("build/keep/me.txt")
    assert m.may_include_below("build") and m.may_include_below("src")
    s = snapshot(ctx, excludes=["build", "!build/keep"])
    assert s.entries["build"].type == "dir"  # recorded because something below is
    assert "build/keep/me.txt" in s.entries and "build/keep" in s.entries
    assert "build/other.o" not in s.entries and "build/keep2.txt" not in s.entries


def test_excluded_dir_walked_for_exceptions_but_nothing_matches_is_not_recorded(ctx: Path) -> None:
    write(ctx, "build/other.o", "o")
    s = snapshot(ctx, excludes=["build", "!build/keep"])
    assert "build" not in s.entries


def test_wildcard_exception_anywhere(ctx: Path) -> None:
    write(ctx, "vendor/a/important.txt", "i")
    write(ctx, "vendor/a/junk.bin", "j")
    s = snapshot(ctx, excludes=["vendor", "!**/important.txt"])
    assert "vendor/a/important.txt" in s.entries and "vendor/a" in s.entries
    assert "vendor/a/junk.bin" not in s.entries


@pytest.fixture(params=["fd", "path"])
def scan_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with directories listed through fds (the default on Linux) and by path."""
    if request.param == "fd" and not snapmod._SCANDIR_FD:
        pytest.skip("os.scandir does not take fds here")
    monkeypatch.setattr(snapmod, "_SCANDIR_FD", request.param == "fd")
    return request.param


def spy_dir_opens(monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> list[str]:
    """Record (and optionally fail) every directory the walk lists, in either mode."""
    seen: list[str] = []
    real_open, real_scandir = os.open, os.scandir

    def check(path: str) -> None:
        seen.append(path)
        if fail is not None and path.endswith("/" + fail):
            raise PermissionError(13, "Permission denied", path)

    def fake_open(path, flags, *a, **kw):  # type: ignore[no-untyped-def]
        if flags & getattr(os, "O_DIRECTORY", 0):
            check(os.fspath(path))
        return real_open(path, flags, *a, **kw)

    def fake_scandir(path="."):  # type: ignore[no-untyped-def]
        if not isinstance(path, int):
            check(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "scandir", fake_scandir)
    return seen


def test_excluded_subtree_is_not_walked(ctx: Path, monkeypatch: pytest.MonkeyPatch, scan_mode: str) -> None:
    write(ctx, "big/x/y/z", "z")
    seen = spy_dir_opens(monkeypatch)
    s = snapshot(ctx, excludes=["big"])
    assert any(p.endswith("/src") for p in seen)
    assert not any("/big" in p for p in seen)
    assert "src/app.py" in s.entries and "big" not in s.entries


def test_unfollowed_subtree_is_not_walked(ctx: Path, monkeypatch: pytest.MonkeyPatch, scan_mode: str) -> None:
    write(ctx, "big/x/y/z", "z")
    seen = spy_dir_opens(monkeypatch)
    snapshot(ctx, follow=["src/app.py"])
    assert not any("/big" in p or "/docs" in p for p in seen)


def test_may_include_below() -> None:
    m = IgnoreMatcher(["a", "!a/b/c"])
    assert m.may_include_below("a") and m.may_include_below("a/b")
    assert not m.may_include_below("a/x")
    m = IgnoreMatcher(["!a/b", "a"])  # the exception comes first: nothing comes back
    assert not m.may_include_below("a")
    assert IgnoreMatcher([]).may_include_below("anything")


def test_bad_patterns_raise() -> None:
    with pytest.raises(ValueError):
        IgnoreMatcher(["!"])
    with pytest.raises(ValueError):
        IgnoreMatcher(["[abc"])
    with pytest.raises(ValueError):
        IgnoreMatcher(["trailing\\"])


def test_parse_dockerignore() -> None:
    text = ("\ufeff# comment\n"
            "\n"
            "  node_modules  \r\n"
            "   # not a comment: only column 0\n"
            "!  keep.log\n"
            "/abs/./x/../y\n"
            "dir/\n"
            "*.log\n")
    assert parse_dockerignore(text) == [
        "node_modules", "# not a comment: only column 0", "!keep.log", "abs/y", "dir", "*.log"]


def test_read_dockerignore_precedence(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, "Dockerfile", "FROM scratch\n")
    assert read_dockerignore(ctx) == []
    write(ctx, ".dockerignore", "from-context\n")
    assert read_dockerignore(ctx) == ["from-context"]
    assert read_dockerignore(ctx, ctx / "Dockerfile") == ["from-context"]
    write(ctx, "Dockerfile.dockerignore", "from-dockerfile\n")
    assert read_dockerignore(ctx, ctx / "Dockerfile") == ["from-dockerfile"]
    assert read_dockerignore(ctx) == ["from-context"]
    other = tmp_path / "elsewhere"
    write(other, "app.Dockerfile", "FROM scratch\n")
    write(other, "app.Dockerfile.dockerignore", "!x\nsecret\n")
    assert read_dockerignore(ctx, other / "app.Dockerfile") == ["!x", "secret"]
    assert read_dockerignore(ctx, "-") == ["from-context"]


def test_read_dockerignore_relative_dockerfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, "docker/Dockerfile.dockerignore", "a\n")
    write(ctx, "docker/Dockerfile", "FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    assert read_dockerignore(ctx, "docker/Dockerfile") == ["a"]  # falls back to the context
    assert read_dockerignore(ctx, "ctx/docker/Dockerfile") == ["a"]  # from the cwd


def test_snapshot_reads_the_dockerfile_ignore(ctx: Path) -> None:
    write(ctx, ".dockerignore", "docs\n")
    write(ctx, "Dockerfile.dockerignore", "src\n")
    s = snapshot(ctx, dockerfile=ctx / "Dockerfile")
    assert "docs/readme.md" in s.entries and "src" not in s.entries
    assert s.excludes == ["src"]
    s = snapshot(ctx)
    assert "docs" not in s.entries and "src/app.py" in s.entries and s.excludes == ["docs"]
    s = snapshot(ctx, excludes=[])
    assert "docs" in s.entries and "src" in s.entries


# --------------------------------------------------------------------------
# follow paths


def test_follow_paths_limit_what_is_read(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(ctx, "huge/blob.bin", b"\0" * 100_000)
    opened: list[str] = []
    real = snapmod._hash_file

    def spy(full, buf, view):  # type: ignore[no-untyped-def]
        opened.append(full)
        return real(full, buf, view)

    monkeypatch.setattr(snapmod, "_hash_file", spy)
    s = snapshot(ctx, follow=["requirements.txt", "src"])
    assert files(s) == {"requirements.txt", "src/app.py", "src/util.py", "src/data.json"}
    assert s.hashed_files == 4 and len(opened) == 4
    assert not any("blob" in p or "Dockerfile" in p for p in opened)
    assert s.entries["src"].type == "dir"
    assert "huge" not in s.entries and "docs" not in s.entries
    assert s.follow == ["requirements.txt", "src"]


def test_follow_path_parents_are_recorded_as_dirs(ctx: Path) -> None:
    write(ctx, "a/b/c/file.txt", "f")
    write(ctx, "a/b/other.txt", "o")
    s = snapshot(ctx, follow=["a/b/c/file.txt"])
    assert set(s.entries) == {"a", "a/b", "a/b/c", "a/b/c/file.txt"}
    assert all(s.entries[d].type == "dir" for d in ("a", "a/b", "a/b/c"))
    assert s.hashed_files == 1


def test_follow_path_that_does_not_exist_records_nothing(ctx: Path) -> None:
    s = snapshot(ctx, follow=["nope/missing.txt"])
    assert s.entries == {}
    assert snapshot(ctx, follow=[]).entries == {}


def test_follow_dot_is_the_whole_context(ctx: Path) -> None:
    assert set(snapshot(ctx, follow=["."]).entries) == set(snapshot(ctx).entries)
    assert set(snapshot(ctx, follow=["/"]).entries) == set(snapshot(ctx).entries)


def test_wildcard_follow_paths(ctx: Path) -> None:
    write(ctx, "notes.txt", "n")
    write(ctx, "sub/deep.txt", "d")
    s = snapshot(ctx, follow=["*.txt"])
    assert files(s) == {"requirements.txt", "notes.txt"}
    s = snapshot(ctx, follow=["src/*.py"])
    assert files(s) == {"src/app.py", "src/util.py"}
    assert s.entries["src"].type == "dir"
    s = snapshot(ctx, follow=["./src/app.py", "/docs"])
    assert files(s) == {"src/app.py", "docs/readme.md"}


def test_follow_and_excludes_combine(ctx: Path) -> None:
    s = snapshot(ctx, excludes=["src/*.json"], follow=["src"])
    assert files(s) == {"src/app.py", "src/util.py"}


def test_follow_through_a_symlink_adds_its_target(ctx: Path) -> None:
    write(ctx, "real/conf.ini", "c")
    os.symlink("real", ctx / "conf")
    write(ctx, "vendor/lib.py", "v")
    os.symlink("/vendor/lib.py", ctx / "lib.py")  # absolute: inside the context
    s = snapshot(ctx, follow=["conf/conf.ini", "lib.py"])
    assert s.entries["conf"].type == "symlink"
    assert "real/conf.ini" in s.entries and "vendor/lib.py" in s.entries
    assert "docs" not in s.entries


# --------------------------------------------------------------------------
# symlinks, special files, unreadable files


def test_symlink_outside_the_context_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tmp_path / "ctx"
    secret = write(tmp_path, "outside/secret.txt", "do not read")
    write(ctx, "a.txt", "a")
    os.symlink("../outside/secret.txt", ctx / "escape")
    os.symlink(str(tmp_path / "outside"), ctx / "escape_dir")
    opened: list[str] = []
    real = snapmod._hash_file
    monkeypatch.setattr(snapmod, "_hash_file",
                        lambda full, b, v: (opened.append(full), real(full, b, v))[1])
    for follow in (None, ["escape", "escape_dir/secret.txt"]):
        s = snapshot(ctx, follow=follow)
        assert s.entries["escape"] == Entry("symlink", s.entries["escape"].mode, 0, None,
                                            "../outside/secret.txt", s.entries["escape"].mtime_ns,
                                            s.entries["escape"].ctime_ns, s.entries["escape"].inode)
        assert s.entries["escape_dir"].type == "symlink"
        assert not any(p.startswith("escape_dir/") for p in s.entries)
    assert str(secret) not in opened
    assert opened and all(p.startswith(str(ctx) + os.sep) for p in opened)


def test_symlink_to_dir_inside_is_not_walked(ctx: Path) -> None:
    os.symlink("src", ctx / "srclink")
    s = snapshot(ctx)
    assert s.entries["srclink"].type == "symlink"
    assert not any(p.startswith("srclink/") for p in s.entries)


def test_fifo_is_recorded_as_other_and_does_not_block(ctx: Path) -> None:
    os.mkfifo(ctx / "pipe")
    result: list[Snapshot] = []
    t = threading.Thread(target=lambda: result.append(snapshot(ctx)), daemon=True)
    t.start()
    t.join(timeout=20)
    assert not t.is_alive(), "snapshot blocked on a FIFO"
    e = result[0].entries["pipe"]
    assert e.type == "other" and e.sha256 is None and e.size == 0


def test_hash_file_refuses_fifo_and_symlink(ctx: Path) -> None:
    os.mkfifo(ctx / "pipe")
    os.symlink("src/app.py", ctx / "link")
    buf = bytearray(snapmod.CHUNK)
    sha, err, n, _ = snapmod._hash_file(str(ctx / "pipe"), buf, memoryview(buf))
    assert sha is None and err and n == 0
    sha, err, n, _ = snapmod._hash_file(str(ctx / "link"), buf, memoryview(buf))  # O_NOFOLLOW
    assert sha is None and err


def test_unreadable_file_is_recorded_not_raised(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = str(ctx / "src/app.py")
    real_open = os.open

    def fake_open(path, flags, *a, **kw):  # type: ignore[no-untyped-def]
        if os.fspath(path) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    s = snapshot(ctx)
    e = s.entries["src/app.py"]
    assert e.type == "file" and e.sha256 is None and "Permission" in (e.error or "")
    assert s.errors == {"src/app.py": e.error}
    assert s.entries["src/util.py"].sha256 is not None
    # an unreadable entry is never trusted by the stat cache
    monkeypatch.setattr(os, "open", real_open)
    t = snapshot(ctx, previous=s)
    assert t.entries["src/app.py"].sha256 is not None and t.entries["src/app.py"].error is None


@pytest.mark.skipif(IS_ROOT, reason="root can read a mode-000 file")
def test_unreadable_file_chmod_000(ctx: Path) -> None:
    (ctx / "src/app.py").chmod(0)
    try:
        s = snapshot(ctx)
        assert s.entries["src/app.py"].sha256 is None and s.entries["src/app.py"].error
        assert s.entries["src/app.py"].mode == 0
    finally:
        (ctx / "src/app.py").chmod(0o644)


@pytest.mark.skipif(IS_ROOT, reason="root can list a mode-000 directory")
def test_unreadable_dir_is_recorded_not_raised(ctx: Path) -> None:
    (ctx / "docs").chmod(0)
    try:
        s = snapshot(ctx)
        assert s.entries["docs"].error
    finally:
        (ctx / "docs").chmod(0o755)


def test_unreadable_dir_is_recorded_not_raised_simulated(ctx: Path, monkeypatch: pytest.MonkeyPatch,
                                                         scan_mode: str) -> None:
    spy_dir_opens(monkeypatch, fail="docs")
    s = snapshot(ctx)
    assert s.entries["docs"].type == "dir" and "Permission" in (s.entries["docs"].error or "")
    assert "src/app.py" in s.entries and "docs/readme.md" not in s.entries


def test_walk_modes_agree(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.symlink("src/app.py", ctx / "link")
    os.mkfifo(ctx / "pipe")
    write(ctx, "a/b/c.txt", "c")
    monkeypatch.setattr(snapmod, "_SCANDIR_FD", False)
    by_path = snapshot(ctx, excludes=["docs"])
    monkeypatch.setattr(snapmod, "_SCANDIR_FD", True)
    assert snapshot(ctx, excludes=["docs"]).entries == by_path.entries
    assert by_path.entries["link"].target == "src/app.py"


# --------------------------------------------------------------------------
# stat cache


def test_stat_cache_reuses_unchanged_files(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settle()
    a = snapshot(ctx)
    n = len(files(a))
    assert a.hashed_files == n and a.reused == 0

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("a file was read")

    monkeypatch.setattr(snapmod, "_hash_file", boom)
    b = snapshot(ctx, previous=a)
    assert b.reused == n and b.hashed_files == 0 and b.hashed_bytes == 0
    assert b.entries == a.entries
    assert not diff(a, b)


def test_stat_cache_after_json_round_trip(ctx: Path) -> None:
    settle()
    a = Snapshot.from_json(json.loads(json.dumps(snapshot(ctx).to_json())))
    b = snapshot(ctx, previous=a)
    assert b.reused == len(files(a)) and b.hashed_files == 0


def test_stat_cache_rehashes_only_changed_files(ctx: Path) -> None:
    settle()
    a = snapshot(ctx)
    write(ctx, "src/app.py", "different length content")
    b = snapshot(ctx, previous=a)
    assert b.hashed_files == 1 and b.reused == len(files(a)) - 1
    assert diff(a, b).modified == ["src/app.py"]


def test_same_size_same_mtime_different_content_is_detected(ctx: Path) -> None:
    p = ctx / "src/app.py"
    write(ctx, "src/app.py", "AAAA")
    os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    settle()
    a = snapshot(ctx)
    before = p.stat()
    with open(p, "r+b") as f:  # rewrite in place: same inode, same size
        f.write(b"BBBB")
    os.utime(p, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = p.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns
    b = snapshot(ctx, previous=a)
    assert b.hashed_files == 1
    assert diff(a, b).modified == ["src/app.py"]


def test_replaced_file_same_size_same_mtime_is_detected(ctx: Path) -> None:
    p = ctx / "src/app.py"
    write(ctx, "src/app.py", "AAAA")
    settle()
    a = snapshot(ctx)
    st = p.stat()
    tmp = write(ctx, "src/.app.py.tmp", "BBBB")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, p)  # editor-style save: new inode
    b = snapshot(ctx, previous=a)
    assert diff(a, b).modified == ["src/app.py"]


def test_racily_clean_entries_are_rehashed(ctx: Path) -> None:
    p = ctx / "src/app.py"
    st = p.stat()
    fake = Entry("file", st.st_mode & 0o7777, st.st_size, "f" * 64, None,
                 st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    # the previous snapshot started right after the file's ctime: not trusted
    prev = Snapshot(root=str(ctx), entries={"src/app.py": fake}, taken_ns=st.st_ctime_ns + 1000)
    s = snapshot(ctx, previous=prev)
    assert s.entries["src/app.py"].sha256 != "f" * 64 and s.reused == 0
    # long after: trusted (proves the cache really is used, without reading)
    prev.taken_ns = st.st_ctime_ns + 10 * snapmod.COARSE_RACY_WINDOW_NS
    s = snapshot(ctx, previous=prev)
    assert s.entries["src/app.py"].sha256 == "f" * 64 and s.reused == 1
    # no start time recorded: never trusted
    prev.taken_ns = 0
    assert snapshot(ctx, previous=prev).reused == 0


def test_stat_cache_key_includes_mode_inode_and_size(ctx: Path) -> None:
    p = ctx / "src/app.py"
    st = p.stat()
    base = {"type": "file", "mode": st.st_mode & 0o7777, "size": st.st_size, "sha256": "f" * 64,
            "target": None, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}
    late = st.st_ctime_ns + 10 * snapmod.COARSE_RACY_WINDOW_NS
    for key, value in (("mode", 0o600 if base["mode"] != 0o600 else 0o644), ("inode", st.st_ino + 1),
                       ("size", st.st_size + 1), ("mtime_ns", st.st_mtime_ns + 1)):
        prev = Snapshot(root=str(ctx), entries={"src/app.py": Entry(**{**base, key: value})}, taken_ns=late)
        assert snapshot(ctx, previous=prev).reused == 0, key


# --------------------------------------------------------------------------
# diff: sources, --include / --exclude


def test_diff_under_a_source(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "src/app.py", "edited")
    write(ctx, "docs/readme.md", "edited")
    write(ctx, "srcfoo", "not below src")
    b = snapshot(ctx)
    assert diff(a, b, under=["src"]).modified == ["src/app.py"]
    assert diff(a, b, under=["src"]).added == []
    assert diff(a, b, under=["/src"]).modified == ["src/app.py"]
    assert diff(a, b, under=["./src/"]).modified == ["src/app.py"]
    assert diff(a, b, under=["src/app.py"]).modified == ["src/app.py"]
    assert diff(a, b, under=["requirements.txt"]).total() == 0
    assert diff(a, b, under=["src", "docs"]).modified == ["docs/readme.md", "src/app.py"]
    for whole in (["."], [""], ["/"], None):
        ch = diff(a, b, under=whole)
        assert ch.modified == ["docs/readme.md", "src/app.py"] and ch.added == ["srcfoo"]


def test_diff_under_wildcards(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "src/app.py", "edited")
    write(ctx, "src/data.json", "edited")
    write(ctx, "src/new.py", "n")
    write(ctx, "src/pkg/mod.py", "deep: not matched by src/*.py")
    b = snapshot(ctx)
    ch = diff(a, b, under=["src/*.py"])
    assert ch.modified == ["src/app.py"] and ch.added == ["src/new.py"]
    ch = diff(a, b, under=["*.txt"])
    assert not ch
    ch = diff(a, b, under=["src/*"])
    assert ch.added == ["src/new.py", "src/pkg/mod.py"]  # a matched dir brings its contents


def test_diff_under_a_dir_source_mode(ctx: Path) -> None:
    (ctx / "src").chmod(0o755)
    a = snapshot(ctx)
    (ctx / "src").chmod(0o750)
    b = snapshot(ctx)
    assert diff(a, b, under=["src"]).modified == ["src/"]
    # "COPY src/ ..." hashes the contents, not the source dir's own header
    assert not diff(a, b, under=["src/"])
    (ctx / "src").chmod(0o755)


def test_diff_under_a_symlinked_source(ctx: Path) -> None:
    os.symlink("src", ctx / "code")
    a = snapshot(ctx)
    write(ctx, "src/app.py", "edited")
    b = snapshot(ctx)
    assert diff(a, b, under=["code"]).modified == ["src/app.py"]
    assert diff(a, b, under=["code/app.py"]).modified == ["src/app.py"]


def test_diff_include_exclude_relative_to_the_source(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "src/app.py", "edited")
    write(ctx, "src/data.json", "edited")
    write(ctx, "src/sub/x.json", "new")
    b = snapshot(ctx)
    ch = diff(a, b, under=["src"], exclude=["*.json"])
    assert ch.modified == ["src/app.py"] and ch.added == ["src/sub/x.json"]  # only top-level *.json
    ch = diff(a, b, under=["src"], exclude=["**/*.json"])
    assert ch.modified == ["src/app.py"] and ch.added == ["src/sub/"]  # copied as an empty dir
    ch = diff(a, b, under=["src"], include=["*.json"])
    assert ch.modified == ["src/data.json"] and ch.added == []
    ch = diff(a, b, include=["src/*.json"])  # no source: relative to the context
    assert ch.modified == ["src/data.json"]
    ch = diff(a, b, under=["src"], exclude=["*.json", "!data.json"])
    assert ch.modified == ["src/app.py", "src/data.json"]


def test_diff_empty_dir_after_exclude(ctx: Path) -> None:
    a = snapshot(ctx)
    write(ctx, "src/cache/x.tmp", "t")
    b = snapshot(ctx)
    assert diff(a, b, under=["src"], exclude=["cache/*.tmp"]).added == ["src/cache/"]


def test_diff_never_shows_excluded_paths(ctx: Path) -> None:
    write(ctx, ".dockerignore", "secret\n")
    a = snapshot(ctx)
    write(ctx, "secret/key", "k")
    write(ctx, "src/app.py", "edited")
    b = snapshot(ctx)
    ch = diff(a, b)
    assert ch.modified == ["src/app.py"] and ch.added == []


def test_filechanges_basics() -> None:
    ch = FileChanges()
    assert not ch and ch.total() == 0
    ch = FileChanges(added=["a"], modified=["b", "c"], removed=[], mode_changes={"c": (0o644, 0o755)})
    assert ch and ch.total() == 3


# --------------------------------------------------------------------------
# JSON


def test_json_round_trip(ctx: Path) -> None:
    os.symlink("src/app.py", ctx / "link")
    os.mkfifo(ctx / "pipe")
    (ctx / "empty").mkdir()
    s = snapshot(ctx, excludes=["docs", "!docs/keep"], follow=None)
    s.entries["src/app.py"] = Entry("file", 0o644, 1, None, None, 1, 2, 3, "PermissionError: denied")
    data = s.to_json()
    text = json.dumps(data)
    back = Snapshot.from_json(json.loads(text))
    assert back == s
    assert back.entries["link"].target == "src/app.py"
    assert back.errors == {"src/app.py": "PermissionError: denied"}
    assert data["v"] == 2 and data["root"] == str(ctx)
    rows = {}
    last = ""
    for row in data["entries"]:  # each path is the previous one's first `shared` characters + the rest
        last = last[:row[0]] + row[1]
        rows[last] = row
    assert list(rows) == sorted(s.entries)
    util = s.entries["src/util.py"]
    assert rows["src/util.py"][0] == len("src/")  # shares its folder with src/app.py
    assert rows["src/util.py"][2:] == ["f", util.mode, util.size, util.sha256, util.mtime_ns,
                                       util.ctime_ns - util.mtime_ns, util.inode]
    assert rows["link"][2] == "s" and rows["link"][9] == "src/app.py"
    assert rows["src/app.py"][9:] == [None, "PermissionError: denied"]
    f = snapshot(ctx, follow=["src"])
    assert Snapshot.from_json(f.to_json()).follow == ["src"]


def test_json_format_1_is_still_read(ctx: Path) -> None:
    s = snapshot(ctx)
    s.entries["src/app.py"] = Entry("file", 0o644, 1, None, None, 1, 2, 3, "PermissionError: denied")
    v1 = {"v": 1, "root": s.root, "excludes": s.excludes, "follow": s.follow, "taken_ns": s.taken_ns,
          "stats": {"hashed_bytes": s.hashed_bytes, "hashed_files": s.hashed_files, "reused": s.reused},
          "entries": {p: [e.type, e.mode, e.size, e.sha256, e.target, e.mtime_ns, e.ctime_ns, e.inode]
                      + ([e.error] if e.error is not None else []) for p, e in s.entries.items()}}
    assert Snapshot.from_json(json.loads(json.dumps(v1))) == s


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS refuses non-UTF-8 names")
def test_json_with_non_utf8_names_is_utf8_encodable(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    raw = os.path.join(os.fsencode(ctx), b"caf\xe9.txt")
    with open(raw, "wb") as f:
        f.write(b"x")
    os.symlink(b"caf\xe9.txt", os.path.join(os.fsencode(ctx), b"l\xffnk"))
    write(ctx, "ünïcode.txt", "u")
    s = snapshot(ctx)
    name = os.fsdecode(b"caf\xe9.txt")
    assert name in s.entries
    encoded = json.dumps(s.to_json(), ensure_ascii=False).encode("utf-8")  # must not raise
    back = Snapshot.from_json(json.loads(encoded.decode("utf-8")))
    assert back.entries == s.entries
    assert back.entries[os.fsdecode(b"l\xffnk")].target == name


@pytest.mark.parametrize("garbage", [
    None, [], "text", 3,
    {},
    {"v": 3, "root": "/x", "entries": []},
    {"v": 2, "root": "/x", "entries": {}},
    {"v": 2, "root": "/x", "entries": [[0, "a", "f", 420, 1, None, 0, 0]]},
    {"v": 2, "root": "/x", "entries": [[0, "a", "x", 420, 1, None, 0, 0, 0]]},
    {"v": 2, "root": "/x", "entries": [[3, "a", "f", 420, 1, None, 0, 0, 0]]},
    {"v": 2, "root": "/x", "entries": [["0", "a", "f", 420, 1, None, 0, 0, 0]]},
    {"v": 2, "root": "/x", "entries": [[0, "a", "f", 420, 1, None, 0, "0", 0]]},
    {"v": 2, "root": "/x", "entries": [[0, "/a", "f", 420, 1, None, 0, 0, 0]]},
    {"v": 2, "root": "/x", "entries": [[0, "a", "s", 511, 0, None, 0, 0, 0, 5]]},
    {"v": 1, "root": "", "entries": {}},
    {"v": 1, "root": "/x"},
    {"v": 1, "root": "/x", "entries": []},
    {"v": 1, "root": "/x", "entries": {"a": ["file", 420, 1, None, None, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"a": ["bogus", 420, 1, None, None, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"a": ["file", "420", 1, None, None, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"a": ["file", 420, -1, None, None, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"a": ["file", 420, 1, "xyz", None, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"a": ["file", 420, 1, None, None, 0, True, 0]}},
    {"v": 1, "root": "/x", "entries": {"a": ["symlink", 511, 0, None, 5, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"": ["file", 420, 1, None, None, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"/abs": ["file", 420, 1, None, None, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {"\x00!!": ["file", 420, 1, None, None, 0, 0, 0]}},
    {"v": 1, "root": "/x", "entries": {}, "excludes": "docs"},
    {"v": 1, "root": "/x", "entries": {}, "follow": [1]},
    {"v": 1, "root": "/x", "entries": {}, "stats": {"reused": -1}},
    {"v": 1, "root": "/x", "entries": {}, "taken_ns": "now"},
])
def test_from_json_rejects_garbage(garbage: object) -> None:
    with pytest.raises(ValueError):
        Snapshot.from_json(garbage)  # type: ignore[arg-type]


def test_from_json_minimal() -> None:
    s = Snapshot.from_json({"v": 1, "root": "/x", "entries": {"a": ["dir", 0o755, 0, None, None, 0, 0, 0]}})
    assert s.entries == {"a": Entry("dir", 0o755, 0)} and s.excludes == [] and s.follow is None


def test_stat_helpers_match_platform() -> None:
    assert stat.S_IMODE(0o104755) == 0o4755  # the mode we record keeps setuid & co


def test_named_contexts_that_are_folders_are_snapshotted_with_their_own_ignore_file(tmp_path):
    from analyzer.snapshot import named_context_dirs, snapshot_named  # noqa: PLC0415

    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "sub" / "a.txt").write_text("a\n")
    (extra / "sub" / "a.log").write_text("ignored\n")
    (extra / "other.txt").write_text("not read\n")
    (extra / ".dockerignore").write_text("**/*.log\n")
    dirs = named_context_dirs({"extra": str(extra), "img": "docker-image://alpine:3", "t": "target:base",
                               "web": "https://example.com/x.tar", "gone": str(tmp_path / "missing")})
    assert dirs == {"extra": extra}
    snaps, problems = snapshot_named(dirs, {"extra": ["sub"]})
    assert problems == []
    assert sorted(Snapshot.from_json(snaps["extra"]).entries) == ["sub", "sub/a.txt"]
    (extra / "sub" / "a.txt").write_text("b\n")
    changed, _ = snapshot_named(dirs, {"extra": ["sub"]}, previous=snaps)  # with the stat cache
    assert diff(Snapshot.from_json(snaps["extra"]), Snapshot.from_json(changed["extra"])).modified == ["sub/a.txt"]
    # a folder that went away is a note, not an error
    import shutil  # noqa: PLC0415

    shutil.rmtree(extra)
    none, problems = snapshot_named(dirs, {"extra": ["sub"]})
    assert none == {} and len(problems) == 1 and "build context extra" in problems[0]


def test_unchanged_resnapshot_shares_entries_and_diffs_empty(ctx: Path) -> None:
    a = snapshot(ctx)
    settle()
    b = snapshot(ctx, previous=snapshot(ctx))
    assert b.entries["src/app.py"] is not None and not diff(a, b) and not diff(a, b, under=["src"])


@pytest.mark.parametrize("change, want", [
    (lambda c: (c / "src").chmod(0o700), ("modified", ["src/"])),
    (lambda c: (c / "empty").mkdir(), ("added", ["empty/"])),
    (lambda c: (c / "docs/readme.md").unlink(), ("removed", ["docs/readme.md"])),
    (lambda c: (c / "src/util.py").write_text("X = 2\n"), ("modified", ["src/util.py"])),
])
def test_a_change_behind_shared_entries_is_still_found(ctx: Path, change, want) -> None:
    """diff's shortcut for identical snapshots never hides one changed path."""
    (ctx / "src").chmod(0o755)
    a = snapshot(ctx)
    settle()
    change(ctx)
    b = snapshot(ctx, previous=a)
    assert getattr(diff(a, b), want[0]) == want[1]
    (ctx / "src").chmod(0o755)
