"""Generate a build context: many source-like files and a few big assets.

    python benchmarks/gen_context.py DIR [--files 50000] [--mb 500] [--seed 3]

Half the bytes are in small files (a source tree: 20 top folders, 25
subfolders each, sizes spread from a few hundred bytes to 64 KiB around ~5
KB), half in 0.2% big files (assets of 1 to 8 MB). Contents are pseudo-random
bytes (hashing speed does not depend on them; git cannot compress them,
which keeps its work honest too). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path


def generate(root: Path, files: int = 50_000, mb: float = 500.0, seed: int = 3) -> dict:
    rng = random.Random(seed)
    total = int(mb * 1_000_000)
    n_big = max(1, files // 500)
    n_small = files - n_big
    # small files: log-uniform-ish sizes scaled to half the bytes
    raw = [int(2 ** rng.uniform(8, 16)) for _ in range(n_small)]
    scale = (total / 2) / sum(raw)
    small = [max(1, min(1 << 16, int(x * scale))) for x in raw]
    big_total = total - sum(small)
    raw_big = [rng.uniform(1, 8) for _ in range(n_big)]
    big = [int(x / sum(raw_big) * big_total) for x in raw_big]
    root.mkdir(parents=True, exist_ok=True)
    written = 0
    tops, subs = 20, 25
    for i, size in enumerate(small):
        d = root / "src" / f"pkg{i % tops:02d}" / f"mod{(i // tops) % subs:02d}"
        if i < tops * subs:
            d.mkdir(parents=True, exist_ok=True)
        with open(d / f"file{i:05d}.py", "wb") as f:
            f.write(rng.randbytes(size))
        written += size
    (root / "assets").mkdir(exist_ok=True)
    for i, size in enumerate(big):
        with open(root / "assets" / f"blob{i:03d}.bin", "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 22)
                f.write(rng.randbytes(n))
                left -= n
        written += size
    (root / "Dockerfile").write_text("FROM local/busybox:latest\nWORKDIR /ctx\nCOPY . .\nRUN du -s /ctx\n")
    return {"root": str(root), "files": files + 1, "bytes": written, "big_files": n_big}


def count(root: Path) -> tuple[int, int]:
    n = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            n += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return n, size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--mb", type=float, default=500.0)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    json.dump(generate(a.dir, a.files, a.mb, a.seed), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
