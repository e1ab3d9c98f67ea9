"""Context files named from git, for builds whose context was never snapshotted.

BuildKit keeps no copy of a build's context files. For a build that cachewhy
did not run (`cachewhy explain` of a plain `docker buildx build`), the only
trace of them is what buildx attaches when the context is a git checkout:
`vcs:source`, `vcs:revision` (the commit, with `-dirty` only when
BUILDX_GIT_CHECK_DIRTY=1 asked for the check) and `vcs:localdir:context`
(the context folder inside the repository).

When two builds carry different revisions and a local checkout holds both
commits, the context at each revision is read from git's trees into a
:class:`~analyzer.snapshot.Snapshot` (git blob ids stand in for content
hashes; the revision's `.dockerignore` applies), so the usual snapshot diff
names the changed files. Only committed content is seen: uncommitted edits
made before either build are invisible, and the explanation says so.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from typing import Mapping

from analyzer.snapshot import Entry, IgnoreMatcher, Snapshot, parse_dockerignore

#: a git call that takes longer than this is given up (a huge repository on a slow disk)
GIT_TIMEOUT_S = 60
_DIRTY = "-dirty"


@dataclass(frozen=True)
class Revision:
    """What buildx recorded of a build's git checkout."""

    source: str
    commit: str  # without buildx's "-dirty" suffix
    dirty: bool  # True only when BUILDX_GIT_CHECK_DIRTY=1 found uncommitted changes
    context_dir: str  # the context folder inside the repository, "" for its top
    dockerfile_dir: str
    dockerfile_name: str

    @property
    def short(self) -> str:
        return self.commit[:7] + (_DIRTY if self.dirty else "")


def revision_of(attrs: Mapping[str, str]) -> Revision | None:
    """The git revision a build's frontend attributes name, or None."""
    rev = attrs.get("vcs:revision") or ""
    if not rev:
        return None
    dirty = rev.endswith(_DIRTY)
    commit = rev[: -len(_DIRTY)] if dirty else rev
    return Revision(source=attrs.get("vcs:source") or "", commit=commit, dirty=dirty,
                    context_dir=_clean_dir(attrs.get("vcs:localdir:context")),
                    dockerfile_dir=_clean_dir(attrs.get("vcs:localdir:dockerfile")),
                    dockerfile_name=attrs.get("filename") or "Dockerfile")


def _clean_dir(d: str | None) -> str:
    d = (d or "").strip().strip("/")
    return "" if d in ("", ".") else d


