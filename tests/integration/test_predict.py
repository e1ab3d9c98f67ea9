"""`cachewhy predict` and `build --predict` on the real engine: each cause kind is
predicted first, then the real build confirms it (the same steps rebuilt, the
same root lines and kinds), and the terminal says what the JSON says.

Projects carry a fresh nonce in their first step, so their first build is cold
without touching anybody's cache. The evicted-cache test prunes cache records,
so it runs on an engine of its own (`private_engine`): on dockerd 28.5 any
prune drops every cache key, which would break the other tests' builds.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from tests.conftest import BASE_IMAGE, run_cachewhy
from tests.integration.test_reliability import private_engine  # noqa: F401 - a fixture

pytestmark = pytest.mark.engine

COMMON = ["--network=none", "--output=type=cacheonly"]


def docker(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", *args], capture_output=True, timeout=300, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {res.stderr.decode(errors='replace')[-2000:]}")
    return res


class Project:
    def __init__(self, root: Path, dockerfile: str, files: dict[str, str] | None = None,
                 env: dict | None = None) -> None:
        self.ctx = root / "ctx"
        self.store = root / "store"
        self.out = root / "out"
        self.ctx.mkdir(parents=True)
        self.out.mkdir()
        self.nonce = uuid.uuid4().hex[:12]
        self.env = env
        self.n = 0
        self.write("Dockerfile", dockerfile)
        for name, text in (files or {}).items():
            self.write(name, text)

    def write(self, name: str, text: str) -> None:
        (self.ctx / name).write_text(text.replace("NONCE", self.nonce))

    def run(self, command: str, *args: str, rc: int = 0) -> tuple[str, dict]:
        self.n += 1
        report = self.out / f"{command}{self.n}.json"
        res = run_cachewhy(command, "--store", str(self.store), "--report-json", str(report), "--width", "80",
                           *COMMON, *args, str(self.ctx), env=self.env)
        err = res.stderr.decode(errors="replace")
        assert res.returncode == rc, f"{command}: exit {res.returncode}, expected {rc}\n{err[-4000:]}"
        assert "Traceback" not in err and "internal error" not in err, err
        if command == "predict":  # one 80-column screen
            assert all(len(line) <= 80 for line in err.splitlines()
                       if not line.startswith(("cachewhy: ", "  note: "))), err
        return err, json.loads(report.read_text())

    def predict(self, *args: str, rc: int = 0) -> tuple[str, dict]:
        err, report = self.run("predict", *args, rc=rc)
        assert report["prediction"]["baseline"], report  # the marker, and what it compared with
        return err, report

    def build(self, *args: str) -> tuple[str, dict]:
        return self.run("build", *args)


@pytest.fixture
def new_project(tmp_path: Path):
    count = [0]

    def make(dockerfile: str, files: dict[str, str] | None = None, env: dict | None = None) -> Project:
        count[0] += 1
        return Project(tmp_path / f"p{count[0]}", dockerfile, files, env)
    return make


def rebuilt(report: dict) -> list[int]:
    return sorted(s["line"] for s in report["steps"] if s.get("line") and s["status"] in ("rebuilt", "failed"))


def roots(report: dict) -> list[tuple[int, str]]:
    return sorted((m["line"], m["cause"]["kind"]) for m in report["misses"] if m["root"])


def confirmed(predicted: dict, built: dict) -> None:
    """The build did what the prediction said: same steps rebuilt, same roots, same words."""
    assert rebuilt(predicted) == rebuilt(built), (predicted["steps"], built["steps"])
    assert roots(predicted) == roots(built), (predicted["misses"], built["misses"])
    for p, b in zip(sorted((m for m in predicted["misses"] if m["root"]), key=lambda m: m["line"]),
                    sorted((m for m in built["misses"] if m["root"]), key=lambda m: m["line"])):
        assert p["cause"].get("files") == b["cause"].get("files")
        if p["cause"]["kind"] != "base-image-changed":  # the build's digest is the index's, see below
            assert p["cause"]["detail"] == b["cause"]["detail"], (p, b)


def test_unchanged_predicts_nothing(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nCOPY a.txt .\nRUN cat a.txt\n", {"a.txt": "a\n"})
    p.build()
    err, report = p.predict()
    assert "Prediction: nothing will be rebuilt" in err and "(compared with build" in err
    assert report["misses"] == [] and report["summary"]["cached"] == 3 and report["summary"]["rebuilt"] == 0
    assert report["prediction"]["cache"] == "checked"
    assert "predicted hits 3/3 steps" in err
    _, built = p.build()
    assert rebuilt(built) == []


def test_file_edit_predicted_then_confirmed(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nCOPY a.txt b.txt ./\nRUN cat a.txt b.txt\n",
                    {"a.txt": "a\n", "b.txt": "b\n"})
    p.build()
    p.write("b.txt", "b changed\n")
    err, predicted = p.predict()
    assert roots(predicted) == [(3, "context-changed")]
    assert predicted["misses"][0]["cause"]["files"] == {"added": [], "modified": ["b.txt"], "removed": []}
    assert "Prediction: 1 root cause" in err and "context changed: b.txt modified" in err
    assert "2 steps will rebuild" in err
    _, built = p.build()
    confirmed(predicted, built)


def test_instruction_edit_predicted_then_confirmed(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nRUN echo one > f\nRUN cat f\n")
    p.build()
    p.write("Dockerfile", "FROM local/busybox:latest\nWORKDIR /w-NONCE\nRUN echo two > f\nRUN cat f\n")
    err, predicted = p.predict()
    assert roots(predicted) == [(3, "instruction-changed")]
    assert rebuilt(predicted) == [3, 4]
    assert "instruction changed: RUN echo one > f \u2192 RUN echo two > f" in err
    _, built = p.build()
    confirmed(predicted, built)


def test_new_instruction_has_no_time_but_is_counted(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nRUN echo one > f\n")
    p.build()
    p.write("Dockerfile", "FROM local/busybox:latest\nWORKDIR /w-NONCE\nRUN echo one > f\nRUN cat f\n")
    err, predicted = p.predict()
    assert roots(predicted) == [(4, "instruction-changed")]
    assert predicted["prediction"]["steps_without_time"] == 1
    assert "note: 1 new step: no time known from the last build" in err
    _, built = p.build()
    confirmed(predicted, built)


def test_build_arg_predicted_then_confirmed(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nARG V=1\nRUN echo $V > f\nRUN cat f\n")
    p.build("--build-arg", "V=secret-one")
    err, predicted = p.predict("--build-arg", "V=secret-two")
    assert roots(predicted) == [(4, "build-arg-changed")]
    assert rebuilt(predicted) == [4, 5]
    assert "secret-one" not in err and "secret-two" not in err  # values stay hashed
    assert "build-arg changed: V changed (value redacted)" in err
    _, built = p.build("--build-arg", "V=secret-two")
    confirmed(predicted, built)
    # back to the Dockerfile's default: a change again, predicted as the build sees it
    _, predicted = p.predict()
    _, built = p.build()
    confirmed(predicted, built)


def test_env_edit_predicted_then_confirmed(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nENV MODE=fast\nRUN echo $MODE > f\n")
    p.build()
    p.write("Dockerfile", "FROM local/busybox:latest\nWORKDIR /w-NONCE\nENV MODE=slow\nRUN echo $MODE > f\n")
    _, predicted = p.predict()
    assert roots(predicted) == [(4, "env-changed")]
    _, built = p.build()
    confirmed(predicted, built)


@pytest.fixture
def imported_image(tmp_path: Path):
    """`docker import` of the base image's files under a tag of this test's own; call
    again to move the tag to a new import (one more file, /version, and `files`: name ->
    text, mode 0755). Every import is removed afterwards (the moved ones are dangling)."""
    tag = f"local/predict-{uuid.uuid4().hex[:10]}:latest"
    rootfs = tmp_path / "rootfs.tar"
    name = f"predict-{uuid.uuid4().hex[:10]}"
    docker("create", "--name", name, BASE_IMAGE, "true")
    try:
        docker("export", "-o", str(rootfs), name)
    finally:
        docker("rm", "-f", name, check=False)
    ids: list[str] = []

    def make(files: dict[str, str] | None = None, version: bool = True) -> str:
        """version=False: no /version, and the same file times, so the same files give the
        same layer (the image still moves: its config says which import it is)."""
        n = len(ids) + 1
        tar = tmp_path / f"rootfs{n}.tar"
        with tarfile.open(rootfs) as src, tarfile.open(tar, "w") as dst:
            for member in src.getmembers():
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            extra = ({"version": f"{n}\n"} if version else {}) | (files or {})
            for arcname, text in extra.items():
                data = text.encode()
                info = tarfile.TarInfo(arcname)
                info.size, info.mode, info.mtime = len(data), 0o755, 1_700_000_000
                dst.addfile(info, io.BytesIO(data))
        docker("import", "--message", f"import {n}", str(tar), tag)
        ids.append(docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.decode().strip())
        return ids[-1]

    yield tag, make
    docker("image", "rm", "-f", tag, *ids, check=False)


def test_base_image_moved_predicted_then_confirmed(new_project, imported_image):
    tag, make = imported_image
    old = make()
    p = new_project(f"FROM {tag}\nWORKDIR /w-NONCE\nRUN cat /version > v\n")
    p.build()
    new = make()
    assert new != old
    err, predicted = p.predict()
    assert roots(predicted) == [(2, "base-image-changed")]
    assert rebuilt(predicted) == [2, 3]
    detail = predicted["misses"][0]["cause"]["detail"]
    assert old[:19] in detail and new[:19] in detail, detail
    images = predicted["prediction"]["images"]
    assert [(i["digest"], i["from"]) for i in images] == [(new, "local image store")]
    assert "base image changed" in err
    _, built = p.build()
    confirmed(predicted, built)
    assert built["misses"][0]["cause"]["detail"] == detail


COPY_FROM_IMAGE = """FROM local/busybox:latest
WORKDIR /w-NONCE
COPY --from={tag} /tool /bin/
RUN --mount=type=bind,from={tag},source=/tool,target=/mnt/tool cat /mnt/tool > mounted.txt
RUN cat /bin/tool > copied.txt
"""


def _note_texts(report: dict) -> list[str]:
    return [" ".join((n.get("text") if isinstance(n, dict) else str(n)).split()) for n in report.get("notes") or []]


def test_copy_from_moved_image_same_files_predicted_cached(new_project, imported_image):
    """The tag moves to an import whose /tool is the same (only /version differs): BuildKit
    compares the copied and the mounted files' content, so nothing rebuilds."""
    tag, make = imported_image
    make({"tool": "echo tool 1\n"})
    p = new_project(COPY_FROM_IMAGE.format(tag=tag))
    p.build()
    make({"tool": "echo tool 1\n"})
    err, predicted = p.predict()
    assert rebuilt(predicted) == [] and predicted["prediction"]["may_rebuild"] == []
    assert "Prediction: nothing will be rebuilt" in err
    joined = " ".join(err.split())
    assert (f"Dockerfile:3: {tag} moved to a new digest, but the files it copies (/tool) are the same: "
            "BuildKit keeps the step") in joined, err
    assert f"Dockerfile:4: {tag} moved to a new digest, but the files it mounts (/tool) are the same" in joined
    _, built = p.build()
    assert rebuilt(built) == []
    confirmed(predicted, built)


