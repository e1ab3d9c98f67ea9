"""Figure 3: context snapshots on a 50,000-file / 500 MB context (gen_context.py).

3a  re-snapshot with nothing changed (`snapshot(ctx, previous=prev)`, in this
    process) against `git status` on the same tree (a git repository whose
    .git lives outside the tree, so that both look at exactly the same files;
    all files added and committed first), alternating.
3c  (info) the floor of 3a: a bare Python walk, os.scandir and DirEntry.stat()
    and nothing else, against the same `git status`.
3b  a cold snapshot (no previous) against `find -type f -print0 | xargs -0
    sha256sum`: throughput in MB/s of file bytes hashed over wall time, both
    with the files in the page cache (warm-up runs first).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import gen_context
from common import REPO, Row, alternate, log, run_child

FILES = 50_000
MB = 500.0


def make_context(fixtures: Path) -> tuple[Path, Path, dict]:
    ctx = fixtures / "context-50k"
    gitdir = fixtures / "context-50k.git"
    meta = fixtures / "context-50k.json"
    if ctx.is_dir() and gitdir.is_dir() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("files") == FILES + 1:
            return ctx, gitdir, info
    for p in (ctx, gitdir):
        subprocess.run(["rm", "-rf", str(p)], check=True)
    log(f"3: generating the context ({FILES} files, {MB:.0f} MB) and committing it to git")
    info = gen_context.generate(ctx, FILES, MB)
    env = git_env(ctx, gitdir)
    subprocess.run(["git", "init", "-q"], env=env, check=True)
    subprocess.run(["git", "add", "-A"], env=env, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q",
                    "-m", "context"], env=env, check=True)
    meta.write_text(json.dumps(info))
    return ctx, gitdir, info


def git_env(ctx: Path, gitdir: Path) -> dict:
    return dict(os.environ, GIT_DIR=str(gitdir), GIT_WORK_TREE=str(ctx))


def run(cfg, fixtures: Path) -> list[Row]:
    import sys

    sys.path.insert(0, str(REPO))
    from analyzer.snapshot import snapshot

    ctx, gitdir, info = make_context(fixtures)
    env = git_env(ctx, gitdir)
    # let git refresh its index once (a fresh clone of the tree is "racily clean")
    for _ in range(2):
        subprocess.run(["git", "status", "--porcelain"], env=env, cwd=ctx, stdout=subprocess.DEVNULL, check=True)
    reps = 5 if cfg.quick else 15

    def git_status() -> float:
        return run_child(["git", "status"], env=env, cwd=ctx).wall

    prev = snapshot(ctx, excludes=[])
    time.sleep(0.1)  # past the racy window of `prev`
    last = {}

    def resnap() -> float:
        t0 = time.perf_counter()
        s = snapshot(ctx, excludes=[], previous=prev)
        t = time.perf_counter() - t0
        last["reused"], last["hashed"] = s.reused, s.hashed_files
        return t

    log(f"3a: re-snapshot vs git status, {reps} alternating pairs")
    res = alternate(resnap, git_status, pairs=reps, warmup=2)
    rows = [Row("3a", f"re-snapshot, nothing changed ({FILES:,} files)", res["ours"]["median"], res["ref"]["median"],
                "git status", res["ratio"], "<= 1.5", res["ratio"] <= 1.5,
                notes=f"{reps} alternating pairs; {last['reused']} hashes reused, {last['hashed']} files read",
                samples=res)]

    # The floor of any Python walk: os.scandir and DirEntry.stat() alone, no
    # comparison, nothing recorded (what 3a's target is up against)
    def bare_walk() -> float:
        t0 = time.perf_counter()
        todo = [str(ctx)]
        while todo:
            d = todo.pop()
            with os.scandir(d) as it:
                for de in it:
                    if stat.S_ISDIR(de.stat(follow_symlinks=False).st_mode):
                        todo.append(de.path)
        return time.perf_counter() - t0

    res = alternate(bare_walk, git_status, pairs=reps, warmup=1)
    rows.append(Row("3c", "bare Python walk (scandir + lstat, nothing compared)", res["ours"]["median"],
                    res["ref"]["median"], "git status", res["ratio"], "info", None,
                    notes=f"{reps} alternating pairs: the floor of 3a for any walk in Python", samples=res))

    total = info["bytes"]

    def cold() -> float:
        t0 = time.perf_counter()
        s = snapshot(ctx, excludes=[])
        t = time.perf_counter() - t0
        last["cold_bytes"] = s.hashed_bytes
        return t

    def shasum() -> float:
        return run_child(["sh", "-c", "find . -type f -print0 | xargs -0 sha256sum > /dev/null"], cwd=ctx).wall

    creps = 3 if cfg.quick else 7
    log(f"3b: cold snapshot vs sha256sum, {creps} alternating pairs")
    res = alternate(cold, shasum, pairs=creps, warmup=1)
    ours_tp = last["cold_bytes"] / 1e6 / res["ours"]["median"]
    ref_tp = total / 1e6 / res["ref"]["median"]
    # throughput ratio per pair: (bytes/ours) / (bytes/ref) = ref / ours
    tp_ratio = 1 / res["ratio"]
    rows.append(Row("3b", f"cold snapshot throughput ({total / 1e6:.0f} MB in {FILES:,} files)", ours_tp, ref_tp,
                    "find | xargs sha256sum", tp_ratio, ">= 0.7", tp_ratio >= 0.7, unit="MB/s",
                    notes=f"{creps} alternating pairs, page cache warm; cold snapshot {res['ours']['median']:.2f} s, "
                          f"sha256sum {res['ref']['median']:.2f} s",
                    samples=res))
    return rows
