#!/usr/bin/env python3
"""Write docs/causes/<kind>.md, one page per cause kind, from real builds.

For each kind a tiny project is made in a temp folder (a Dockerfile of a few
lines and a few context files). cachewhy builds it (the baseline), the
scenario makes one change, and cachewhy builds it again. The page shows the
Dockerfile, the change and the command lines, and what cachewhy really
printed: its "Why:" section and the miss's `cause` from the JSON report.

    eval "$(scripts/engine.sh up)"          # an engine with local/busybox:latest
    python docs/causes/generate.py          # every kind (about 20 s)
    python docs/causes/generate.py --only cache-evicted,unknown

The script exits non-zero when a scenario does not produce its kind, so a
change in cachewhy's behaviour shows up as a failed regeneration rather than
as a page that silently says something else. docs/causes/README.md (the index)
is written on every run.

What the pages show is made stable, so regenerating does not churn them: the
record id, times, the temp folder, the random token of each scenario (see
below), value hashes, image digests and the HTTP port are replaced by
placeholders such as `<previous>`, `<time>` and `/tmp/example`.

Every scenario writes a random token in its first step (`RUN echo <nonce> >
/build-id`), so its builds cannot hit cache entries left by an earlier run of
this script. Scenarios that need the cache gone remove only the cache records
of their own steps (those whose description holds the token, and what is
built on them), never the rest of the engine's cache. Images the script makes
are tagged `cachewhy-docs/...` and removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from analyzer.causes import BY_NAME, KINDS

BASE_IMAGE = "local/busybox:latest"
I386_IMAGE = "local/busybox:i386"  # imported by scripts/engine.sh on x86_64
WIDTH = 100  # the report's width (COLUMNS) for every build
BUILD_FLAGS = ["--output=type=cacheonly"]  # nothing to export: the cache is what matters

TOKEN = "NONCE"  # in Dockerfiles and files below: replaced by the scenario's random token


class ScenarioFailed(Exception):
    """The scenario did not produce what its page documents."""


# ------------------------------------------------------------------ engine

def docker(*args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise ScenarioFailed(f"`docker {' '.join(args)}` failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res


def engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no `docker` on PATH"
    for cmd in (["docker", "buildx", "version"], ["docker", "image", "inspect", BASE_IMAGE]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if res.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {res.stderr.strip()[:300]}"
    return None


def evict(nonce: str) -> None:
    """Remove this example's records from the builder's cache (tests/engine_cache.py)."""
    sys.path.insert(0, str(REPO))
    from tests.engine_cache import evict as evict_records  # noqa: PLC0415

    try:
        evict_records(nonce)
    except RuntimeError as exc:
        raise ScenarioFailed(str(exc)) from None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


# --------------------------------------------------------------- scenarios

@dataclass
class Build:
    rc: int
    err: str
    report: dict

    @property
    def misses(self) -> list[dict]:
        return self.report.get("misses") or []

    @property
    def roots(self) -> list[dict]:
        return [m for m in self.misses if m["root"]]

    def why(self) -> list[str]:
        """The "Why:" section of the terminal report, up to its blank line."""
        lines = self.err.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Why:")]
        if not starts:
            raise ScenarioFailed(f"no 'Why:' section on stderr:\n{self.err[-3000:]}")
        out = []
        for line in lines[starts[-1]:]:
            if not line.strip():
                break
            out.append(line)
        return out


@dataclass
class Scenario:
    """One kind's project: its folder, token, builds and what the page shows."""

    kind: str
    root: Path
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    shell: list[str] = field(default_factory=list)  # the command lines the page shows
    subs: list[tuple[str, str]] = field(default_factory=list)  # extra (real text, placeholder)
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    builds: int = 0

    def __post_init__(self) -> None:
        self.ctx = self.root / "ctx"
        self.store = self.root / "store"
        self.ctx.mkdir(parents=True)

    def write(self, name: str, text: str, where: Path | None = None) -> Path:
        p = (where or self.ctx) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text.replace(TOKEN, self.nonce))
        return p

    def dockerfile(self) -> str:
        return (self.ctx / "Dockerfile").read_text()

    def run(self, line: str) -> None:
        """Show a shell line of the change (the script makes it in Python)."""
        self.shell.append(line)

    def build(self, *args: str, shown: list[str] | None = None, env: dict[str, str] | None = None,
              env_shown: str = "") -> Build:
        """`cachewhy build` in the context folder; `shown` replaces `args` on the page."""
        self.builds += 1
        report = f"../build{self.builds}.json"
        cmd = ["build", "--report-json", report, *BUILD_FLAGS, *args, "."]
        full_env = dict(os.environ, CACHEWHY_STORE=str(self.store), CACHEWHY_LIVE="none", COLUMNS=str(WIDTH),
                        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
        res = subprocess.run([sys.executable, "-m", "analyzer", *cmd], cwd=self.ctx, capture_output=True,
                             env=full_env, timeout=600, check=False)
        err = res.stderr.decode(errors="replace")
        shown_cmd = ["cachewhy", "build", "--report-json", report, *BUILD_FLAGS,
                     *(args if shown is None else shown), "."]
        self.shell.append((env_shown + " " if env_shown else "") + " ".join(shown_cmd))
        path = self.ctx / report
        if res.returncode != 0 or not path.is_file():
            raise ScenarioFailed(f"cachewhy build exited {res.returncode}:\n{err[-4000:]}")
        if "Traceback" in err or "internal error" in err:
            raise ScenarioFailed(f"cachewhy failed internally:\n{err[-4000:]}")
        return Build(res.returncode, err, json.loads(path.read_text()))

    def evict(self, shown: str = "docker buildx prune --force --filter id=<record>   "
                                 "# for each of this project's build cache records") -> None:
        evict(self.nonce)
        self.run(shown)

    def image(self, tag: str, folder: Path, *args: str) -> str:
        """Build `tag` from `folder` into the engine's image store; its id."""
        docker("buildx", "build", "--provenance=false", "--sbom=false", "-t", tag, *args, str(folder))
        image_id = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
        self.cleanup.append(lambda: docker("image", "rm", "-f", image_id, check=False))
        self.cleanup.append(lambda: docker("image", "rm", "-f", tag, check=False))
        return image_id

    def serve(self, folder: Path) -> str:
        """Serve `folder` over HTTP on 127.0.0.1 (dockerd fetches ADD URLs itself); its base URL."""
        folder.mkdir(parents=True, exist_ok=True)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.cleanup.append(server.server_close)
        self.cleanup.append(server.shutdown)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        self.subs.append((url, "http://127.0.0.1:<port>"))
        return url


@dataclass
class Example:
    """What a scenario hands to the page."""

    dockerfile: str  # as built the second time, token in it
    files: list[str]  # context files, for the page
    change: str  # one sentence: what changed between the two builds
    build: Build  # the build explained on the page
    line: int  # the miss shown in JSON
    root_kind: str | None = None  # the kind of the roots, when it is not the page's (stage-changed)


SRC = {"src/a.txt": "alpha\n", "src/b.txt": "beta\n"}
SIMPLE_DF = ("FROM local/busybox:latest\n"
             "RUN echo NONCE > /build-id\n"
             "COPY src/ /app/src/\n"
             "RUN find /app/src | sort > /app/files.txt\n")


def _simple(s: Scenario) -> None:
    s.write("Dockerfile", SIMPLE_DF)
    for name, text in SRC.items():
        s.write(name, text)


def no_previous_build(s: Scenario) -> Example:
    _simple(s)
    b = s.build()
    if b.report.get("previous") is not None:
        raise ScenarioFailed("a fresh store had a previous record")
    return Example(s.dockerfile(), list(SRC), "Nothing: this is the first build of the project that cachewhy "
                   "sees (its record store is empty).", b, 2)


def instruction_changed(s: Scenario) -> Example:
    df = ("FROM local/busybox:latest\n"
          "RUN echo NONCE > /build-id\n"
          "RUN echo one > /greeting.txt\n"
          "RUN cat /greeting.txt\n")
    s.write("Dockerfile", df)
    s.build()
    s.write("Dockerfile", df.replace("echo one", "echo two"))
    s.run("sed -i 's/echo one/echo two/' Dockerfile")
    b = s.build()
    return Example(s.dockerfile(), [], "Line 3 of the Dockerfile was edited: `echo one` became `echo two`.", b, 3)


def context_changed(s: Scenario) -> Example:
    s.write("Dockerfile", "FROM local/busybox:latest\n"
                          "RUN echo NONCE > /build-id\n"
                          "COPY requirements.txt /app/\n"
                          "RUN wc -l /app/requirements.txt > /app/deps.txt\n"
                          "COPY src/ /app/src/\n"
                          "RUN cat /app/src/*.py | sha256sum > /app/build.sum\n")
    s.write("requirements.txt", "requests==2.32.3\n")
    s.write("src/app.py", "print('hello')\n")
    s.build()
    s.write("src/app.py", "print('hello, world')\n")
    s.write("src/util.py", "def helper():\n    return 1\n")
    s.run("echo \"print('hello, world')\" > src/app.py")
    s.run("printf 'def helper():\\n    return 1\\n' > src/util.py")
    b = s.build()
    return Example(s.dockerfile(), ["requirements.txt", "src/app.py"],
                   "`src/app.py` was edited and `src/util.py` was added; `requirements.txt` did not change.", b, 5)


def build_arg_changed(s: Scenario) -> Example:
    s.write("Dockerfile", "FROM local/busybox:latest\n"
                          "RUN echo NONCE > /build-id\n"
                          "ARG VERSION\n"
                          "COPY src/ /app/src/\n"
                          "RUN find /app/src > /app/files.txt\n"
                          'RUN echo "$VERSION" > /app/version.txt\n')
    for name, text in SRC.items():
        s.write(name, text)
    v1, v2 = f"1.4.0-{uuid.uuid4().hex[:8]}", f"1.5.0-{uuid.uuid4().hex[:8]}"
    s.build("--build-arg", f"VERSION={v1}", shown=["--build-arg", "VERSION=<value 1>"])
    b = s.build("--build-arg", f"VERSION={v2}", shown=["--build-arg", "VERSION=<value 2>"])
    # the values must appear nowhere cachewhy writes
    texts = {"stderr": b.err}
    for path in [*s.root.glob("build*.json"), *s.store.rglob("*")]:
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    for value in (v1, v2):
        for where, text in texts.items():
            if value in text:
                raise ScenarioFailed(f"the build-arg value {value!r} is in {where}")
    return Example(s.dockerfile(), list(SRC), "The value of the build arg `VERSION` given with `--build-arg` "
                   "changed (the values are shown as `<value 1>`, `<value 2>` here).", b, 5)


def env_changed(s: Scenario) -> Example:
    df = ("FROM local/busybox:latest\n"
          "RUN echo NONCE > /build-id\n"
          "ENV MODE=debug\n"
          "COPY src/ /app/src/\n"
          'RUN echo "mode $MODE" > /app/mode.txt\n')
    s.write("Dockerfile", df)
    for name, text in SRC.items():
        s.write(name, text)
    s.build()
    s.write("Dockerfile", df.replace("MODE=debug", "MODE=release"))
    s.run("sed -i 's/MODE=debug/MODE=release/' Dockerfile")
    b = s.build()
    return Example(s.dockerfile(), list(SRC), "Line 3 of the Dockerfile was edited: `ENV MODE=debug` became "
                   "`ENV MODE=release`.", b, 5)


def base_image_changed(s: Scenario) -> Example:
    tag = "cachewhy-docs/base:latest"
    base = s.root / "base"
    s.write("Dockerfile", f"FROM {BASE_IMAGE}\nCOPY version.txt /etc/base-version\n", where=base)
    s.write("version.txt", "1.0 NONCE\n", where=base)
    old = s.image(tag, base)
    s.write("Dockerfile", f"FROM {tag}\n"
                          "RUN cat /etc/base-version > /base.txt\n"
                          "COPY src/ /app/src/\n")
    for name, text in SRC.items():
        s.write(name, text)
    s.run(f"docker buildx build --provenance=false --sbom=false -t {tag} ../base   # the base, version 1.0")
    s.build()
    s.write("version.txt", "1.1 NONCE\n", where=base)
    new = s.image(tag, base)
    s.run("echo '1.1' > ../base/version.txt")
    s.run(f"docker buildx build --provenance=false --sbom=false -t {tag} ../base   # a new release: the tag moves")
    if new == old:
        raise ScenarioFailed("the rebuilt base image has the same id")
    s.subs += [(old[:19], "sha256:<old digest>"), (new[:19], "sha256:<new digest>")]
    b = s.build()
    return Example(s.dockerfile(), list(SRC), f"The tag `{tag}` was moved to a new image, a new release of the "
                   f"base (`../base` holds a Dockerfile `FROM {BASE_IMAGE}` + `COPY version.txt /etc/base-version`; "
                   "`version.txt` went from 1.0 to 1.1). The project's Dockerfile and context did not change.", b, 2)


def stage_changed(s: Scenario) -> Example:
    s.write("Dockerfile", "FROM local/busybox:latest AS builder\n"
                          "RUN echo NONCE > /build-id\n"
                          "COPY src/ /src/\n"
                          "RUN cat /build-id /src/*.txt > /out.txt\n"
                          "FROM local/busybox:latest\n"
                          "COPY --from=builder /out.txt /app/out.txt\n")
    for name, text in SRC.items():
        s.write(name, text)
    s.build()
    s.write("src/b.txt", "beta, changed\n")
    s.run("echo 'beta, changed' > src/b.txt")
    b = s.build()
    return Example(s.dockerfile(), list(SRC), "`src/b.txt` was edited. Only the `builder` stage copies it; the "
                   "final stage copies what the builder made from it.", b, 6, root_kind="context-changed")


def cache_evicted(s: Scenario) -> Example:
    _simple(s)
    s.build()
    s.evict()
    b = s.build()
    return Example(s.dockerfile(), list(SRC), "Nothing in the project: the builder's cache records of its steps "
                   "were removed, as `docker buildx prune` or BuildKit's garbage collection do.", b, 2)


def no_cache_requested(s: Scenario) -> Example:
    _simple(s)
    s.build()
    b = s.build("--no-cache")
    return Example(s.dockerfile(), list(SRC), "Nothing in the project: the second build was run with `--no-cache`.",
                   b, 2)


def cache_import_missing(s: Scenario) -> Example:
    _simple(s)
    s.build()
    s.evict(shown="docker buildx prune --force --filter id=<record>   # as on a fresh CI runner: "
                  "the project's cache records are gone")
    b = s.build("--cache-from", "type=local,src=../ci-cache")
    return Example(s.dockerfile(), list(SRC), "The builder's own cache of the project was removed (as on a fresh CI "
                   "runner), and the second build imports cache with `--cache-from` from `../ci-cache`, a folder "
                   "that was never created (the CI job that should restore it did not).", b, 2)


def remote_changed(s: Scenario) -> Example:
    served = s.root / "served"
    url = s.serve(served)
    s.write("tool.txt", "tool 1.0\n", where=served)
    s.write("Dockerfile", "FROM local/busybox:latest\n"
                          "RUN echo NONCE > /build-id\n"
                          f"ADD {url}/tool.txt /opt/tool.txt\n"
                          "RUN cat /opt/tool.txt\n")
    s.build()
    f = served / "tool.txt"
    mtime = f.stat().st_mtime
    f.write_text("tool 1.1\n")
    # BuildKit asks again with If-Modified-Since, which http.server answers by
    # whole seconds: make the change visible even within the same second
    os.utime(f, (mtime + 10, mtime + 10))
    s.run("echo 'tool 1.1' > ../served/tool.txt   # the file the server at that URL serves")
    b = s.build()
    return Example(s.dockerfile(), [], "The file behind the URL of line 3 (served by a local HTTP server) "
                   "changed: `tool 1.0` became `tool 1.1`. The Dockerfile did not change.", b, 3)


def platform_changed(s: Scenario) -> Example:
    if platform.machine() not in ("x86_64", "AMD64"):
        raise ScenarioFailed("this scenario builds for linux/386 and linux/amd64, which runs natively only on x86_64")
    if docker("image", "inspect", I386_IMAGE, check=False).returncode != 0:
        raise ScenarioFailed(f"{I386_IMAGE} is missing (scripts/engine.sh up imports it on x86_64)")
    tag = "cachewhy-docs/busybox:multi"
    multi = s.root / "multi"
    s.write("Dockerfile", f"FROM {I386_IMAGE} AS base-386\nFROM {BASE_IMAGE} AS base-amd64\nFROM base-$TARGETARCH\n",
            where=multi)
    s.image(tag, multi, "--platform", "linux/amd64,linux/386")
    s.write("Dockerfile", f"FROM {tag}\n"
                          "RUN echo NONCE > /build-id\n"
                          "RUN uname -m > /arch.txt\n")
    first = s.build("--platform", "linux/386")
    ref = first.report["build"]["ref"]
    b = s.build("--platform", "linux/amd64", "--against", ref)
    return Example(s.dockerfile(), [], f"The second build is for `linux/amd64` instead of `linux/386` (`{tag}` "
                   "holds an image for each). Once each platform has a build of its own, cachewhy compares a build "
                   "with the one for the same platforms; here `--against` names the first build explicitly (the "
                   "first build for `linux/amd64` would be compared with it anyway).", b, 2)


def unknown(s: Scenario) -> Example:
    _simple(s)
    env = {"BUILDX_METADATA_PROVENANCE": "disabled"}
    shown_env = "BUILDX_METADATA_PROVENANCE=disabled"
    s.build("--metadata-file", "../metadata.json", env=env, env_shown=shown_env)
    s.evict()
    b = s.build("--metadata-file", "../metadata.json", env=env, env_shown=shown_env)
    return Example(s.dockerfile(), list(SRC), "Both builds were run with the user's own `--metadata-file` and "
                   "`BUILDX_METADATA_PROVENANCE=disabled`, so buildx recorded no provenance (no build definition "
                   "to compare); in between, the builder's cache records of the project were removed.", b, 2)


SCENARIOS: dict[str, Callable[[Scenario], Example]] = {
    "instruction-changed": instruction_changed,
    "context-changed": context_changed,
    "build-arg-changed": build_arg_changed,
    "env-changed": env_changed,
    "base-image-changed": base_image_changed,
    "stage-changed": stage_changed,
    "cache-evicted": cache_evicted,
    "no-cache-requested": no_cache_requested,
    "cache-import-missing": cache_import_missing,
    "remote-changed": remote_changed,
    "no-previous-build": no_previous_build,
    "platform-changed": platform_changed,
    "unknown": unknown,
}


# ------------------------------------------------------------- page texts

@dataclass
class KindDoc:
    """A kind's page text; its label and one-line summary are in analyzer/causes.py."""

    about: str  # what BuildKit does, and why this kind of miss happens
    todo: list[str]
    not_a_cause: list[str] = field(default_factory=list)


DOCS: dict[str, KindDoc] = {
    "instruction-changed": KindDoc(
        "BuildKit looks a step up in its cache by a key made of the step's definition and the keys of "
        "what the step is built on. For `RUN` the definition is the command, its environment, working "
        "directory, user, mounts, network mode and platform; for `COPY`/`ADD` it is the paths and flags "
        "(`--chmod`, `--chown`, `--exclude`, `--link`…). Edit an instruction and its key is new: the step "
        "runs again, and every later step of the stage, now built on a new parent, runs again too (cachewhy "
        "shows those as a cascade of the edited line, not as causes of their own). The same happens to an "
        "unchanged step when an instruction before it was added, removed or moved, because its parent is "
        "another step now. cachewhy pairs each step with the same step of the previous build (by stage, "
        "keyword and text, else by position in the stage) and shows the text before → after; when the text "
        "is the same but the definition differs through a variable (`FROM ${TAG}`, `WORKDIR $APP`), it names "
        "the build arg or ENV instead.",
        [
            "Nothing is wrong if you meant to edit the line: the cascade after it is the price of the edit.",
            ("Order the Dockerfile from what changes least to what changes most: base setup and dependency "
            "installs first, then your sources, then the steps you tweak often. An edit near the end rebuilds "
            "little."),
            ("To change a step in the middle without rebuilding what follows, move what you tweak into a "
            "later step or a separate stage; `COPY --from=<stage>` only misses when the copied files differ."),
            ("Inserting a step early (even a debugging `RUN ls`) rebuilds everything after it; remove it again "
            "and the old cache entries are used, if they are still there."),
        ],
        [
            ("Comments and blank lines, and instructions that only set image metadata: `LABEL`, `CMD`, `EXPOSE` "
            "make no build step, so editing them rebuilds nothing. (If `COPY .` copies the Dockerfile itself, "
            "any edit of the Dockerfile is a changed file for that `COPY`: see "
            "[context-changed](context-changed.md).)"),
        ],
    ),
    "context-changed": KindDoc(
        "The build context is sent to BuildKit anew on every build and never matches by name: a `COPY` or "
        "`ADD` from the context, and a `RUN --mount=type=bind` of context files, are keyed by a checksum of "
        "the files they select: each file's path, content, mode, type, symlink target and extended "
        "attributes. Add, edit, remove or `chmod` one of those files and the step misses, and so does every "
        "later step of its stage. Files the step does not select do not count, so a `COPY src/` ignores a "
        "change in `docs/`, but a `COPY .` sees every file of the context that `.dockerignore` lets through. "
        "cachewhy snapshots the context at each build, with BuildKit's rules (`.dockerignore`, mtimes and "
        "owners ignored), and names the files that changed under the step's sources, relative to the "
        "context, with old → new modes for `chmod`.",
        [
            ("Copy only what a step needs: `COPY src/ src/` instead of `COPY . .`, so unrelated files (docs, "
            "tests, CI config) do not rebuild it."),
            ("Copy dependency manifests before the sources and install dependencies in between (`COPY "
            "requirements.txt .`, `RUN pip install -r requirements.txt`, then `COPY src/ src/`), as in the "
            "example above: an edit of the sources then rebuilds only the steps after the sources' `COPY`."),
            ("Keep build outputs, logs, `.git`, `node_modules`, virtual environments and editor files out of "
            "the context with `.dockerignore`; add the `Dockerfile` itself there if you use `COPY .` "
            "(BuildKit still reads it for the build)."),
            ("If only modes changed (`mode of … 644 → 755` in the detail), look at what sets them: a checkout "
            "with another umask or `core.fileMode`, a script that runs `chmod`."),
            ("For files a single `RUN` needs only while it runs, `RUN --mount=type=bind,source=…` keeps them "
            "out of the image; a change still rebuilds that `RUN`, but no `COPY` layer."),
        ],
        [
            "`touch` or any other mtime change: BuildKit's checksum leaves mtimes out.",
            ("`chown`: the client resets owners to 0:0 before sending files, so ownership on your disk never "
            "reaches the key."),
            "Files excluded by `.dockerignore`, and files outside the step's sources.",
            ("A builder stage that was rebuilt but produced byte-identical files: `COPY --from` is keyed on "
            "content, so it hits (see [stage-changed](stage-changed.md))."),
        ],
    ),
    "build-arg-changed": KindDoc(
        "Every `ARG` in scope is put in the environment of every `RUN` after it in the stage, whether the "
        "command uses it or not, and a `RUN`'s environment is part of its cache key. A new value for a build "
        "arg (from `--build-arg`, or from the default in the `ARG` line) therefore misses at the first `RUN` "
        "after the `ARG`, and everything after it follows. `COPY`, `ADD` and `WORKDIR` carry no environment: "
        "they only miss when their own text uses the variable (`COPY ${DIR} …`, `FROM ${TAG}`). cachewhy "
        "names the arg but never shows a value: the store keeps values as hashes keyed with a secret of that "
        "store, so you can see that the value changed and whether it came back, not what it was.",
        [
            ("Declare each `ARG` where it is used: just before the `RUN` that needs it, in the stage that needs "
            "it, not at the top of the Dockerfile. Every `RUN` between the `ARG` and its real use is rebuilt "
            "for nothing when the value changes. In the example, line 5 never reads `$VERSION` and still "
            "rebuilds."),
            ("Values that change on every build (commit SHA, build number, date) rebuild everything after "
            "their `ARG`. Use them as late as possible, or put them in a `LABEL`, which makes no build step."),
            ("Do not pass secrets as build args (they end up in the image history and in the cache key): use "
            "`--secret` with `RUN --mount=type=secret`; a secret's value is never part of a cache key."),
        ],
        [
            ("The predefined proxy args (`HTTP_PROXY`, `HTTPS_PROXY`, `FTP_PROXY`, `NO_PROXY`, `ALL_PROXY` and "
            "their lowercase forms): BuildKit keeps them out of the cache key."),
            ("Values given with `--secret`, and a `--build-arg` the Dockerfile never declares with `ARG` (it is "
            "not in scope of any step; buildx warns that it was not consumed)."),
            ("Steps before the `ARG` line, and `COPY`/`ADD` after it that do not use the variable (line 4 in "
            "the example stays cached)."),
        ],
    ),
    "env-changed": KindDoc(
        "`ENV` makes no build step of its own: it sets variables in the environment of the `RUN` steps after "
        "it, and that environment is part of each `RUN`'s cache key. A new value therefore misses at the "
        "first `RUN` after the `ENV`, which cachewhy reports as the root (its own text did not change), and "
        "the steps after that follow. `COPY`, `ADD` and `WORKDIR` carry no environment, so they stay cached "
        "unless their text uses the variable. cachewhy names the variable; values are shown only as keyed "
        "hashes, as for build args.",
        [
            "Set `ENV` values that change often as late as possible, right before the `RUN` that needs them.",
            ("Values that only matter when the container runs (log level, mode, feature flags) need not be in "
            "the build at all: pass them with `docker run -e` or your deployment's configuration, or set them "
            "in the last stage after every `RUN`."),
            ("If a value is computed per build (a version, a date), pass it as a late `ARG` or `LABEL` instead "
            "of an early `ENV`."),
        ],
        [
            ("`COPY`/`ADD`/`WORKDIR` after the `ENV` that do not use the variable (line 4 in the example stays "
            "cached): file operations carry no environment."),
            "Steps before the `ENV` line.",
        ],
    ),
    "base-image-changed": KindDoc(
        "At the start of a build, BuildKit resolves each `FROM` tag (and each `COPY --from=<image>`) to an "
        "image digest and pins it in the build definition; the image's cache key comes from that manifest "
        "and its layers. When the tag now points to another image (a new release was pushed, `--pull` or a "
        "fresh CI runner fetched a newer one, someone rebuilt and re-tagged it), every step of the stage is "
        "built on new layers, so the first step after `FROM` misses and the whole stage follows. cachewhy "
        "reads the resolved digests from the provenance of both builds and shows the image with its old → "
        "new digest (the first 12 hex digits).",
        [
            ("If you did not expect a new base, pin it: `FROM image:1.2.3@sha256:…` builds on exactly that image "
            "until you change the line. Let a bot (Renovate, Dependabot) propose the updates, so a base change "
            "is a commit you can see."),
            "Prefer specific version tags over `latest` or a bare major version, which move often.",
            ("When the update is wanted (security fixes), the rebuild is its price: keep the steps after `FROM` "
            "cheap where you can, and do heavy, rarely changing work in a stage whose base you update less "
            "often."),
        ],
        [
            "A new tag for the same image (same digest), and pulling a tag that did not move.",
        ],
    ),
    "stage-changed": KindDoc(
        "In a multi-stage build, `COPY --from=<stage>` and `FROM <stage>` use another stage's result. A "
        "`COPY --from` is keyed by the content of the files it copies, so when the upstream stage was rebuilt "
        "and produced different files, it misses, and the rest of its stage follows; when the upstream stage "
        "produced byte-identical files, it hits and the cascade stops there. A `FROM <stage>` builds on the "
        "other stage's last step, so any rebuild there carries over. `stage-changed` is therefore never a "
        "root cause: cachewhy gives it to a missed step whose missed inputs all come from another stage, and "
        "`cause.root` names the root miss upstream. The terminal's \"Why:\" section lists that root (in the "
        "example, a `context-changed` in the builder stage) and counts this step among the steps it rebuilt.",
        [
            "Fix the root cause in the upstream stage: its kind has its own page.",
            ("Copy only the artefacts the next stage needs (`COPY --from=builder /out/app /app`), not whole "
            "folders: fewer changed bytes, fewer misses downstream."),
            ("Make builder outputs reproducible (no timestamps, build numbers or unsorted file lists in them): "
            "then a rebuilt builder stage that made the same files stops the cascade at the `COPY --from`."),
        ],
        [
            "An upstream stage that was rebuilt but produced the same files: the `COPY --from` hits.",
        ],
    ),
    "cache-evicted": KindDoc(
        "The step, its definition, its inputs and the files it reads are all the same as in the previous "
        "build, where it was built or taken from the cache; yet BuildKit had no entry for it. The entry was "
        "removed: by `docker buildx prune` / `docker builder prune` / `docker system prune`, or by BuildKit's "
        "garbage collection, which deletes the least recently used records when the cache grows past the "
        "builder's limits (by default a share of the disk). It also happens when the build ran on another "
        "builder or machine than the previous one (another `--builder`, a fresh CI runner without a cache "
        "import). cachewhy can tell this from a real change because it compares the full build definition "
        "(from provenance) and the context snapshot of both builds.",
        [
            ("Check the builder's cache: `docker buildx du` shows its size; `docker buildx ls` which builder is "
            "used."),
            ("Give the cache more room. With the default `docker` driver, set the garbage collection limits in "
            "the daemon's `daemon.json` (`\"builder\": {\"gc\": {\"enabled\": true, \"defaultKeepStorage\": "
            "\"50GB\"}}`, or your Docker version's newer space options); for a `docker-container` builder, in "
            "its `buildkitd.toml` (`[worker.oci] gckeepstorage = …`, or `gcpolicy` entries). See Docker's "
            "\"Build garbage collection\" page."),
            "Prune less, or selectively: `docker buildx prune --filter until=72h` keeps recent records.",
            ("In CI, where each runner starts cold, persist the cache between jobs: `--cache-to "
            "type=registry,ref=…,mode=max` (or `type=local`, `type=gha`) in one build and `--cache-from` the "
            "same place in the next (see [cache-import-missing](cache-import-missing.md))."),
        ],
    ),
    "no-cache-requested": KindDoc(
        "`--no-cache` tells BuildKit not to look anything up in the cache: every step runs, even though the "
        "same results are there. (The new results are still stored, so the next build without the flag can "
        "use them.) `--no-cache-filter <stage>` does the same for the named stages only; steps of other "
        "stages that read from them follow as cascades. cachewhy reads the flags from the build's invocation "
        "and makes the first step of each such stage a root of this kind.",
        [
            ("If you did not mean it, look for the flag in your scripts, Makefile or CI configuration: a "
            "leftover `--no-cache` makes every build as slow as a first build."),
            ("To refresh base images, use `--pull` instead: it re-resolves the `FROM` tags and keeps the cache "
            "for everything that did not change."),
            ("To re-run only one stage (for example one that downloads the latest packages), use "
            "`--no-cache-filter <stage>`."),
        ],
    ),
    "cache-import-missing": KindDoc(
        "`--cache-from` lets BuildKit use cache exported by an earlier build with `--cache-to` (to a "
        "registry, a local folder, GitHub Actions' cache…), typically on a CI runner whose own cache is "
        "empty. When the step and its inputs are identical to the previous build but neither the builder's "
        "own cache nor the import held it, cachewhy reports this kind. The usual reasons: the cache source "
        "does not exist or cannot be read (buildx only warns and builds on), it was exported with `mode=min` "
        "(the default: only the final image's layers, no intermediate stages), or it was exported by a build "
        "with other args, target or platform, or by a build that failed before exporting. The detail names "
        "the `--cache-from` sources and buildx's warning about them, if any.",
        [
            ("Read buildx's warning above the report: a missing folder, a wrong registry ref or missing "
            "credentials make the import empty."),
            ("Export every stage: `--cache-to type=…,mode=max`. With the default `mode=min`, the intermediate "
            "stages of a multi-stage build are not in the export."),
            ("Make sure the job that writes the cache (`--cache-to`) runs, succeeds and writes where the "
            "reading job looks (`--cache-from`): same ref or folder, same branch scope in CI, and the folder "
            "restored before the build."),
            "Import from the same target and platform you build.",
        ],
    ),
    "remote-changed": KindDoc(
        "For `ADD <url>`, BuildKit downloads the file at every build and keys it by the checksum of the "
        "downloaded bytes; a git source is keyed by the commit its ref resolves to. When the server now "
        "serves other bytes, or the branch or tag points to another commit, the `ADD` misses and the steps "
        "after it follow, although the Dockerfile did not change. cachewhy compares the digests that the "
        "provenance of both builds records for each URL and shows the old → new sha256 (the first 12 hex "
        "digits).",
        [
            ("Pin what you download: a versioned URL, and `ADD --checksum=sha256:… <url>` so a changed file "
            "fails the build instead of silently rebuilding it with other content."),
            "For git sources, use a commit or a fixed tag in the URL (`…/repo.git#<commit>`), not a branch.",
            ("A `RUN curl …` of the same URL is not re-run when the remote file changes (its key is the command "
            "text): faster, but you get the old file until something before it changes. Prefer `ADD` with a "
            "checksum."),
        ],
        [
            "The same bytes served again: BuildKit checks the content, so the `ADD` hits.",
        ],
    ),
    "no-previous-build": KindDoc(
        "cachewhy explains a build by comparing it with the previous build of the same project: the same "
        "context folder, Dockerfile, target and platforms, found in its record store. When there is none, "
        "it cannot say why BuildKit had no cache entry, so the first rebuilt step of each chain is a root "
        "of this kind and the rest follow. The same kind is given to a step that the previous build never "
        "built (it failed or stopped before it). The steps themselves were rebuilt because BuildKit had "
        "nothing for them, usually because this really is the first build.",
        [
            ("Nothing is wrong: this is the first build cachewhy knows of. Build again and the next report "
            "compares with this one."),
            ("If you expected a comparison, check that both builds use the same record store (`--store`, "
            "`CACHEWHY_STORE`) and the same context path, `-f`, `--target` and `--platform`; or name the "
            "build to compare with: `--against <record id>`."),
        ],
    ),
    "platform-changed": KindDoc(
        "The platform (OS, architecture, variant) is part of every `RUN` step's cache key, and a `FROM` "
        "resolves to the image of that platform. A build for another platform therefore shares no steps "
        "with the previous one, even though the Dockerfile and the context are the same. cachewhy treats "
        "each set of `--platform` values as a project of its own, so a normal build is compared with the "
        "previous build for the same platforms; this kind appears when a project is built for the first "
        "time for other platforms (it is then compared with its newest build for other platforms, and a "
        "note says so), when you compare across platforms with `--against`, or when the platform of the "
        "build changed without `--platform` changing. The detail "
        "shows old → new platform.",
        [
            "Expected when you build for another platform: each platform has its own cache entries.",
            ("In CI, export and import the cache per platform (`--cache-to type=registry,ref=…:cache-amd64`, "
            "another ref for arm64), so one platform's build does not overwrite or miss the other's."),
            ("For cross-platform builds, run the heavy, architecture-independent work in a stage `FROM "
            "--platform=$BUILDPLATFORM …`: its steps run on the build machine's platform for every target, "
            "so they are shared, as long as they do not use `TARGETPLATFORM`/`TARGETARCH`."),
        ],
    ),
    "unknown": KindDoc(
        "cachewhy tells a real change from a lost cache entry by comparing the full build definition of the "
        "step (the LLB operation from buildx's provenance: command, environment, mounts, platform) and the "
        "context files it reads. When one of these is missing for either build, and nothing it could compare "
        "differs, it cannot tell a removed cache entry from a change it cannot see, and says `unknown`; "
        "`detail` lists what it compared and what it could not. The provenance is missing when you pass your "
        "own `--metadata-file` "
        "and buildx writes no provenance into it (`BUILDX_METADATA_PROVENANCE=disabled`), as in this example; "
        "without your own `--metadata-file`, cachewhy asks buildx for full provenance in a temporary file. "
        "In this example the truth is an evicted cache, which cachewhy reports as "
        "[cache-evicted](cache-evicted.md) when it has the provenance.",
        [
            ("Let cachewhy get provenance: drop your own `--metadata-file`, or keep it and set "
            "`BUILDX_METADATA_PROVENANCE=max` for cachewhy builds."),
            ("Build again: once both the previous build and the current one have their provenance and context "
            "snapshot, the miss gets a definite kind."),
            "Read `detail`: it lists what was compared and found equal, and what could not be compared and why.",
        ],
    ),
}


# ---------------------------------------------------------- stable output

_RECORD_ID = re.compile(r"\b\d{8}T\d{12}-[0-9a-f]{8}\b")
_TIME = re.compile(r"(?<![\w.])(?:\d+m)?\d+\.\ds\b")
_HASH = re.compile(r"\bh:[0-9a-f]{12}\b")


def stable(text: str, s: Scenario, hashes: dict[str, str], times: bool = False) -> str:
    """Replace what changes from run to run by placeholders."""
    for real, placeholder in s.subs:
        text = text.replace(real, placeholder)
    text = text.replace(str(s.root), "/tmp/example").replace(s.nonce, "<nonce>")
    text = _RECORD_ID.sub("<previous>", text)

    def hashed(m: re.Match) -> str:
        return hashes.setdefault(m.group(0), f"h:<hash {len(hashes) + 1}>")
    text = _HASH.sub(hashed, text)
    if times:
        text = _TIME.sub("<time>", text)
    return text


def numbered(dockerfile: str) -> str:
    lines = dockerfile.rstrip("\n").split("\n")
    w = len(str(len(lines)))
    return "\n".join(f"{i:>{w}}  {line}".rstrip() for i, line in enumerate(lines, 1))


def check(kind: str, ex: Example) -> dict:
    """The scenario produced its kind; the miss shown on the page."""
    b = ex.build
    root_kind = ex.root_kind or kind
    if not b.roots:
        raise ScenarioFailed(f"no root miss; misses: {json.dumps(b.misses)[:3000]}")
    wrong = [(m["line"], m["cause"]["kind"]) for m in b.roots if m["cause"]["kind"] != root_kind]
    if wrong:
        raise ScenarioFailed(f"expected every root to be {root_kind}, got (line, kind) {wrong}\n"
                             + "\n".join(b.why()))
    found = [m for m in b.misses if m["line"] == ex.line]
    if not found:
        raise ScenarioFailed(f"no miss at line {ex.line}:\n" + "\n".join(b.why()))
    m = found[0]
    if m["cause"]["kind"] != kind or m["root"] is not (ex.root_kind is None):
        raise ScenarioFailed(f"line {ex.line}: root={m['root']} {m['cause']}, expected "
                             f"{'a root' if ex.root_kind is None else 'a cascade'} of kind {kind}")
    why = " ".join(" ".join(b.why()).split())
    if f"{BY_NAME[root_kind].label}:" not in why:
        raise ScenarioFailed(f"the Why section does not say {BY_NAME[root_kind].label!r}:\n" + "\n".join(b.why()))
    return m


def page(kind: str, s: Scenario, ex: Example, miss: dict) -> str:
    doc = DOCS[kind]
    hashes: dict[str, str] = {}
    report = ex.build.report
    line_of = {st["id"]: st.get("line") for st in report.get("steps") or []}
    shown = {"line": miss["line"], "instruction": miss["instruction"], "root": miss["root"], "cause": miss["cause"]}
    js = json.dumps(shown, indent=2, ensure_ascii=False)
    for sid, line in line_of.items():
        js = js.replace(f'"{sid}"', f'"<id of the step at line {line}>"')
    why = stable("\n".join(ex.build.why()), s, hashes, times=True)
    js = stable(js, s, hashes)
    shell = stable("\n".join(s.shell), s, hashes)
    dockerfile = stable(numbered(ex.dockerfile), s, hashes)
    change = stable(ex.change, s, hashes)
    words = BY_NAME[kind].label
    out = [
        f"# `{kind}`",
        "",
        f"The step missed because {BY_NAME[kind].summary}. The terminal says **{words}**; the JSON report says "
        f"`\"kind\": \"{kind}\"`." if kind != "stage-changed" else
        f"The step missed because of {BY_NAME[kind].summary}. It is never a root cause: the JSON report has the step with "
        f"`\"root\": false` and `\"kind\": \"{kind}\"`, and the terminal's \"Why:\" section shows its root.",
        "",
        doc.about,
        "",
        "## Example",
        "",
        "`Dockerfile`" + (f" (context: {', '.join(f'`{f}`' for f in ex.files)})" if ex.files else "") + ":",
        "",
        "```text",
        dockerfile,
        "```",
        "",
        "Line 2 writes a random token (`<nonce>`), only so that the example's first build finds nothing in "
        "the builder's cache." if "<nonce>" in dockerfile else
        "The base image carries a random token, only so that the example's first build finds nothing in the "
        "builder's cache.",
        "",
        f"**What changed:** {change}",
        "",
        "```sh",
        shell,
        "```",
        "",
        "The \"Why:\" section cachewhy printed on stderr for the last build (the step table after it is left out):",
        "",
        "```text",
        why,
        "```",
        "",
        (f"The miss at line {miss['line']} in the JSON report (`misses[]`, fields `line`, `instruction`, `root`, "
        f"`cause`):"),
        "",
        "```json",
        js,
        "```",
        "",
        "## What to do",
        "",
        *[f"- {t}" for t in doc.todo],
        "",
    ]
    if doc.not_a_cause:
        out += ["## Not a cause", "", "Changes BuildKit does not count, which therefore never cause this miss:", "",
                *[f"- {t}" for t in doc.not_a_cause], ""]
    out += ["---", "",
            ("Generated by [`generate.py`](generate.py) from real builds: edit the script, not this page. "
            "Placeholders stand for what changes from run to run (record id, times, temp folder, random "
            "token, hashes, digests, port)."), ""]
    return "\n".join(out)


def index() -> str:
    rows = "\n".join(f"| [`{k}`]({k}.md) | {BY_NAME[k].label} | {BY_NAME[k].summary} |" for k in KINDS)
    return f"""# Cause kinds

Every rebuilt step in a cachewhy report has a cause (`cause.kind` in the
[JSON report](../report-json.md)). Each kind has a page with what BuildKit
does, a real example (the Dockerfile, the change, what cachewhy printed) and
what to do about it.

| kind | the terminal says | the step missed because … |
|---|---|---|
{rows}

A *root* miss is where a chain of misses started; the steps after it that
were rebuilt only because it was are its cascade, listed with the root's kind
(or `stage-changed` where the cascade crosses into another stage). The
terminal's "Why:" section lists the roots only.

## Regenerating the pages

The pages are written by [`generate.py`](generate.py) from real builds: for
each kind it builds a tiny project with cachewhy, makes one change, builds it
again and copies what cachewhy printed. It needs the engine in the
environment (`docker buildx` and the `{BASE_IMAGE}` image; the
`platform-changed` example also needs `{I386_IMAGE}` on x86_64):

```sh
eval "$(scripts/engine.sh up)"
python docs/causes/generate.py                          # every kind
python docs/causes/generate.py --only cache-evicted,unknown
```

It exits non-zero when a scenario no longer produces its kind, so a change
in cachewhy's behaviour is noticed. Its builds run with
`CACHEWHY_LIVE=none`, `COLUMNS={WIDTH}` and a temporary `CACHEWHY_STORE`
(the command lines on the pages leave those out). What changes from run to
run is replaced by placeholders: `<previous>` for the record id compared
with, `<time>`, `/tmp/example` for the temp folder, `<nonce>` for each
example's random token, `h:<hash N>` for value hashes, and the image
digests and HTTP port. Scenarios that evict the cache remove only their own
cache records; the images they make (`cachewhy-docs/…`) are removed at the
end. The texts of the pages are in the script: edit them there.
"""


# -------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate docs/causes/<kind>.md from real builds.")
    ap.add_argument("--only", help="comma-separated kinds (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write the pages (default: docs/causes)")
    opts = ap.parse_args(argv)
    kinds = list(KINDS)
    if opts.only:
        kinds = [k.strip() for k in opts.only.split(",") if k.strip()]
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            ap.error(f"unknown kind(s) {', '.join(bad)}; kinds: {', '.join(KINDS)}")
    missing = [k for k in KINDS if k not in SCENARIOS or k not in DOCS]
    if missing:
        print(f"generate.py: no scenario or text for {', '.join(missing)} (analyzer.explain.KINDS has them)",
              file=sys.stderr)
        return 1
    problem = engine_problem()
    if problem:
        print(f"generate.py needs a BuildKit engine with the image {BASE_IMAGE}: {problem}\n"
              f"Start one and put it in the environment first:  eval \"$(scripts/engine.sh up)\"",
              file=sys.stderr)
        return 2
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "README.md").write_text(index())
    tmp = Path(tempfile.mkdtemp(prefix="cachewhy-docs-"))
    failed: dict[str, str] = {}
    started = time.monotonic()
    try:
        for kind in kinds:
            t0 = time.monotonic()
            s = Scenario(kind, tmp / kind)
            try:
                ex = SCENARIOS[kind](s)
                miss = check(kind, ex)
                (opts.out / f"{kind}.md").write_text(page(kind, s, ex, miss))
                print(f"{kind:22} ok      {time.monotonic() - t0:5.1f}s  {opts.out / f'{kind}.md'}", file=sys.stderr)
            except (ScenarioFailed, subprocess.TimeoutExpired) as exc:
                failed[kind] = str(exc)
                print(f"{kind:22} FAILED  {time.monotonic() - t0:5.1f}s\n    "
                      + str(exc).replace("\n", "\n    "), file=sys.stderr)
            finally:
                for undo in reversed(s.cleanup):
                    try:
                        undo()
                    except Exception as exc:  # noqa: BLE001 - cleanup goes on
                        print(f"{kind}: cleanup: {exc}", file=sys.stderr)
    finally:
        if opts.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    took = time.monotonic() - started
    if failed:
        print(f"{len(failed)} of {len(kinds)} scenarios did not produce their kind: {', '.join(failed)} "
              f"({took:.0f}s)", file=sys.stderr)
        return 1
    print(f"{len(kinds)} page(s) written in {took:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
