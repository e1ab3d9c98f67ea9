"""Read a file the way BuildKit would: inside its root, never through a link out of it.

BuildKit reads the Dockerfile, `.dockerignore` and the context through the
local source's root (fsutil): a symlink is resolved as if that root were
`/`, so `ctx/.dockerignore -> /proc/self/environ` names
`ctx/proc/self/environ`, which is not there, and a `Dockerfile -> ../x`
names `<root>/x`. cachewhy reads exactly what BuildKit would, so a link
pointing out of the context can never carry the user's files (or the
process environment) into a record.

Only regular files are read (a FIFO would hang, a device never ends), and at
most `limit` bytes: a Dockerfile or an ignore file is small.
"""

from __future__ import annotations

import errno
import os
import stat

#: Symlinks followed on one path before giving up, as Linux's ELOOP.
_MAX_LINKS = 40
#: A Dockerfile or an ignore file larger than this is not one (BuildKit's own
#: limit for a Dockerfile is far lower in practice).
DEFAULT_LIMIT = 16 * 1024 * 1024

_OPEN = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class Refused(OSError):
    """The path is not a regular file inside its root (a link out of it, a FIFO…)."""


def resolve(root: str | os.PathLike[str], rel: str) -> str:
    """The path `rel` names under `root`, each symlink resolved with `root` as `/`.

    Raises FileNotFoundError when a part is missing, Refused for a link loop."""
    base = os.fspath(root)
    todo = [p for p in rel.replace(os.sep, "/").split("/")]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue  # `..` at the root stays at the root, as in a chroot
        full = os.path.join(base, *done, part)
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise Refused(errno.ELOOP, "too many levels of symbolic links", full)
            target = os.readlink(full)
            if target.startswith("/"):
                done = []
            todo[:0] = target.split("/")
            continue
        done.append(part)
    return os.path.join(base, *done)


def read_bytes(root: str | os.PathLike[str], rel: str, limit: int = DEFAULT_LIMIT) -> bytes:
    """The bytes of the regular file `rel` under `root`, read as BuildKit would (see above).

    Raises FileNotFoundError when BuildKit would not find it, Refused when it is
    not a regular file or larger than `limit`, OSError for the rest."""
    path = resolve(root, rel)
    fd = os.open(path, _OPEN)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(errno.EINVAL, "not a regular file", path)
        if st.st_size > limit:
            raise Refused(errno.EFBIG, f"larger than {limit} bytes", path)
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise Refused(errno.EFBIG, f"larger than {limit} bytes", path)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(root: str | os.PathLike[str], rel: str, limit: int = DEFAULT_LIMIT) -> str:
    return read_bytes(root, rel, limit).decode("utf-8", errors="replace")


def read_beside(path: str | os.PathLike[str], limit: int = DEFAULT_LIMIT) -> str:
    """A file given by its path (a Dockerfile, `-f`), read with its own folder as the root:
    BuildKit sends the Dockerfile's folder as a source of its own."""
    p = os.path.abspath(os.fspath(path))
    return read_text(os.path.dirname(p), os.path.basename(p), limit)
