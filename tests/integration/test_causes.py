"""Root causes on the real engine: each test makes one kind of change, builds
again, and checks what a user reads: the root miss's Dockerfile line, its
cause kind, the files named, and that the terminal's "Why:" section says the
same as the JSON report.

Every project is written inline with a fresh nonce in its first step(s), so
its first build is cold without touching anybody else's cache. The tests
that need the cache gone evict only the cache records of their own steps
(see `evict`), never the whole engine's cache.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import platform
import re
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import engine_cache
from tests.conftest import BASE_IMAGE, run_cachewhy

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]
I386_IMAGE = "local/busybox:i386"  # imported by scripts/engine.sh on x86_64

# The words of each cause kind in the terminal's "Why:" section.
KIND_WORDS = {
    "instruction-changed": "instruction changed",
    "context-changed": "context changed",
    "build-arg-changed": "build-arg changed",
    "env-changed": "ENV changed",
    "base-image-changed": "base image changed",
    "stage-changed": "stage changed",
    "cache-evicted": "cache evicted",
    "no-cache-requested": "no cache requested",
    "cache-import-missing": "imported cache",
    "remote-changed": "remote source changed",
    "no-previous-build": "no previous build",
    "platform-changed": "platform changed",
    "unknown": "cause unknown",
}


# ------------------------------------------------------------------ helpers

def docker(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res


@dataclass
class Build:
    """One `cachewhy build` run: its exit code, terminal text and JSON report."""

    rc: int
    out: str
    err: str
    report_path: Path
    report: dict | None

    def describe(self) -> str:
        misses = json.dumps((self.report or {}).get("misses"), indent=1)
        return f"exit {self.rc}\n--- stderr (tail)\n{self.err[-6000:]}\n--- misses\n{misses[:8000]}"

    @property
    def misses(self) -> list[dict]:
        return (self.report or {}).get("misses") or []

    @property
    def roots(self) -> list[dict]:
        return [m for m in self.misses if m["root"]]

    def miss_at(self, line: int) -> dict:
        found = [m for m in self.misses if m["line"] == line]
        assert found, f"no miss at line {line}\n{self.describe()}"
        return found[0]

    def step_at(self, line: int) -> dict:
        found = [s for s in self.report["steps"] if s["line"] == line]
        assert found, f"no step at line {line}\n{self.describe()}"
        return found[0]

    def only_root(self) -> dict:
        assert len(self.roots) == 1, f"expected exactly one root cause\n{self.describe()}"
        return self.roots[0]

    def why(self) -> list[str]:
        """The "Why:" section of the terminal report, up to its blank line."""
        lines = self.err.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Why:")]
        assert starts, f"no 'Why:' section on the terminal\n{self.describe()}"
        out = []
        for line in lines[starts[-1]:]:
            if not line.strip():
                break
            out.append(line)
        return out


class Project:
    """A context folder, its own record store, and builds of it."""

    def __init__(self, root: Path, dockerfile: str, files: dict[str, str] | None = None) -> None:
        self.root = root
        self.ctx = root / "ctx"
        self.store = root / "store"
        self.reports = root / "reports"
        self.ctx.mkdir(parents=True)
        self.reports.mkdir()
        self.nonce = uuid.uuid4().hex[:12]
        self.builds = 0
        self.write("Dockerfile", dockerfile)
        for name, text in (files or {}).items():
            self.write(name, text)

    def path(self, name: str) -> Path:
        return self.ctx / name

    def write(self, name: str, text: str) -> Path:
        p = self.ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text.replace("NONCE", self.nonce))
        return p

    def build(self, *args: str, rc: int = 0, env: dict | None = None) -> Build:
        self.builds += 1
        report = self.reports / f"build{self.builds}.json"
        res = run_cachewhy("build", "--store", str(self.store), "--report-json", str(report), "--width", "250",
                           *COMMON, *args, str(self.ctx), env=env)
        err = res.stderr.decode(errors="replace")
        data = json.loads(report.read_text()) if report.exists() else None
        b = Build(res.returncode, res.stdout.decode(errors="replace"), err, report, data)
        assert b.rc == rc, f"expected exit {rc}\n{b.describe()}"
        assert "Traceback" not in err and "internal error" not in err, b.describe()
        assert data is not None and data["schema"] == "cachewhy.report/v1", b.describe()
        return b


@pytest.fixture
def new_project(tmp_path: Path):
    count = [0]

    def make(dockerfile: str, files: dict[str, str] | None = None) -> Project:
        count[0] += 1
        return Project(tmp_path / f"p{count[0]}", dockerfile, files)
    return make


def why_blocks(b: Build) -> dict[int, str]:
    """Each root's entry in the "Why:" section, by Dockerfile line: its row
    and the lines under it (a long cause wraps there), joined by spaces."""
    blocks: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in b.why()[1:]:
        m = re.match(r"^  \S+:(\d+)\s", line)
        if m:
            current = blocks.setdefault(int(m.group(1)), [])
        elif line.lstrip().startswith(("\u2192", "also:", "note:")):
            current = None
        if current is not None:
            current.append(line.strip())
    return {line: " ".join(parts) for line, parts in blocks.items()}


def check_terminal(b: Build) -> None:
    """The "Why:" section tells what the JSON tells: each root's Dockerfile
    line and the words of its kind, and as many roots as the JSON has."""
    why = b.why()
    if not b.misses:
        assert why[0].startswith("Why: nothing was rebuilt"), b.describe()
        return
    n = len(b.roots)
    assert why[0].startswith(f"Why: {n} root cause{'s' if n != 1 else ''}"), b.describe()
    blocks = why_blocks(b)
    assert sorted(blocks) == sorted(m["line"] for m in b.roots), \
        f"the Why section lists lines {sorted(blocks)}\n{b.describe()}"
    assert all(f"Dockerfile:{line}" in text for line, text in blocks.items()), b.describe()
    for m in b.roots:
        words = KIND_WORDS[m["cause"]["kind"]]
        assert words in blocks[m["line"]], \
            f"the Why entry of line {m['line']} does not say {words!r}\n{b.describe()}"


def assert_root(b: Build, line: int, kind: str) -> dict:
    m = b.miss_at(line)
    assert m["root"] is True, f"line {line} is not a root\n{b.describe()}"
    assert m["cause"]["kind"] == kind, f"line {line}: {m['cause']}, expected {kind}\n{b.describe()}"
    check_terminal(b)
    return m


def assert_cascade(b: Build, line: int, root: dict, kind: str | None = None) -> dict:
    m = b.miss_at(line)
    assert m["root"] is False, f"line {line} should follow from line {root['line']}\n{b.describe()}"
    assert root["id"] in m["caused_by"], f"line {line} is not caused by line {root['line']}\n{b.describe()}"
    assert m["id"] in root["followers"], b.describe()
    if kind is not None:
        assert m["cause"]["kind"] == kind, f"line {line}: {m['cause']}, expected {kind}\n{b.describe()}"
    return m


def assert_nothing_rebuilt(b: Build) -> None:
    assert b.misses == [], f"expected no cache miss\n{b.describe()}"
    assert b.report["summary"]["rebuilt"] == 0 and b.report["summary"]["root_causes"] == 0, b.describe()
    check_terminal(b)


def files_of(m: dict) -> dict[str, list[str]]:
    return m["cause"].get("files") or {}


# -------------------------------------------------------- evicting the cache

def prune_allowed() -> None:
    """Evicting cache records changes the engine's cache: only on cachewhy's
    private engine (scripts/engine.sh), or when CACHEWHY_TEST_ALLOW_PRUNE=1.
    Under CI=true (always the private engine) not being allowed fails."""
    host = os.environ.get("DOCKER_HOST", "")
    # engine.sh keeps the socket under .engine/, or under /run/cachewhy-<hash>/
    # when the clone's path is too deep for a unix socket path
    private = "/.engine/" in host or re.search(r"^unix:///run/cachewhy-[0-9a-f]{6}/", host) is not None
    if private or os.environ.get("CACHEWHY_TEST_ALLOW_PRUNE") == "1":
        return
    why = (f"this test evicts build cache records; DOCKER_HOST={host or '(unset)'} is not cachewhy's private "
           f"engine (set CACHEWHY_TEST_ALLOW_PRUNE=1 to allow it)")
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def evict(nonce: str) -> None:
    """What `docker buildx prune -af` does to this project, without destroying
    the rest of the engine's cache (other tests, other users of the engine)."""
    prune_allowed()
    try:
        engine_cache.evict(nonce)
    except RuntimeError as exc:
        raise AssertionError(str(exc)) from None


