"""Write a file so that a reader never sees half of it: a temporary file in
the same folder, written whole, then renamed over the target."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(target: Path, data: bytes, *, mode: int = 0o644, fsync: bool = True,
                 tmp_prefix: str | None = None) -> None:
    """Raise OSError on failure, leaving neither the target changed nor a temporary file."""
    target = Path(target)
    tmp = target.with_name(f"{tmp_prefix or '.' + target.name + '.tmp-'}{os.urandom(4).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