def test_copy_from_moved_image_changed_files_predicted_rebuilt(new_project, imported_image):
    """/tool changed in the new import: the COPY is the root (base-image-changed, the
    build's own words) and everything after it rebuilds."""
    tag, make = imported_image
    old = make({"tool": "echo tool 1\n"})
    p = new_project(COPY_FROM_IMAGE.format(tag=tag))
    p.build()
    new = make({"tool": "echo tool 2\n"})
    err, predicted = p.predict()
    assert rebuilt(predicted) == [3, 4, 5] and predicted["prediction"]["may_rebuild"] == []
    assert roots(predicted)[0] == (3, "base-image-changed")
    detail = next(m for m in predicted["misses"] if m["line"] == 3)["cause"]["detail"]
    assert old[7:19] in detail and new[7:19] in detail, detail
    assert f"Dockerfile:3: {tag} moved to a new digest, and /tool differs in it" in " ".join(err.split()), err
    assert "echo tool" not in err and "echo tool" not in json.dumps(predicted)  # never file contents
    _, built = p.build()
    confirmed(predicted, built)
    assert next(m for m in built["misses"] if m["line"] == 3)["cause"]["detail"] == detail


def test_copy_from_moved_image_old_one_gone_may_rebuild(new_project, imported_image):
    """The image the last build copied from was removed: nothing to compare with, so the
    step may rebuild, and the reason says what was compared and why it could not tell."""
    tag, make = imported_image
    old = make({"tool": "echo tool 1\n"})
    p = new_project(COPY_FROM_IMAGE.format(tag=tag))
    p.build()
    make({"tool": "echo tool 1\n"})
    docker("image", "rm", old)
    err, predicted = p.predict()
    maybe = {m["line"]: m["reason"] for m in predicted["prediction"]["may_rebuild"]}
    assert sorted(maybe) == [3, 4, 5] and rebuilt(predicted) == []
    assert maybe[3] == (f"copies /tool from {tag}, which moved to a new digest; the files were not compared: "
                        f"the image it read last time ({tag}@{old[:19]}…) is not in the local image "
                        "store. It rebuilds only if they changed"), maybe[3]
    assert maybe[5] == "built on line 4, which may rebuild"
    assert "may rebuild: Dockerfile:3 COPY --from=" in err
    _, built = p.build()
    assert rebuilt(built) == []  # the files were the same: BuildKit kept the steps