@pytest.fixture
def evict_cache():
    """`evict`, for tests that may evict: checked before the test builds anything."""
    prune_allowed()
    return evict


# ----------------------------------------------------------------- images

@pytest.fixture
def images():
    """Make test images (tags under cachewhy-test/); remove them afterwards."""
    made: list[str] = []

    def make(tag: str, context: Path, *args: str) -> str:
        docker("buildx", "build", "--provenance=false", "--sbom=false", "--network=none", "-t", tag, *args,
               str(context), timeout=300)
        image_id = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
        made.extend([tag, image_id])
        return image_id

    yield make
    for ref in reversed(made):
        docker("image", "rm", "-f", ref, check=False)


def one_file_image(images, tmp_path: Path, tag: str, content: str) -> str:
    """Build `tag` FROM the base image with /f.txt holding `content`; its id (sha256:...)."""
    d = tmp_path / f"image-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    (d / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY f.txt /f.txt\n")
    (d / "f.txt").write_text(content)
    return images(tag, d)


# ------------------------------------------------------------- HTTP server

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path):
    """A folder served over HTTP on 127.0.0.1 (the daemon fetches ADD URLs itself)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# =================================================================== tests

# ------------------------------------------------------- no-previous-build

def test_first_build_has_no_previous_build(new_project):
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    "COPY src/ /app/src/\n"
                    "RUN cat /app/src/a.txt\n",
                    {"src/a.txt": "alpha\n"})
    b = p.build()
    assert b.report["previous"] is None
    root = assert_root(b, 2, "no-previous-build")
    assert [m["line"] for m in b.roots] == [2]
    for line in (3, 4):
        assert_cascade(b, line, root)
    assert "(no previous build to compare with)" in b.why()[0]


# ----------------------------------------------------- instruction-changed

def test_edited_run_command_is_the_root(new_project):
    df = ("FROM local/busybox:latest\n"
          "RUN echo NONCE > /nonce\n"
          "RUN echo   one > /one.txt\n"
          "RUN cat /one.txt\n")
    p = new_project(df)
    first = p.build()
    p.write("Dockerfile", df.replace("echo   one", "echo two"))
    b = p.build()
    assert b.report["previous"]["ref"] == first.report["build"]["ref"]
    root = assert_root(b, 3, "instruction-changed")
    assert b.step_at(2)["status"] == "cached"
    detail = root["cause"]["detail"]
    assert "echo one > /one.txt \u2192 RUN echo two > /one.txt" in detail, detail
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


# --------------------------------------------------------- context-changed

CONTEXT_DF = ("FROM local/busybox:latest\n"
              "RUN echo NONCE > /nonce\n"
              "COPY src/ /app/src/\n"
              "RUN find /app/src | sort > /list\n")
CONTEXT_FILES = {"src/a.txt": "alpha\n", "src/b.txt": "beta\n", "src/sub/c.txt": "gamma\n"}


def _modify(ctx: Path) -> None:
    with open(ctx / "src/a.txt", "a") as f:
        f.write("more\n")


@pytest.mark.parametrize("change, files", [
    (_modify, {"added": [], "modified": ["src/a.txt"], "removed": []}),
    (lambda ctx: (ctx / "src/new.txt").write_text("new\n"),
     {"added": ["src/new.txt"], "modified": [], "removed": []}),
    (lambda ctx: (ctx / "src/b.txt").unlink(), {"added": [], "modified": [], "removed": ["src/b.txt"]}),
    (lambda ctx: (ctx / "src/sub/c.txt").unlink(), {"added": [], "modified": [], "removed": ["src/sub/c.txt"]}),
    (lambda ctx: (ctx / "src/empty").mkdir(), {"added": ["src/empty/"], "modified": [], "removed": []}),
    (lambda ctx: (ctx / "src/a.txt").chmod(0o600), {"added": [], "modified": ["src/a.txt"], "removed": []}),
], ids=["modify", "add", "remove", "remove-in-subfolder", "add-empty-folder", "chmod"])
def test_context_change_names_the_files(new_project, change, files):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    p.build()
    change(p.ctx)
    b = p.build()
    root = assert_root(b, 3, "context-changed")
    assert files_of(root) == files, b.describe()
    assert b.step_at(2)["status"] == "cached"
    assert_cascade(b, 4, root, "context-changed")
    assert len(b.roots) == 1
    # the terminal names the files too
    text = why_blocks(b)[3]
    for name in files["added"] + files["modified"] + files["removed"]:
        assert name in text, b.describe()


def test_chmod_names_the_old_and_new_mode(new_project):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    (p.ctx / "src/a.txt").chmod(0o644)
    p.build()
    (p.ctx / "src/a.txt").chmod(0o600)
    b = p.build()
    root = assert_root(b, 3, "context-changed")
    assert "644" in root["cause"]["detail"] and "600" in root["cause"]["detail"], b.describe()


def test_bind_mounted_file_is_an_input_of_its_run(new_project):
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    "RUN --mount=type=bind,source=lock.txt,target=/lock.txt cat /lock.txt\n"
                    "RUN echo after\n",
                    {"lock.txt": "v1\n"})
    p.build()
    p.write("lock.txt", "v2\n")
    b = p.build()
    root = assert_root(b, 3, "context-changed")
    assert files_of(root) == {"added": [], "modified": ["lock.txt"], "removed": []}, b.describe()
    assert b.step_at(2)["status"] == "cached"
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


def test_dockerfile_inside_the_context_is_copied_by_copy_dot(new_project):
    df = ("FROM local/busybox:latest\n"
          "RUN echo NONCE > /nonce\n"
          "COPY . /app/\n"
          "RUN echo one\n")
    p = new_project(df, {"a.txt": "alpha\n"})
    p.build()
    p.write("Dockerfile", df.replace("echo one", "echo two"))
    b = p.build()
    # the RUN's text changed, but what BuildKit missed first is COPY . (the
    # Dockerfile is a file of the context)
    root = assert_root(b, 3, "context-changed")
    assert files_of(root) == {"added": [], "modified": ["Dockerfile"], "removed": []}, b.describe()
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


# ------------------------------------------------- changes that are no miss

def _chown(ctx: Path) -> None:
    os.chown(ctx / "src/a.txt", 1234, 1234)


def _touch(ctx: Path) -> None:
    st = (ctx / "src/a.txt").stat()
    os.utime(ctx / "src/a.txt", ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))


def _ignored(ctx: Path) -> None:
    (ctx / "src/debug.log").write_text("ignored\n")


@pytest.mark.parametrize("change", [lambda ctx: None, _touch, _chown, _ignored],
                         ids=["no-change", "touch", "chown", "dockerignored-file"])
def test_changes_buildkit_ignores_are_no_miss(new_project, change):
    if change is _chown and os.geteuid() != 0:
        pytest.skip("chown to another owner needs root")
    p = new_project(CONTEXT_DF, {**CONTEXT_FILES, ".dockerignore": "src/*.log\n"})
    p.build()
    change(p.ctx)
    b = p.build()
    assert_nothing_rebuilt(b)
    assert b.report["previous"] is not None


DOT_DF = ("FROM local/busybox:latest\n"
          "RUN echo NONCE > /nonce\n"
          "COPY . /app/\n"
          "RUN ls -R /app > /list\n")


def test_dockerignore_pattern_without_slash_matches_only_at_the_top(new_project):
    # `*.log` is anchored at the context root: x.log is left out, sub/x.log is not
    p = new_project(DOT_DF, {".dockerignore": "*.log\n", "a.txt": "alpha\n", "sub/keep.txt": "keep\n"})
    p.build()
    p.write("x.log", "top-level log\n")
    b = p.build()
    assert_nothing_rebuilt(b)

    p.write("sub/x.log", "nested log\n")
    b = p.build()
    root = assert_root(b, 3, "context-changed")
    assert files_of(root) == {"added": ["sub/x.log"], "modified": [], "removed": []}, b.describe()
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


# ------------------------------------------------------- build-arg-changed

def test_build_arg_change_is_named_but_its_values_never_shown(new_project):
    secret1, secret2 = f"s3cr3t-value-1-{uuid.uuid4().hex[:6]}", f"s3cr3t-value-2-{uuid.uuid4().hex[:6]}"
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    "ARG VERSION\n"
                    "COPY src/ /app/src/\n"
                    "RUN echo building\n"
                    'RUN test -n "$VERSION"\n',
                    {"src/a.txt": "alpha\n"})
    first = p.build("--build-arg", f"VERSION={secret1}")
    b = p.build("--build-arg", f"VERSION={secret2}")
    # ARG makes no step; the COPY after it has no env, so it stays cached
    assert b.step_at(4)["status"] == "cached"
    root = assert_root(b, 5, "build-arg-changed")
    assert "VERSION" in root["cause"]["detail"]
    assert_cascade(b, 6, root)
    assert len(b.roots) == 1
    # the values appear nowhere: not on the terminal, not in the reports, not in the store
    places = {"stderr 1": first.err, "stdout 1": first.out, "stderr 2": b.err, "stdout 2": b.out}
    for path in [*p.reports.rglob("*"), *p.store.rglob("*")]:
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    for secret in (secret1, secret2):
        for where, text in places.items():
            assert secret not in text, f"the build-arg value {secret!r} is in {where}"


# ------------------------------------------------------------- env-changed

def test_env_change_roots_at_the_next_run(new_project):
    df = ("FROM local/busybox:latest\n"
          "RUN echo NONCE > /nonce\n"
          "ENV MODE=a\n"
          "COPY src/ /app/src/\n"
          "RUN echo building\n")
    p = new_project(df, {"src/a.txt": "alpha\n"})
    p.build()
    p.write("Dockerfile", df.replace("MODE=a", "MODE=b"))
    b = p.build()
    assert b.step_at(4)["status"] == "cached"  # file ops carry no env
    root = assert_root(b, 5, "env-changed")  # its own text did not change
    assert "MODE" in root["cause"]["detail"]
    assert len(b.roots) == 1


# ------------------------------------------------------ base-image-changed

def test_retagged_base_image(new_project, images, tmp_path):
    tag = f"cachewhy-test/base:{uuid.uuid4().hex[:10]}"
    old = one_file_image(images, tmp_path, tag, "first\n")
    p = new_project(f"FROM {tag}\n"
                    "WORKDIR /w-NONCE\n"
                    "RUN cat /f.txt > copy.txt\n")
    p.build()
    new = one_file_image(images, tmp_path, tag, "second\n")
    assert new != old
    b = p.build()
    root = assert_root(b, 2, "base-image-changed")
    detail = root["cause"]["detail"]
    assert old[:19] in detail and new[:19] in detail and "\u2192" in detail, detail
    assert detail.index(old[:19]) < detail.index(new[:19]), detail
    assert_cascade(b, 3, root)
    assert len(b.roots) == 1


def test_retagged_image_of_copy_from(new_project, images, tmp_path):
    tag = f"cachewhy-test/base:{uuid.uuid4().hex[:10]}"
    old = one_file_image(images, tmp_path, tag, "first\n")
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    f"COPY --from={tag} /f.txt /f.txt\n"
                    "RUN cat /f.txt\n")
    p.build()
    new = one_file_image(images, tmp_path, tag, "second\n")
    b = p.build()
    assert b.step_at(2)["status"] == "cached"
    root = assert_root(b, 3, "base-image-changed")
    assert old[:19] in root["cause"]["detail"] and new[:19] in root["cause"]["detail"], root["cause"]
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


# ----------------------------------------------------------- stage-changed

STAGES_DF = ("FROM local/busybox:latest AS builder\n"
             "RUN echo NONCE > /nonce\n"
             "COPY src/ /src\n"
             "RUN cat /src/* > /out.txt\n"
             "\n"
             "FROM local/busybox:latest\n"
             "RUN echo NONCE final > /nonce\n"
             "COPY --from=builder /out.txt /\n"
             "RUN cat /out.txt\n")


def test_upstream_stage_change_cascades_into_the_final_stage(new_project):
    p = new_project(STAGES_DF, {"src/a.txt": "alpha\n", "src/b.txt": "beta\n"})
    p.build()
    p.write("src/b.txt", "beta, changed\n")
    b = p.build()
    root = assert_root(b, 3, "context-changed")
    assert files_of(root)["modified"] == ["src/b.txt"]
    assert_cascade(b, 4, root, "context-changed")
    assert b.step_at(7)["status"] == "cached"
    copy_from = assert_cascade(b, 8, root, "stage-changed")
    assert copy_from["cause"].get("root") == root["id"], copy_from
    assert_cascade(b, 9, root)
    assert len(b.roots) == 1


def test_upstream_stage_rebuilt_with_same_output_stops_the_cascade(new_project):
    df = STAGES_DF.replace("RUN cat /src/* > /out.txt", "RUN cat /src/* | wc -l > /out.txt")
    p = new_project(df, {"src/a.txt": "alpha\n", "src/b.txt": "beta\n"})
    p.build()
    p.write("src/b.txt", "BETA\n")  # same number of lines: /out.txt is byte for byte the same
    b = p.build()
    root = assert_root(b, 3, "context-changed")
    assert_cascade(b, 4, root)
    # COPY --from is keyed on the content it copies: a hit, and so is what follows
    assert b.step_at(8)["status"] == "cached"
    assert b.step_at(9)["status"] == "cached"
    assert {m["line"] for m in b.misses} == {3, 4}
    assert root["followers"] == [b.miss_at(4)["id"]]


# ----------------------------------------------------------- cache-evicted

def test_evicted_cache_with_nothing_changed(new_project, evict_cache):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    p.build()
    evict_cache(p.nonce)
    b = p.build()
    root = assert_root(b, 2, "cache-evicted")
    assert_cascade(b, 3, root)
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


def test_without_provenance_an_eviction_is_unknown(new_project, evict_cache, tmp_path):
    """The user's own metadata file without provenance: no ops to compare, so
    cachewhy cannot tell an eviction from a definition change, and says so."""
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    env = {"BUILDX_METADATA_PROVENANCE": "disabled"}
    meta = str(tmp_path / "user-metadata.json")
    p.build("--metadata-file", meta, env=env)
    evict_cache(p.nonce)
    b = p.build("--metadata-file", meta, env=env)
    root = assert_root(b, 2, "unknown")
    assert "instruction text" in root["cause"]["detail"]  # what was compared
    assert any("no provenance" in n for n in b.report["notes"])


def test_evicted_cache_roots_in_every_stage(new_project, evict_cache):
    p = new_project(STAGES_DF, {"src/a.txt": "alpha\n"})
    p.build()
    evict_cache(p.nonce)
    b = p.build()
    assert sorted(m["line"] for m in b.roots) == [2, 7], b.describe()
    for line in (2, 7):
        assert_root(b, line, "cache-evicted")


# ------------------------------------------------------ no-cache-requested

NO_CACHE_DF = ("FROM local/busybox:latest AS builder\n"
               "RUN echo NONCE > /nonce\n"
               "RUN cat /proc/sys/kernel/random/uuid > /out.txt\n"
               "\n"
               "FROM local/busybox:latest AS final\n"
               "RUN echo NONCE final > /nonce\n"
               "COPY --from=builder /out.txt /\n"
               "RUN cat /out.txt\n")


def test_no_cache_makes_every_root_no_cache_requested(new_project):
    p = new_project(NO_CACHE_DF)
    p.build()
    b = p.build("--no-cache")
    assert {m["line"] for m in b.misses} == {2, 3, 6, 7, 8}, b.describe()
    assert sorted(m["line"] for m in b.roots) == [2, 6], b.describe()
    for m in b.roots:
        assert_root(b, m["line"], "no-cache-requested")


def test_no_cache_filter_roots_in_that_stage_only(new_project):
    p = new_project(NO_CACHE_DF)
    p.build()
    b = p.build("--no-cache-filter", "builder")
    root = assert_root(b, 2, "no-cache-requested")
    assert [m["line"] for m in b.roots] == [2], b.describe()
    assert_cascade(b, 3, root)
    assert b.step_at(6)["status"] == "cached"  # another stage, not filtered
    # the builder wrote a new /out.txt: what copies it follows from the builder
    assert_cascade(b, 7, root, "stage-changed")
    assert_cascade(b, 8, root)


# ---------------------------------------------------- cache-import-missing

def test_cache_import_from_a_missing_folder(new_project, tmp_path, evict_cache):
    p = new_project(CONTEXT_DF, CONTEXT_FILES)
    p.build()
    evict_cache(p.nonce)
    missing = tmp_path / "no-such-cache"
    b = p.build("--cache-from", f"type=local,src={missing}")
    # buildx warns in plain text between its JSON lines; the build goes on
    assert "WARNING" in b.err and str(missing) in b.err
    root = assert_root(b, 2, "cache-import-missing")
    assert str(missing) in root["cause"]["detail"], root["cause"]
    assert_cascade(b, 3, root)
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


def test_cache_import_mode_min_lacks_the_intermediate_stage(new_project, tmp_path, evict_cache):
    df = ("FROM local/busybox:latest AS builder\n"
          "RUN echo NONCE > /nonce\n"
          "RUN echo built-NONCE > /out.txt\n"
          "\n"
          "FROM local/busybox:latest\n"
          "RUN echo NONCE final > /nonce\n"
          "COPY --from=builder /out.txt /\n"
          "RUN cat /out.txt\n")
    p = new_project(df)
    cache = tmp_path / "cache"
    p.build("--cache-to", f"type=local,dest={cache},mode=min")
    evict_cache(p.nonce)
    # with the final stage's result in the imported cache, nothing is built at
    # all; edit the final stage before its COPY --from, so the builder's output
    # is needed: mode=min exported no layer of the builder stage
    p.write("Dockerfile", df.replace("NONCE final", "NONCE final, edited"))
    b = p.build("--cache-from", f"type=local,src={cache}")
    edited = assert_root(b, 6, "instruction-changed")
    builder = assert_root(b, 2, "cache-import-missing")
    assert sorted(m["line"] for m in b.roots) == [2, 6], b.describe()
    assert_cascade(b, 3, builder)
    copy_from = b.miss_at(7)
    assert set(copy_from["caused_by"]) == {builder["id"], edited["id"]}, b.describe()


# ---------------------------------------------------------- remote-changed

def test_changed_remote_file_of_add(new_project, http_dir):
    root_dir, url = http_dir
    (root_dir / "file.txt").write_text("content one\n")
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    f"ADD {url}/file.txt /file.txt\n"
                    "RUN cat /file.txt\n")
    p.build()
    b = p.build()
    assert_nothing_rebuilt(b)  # same content served again

    served = root_dir / "file.txt"
    mtime = served.stat().st_mtime
    served.write_text("content two, longer\n")
    # BuildKit asks again with If-Modified-Since, which http.server answers by
    # whole seconds: make the change visible even within the same second
    os.utime(served, (mtime + 10, mtime + 10))
    b = p.build()
    root = assert_root(b, 3, "remote-changed")
    old = hashlib.sha256(b"content one\n").hexdigest()
    new = hashlib.sha256(b"content two, longer\n").hexdigest()
    detail = root["cause"]["detail"]
    assert old[:12] in detail and new[:12] in detail and "\u2192" in detail, detail
    assert b.step_at(2)["status"] == "cached"
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


# -------------------------------------------------------- platform-changed

@pytest.fixture
def multi_platform_base(images, tmp_path):
    """A tag whose index holds local/busybox:latest as linux/amd64 and
    local/busybox:i386 as linux/386: both run natively on x86_64."""
    problem = None
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("a linux/386 image runs natively only on x86_64")
    if docker("image", "inspect", I386_IMAGE, check=False).returncode != 0:
        problem = f"{I386_IMAGE} is missing (scripts/engine.sh up imports it on x86_64)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    d = tmp_path / "multi"
    d.mkdir()
    (d / "Dockerfile").write_text(f"FROM {I386_IMAGE} AS base-386\n"
                                  f"FROM {BASE_IMAGE} AS base-amd64\n"
                                  "FROM base-$TARGETARCH\n")
    tag = f"cachewhy-test/multi:{uuid.uuid4().hex[:10]}"
    images(tag, d, "--platform", "linux/amd64,linux/386")
    return tag


def test_platform_change_alone(new_project, multi_platform_base):
    p = new_project(f"FROM {multi_platform_base}\n"
                    "RUN echo NONCE > /nonce\n"
                    "RUN uname -m > /m\n")
    first = p.build("--platform", "linux/386")
    # another platform is another project: compared only when asked to
    b = p.build("--platform", "linux/amd64", "--against", first.report["build"]["ref"])
    assert b.report["previous"]["ref"] == first.report["build"]["ref"]
    root = assert_root(b, 2, "platform-changed")
    assert "linux/386 \u2192 linux/amd64" in root["cause"]["detail"], root["cause"]
    assert_cascade(b, 3, root)
    assert len(b.roots) == 1
    # back on linux/386: the previous build of that project is the first one, all cached
    again = p.build("--platform", "linux/386")
    assert again.report["previous"]["ref"] == first.report["build"]["ref"]
    assert_nothing_rebuilt(again)


def test_first_build_for_a_platform_is_compared_with_another_platform(new_project, multi_platform_base):
    p = new_project(f"FROM {multi_platform_base}\n"
                    "RUN echo NONCE > /nonce\n"
                    "RUN uname -m > /m\n")
    first = p.build("--platform", "linux/386")
    # never built for linux/amd64: the linux/386 build is the baseline, and says why all rebuilt
    b = p.build("--platform", "linux/amd64")
    assert b.report["previous"]["ref"] == first.report["build"]["ref"]
    root = assert_root(b, 2, "platform-changed")
    assert "linux/386 \u2192 linux/amd64" in root["cause"]["detail"], root["cause"]
    assert len(b.roots) == 1
    assert "compared with the build for linux/386" in " ".join(b.err.split())
    # each platform then has its own previous build again
    again = p.build("--platform", "linux/amd64")
    assert again.report["previous"]["ref"] == b.report["build"]["ref"]
    assert_nothing_rebuilt(again)


# ---------------------------------------------------------- failing build

def test_failing_build_still_writes_its_report(new_project):
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    "RUN echo about to fail && exit 1\n"
                    "RUN echo never\n")
    b = p.build(rc=1)
    assert b.report["build"]["exit_code"] == 1
    failed = b.step_at(3)
    assert failed["status"] == "failed", b.describe()
    assert b.step_at(2)["status"] == "rebuilt"
    assert b.step_at(4)["status"] in ("skipped", "canceled")
    assert "ERROR: failed to build" in b.err
    check_terminal(b)
    # and the next build compares with it
    b2 = p.build(rc=1)
    assert b2.report["previous"]["ref"] == b.report["build"]["ref"]
    assert b2.step_at(2)["status"] == "cached"