def _git(repo: str, *args: str, text: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", repo, *args], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=text, timeout=GIT_TIMEOUT_S, check=False)


def find_checkout(where: str) -> str | None:
    """The top folder of the git checkout holding `where`, or None."""
    try:
        res = _git(where, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def has_commit(repo: str, commit: str) -> bool:
    try:
        return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class GitError(Exception):
    """git could not read a tree (the message says which and why)."""


def _show(repo: str, commit: str, path: str) -> str | None:
    res = _git(repo, "show", f"{commit}:{path}", text=False)
    return res.stdout.decode("utf-8", "surrogateescape") if res.returncode == 0 else None


def ignore_patterns(repo: str, rev: Revision) -> list[str]:
    """The revision's ignore file: `<Dockerfile>.dockerignore` first, then the
    context's `.dockerignore`, as buildx picks them."""
    df = "/".join(x for x in (rev.dockerfile_dir, rev.dockerfile_name + ".dockerignore") if x)
    ctx = "/".join(x for x in (rev.context_dir, ".dockerignore") if x)
    for path in (df, ctx):
        text = _show(repo, rev.commit, path)
        if text is not None:
            return parse_dockerignore(text)
    return []


_MODES = {"100644": ("file", 0o644), "100755": ("file", 0o755), "120000": ("symlink", 0o777),
          "040000": ("dir", 0o755), "160000": ("other", 0o755)}


def tree_snapshot(repo: str, rev: Revision) -> Snapshot:
    """The context folder at `rev.commit`, as a Snapshot of git's objects."""
    prefix = rev.context_dir + "/" if rev.context_dir else ""
    args = ["ls-tree", "-r", "-t", "-l", "-z", "--full-tree", rev.commit]
    if prefix:
        args += ["--", prefix]
    res = _git(repo, *args, text=False)
    if res.returncode != 0:
        raise GitError(f"git ls-tree {rev.short}: {res.stderr.decode(errors='replace').strip() or 'failed'}")
    excludes = ignore_patterns(repo, rev)
    matcher = IgnoreMatcher(excludes)
    entries: dict[str, Entry] = {}
    links: dict[str, str] = {}  # path -> blob id of each symlink (its target is the blob)
    for raw in res.stdout.split(b"\0"):
        if not raw:
            continue
        meta, _, path_b = raw.partition(b"\t")
        mode, _kind, oid, size = meta.decode().split(maxsplit=3)
        path = path_b.decode("utf-8", "surrogateescape")[len(prefix):]
        if not path or (matcher and matcher.excluded(path)):
            continue
        kind, perm = _MODES.get(mode, ("other", 0o644))
        if kind == "symlink":
            links[path] = oid
        # the blob id names the content; hashed to the 64 hex digits a snapshot holds
        entries[path] = Entry(type=kind, mode=perm, size=int(size) if kind == "file" else 0,
                              sha256=hashlib.sha256(oid.encode()).hexdigest() if kind == "file" else None)
    for path, target in _blob_texts(repo, links).items():
        entries[path] = Entry(type="symlink", mode=0o777, size=0, target=target)
    if not rev.context_dir and not (matcher and matcher.excluded(".git")):
        # the checkout's own .git folder is sent with the context unless ignored,
        # and every commit changes it: one entry that differs between commits
        entries[".git"] = Entry(type="other", mode=0o755, size=0,
                                sha256=hashlib.sha256(f"commit {rev.commit}".encode()).hexdigest())
    return Snapshot(root=f"git {rev.commit}:{rev.context_dir or '.'}", entries=entries, excludes=excludes)


def _blob_texts(repo: str, blobs: dict[str, str]) -> dict[str, str]:
    """path -> content of each (small) blob, read in one `git cat-file --batch`."""
    if not blobs:
        return {}
    proc = _git(repo, "cat-file", "--batch", text=False, stdin="".join(f"{o}\n" for o in blobs.values()).encode())
    out, texts, pos = proc.stdout, {}, 0
    for path in blobs:
        nl = out.find(b"\n", pos)
        header = out[pos:nl].split()
        if nl < 0 or len(header) != 3:
            break
        size = int(header[2])
        texts[path] = out[nl + 1: nl + 1 + size].decode("utf-8", "surrogateescape")
        pos = nl + 1 + size + 1
    return texts


@dataclass
class GitContexts:
    """The two builds' contexts read from git, or why they could not be."""

    before: dict | None = None  # Snapshot.to_json() with a "git" key naming the revision
    now: dict | None = None
    note: str = ""


def contexts_from_git(before_attrs: Mapping[str, str], now_attrs: Mapping[str, str],
                      where: str | None = None) -> GitContexts:
    """Snapshots of both builds' contexts from git, when both carry a revision
    that the checkout at `where` (default: the current folder) holds."""
    old, new = revision_of(before_attrs), revision_of(now_attrs)
    if old is None and new is None:  # most contexts are no git checkout: nothing to say
        return GitContexts()
    if old is None or new is None:
        which = "the previous build" if old is None else "this build"
        return GitContexts(note=f"no git revision recorded for {which} (buildx records one when the context is a "
                                "git checkout), so context files were not compared")
    if old.context_dir != new.context_dir:
        return GitContexts(note=f"the builds' contexts are different folders of their repository "
                                f"({old.context_dir or '.'} and {new.context_dir or '.'}): files not compared from git")
    if old.commit == new.commit:
        return GitContexts(note=f"both builds are of git revision {new.short}: git cannot show uncommitted "
                                "changes, so context files were not compared")
    repo = find_checkout(where or os.getcwd())
    if repo is None:
        return GitContexts(note=f"the builds are of git revisions {old.short} and {new.short}, but "
                                f"{where or 'the current folder'} is not a git checkout to read them from "
                                "(run explain inside the project's checkout)")
    missing = [r.short for r in (old, new) if not has_commit(repo, r.commit)]
    if missing:
        return GitContexts(note=f"the checkout at {repo} does not hold revision {', '.join(missing)} "
                                "(git fetch it): context files were not compared")
    try:
        before, now = tree_snapshot(repo, old), tree_snapshot(repo, new)
    except (GitError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return GitContexts(note=f"the context at git revisions {old.short} and {new.short} could not be read: {exc}")
    dirty = [label for label, r in (("the previous build", old), ("this build", new)) if r.dirty]
    if dirty:  # buildx checked (BUILDX_GIT_CHECK_DIRTY=1): say where git's answer is partial
        extra = f"; {' and '.join(dirty)} had uncommitted changes, which git cannot show"
    else:
        extra = ": uncommitted changes are not seen"
    before_json, now_json = before.to_json(), now.to_json()
    before_json["git"] = {"revision": old.commit, "dirty": old.dirty}
    now_json["git"] = {"revision": new.commit, "dirty": new.dirty}
    return GitContexts(before_json, now_json, note=f"context files were compared from git, between revisions "
                                                   f"{old.short} and {new.short} of {repo}{extra}")