def test_copy_from_moved_image_whole_filesystem_and_wildcards(new_project, imported_image):
    """`COPY --from=IMAGE / /img/` reads every file: /version changed, so it is the root.
    `COPY --from=IMAGE /too* /bin/` reads /tool only (BuildKit expands the wildcard): cached."""
    tag, make = imported_image
    make({"tool": "echo tool 1\n"})
    p = new_project(f"FROM local/busybox:latest\nWORKDIR /w-NONCE\nCOPY --from={tag} /too* /bin/\n"
                    f"COPY --from={tag} / /img/\nRUN cat /img/version\n")
    p.build()
    make({"tool": "echo tool 1\n"})
    err, predicted = p.predict()
    assert rebuilt(predicted) == [4, 5] and roots(predicted) == [(4, "base-image-changed")]
    assert predicted["prediction"]["may_rebuild"] == []
    joined = " ".join(err.split())
    assert f"Dockerfile:3: {tag} moved to a new digest, but the files it copies (/too*) are the same" in joined
    assert f"Dockerfile:4: {tag} moved to a new digest, and /version differs in it" in joined
    _, built = p.build()
    confirmed(predicted, built)


def test_copy_from_moved_image_with_the_same_layers_is_cached(new_project, imported_image):
    """An import of the same files again: a new digest, the same layer. Even `/`, which a
    container cannot show whole, is the same: BuildKit keeps the step, and so does predict."""
    tag, make = imported_image
    old = make({"tool": "echo tool 1\n"}, version=False)
    p = new_project(f"FROM local/busybox:latest\nWORKDIR /w-NONCE\nCOPY --from={tag} / /img/\nRUN ls /img\n")
    p.build()
    assert make({"tool": "echo tool 1\n"}, version=False) != old
    err, predicted = p.predict()
    assert rebuilt(predicted) == [] and predicted["prediction"]["may_rebuild"] == []
    assert f"Dockerfile:3: {tag} moved to a new digest, but the files it copies (/) are the same" in \
        " ".join(err.split())
    _, built = p.build()
    assert rebuilt(built) == []


