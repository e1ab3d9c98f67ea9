"""`cachewhy explain` and `cachewhy watch` on builds cachewhy did not run:
plain `docker buildx build`, read back from the builder's history over gRPC.

Each build carries a unique BUILDKIT_BUILD_NAME, so it is found by name in a
history other developers' builds share (never by "the newest build").
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import BASE_IMAGE, REPO, run_cachewhy

pytestmark = pytest.mark.engine

DOCKERFILE = """\
FROM {base}
RUN echo {nonce} > /nonce
COPY src/ /src/
RUN cat /src/*.txt > /all
"""


def _project(tmp_path: Path) -> tuple[Path, str]:
    nonce = uuid.uuid4().hex
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=BASE_IMAGE, nonce=nonce))
    (ctx / "src" / "a.txt").write_text("one\n")
    (ctx / "src" / "b.txt").write_text("b\n")
    return ctx, f"cw-hist-{nonce[:12]}"


def _plain_build(ctx: Path, name: str) -> None:
    res = subprocess.run(["docker", "buildx", "build", "--network=none", "--output=type=cacheonly",
                          "--build-arg", f"BUILDKIT_BUILD_NAME={name}", str(ctx)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]


def _refs_named(name: str) -> list[str]:
    """History refs of the builds named `name`, newest first."""
    res = subprocess.run(["docker", "buildx", "history", "ls", "--format", "json", "--no-trunc"],
                         capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:  # older buildx: no --no-trunc
        res = subprocess.run(["docker", "buildx", "history", "ls", "--format", "json"],
                             capture_output=True, text=True, timeout=60, check=True)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip().startswith("{")]
    rows = [r for r in rows if r.get("name") == name]
    rows.sort(key=lambda r: r.get("created_at") or "", reverse=True)
    return [r["ref"].rsplit("/", 1)[-1] for r in rows]


def test_explain_names_the_root_of_a_plain_build(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    assert len(refs) == 2, refs
    res = run_cachewhy("explain", refs[0], "--report-json", "-", "--width", "200", timeout=120)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    report = json.loads(res.stdout)
    assert report["build"]["ref"] == f"history {refs[0]}"
    assert report["previous"] == {"ref": f"history {refs[1]}"}  # the build of the same name before it
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["instruction"]) for m in roots] == [(3, "COPY src/ /src/")]
    # BuildKit keeps no snapshot of the context: the files are not named, but the
    # builder's cache still holds the COPY's previous result, so only their content differs
    cause = roots[0]["cause"]
    assert cause["kind"] == "context-changed" and "files" not in cause
    assert "by elimination" in cause["detail"] and "src" in cause["detail"]
    followers = [m for m in report["misses"] if not m["root"]]
    assert [m["line"] for m in followers] == [4]
    steps = {s["line"]: s["status"] for s in report["steps"] if s.get("line")}
    assert steps[2] == "cached"
    # the terminal says the same
    assert "Dockerfile:3" in err and "context changed" in err and f"history {refs[1]}" in err

    listed = run_cachewhy("explain", "--list", "--limit", "200", timeout=120)
    assert listed.returncode == 0
    assert refs[0] in listed.stdout.decode() and name in listed.stdout.decode()


def test_watch_explains_a_build_as_it_completes(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    (ctx / "src" / "b.txt").write_text("bee\n")
    env = dict(os.environ, CACHEWHY_LIVE="none", COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "watch"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        started = b""
        while b"watching" not in started and time.monotonic() < deadline:
            if sel.select(timeout=1):
                started += os.read(proc.stderr.fileno(), 4096)
            assert proc.poll() is None, started.decode()
        assert b"watching" in started
        _plain_build(ctx, name)
        out = b""
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while name.encode() not in out and time.monotonic() < deadline:
            if sel.select(timeout=1):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
        text = out.decode()
        para = next((p for p in text.split("\n\n") if name in p), "")
        assert para, text
        flat = " ".join(para.split())
        assert "completed" in flat and "Dockerfile:3" in flat and "context-changed" in flat
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0  # Ctrl-C ends it cleanly
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("builder", ["nosuch", "unix:///nonexistent.sock"])
def test_unreachable_builder_is_one_line_exit_3(builder):
    for cmd in (["explain"], ["explain", "--list"], ["watch"]):
        res = run_cachewhy(*cmd, "--builder", builder, timeout=60)
        err = res.stderr.decode().strip()
        assert res.returncode == 3, err
        assert len(err.splitlines()) == 1 and err.startswith("cachewhy: cannot reach"), err
        assert builder in err


def test_explain_a_failed_build_maps_its_lines_from_its_error(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    df = (ctx / "Dockerfile").read_text().replace("RUN cat /src/*.txt > /all", "RUN cat /src/*.txt > /all && false")
    (ctx / "Dockerfile").write_text(df)
    res = subprocess.run(["docker", "buildx", "build", "--network=none", "--output=type=cacheonly",
                          "--build-arg", f"BUILDKIT_BUILD_NAME={name}", str(ctx)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 1
    refs = _refs_named(name)
    assert len(refs) == 2, refs
    out = run_cachewhy("explain", refs[0], "--report-json", "-", timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    report = json.loads(out.stdout)
    assert report["build"]["exit_code"] == 1
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(4, "instruction-changed")]
    assert any("failed, so it has no provenance" in n for n in report["notes"])


def test_explain_against_a_stored_record(tmp_path):
    ctx, name = _project(tmp_path)
    store = tmp_path / "store"
    first = run_cachewhy("build", "--store", str(store), "--network=none", "--output=type=cacheonly",
                         "--build-arg", f"BUILDKIT_BUILD_NAME={name}", str(ctx), timeout=300)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    (ctx / "src" / "a.txt").write_text("two\n")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    kept = sorted(p.name for p in store.rglob("*") if p.is_file())
    res = run_cachewhy("explain", f"default/default/{refs[0]}", "--against", "^0", "--store", str(store),
                       "--report-json", "-", timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    assert report["previous"]["ref"] != f"history {refs[1]}"  # the stored record, not the history
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(3, "context-changed")]
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == kept  # explain keeps no record


def test_history_lists_the_builders_records_beside_the_stores(tmp_path):
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    res = run_cachewhy("history", "--store", str(tmp_path / "store"), "--builder", "default")
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode()
    assert "builder default:" in out
    assert f"({name})" in out  # the plain build, found by its BUILDKIT_BUILD_NAME
    res = run_cachewhy("history", "--store", str(tmp_path / "store"), "--builder", "nosuch")
    assert res.returncode == 3
    assert res.stderr.decode().strip().splitlines()[-1] == 'cachewhy: cannot reach nosuch: no builder "nosuch" found'
    assert "Traceback" not in res.stderr.decode()


def test_evicted_cache_shows_the_builders_disk_usage(tmp_path):
    """A plain build, its cache records removed, the same build again:
    explain reports cache-evicted and what DiskUsage says of the cache."""
    from tests.integration.test_causes import evict, prune_allowed

    prune_allowed()
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    nonce = (ctx / "Dockerfile").read_text().split("echo ", 1)[1].split(" ", 1)[0]
    evict(nonce)
    _plain_build(ctx, name)
    refs = _refs_named(name)
    res = run_cachewhy("explain", refs[0], "--report-json", "-", "--width", "200", timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(2, "cache-evicted")]
    evidence = [n for n in report["notes"] if n.startswith("cache-evicted: the builder's cache now holds")]
    assert evidence and " MB" in evidence[0] and "oldest entry" in evidence[0], report["notes"]


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e")
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def _git_project(tmp_path: Path) -> tuple[Path, str]:
    """The project in a folder of a git checkout, committed: buildx records the revision."""
    ctx, name = _project(tmp_path)
    _git(tmp_path, "init", "-q", str(tmp_path))
    (tmp_path / "notes.txt").write_text("outside the context\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "one")
    return ctx, name


def test_explain_names_changed_files_from_git_revisions(tmp_path):
    ctx, name = _git_project(tmp_path)
    _plain_build(ctx, name)
    first = _git(tmp_path, "rev-parse", "HEAD")
    (ctx / "src" / "a.txt").write_text("two\n")
    (ctx / "src" / "c.txt").write_text("new\n")
    (tmp_path / "notes.txt").write_text("changed, outside the context\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "two")
    second = _git(tmp_path, "rev-parse", "HEAD")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    assert len(refs) == 2, refs
    # run from inside the checkout, as a user would
    res = run_cachewhy("explain", refs[0], "--report-json", "-", "--width", "200", cwd=ctx, timeout=120)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    report = json.loads(res.stdout)
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(3, "context-changed")]
    cause = roots[0]["cause"]
    assert cause["files"] == {"added": ["src/c.txt"], "modified": ["src/a.txt"], "removed": []}
    assert f"from git, {first[:7]} \u2192 {second[:7]}" in cause["detail"]
    note = next(n for n in report["notes"] if n.startswith("context files were compared from git"))
    assert "uncommitted changes are not seen" in note
    assert "src/a.txt modified" in " ".join(err.split())

    # elsewhere than in the checkout, or with --repo pointing at it
    away = run_cachewhy("explain", refs[0], "--report-json", "-", cwd=REPO.parent, timeout=120)
    away_report = json.loads(away.stdout)
    # no files named away from the checkout: the cause by elimination, no file names
    assert [m["cause"]["kind"] for m in away_report["misses"] if m["root"]] == ["context-changed"]
    assert all("files" not in m["cause"] for m in away_report["misses"])
    assert any("is not a git checkout" in n for n in away_report["notes"]), away_report["notes"]
    named = run_cachewhy("explain", refs[0], "--repo", str(tmp_path), "--report-json", "-", cwd=REPO.parent,
                         timeout=120)
    assert [m["cause"]["kind"] for m in json.loads(named.stdout)["misses"] if m["root"]] == ["context-changed"]


def test_explain_says_git_cannot_see_uncommitted_changes(tmp_path):
    ctx, name = _git_project(tmp_path)
    _plain_build(ctx, name)
    (ctx / "src" / "a.txt").write_text("edited, not committed\n")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    res = run_cachewhy("explain", refs[0], "--report-json", "-", cwd=ctx, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(3, "context-changed")]
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert any(n.startswith(f"both builds are of git revision {head[:7]}") for n in report["notes"])
    assert roots[0]["cause"]["detail"].startswith("src changed, by elimination")


def _engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    assert host.startswith("unix://"), f"these tests reach the engine by its unix socket, not {host}"
    return host[len("unix://"):]


def test_the_engine_s_buildkit_is_reached_through_its_grpc_endpoint(tmp_path):
    """docker://: no docker CLI in the way, the engine API's /grpc upgrade."""
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    (ctx / "src" / "a.txt").write_text("two\n")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    sock = _engine_socket()
    env = {"PATH": "/usr/bin:/bin"}  # no docker CLI on PATH: the socket alone
    res = run_cachewhy("explain", refs[0], "--builder", f"docker://unix://{sock}", "--report-json", "-",
                       env=env, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    assert [(m["line"], m["instruction"]) for m in report["misses"] if m["root"]] == [(3, "COPY src/ /src/")]
    gone = run_cachewhy("explain", "--list", "--builder", f"docker://unix://{tmp_path}/none.sock", timeout=60)
    err = gone.stderr.decode().strip()
    assert gone.returncode == 3 and len(err.splitlines()) == 1 and "none.sock" in err, err


def _docker_config_copy(tmp_path: Path) -> dict[str, str]:
    """An environment whose DOCKER_CONFIG is a copy of the current one (with its
    CLI plugins, without its builders): contexts and builders made there leave
    the user's docker config as it was."""
    import shutil  # noqa: PLC0415

    config = tmp_path / "docker-config"
    source = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    if source.is_dir():
        shutil.copytree(source, config, symlinks=True, ignore=shutil.ignore_patterns("buildx"))
    config.mkdir(exist_ok=True)
    return dict(os.environ, DOCKER_CONFIG=str(config))


def test_the_builder_of_another_docker_context_is_reached(tmp_path):
    """A docker-driver builder named after a docker context other than the current
    one (buildx refuses `dial-stdio --builder` for it)."""
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    env = _docker_config_copy(tmp_path)
    made = subprocess.run(["docker", "context", "create", "cw-elsewhere", "--docker",
                           f"host=unix://{_engine_socket()}"], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    res = run_cachewhy("explain", "--list", "--limit", "200", "--builder", "cw-elsewhere", env=env, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    assert name in res.stdout.decode()


def _tls_files(tmp_path: Path) -> dict[str, str]:
    """A CA, a server certificate for the name `buildkitd`, a client certificate (openssl)."""
    d = tmp_path / "tls"
    d.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=cachewhy test CA")
    for who in ("server", "client"):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out", f"{who}.csr",
            "-subj", f"/CN={'buildkitd' if who == 'server' else 'cachewhy'}")
        (d / f"{who}.ext").write_text("subjectAltName=DNS:buildkitd\n" if who == "server" else
                                      "extendedKeyUsage=clientAuth\n")
        ssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{who}.pem", "-days", "2", "-extfile", f"{who}.ext")
    return {k: str(d / k) for k in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class _TlsBuildkit:
    """A TLS listener on loopback that requires a client certificate, in front of
    the engine's BuildKit (its /grpc endpoint): what a remote buildkitd looks like."""

    def __init__(self, files: dict[str, str]) -> None:
        import socket  # noqa: PLC0415
        import ssl  # noqa: PLC0415
        import threading  # noqa: PLC0415

        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(files["server.pem"], files["server.key"])
        self.tls.load_verify_locations(files["ca.pem"])
        self.tls.verify_mode = ssl.CERT_REQUIRED
        self.tls.set_alpn_protocols(["h2"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.engine = _engine_socket()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import ssl  # noqa: PLC0415
        import threading  # noqa: PLC0415

        from analyzer.buildkit.connect import _pump, dockerd_grpc  # noqa: PLC0415

        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                conn = self.tls.wrap_socket(raw, server_side=True)
                far, early = dockerd_grpc(self.engine)
                conn.sendall(early)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            threading.Thread(target=_pump, args=(conn, far), daemon=True).start()
            threading.Thread(target=_pump, args=(far, conn), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def test_a_tls_buildkitd_address_with_client_certificates(tmp_path):
    files = _tls_files(tmp_path)
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    bk = _TlsBuildkit(files)
    try:
        tls = ["--tlscacert", files["ca.pem"], "--tlscert", files["client.pem"], "--tlskey", files["client.key"],
               "--tlsservername", "buildkitd"]
        res = run_cachewhy("explain", "--list", "--limit", "200", "--builder", bk.address, *tls, timeout=120)
        assert res.returncode == 0, res.stderr.decode()
        assert name in res.stdout.decode()
        # without a client certificate the server refuses: one line, exit 3
        bare = run_cachewhy("explain", "--list", "--builder", bk.address, *tls[:2], *tls[-2:], timeout=120)
        err = bare.stderr.decode().strip()
        assert bare.returncode == 3 and len(err.splitlines()) == 1 and bk.address in err, err
        assert "the TLS handshake failed" in err
        # a TLS option with no tcp:// address is a usage error
        usage = run_cachewhy("explain", "--list", "--tlscacert", files["ca.pem"], timeout=60)
        assert usage.returncode == 2
        assert usage.stderr.decode().strip() == "cachewhy: --tlscacert goes with --builder tcp://HOST:PORT"
    finally:
        bk.close()


def test_a_builder_of_buildx_s_remote_driver(tmp_path):
    """`docker buildx create --driver remote` over TLS: cachewhy build runs through
    it, and explain reads its history through `dial-stdio --builder`."""
    files = _tls_files(tmp_path)
    bk = _TlsBuildkit(files)
    env = _docker_config_copy(tmp_path)  # the builder is made in a copy of the docker config
    builder = f"cw-remote-{uuid.uuid4().hex[:6]}"
    opts = (f"cacert={files['ca.pem']},cert={files['client.pem']},key={files['client.key']},"
            f"servername=buildkitd")
    try:
        made = subprocess.run(["docker", "buildx", "create", "--name", builder, "--driver", "remote",
                               "--driver-opt", opts, bk.address], env=env, capture_output=True, text=True,
                              timeout=120)
        assert made.returncode == 0, made.stderr
        ctx, name = _project(tmp_path)
        store = tmp_path / "store"
        args = ["build", "--store", str(store), "--builder", builder, "--network=none",
                "--build-arg", f"BUILDKIT_BUILD_NAME={name}", str(ctx)]
        first = run_cachewhy(*args, env=env, timeout=300)
        assert first.returncode == 0, first.stderr.decode()[-3000:]
        (ctx / "src" / "b.txt").write_text("bee\n")
        second = run_cachewhy(*args[:-1], "--report-json", "-", str(ctx), env=env, timeout=300)
        assert second.returncode == 0, second.stderr.decode()[-3000:]
        report = json.loads(second.stdout)
        roots = [m for m in report["misses"] if m["root"]]
        assert [(m["line"], m["cause"]["kind"], m["cause"]["files"]["modified"]) for m in roots] == \
            [(3, "context-changed", ["src/b.txt"])]
        # the same two builds, read back from the remote builder's history
        res = run_cachewhy("explain", "--builder", builder, "--report-json", "-", env=env, timeout=120)
        assert res.returncode == 0, res.stderr.decode()
        explained = json.loads(res.stdout)
        assert [(m["line"], m["cause"]["kind"]) for m in explained["misses"] if m["root"]] == \
            [(3, "context-changed")]  # by elimination: the remote builder's DiskUsage
    finally:
        subprocess.run(["docker", "buildx", "rm", builder], env=env, capture_output=True, timeout=60)
        bk.close()


def test_explain_since_explains_each_recent_build_oldest_first(tmp_path):
    began = time.time()
    ctx, name = _project(tmp_path)
    _plain_build(ctx, name)
    (ctx / "src" / "b.txt").write_text("bee\n")
    _plain_build(ctx, name)
    refs = _refs_named(name)
    window = f"{int(time.time() - began) + 3}s"  # these two builds (tests run one at a time)
    res = run_cachewhy("explain", "--since", window, "--report-json", "-", "--width", "200", timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    reports = [r for r in json.loads(res.stdout) if r["build"]["ref"] in {f"history {x}" for x in refs}]
    assert [r["build"]["ref"] for r in reports] == [f"history {refs[1]}", f"history {refs[0]}"]  # as they ran
    second = [(m["line"], m["cause"]["kind"]) for m in reports[1]["misses"] if m["root"]]
    assert second == [(3, "context-changed")]
    paragraphs = res.stderr.decode()  # with the JSON on stdout, the paragraphs go to stderr
    assert f"Build {refs[0]} (cw-hist-" in paragraphs and "Dockerfile:3 COPY src/ /src/" in paragraphs
    bad = run_cachewhy("explain", "--since", "soon", timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.decode().strip() == "cachewhy: --since takes a duration such as 90s, 30m, 1h or 2d, not 'soon'"
