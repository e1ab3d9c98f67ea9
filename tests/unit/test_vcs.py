"""Context files read from git revisions (analyzer/vcs.py), on real git repositories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from analyzer.snapshot import Snapshot, diff
from analyzer.vcs import GitContexts, contexts_from_git, revision_of, tree_snapshot

pytestmark = pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                                reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e")
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _attrs(commit: str, context: str = "app") -> dict[str, str]:
    return {"vcs:revision": commit, "vcs:source": "https://example.com/x.git", "vcs:localdir:context": context,
            "vcs:localdir:dockerfile": context, "filename": "Dockerfile"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    (r / "app" / "src").mkdir(parents=True)
    _git(r.parent, "init", "-q", str(r))
    (r / "app" / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (r / "app" / "src" / "main.py").write_text("print(1)\n")
    (r / "app" / "run.sh").write_text("#!/bin/sh\n")
    (r / "app" / "run.sh").chmod(0o755)
    (r / "app" / "build.log").write_text("noise\n")
    (r / "app" / ".dockerignore").write_text("*.log\n")
    os.symlink("src/main.py", r / "app" / "entry")
    (r / "README").write_text("outside the context\n")
    return r


def test_a_revision_of_the_context_folder_as_buildkit_would_send_it(repo: Path):
    commit = _commit(repo, "one")
    snap = tree_snapshot(str(repo), revision_of(_attrs(commit)))
    assert set(snap.entries) == {"Dockerfile", "src", "src/main.py", "run.sh", "entry", ".dockerignore"}
    assert snap.entries["run.sh"].mode == 0o755 and snap.entries["src/main.py"].mode == 0o644
    assert snap.entries["entry"].type == "symlink" and snap.entries["entry"].target == "src/main.py"
    assert snap.entries["src"].type == "dir"
    assert snap.excludes == ["*.log"]  # build.log is ignored, README lies outside the context


def test_the_files_changed_between_two_commits_are_named(repo: Path):
    first = _commit(repo, "one")
    (repo / "app" / "src" / "main.py").write_text("print(2)\n")
    (repo / "app" / "src" / "util.py").write_text("x = 1\n")
    (repo / "app" / "run.sh").unlink()
    (repo / "app" / "build.log").write_text("more noise\n")  # ignored: never named
    (repo / "README").write_text("changed, but outside the context\n")
    second = _commit(repo, "two")
    got = contexts_from_git(_attrs(first), _attrs(second), str(repo))
    assert got.before is not None and got.now is not None, got.note
    assert got.now["git"] == {"revision": second, "dirty": False}
    assert first[:7] in got.note and second[:7] in got.note and "uncommitted changes are not seen" in got.note
    changes = diff(Snapshot.from_json(got.before), Snapshot.from_json(got.now))
    assert changes.modified == ["src/main.py"]
    assert changes.added == ["src/util.py"]
    assert changes.removed == ["run.sh"]


def test_a_context_at_the_top_of_the_checkout_holds_git_s_own_folder(repo: Path):
    first = _commit(repo, "one")
    (repo / "README").write_text("two\n")
    second = _commit(repo, "two")
    got = contexts_from_git(_attrs(first, "."), _attrs(second, "."), str(repo))
    changes = diff(Snapshot.from_json(got.before), Snapshot.from_json(got.now))
    assert ".git" in changes.modified and "README" in changes.modified
    (repo / ".dockerignore").write_text(".git\n")
    third = _commit(repo, "three")
    fourth_file = repo / "README"
    fourth_file.write_text("four\n")
    fourth = _commit(repo, "four")
    got = contexts_from_git(_attrs(third, "."), _attrs(fourth, "."), str(repo))
    changes = diff(Snapshot.from_json(got.before), Snapshot.from_json(got.now))
    assert changes.modified == ["README"]  # .git is ignored now


def test_what_git_cannot_tell_is_said(repo: Path, tmp_path: Path):
    commit = _commit(repo, "one")
    same = contexts_from_git(_attrs(commit), _attrs(commit), str(repo))
    assert same.now is None and f"both builds are of git revision {commit[:7]}" in same.note
    assert "uncommitted" in same.note
    missing = contexts_from_git(_attrs("1" * 40), _attrs(commit), str(repo))
    assert missing.now is None and "does not hold revision 1111111" in missing.note
    elsewhere = tmp_path / "not-a-checkout"
    elsewhere.mkdir()
    outside = contexts_from_git(_attrs("1" * 40), _attrs(commit), str(elsewhere))
    assert outside.now is None and "is not a git checkout" in outside.note
    assert contexts_from_git({}, {}, str(repo)) == GitContexts()  # no checkout at all: nothing to say
    none = contexts_from_git({}, _attrs(commit), str(repo))
    assert none.now is None and "no git revision recorded for the previous build" in none.note


def test_a_dirty_revision_is_read_as_its_commit(repo: Path):
    commit = _commit(repo, "one")
    rev = revision_of(_attrs(commit + "-dirty"))
    assert rev.commit == commit and rev.dirty and rev.short == commit[:7] + "-dirty"