def test_gates_on_a_prediction(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nCOPY a.txt .\nRUN sleep 1 && cat a.txt\n",
                    {"a.txt": "a\n"})
    p.build()
    p.write("a.txt", "b\n")
    err, _ = p.predict("--fail-on", "context-changed", rc=4)
    assert "cachewhy: gate: root cause context-changed at Dockerfile:3" in err
    err, _ = p.predict("--fail-above-time", "0.5s", rc=4)
    assert "cachewhy: gate: the rebuilt steps will take" in err and "above the budget of 0.5s" in err
    p.predict("--fail-above-time", "10m")
    p.predict("--fail-on", "base-image-changed")
    res = run_cachewhy("predict", "--fail-above-time", "soon", str(p.ctx))
    assert res.returncode == 2 and b"--fail-above-time takes a duration" in res.stderr


def test_build_predict_scores_and_history_shows_it(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nCOPY a.txt .\nRUN cat a.txt\n", {"a.txt": "a\n"})
    p.build()
    p.write("a.txt", "b\n")
    err, built = p.build("--predict")
    assert err.index("Prediction: 1 root cause") < err.index("Why: 1 root cause")
    assert "Prediction right: 3/3 step statuses, 1/1 root causes" in err
    assert "predicted to rebuild   3, 4" in err and "rebuilt                3, 4" in err
    from analyzer.store import Store  # noqa: PLC0415

    record = Store(p.store).load(built["build"]["ref"])
    score = record["prediction"]
    assert score["steps_right"] == score["steps"] == 3 and score["roots_right"] == 1
    assert score["predicted_rebuilt"] == score["rebuilt"] == [3, 4] and score["wrongly_cached"] == []
    res = run_cachewhy("history", "--store", str(p.store))
    lines = [x for x in res.stdout.decode().splitlines() if x.startswith(("ID ", "20"))]  # a build's first line
    col = lines[0].split().index("PRED") + 1  # WHEN is two words
    assert lines[1].split()[col] == "3/3" and lines[2].split()[col] == "-", lines
    assert all(len(x) <= 80 for x in res.stdout.decode().splitlines())


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_add_url_is_marked_may_rebuild_never_cached(new_project, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "f.txt").write_text("one\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/f.txt"
        p = new_project(f"FROM local/busybox:latest\nWORKDIR /w-NONCE\nADD {url} /f.txt\nRUN cat /f.txt\n")
        p.build()
        (served / "f.txt").write_text("two\n")
        err, predicted = p.predict()
        steps = {s["line"]: s["status"] for s in predicted["steps"] if s.get("line")}
        assert steps[3] == steps[4] == "may-rebuild" and steps[2] == "cached"
        assert [m["line"] for m in predicted["prediction"]["may_rebuild"]] == [3, 4]
        assert "without --checksum" in predicted["prediction"]["may_rebuild"][0]["reason"]
        assert "may rebuild: Dockerfile:3" in err and "1 may rebuild" not in err and "2 may rebuild" in err
        _, built = p.build()
        assert rebuilt(built) == [3, 4]  # the server's file moved: BuildKit fetched it again
    finally:
        server.shutdown()


def test_evicted_cache_predicted_then_confirmed(new_project, private_engine):  # noqa: F811
    env, _pid = private_engine
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\n"
                    "RUN --mount=type=cache,target=/root/.cache/NONCE echo NONCE > f\nRUN cat f\n", env=env)
    p.build()
    _, predicted = p.predict()
    assert rebuilt(predicted) == [] and predicted["prediction"]["cache"] == "checked"
    # a prune that removes nothing changes nothing: every step stays cached, as predicted
    docker("buildx", "prune", "-af", "--filter", "until=1000h", env=env)
    _, predicted = p.predict()
    assert rebuilt(predicted) == [] and predicted["prediction"]["may_rebuild"] == []
    _, built = p.build()
    assert rebuilt(built) == [], built["steps"]
    # the engine is this test's own: its whole build cache goes
    docker("buildx", "prune", "-af", env=env)
    err, predicted = p.predict()
    assert roots(predicted) == [(2, "cache-evicted")], predicted["misses"]
    assert rebuilt(predicted) == [2, 3, 4]
    assert "cache evicted: the step and its inputs are identical to the previous build" in " ".join(err.split())
    _, built = p.build()
    confirmed(predicted, built)
    # only the cache mounts go: the step records stay listed, but the builder is dockerd's
    # BuildKit (the buildx docker driver), which drops every cache key on a prune; the last
    # build ran the RUN that mounts it, a minute ago, so no GC can have collected it: every
    # step rebuilds, the first one cache-evicted, exactly as the build then reports it
    docker("buildx", "prune", "-af", "--filter", "type=exec.cachemount", env=env)
    err, predicted = p.predict()
    assert roots(predicted) == [(2, "cache-evicted")], predicted["misses"]
    assert rebuilt(predicted) == [2, 3, 4] and predicted["prediction"]["may_rebuild"] == []
    said = " ".join(err.split())
    assert (f"the cache mount /root/.cache/{p.nonce} (line 3) is gone: something pruned the builder since the "
            "last build; dockerd's BuildKit drops every cache key on any prune") in said, err
    _, built = p.build()
    confirmed(predicted, built)
    # the last build was all cached (it did not use the mount): dockerd's GC, which keeps
    # the cache keys, may have collected it as well as a prune, so nothing is claimed
    _, built = p.build()
    assert rebuilt(built) == []
    docker("buildx", "prune", "-af", "--filter", "type=exec.cachemount", env=env)
    err, predicted = p.predict()
    maybe = [m["line"] for m in predicted["prediction"]["may_rebuild"]]
    assert maybe == [2, 3, 4] and rebuilt(predicted) == [], predicted["prediction"]
    assert "the builder was pruned or garbage-collected since the last build" in " ".join(err.split()), err
    _, built = p.build()
    assert rebuilt(built) == [2, 3, 4]  # it was a prune


def test_no_builder_answer_says_the_cache_was_assumed(new_project):
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nRUN echo hi\n")
    p.build()
    res = run_cachewhy("predict", "--store", str(p.store), "--builder", "no-such-builder", *COMMON, str(p.ctx))
    err = res.stderr.decode()
    assert res.returncode == 0, err
    assert "assumed the cache still holds the last build" in " ".join(err.split()) and "cache assumed" in err


def test_named_context_edit_predicted_then_confirmed(new_project, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "l.txt").write_text("one\n")
    p = new_project("FROM local/busybox:latest\nWORKDIR /w-NONCE\nCOPY --from=lib l.txt .\nRUN cat l.txt\n")
    p.build("--build-context", f"lib={lib}")
    _, predicted = p.predict("--build-context", f"lib={lib}")
    assert rebuilt(predicted) == [] and predicted["prediction"]["may_rebuild"] == []
    (lib / "l.txt").write_text("two\n")
    _, predicted = p.predict("--build-context", f"lib={lib}")
    assert roots(predicted) == [(3, "context-changed")], predicted["misses"]
    _, built = p.build("--build-context", f"lib={lib}")
    confirmed(predicted, built)
