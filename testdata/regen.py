#!/usr/bin/env python3
"""Regenerate the rawjson captures in testdata/rawjson/ from real builds, and
the `.dockerbuild` bundles in testdata/bundles/ (`docker buildx history export`).

Each capture is the stderr of `docker buildx build --progress=rawjson` (and,
for successful builds, the metadata file with full provenance) of a project
under testdata/projects/, built in a temporary copy so the repo is untouched.

The build cache is pruned before each series, so this needs a dedicated
engine: the private one of scripts/engine.sh (or pass --allow-prune).

    eval "$(scripts/engine.sh up)"; python testdata/regen.py
    python testdata/regen.py --only multistage --old-buildx PATH

The pretty-printed shape of older buildx (0.13) comes from Debian trixie's
docker-buildx, fetched by `scripts/engine.sh old-buildx` (prints its path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROJECTS = HERE / "projects"
OUT = HERE / "rawjson"
COMMON = ["--network=none", "--output=type=cacheonly"]


def docker(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if check and res.returncode != 0:
        sys.exit(f"regen: docker {' '.join(args)} failed: {res.stderr.decode(errors='replace')[-1500:]}")
    return res


def capture(name: str, context: Path, extra: list[str] = (), plugin_dir: Path | None = None,
            expect_rc: int = 0) -> None:
    """Build once, keep stderr as <name>.jsonl and the metadata as <name>.meta.json."""
    env = dict(os.environ, BUILDX_METADATA_PROVENANCE="max")
    if plugin_dir is not None:
        env["DOCKER_CONFIG"] = str(plugin_dir)
    meta = context.parent / f"{name}.meta.json"
    meta.unlink(missing_ok=True)
    res = docker("buildx", "build", "--progress=rawjson", "--metadata-file", str(meta), *COMMON, *extra,
                 str(context), env=env, check=False)
    if res.returncode != expect_rc:
        sys.exit(f"regen: {name}: exit {res.returncode}, expected {expect_rc}:\n"
                 f"{res.stderr.decode(errors='replace')[-2000:]}")
    # Paths of the temporary copy are replaced so captures do not change with it.
    text = res.stderr.decode("utf-8", errors="replace").replace(str(context), "/ctx")
    (OUT / f"{name}.jsonl").write_text(text)
    if meta.is_file():
        data = json.loads(meta.read_text())
        (OUT / f"{name}.meta.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    else:
        (OUT / f"{name}.meta.json").unlink(missing_ok=True)
    print(f"regen: {name}: exit {res.returncode}, {len(text.splitlines())} lines", file=sys.stderr)


def fresh_copy(project: str, tmp: Path) -> Path:
    dest = tmp / project
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(PROJECTS / project, dest)
    return dest


def series_multistage(tmp: Path, prefix: str = "multistage", plugin_dir: Path | None = None) -> None:
    ctx = fresh_copy("multistage", tmp)
    docker("buildx", "prune", "-af")
    capture(f"{prefix}-cold", ctx, plugin_dir=plugin_dir)
    capture(f"{prefix}-warm", ctx, plugin_dir=plugin_dir)
    # one file copied by line 6 (COPY src/ ./src/) changes
    with open(ctx / "src" / "b.txt", "a") as f:
        f.write("gamma\n")
    capture(f"{prefix}-change", ctx, plugin_dir=plugin_dir)


def series_features(tmp: Path) -> None:
    """Heredocs, a continuation line and COPY --link (issue 14): cold, then the
    heredoc body of lines 2-5 edited (line 4)."""
    ctx = fresh_copy("features", tmp)
    docker("buildx", "prune", "-af")
    capture("features-cold", ctx)
    df = ctx / "Dockerfile"
    df.write_text(df.read_text().replace("echo two > /two", "echo three > /two"))
    capture("features-edit", ctx)


def series_failing(tmp: Path) -> None:
    ctx = fresh_copy("failing", tmp)
    docker("buildx", "prune", "-af")
    capture("failing", ctx, expect_rc=1)


BUNDLES = HERE / "bundles"


def series_bundles(tmp: Path) -> None:
    """multistage built, one file edited, built again: each build exported as
    the bundle docker/build-push-action uploads."""
    ctx = fresh_copy("multistage", tmp)
    BUNDLES.mkdir(exist_ok=True)
    for name in ("multistage-1", "multistage-2"):
        if name.endswith("-2"):
            with open(ctx / "src" / "b.txt", "a") as f:
                f.write("gamma\n")
        meta = tmp / "bundle.meta.json"
        docker("buildx", "build", "--metadata-file", str(meta), *COMMON, "--build-arg",
               "BUILDKIT_BUILD_NAME=cachewhy-testdata-multistage", str(ctx))
        ref = json.loads(meta.read_text())["buildx.build.ref"].rsplit("/", 1)[-1]  # export wants it bare
        docker("buildx", "history", "export", "--finalize", "-o", str(BUNDLES / f"{name}.dockerbuild"), ref)
        print(f"regen: bundles/{name}.dockerbuild: {ref}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated series: multistage, failing, features, old, bundles")
    ap.add_argument("--old-buildx", help="path to a buildx 0.13 plugin binary (default: scripts/engine.sh old-buildx)")
    ap.add_argument("--allow-prune", action="store_true", help="prune the build cache of a non-private engine")
    opts = ap.parse_args()
    host = os.environ.get("DOCKER_HOST", "")
    if ".engine" not in host and not opts.allow_prune:
        sys.exit("regen: this prunes the whole build cache; run it on the private engine "
                 "(eval \"$(scripts/engine.sh up)\") or pass --allow-prune")
    only = set(opts.only.split(",")) if opts.only else {"multistage", "failing", "features", "old", "bundles"}
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cachewhy-regen-") as t:
        tmp = Path(t)
        if "multistage" in only:
            series_multistage(tmp)
        if "failing" in only:
            series_failing(tmp)
        if "features" in only:
            series_features(tmp)
        if "bundles" in only:
            series_bundles(tmp)
        if "old" in only:
            binary = opts.old_buildx or subprocess.run(
                ["bash", str(REPO / "scripts" / "engine.sh"), "old-buildx"], check=True,
                stdout=subprocess.PIPE).stdout.decode().strip()
            plugins = tmp / "old-config" / "cli-plugins"
            plugins.mkdir(parents=True)
            os.symlink(binary, plugins / "docker-buildx")
            version = subprocess.run(["docker", "buildx", "version"], env=dict(os.environ, DOCKER_CONFIG=str(plugins.parent)),
                                     stdout=subprocess.PIPE, check=True).stdout.decode().strip()
            print(f"regen: old buildx: {version}", file=sys.stderr)
            series_multistage(tmp, prefix="old-multistage", plugin_dir=plugins.parent)


if __name__ == "__main__":
    main()
