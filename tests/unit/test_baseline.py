"""The record that travels with the build cache (analyzer/baseline.py), without an engine:
cache specs, registry references and the artifact tag, the manifest, auth
challenges and docker config credentials, record files, import and export,
a small in-process registry for the push and fetch protocol, and how the
`RunBaseline` of `cachewhy build` (analyzer/sources/run.py) picks the previous record."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from analyzer import baseline as carry
from analyzer.baseline import (
    EMPTY_DIGEST,
    RECORD_FILE,
    RECORD_MEDIA_TYPE,
    BaselineError,
    NoRecord,
    parse_cache_spec,
    parse_challenge,
    parse_ref,
    read_credentials,
    record_tag,
)
from analyzer.store import SCHEMA, Store, StoreError

# ------------------------------------------------------------------ helpers


def make_record(rid: str = "20260101T000000000000-0000aaaa", target: str | None = None,
                context: str = "/work/app", **extra) -> dict:
    """A minimal record the store accepts."""
    rec = {
        "schema": SCHEMA, "id": rid, "created": 1767225600.0, "complete": True, "exit_code": 0,
        "project": {"context": context, "dockerfile": f"{context}/Dockerfile", "target": target, "platforms": []},
        "steps": [],
    }
    rec.update(extra)
    return rec


def project_of(rec: dict) -> dict:
    return dict(rec["project"])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ cache specs

@pytest.mark.parametrize("value, kind, attrs", [
    ("type=local,dest=/tmp/c", "local", {"dest": "/tmp/c"}),
    ("type=local,src=/tmp/c", "local", {"src": "/tmp/c"}),
    ("type=registry,ref=localhost:5000/app/cache:main,mode=max", "registry",
     {"ref": "localhost:5000/app/cache:main", "mode": "max"}),
    ("ref=ghcr.io/o/app:cache", "registry", {"ref": "ghcr.io/o/app:cache"}),  # no type: a registry
    ("user/app:cache", "registry", {"ref": "user/app:cache"}),  # a bare ref, as buildx reads it
    ('type=local,"dest=/tmp/a,b"', "local", {"dest": "/tmp/a,b"}),  # CSV quoting
    ("type=gha,scope=main", "gha", {"scope": "main"}),
    ("type=inline", "inline", {}),
    ("TYPE=Registry,REF=x/y", "registry", {"ref": "x/y"}),
])
def test_parse_cache_spec(value, kind, attrs):
    spec = parse_cache_spec(value)
    assert (spec.type, spec.attrs, spec.raw) == (kind, attrs, value)


def test_registry_insecure_attribute():
    assert parse_cache_spec("type=registry,ref=r.example/a:b,registry.insecure=true").insecure
    assert not parse_cache_spec("type=registry,ref=r.example/a:b").insecure


# ------------------------------------------------------------------ references and the artifact tag

@pytest.mark.parametrize("ref, host, repo, tag, artifact", [
    ("localhost:5000/app/cache:main", "localhost:5000", "app/cache", "main", "localhost:5000/app/cache:main-cachewhy"),
    ("127.0.0.1:5000/cw/cache", "127.0.0.1:5000", "cw/cache", None, "127.0.0.1:5000/cw/cache:latest-cachewhy"),
    ("user/app:cache", "docker.io", "user/app", "cache", "docker.io/user/app:cache-cachewhy"),
    ("ubuntu", "docker.io", "library/ubuntu", None, "docker.io/library/ubuntu:latest-cachewhy"),
    ("docker.io/user/app:v1.2", "docker.io", "user/app", "v1.2", "docker.io/user/app:v1.2-cachewhy"),
    ("index.docker.io/user/app:x", "docker.io", "user/app", "x", "docker.io/user/app:x-cachewhy"),
    ("ghcr.io/org/repo/cache:pr-12", "ghcr.io", "org/repo/cache", "pr-12", "ghcr.io/org/repo/cache:pr-12-cachewhy"),
    ("localhost/app:t", "localhost", "app", "t", "localhost/app:t-cachewhy"),
    ("r.example.com:443/a/b@sha256:" + "0" * 64, "r.example.com:443", "a/b", None,
     "r.example.com:443/a/b:latest-cachewhy"),
    ("[::1]:5000/a:b", "[::1]:5000", "a", "b", "[::1]:5000/a:b-cachewhy"),
])
def test_parse_ref_and_artifact_tag(ref, host, repo, tag, artifact):
    r = parse_ref(ref)
    assert (r.host, r.repository, r.tag) == (host, repo, tag)
    assert r.artifact() == artifact


def test_docker_hub_api_host():
    assert parse_ref("user/app:x").api_host == "registry-1.docker.io"
    assert parse_ref("ghcr.io/a/b").api_host == "ghcr.io"


@pytest.mark.parametrize("ref, loopback", [
    ("localhost:5000/a", True), ("127.0.0.1:5000/a", True), ("127.1.2.3:80/a", True), ("[::1]:5000/a", True),
    ("localhost/a", True), ("ghcr.io/a/b", False), ("user/app", False), ("10.0.0.1:5000/a", False),
])
def test_loopback_registries_are_plain_http(ref, loopback):
    r = parse_ref(ref)
    assert r.loopback is loopback
    assert carry.Registry(r).base.startswith("http://" if loopback else "https://")


def test_record_tag_keeps_within_128_characters():
    assert record_tag("main") == "main-cachewhy"
    assert record_tag(None) == "latest-cachewhy"
    long = "t" * 128
    assert len(record_tag(long)) == 128 and record_tag(long).endswith("-cachewhy")
    assert re.fullmatch(r"[\w][\w.-]{0,127}", record_tag(long))


@pytest.mark.parametrize("ref", ["", "UPPER/app", "host.example/app:bad tag", "app:", "a//b", "host.example/-x"])
def test_bad_refs_are_one_line_errors(ref):
    with pytest.raises(BaselineError):
        parse_ref(ref)


# ------------------------------------------------------------------ the manifest

def test_manifest_shape():
    rec = make_record()
    blob = carry.record_bytes(rec)
    m = json.loads(carry.make_manifest(rec, blob))
    assert m["schemaVersion"] == 2
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["artifactType"] == RECORD_MEDIA_TYPE == "application/vnd.cachewhy.record.v1+json"
    assert m["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2}
    assert EMPTY_DIGEST == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    [layer] = m["layers"]
    assert layer["mediaType"] == RECORD_MEDIA_TYPE
    assert layer["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest() and layer["size"] == len(blob)
    assert layer["annotations"]["org.opencontainers.image.title"] == RECORD_FILE
    assert m["annotations"]["cachewhy.record.id"] == rec["id"]
    assert m["annotations"]["org.opencontainers.image.created"] == "2026-01-01T00:00:00Z"
    # the blob is the record as the store writes it
    assert json.loads(blob) == rec
    assert carry.record_layer(carry.make_manifest(rec, blob), "x") == layer


@pytest.mark.parametrize("manifest, words", [
    ({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": {"mediaType": "application/vnd.oci.image.config.v1+json"}, "layers": []}, "is not a cachewhy record"),
    ({"artifactType": RECORD_MEDIA_TYPE, "layers": []}, "no application/vnd.cachewhy.record.v1+json layer"),
    ({"artifactType": RECORD_MEDIA_TYPE, "layers": [{"mediaType": RECORD_MEDIA_TYPE, "digest": "md5:x", "size": 1}]},
     "no sha256 digest"),
    ({"artifactType": RECORD_MEDIA_TYPE,
      "layers": [{"mediaType": RECORD_MEDIA_TYPE, "digest": "sha256:" + "a" * 64, "size": 10**12}]}, "not plausible"),
    ([1, 2], "not a JSON object"),
])
def test_foreign_manifests_are_refused(manifest, words):
    with pytest.raises(BaselineError, match=re.escape(words)):
        carry.record_layer(json.dumps(manifest).encode(), "r/x:t-cachewhy")
    with pytest.raises(BaselineError, match="not JSON"):
        carry.record_layer(b"<html>", "r/x:t-cachewhy")


# ------------------------------------------------------------------ WWW-Authenticate

@pytest.mark.parametrize("header, scheme, params", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:samalba/my-app:pull,push"', "bearer",
     {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
      "scope": "repository:samalba/my-app:pull,push"}),
    ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
    ('Bearer realm=https://ghcr.io/token, service=ghcr.io', "bearer",
     {"realm": "https://ghcr.io/token", "service": "ghcr.io"}),
    ('Bearer realm="x",error="insufficient_scope",scope="repository:a/b:pull"', "bearer",
     {"realm": "x", "error": "insufficient_scope", "scope": "repository:a/b:pull"}),
    ('bearer realm="a \\"quoted\\" realm"', "bearer", {"realm": 'a "quoted" realm'}),
    ("", "", {}),
])
def test_parse_challenge(header, scheme, params):
    assert parse_challenge(header) == (scheme, params)


# ------------------------------------------------------------------ credentials

def write_config(folder: Path, conf: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(conf))
    return folder / "config.json"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_from_auths(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    write_config(tmp_path / "d", {"auths": {
        "ghcr.io": {"auth": b64("me:s3cret:with:colons")},
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpass")},
        "http://localhost:5000": {"username": "u", "password": "p"},
    }})
    creds, note = read_credentials("ghcr.io")
    assert (creds.username, creds.password, note) == ("me", "s3cret:with:colons", None)
    creds, _ = read_credentials("docker.io")
    assert (creds.username, creds.password) == ("hubuser", "hubpass")
    creds, _ = read_credentials("localhost:5000")
    assert (creds.username, creds.password) == ("u", "p")
    assert read_credentials("quay.io") == (None, None)


def test_credentials_default_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    write_config(tmp_path / ".docker", {"auths": {"r.example": {"auth": b64("a:b")}}})
    assert read_credentials("r.example")[0].username == "a"


@pytest.mark.parametrize("conf, words", [
    ("{not json", "cannot read"),
    ({"auths": {"r.example": {"auth": "!!!"}}}, "not base64 user:password"),
    ({"auths": {"r.example": {"identitytoken": "tok"}}}, "identity token"),
])
def test_unusable_credentials_are_a_note(tmp_path, conf, words):
    path = tmp_path / "config.json"
    path.write_text(conf if isinstance(conf, str) else json.dumps(conf))
    creds, note = read_credentials("r.example", config=path)
    assert creds is None and words in note


def test_missing_config_is_anonymous(tmp_path):
    assert read_credentials("r.example", config=tmp_path / "none.json") == (None, None)


def test_credential_helpers(tmp_path):
    path = write_config(tmp_path, {"credsStore": "desktop", "credHelpers": {"ghcr.io": "gh"},
                                   "auths": {"inline.example": {"auth": b64("i:j")}}})
    calls = []

    def run(cmd, input, **kw):  # noqa: A002 - subprocess.run's name
        calls.append((cmd, input))
        if cmd[0] == "docker-credential-gh":
            return subprocess.CompletedProcess(cmd, 0, json.dumps({"Username": "x", "Secret": "y"}).encode(), b"")
        if input == b"https://index.docker.io/v1/":
            return subprocess.CompletedProcess(cmd, 1, b"credentials not found in native keychain", b"")
        return subprocess.CompletedProcess(cmd, 1, b"error getting credentials", b"")

    creds, note = read_credentials("ghcr.io", config=path, run=run)
    assert (creds.username, creds.password, note) == ("x", "y", None)
    assert calls[-1] == (["docker-credential-gh", "get"], b"ghcr.io")
    assert read_credentials("docker.io", config=path, run=run) == (None, None)  # not logged in
    creds, note = read_credentials("other.example", config=path, run=run)
    assert creds is None and "docker-credential-desktop failed: error getting credentials" in note
    # an inline login is used as it is, without asking the default store
    assert read_credentials("inline.example", config=path, run=run)[0].username == "i"


def test_missing_credential_helper_is_a_note(tmp_path):
    path = write_config(tmp_path, {"credsStore": "no-such-helper-cachewhy"})
    creds, note = read_credentials("r.example", config=path)
    assert creds is None and "docker-credential-no-such-helper-cachewhy could not run" in note


# ------------------------------------------------------------------ record files

def test_record_file_round_trip_is_atomic_and_leaves_the_cache_alone(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "index.json").write_text('{"buildkit": true}')
    rec = make_record()
    target = carry.write_record_file(cache, rec)
    assert target == cache / RECORD_FILE
    assert sorted(p.name for p in cache.iterdir()) == ["cachewhy-record.json", "index.json"]
    assert (cache / "index.json").read_text() == '{"buildkit": true}'
    assert carry.read_record_file(target) == rec
    carry.write_record_file(cache, make_record("20260101T000000000000-0000bbbb"))  # replaced
    assert carry.read_record_file(target)["id"] == "20260101T000000000000-0000bbbb"


@pytest.mark.parametrize("content, words", [
    (b"", "empty file"),
    (b'{"schema": "cachewhy.record/v1", "id": ', "truncated"),
    (b"{]}", "corrupt JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "not a record"),
    (b'{"schema": "cachewhy.record/v1", "id": "x"}', "missing keys"),
    (b'{"schema": "cachewhy.record/v9", "id": "x"}', "newer cachewhy"),
    (b'{"schema": "something.else/v1"}', "not a cachewhy record"),
])
def test_corrupt_record_files_are_refused(tmp_path, content, words):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=re.escape(words)):
        carry.read_record_file(path)


def test_missing_and_odd_record_files(tmp_path):
    with pytest.raises(NoRecord, match="no such file"):
        carry.read_record_file(tmp_path / "nope.json")
    with pytest.raises(BaselineError, match="is a directory"):
        carry.read_record_file(tmp_path)


def test_unwritable_destination_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BaselineError, match="cannot write"):
        carry.write_record_file(blocker, make_record())


# ------------------------------------------------------------------ import and export

def test_import_takes_the_first_cache_that_carries_a_record(tmp_path):
    rec = make_record()
    second = tmp_path / "second"
    carry.write_record_file(second, rec)
    got = carry.import_record([f"type=local,src={tmp_path / 'first'}", "type=gha,scope=x",
                               f"type=local,src={second}"], project_of(rec))
    assert got.record == rec and got.source == f"--cache-from type=local,src={second}"
    [note] = got.notes
    assert f"type=local,src={tmp_path / 'first'}" in note and "no such file" in note
    assert "none exported there yet" in note


def test_import_skips_a_record_of_another_target(tmp_path):
    carry.write_record_file(tmp_path / "c", make_record(target="release"))
    got = carry.import_record([f"type=local,src={tmp_path / 'c'}"], project_of(make_record(target="test")))
    assert got.record is None
    assert "is not used: it is of target release, not test" in got.notes[0]


def test_import_accepts_another_context_folder(tmp_path):
    """Another runner checks the project out elsewhere: the Dockerfile's place in it is what counts."""
    rec = make_record(context="/home/runner/work/app")
    carry.write_record_file(tmp_path / "c", rec)
    got = carry.import_record([f"type=local,src={tmp_path / 'c'}"], project_of(make_record(context="/builds/app")))
    assert got.record == rec
    other = make_record(context="/builds/app")
    other["project"]["dockerfile"] = "/builds/app/docker/Dockerfile"
    got = carry.import_record([f"type=local,src={tmp_path / 'c'}"], project_of(other))
    assert got.record is None and "its Dockerfile is Dockerfile, not docker/Dockerfile" in got.notes[0]


def test_import_of_a_corrupt_record_is_a_note(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / RECORD_FILE).write_text("{oops}")
    got = carry.import_record([f"type=local,src={tmp_path / 'c'}"], None)
    assert got.record is None and "no record imported" in got.notes[0] and "corrupt JSON" in got.notes[0]


def test_import_from_a_registry_that_is_down_is_a_note():
    ref = f"127.0.0.1:{closed_port()}/a/b:c"
    got = carry.import_record([f"type=registry,ref={ref}"], None)
    assert got.record is None and "cannot reach 127.0.0.1" in got.notes[0]


def test_import_from_caches_that_cannot_carry_a_record():
    assert carry.import_record(["type=inline", "type=gha,scope=main"], None) == carry.Imported(None, None, [])
    assert "type=gha carries no cachewhy record" in carry.foreign_cache_note(["type=gha,scope=main", "type=inline"])
    assert carry.foreign_cache_note(["type=inline"]) is None
    assert carry.foreign_cache_note(["type=gha", "type=local,src=/x"]) is None  # the local one may carry it


def test_foreign_cache_hint_only_without_any_baseline(tmp_path):
    b, _ = baseline_for(tmp_path, ["--cache-from", "type=gha,scope=main"])
    assert b.previous is None and "type=gha carries no cachewhy record" in b.notes[0]
    other = tmp_path / "other"  # a store with a previous build
    other.mkdir()
    b, _ = baseline_for(other, ["--cache-from", "type=gha,scope=main"], [make_record()])
    assert b.previous is not None and b.notes == []


def test_export(tmp_path):
    rec = make_record()
    lines = carry.export_record([f"type=local,dest={tmp_path / 'c'},mode=max", "type=inline",
                                 "type=gha,mode=max", f"type=local,dest={tmp_path / 'c' / RECORD_FILE / 'x'}"], rec)
    assert lines[0] == f"record {rec['id']} written to {tmp_path / 'c' / RECORD_FILE}"
    assert "the record was not exported" in lines[1] and "the build is not affected" in lines[1]
    assert len(lines) == 2  # type=inline and type=gha cannot carry it: skipped without a word
    assert carry.read_record_file(tmp_path / "c" / RECORD_FILE) == rec


def test_export_to_a_registry_that_is_down_is_a_line():
    [line] = carry.export_record([f"type=registry,ref=127.0.0.1:{closed_port()}/a/b:c"], make_record())
    assert "the record was not exported: cannot reach 127.0.0.1" in line


# ------------------------------------------------------------------ a registry in this process

class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """Just enough of the distribution API: blob uploads (POST then PUT
    ?digest=), manifests, and either Basic auth or a Bearer token service."""

    protocol_version = "HTTP/1.1"
    state: dict  # set per server

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self) -> bool:
        st = self.state
        auth = self.headers.get("Authorization", "")
        st["auth_seen"].append(auth)
        basic = "Basic " + base64.b64encode(b"user:pw").decode()
        if st["mode"] == "basic":
            if auth == basic:
                return True
            self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
                       {"WWW-Authenticate": 'Basic realm="fake"'})
            return False
        if st["mode"] == "bearer":
            push = self.command in ("POST", "PUT", "PATCH") or self.path.startswith("/v2/") and "uploads" in self.path
            need = "pull,push" if push else "pull"
            if auth in (f"Bearer tok-{need}", "Bearer tok-pull,push"):
                return True
            port = self.server.server_address[1]
            self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
                "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{port}/token",service="fake",'
                                    f'scope="repository:cw/app:{need}"'})
            return False
        return True

    def _token(self) -> None:
        from urllib.parse import parse_qs, urlparse  # noqa: PLC0415

        q = parse_qs(urlparse(self.path).query)
        basic = "Basic " + base64.b64encode(b"user:pw").decode()
        if self.headers.get("Authorization") != basic or q.get("service") != ["fake"]:
            self._send(401, b'{"details":"bad credentials"}')
            return
        scope = q["scope"][0]
        self.state["scopes"].append(scope)
        self._send(200, json.dumps({"token": "tok-" + scope.rsplit(":", 1)[1]}).encode())

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/token"):
            return self._token()
        if not self._authorized():
            return None
        st = self.state
        m = re.fullmatch(r"/v2/cw/app/(manifests|blobs)/([^/?]+)", self.path)
        if not m:
            return self._send(404)
        store = st["manifests"] if m.group(1) == "manifests" else st["blobs"]
        if m.group(2) not in store:
            return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
        if m.group(1) == "manifests":
            st["accepts"].append(self.headers.get("Accept"))
        data, ctype = store[m.group(2)]
        return self._send(200, data, {"Content-Type": ctype})

    def do_HEAD(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        m = re.fullmatch(r"/v2/cw/app/blobs/([^/?]+)", self.path)
        self._send(200 if m and m.group(1) in self.state["blobs"] else 404)

    def do_POST(self) -> None:  # noqa: N802
        self._body()
        if not self._authorized():
            return
        if self.path != "/v2/cw/app/blobs/uploads/":
            return self._send(404)
        self.state["uploads"] += 1
        return self._send(202, b"", {"Location": f"/v2/cw/app/blobs/uploads/u{self.state['uploads']}?_state=abc"})

    def do_PUT(self) -> None:  # noqa: N802
        body = self._body()
        if not self._authorized():
            return None
        st = self.state
        m = re.fullmatch(r"/v2/cw/app/blobs/uploads/u\d+\?_state=abc&digest=(sha256%3A[0-9a-f]{64})", self.path)
        if m:
            digest = m.group(1).replace("%3A", ":")
            if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                return self._send(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
            st["blobs"][digest] = (body, "application/octet-stream")
            return self._send(201, b"", {"Docker-Content-Digest": digest})
        m = re.fullmatch(r"/v2/cw/app/manifests/([\w][\w.-]*)", self.path)
        if m:
            manifest = json.loads(body)
            for d in [manifest["config"], *manifest["layers"]]:
                if d["digest"] not in st["blobs"]:
                    return self._send(400, b'{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}')
            st["manifests"][m.group(1)] = (body, self.headers.get("Content-Type"))
            return self._send(201)
        return self._send(404)


@pytest.fixture
def fake_registry():
    servers = []

    def start(mode: str = "none"):
        state = {"mode": mode, "blobs": {}, "manifests": {}, "uploads": 0, "auth_seen": [], "scopes": [],
                 "accepts": []}
        handler = type("Handler", (FakeRegistry,), {"state": state})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}", state

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def creds_user_pw(host):
    return carry.Credentials("user", "pw"), None


def no_creds(host):
    return None, None


@pytest.mark.parametrize("mode", ["none", "basic", "bearer"])
def test_push_and_fetch_round_trip(fake_registry, mode):
    addr, state = fake_registry(mode)
    rec = make_record()
    reg = carry.Registry(parse_ref(f"{addr}/cw/app:main"), credentials=creds_user_pw)
    digest = reg.push_record(rec)
    body, ctype = state["manifests"]["main-cachewhy"]
    assert ctype == "application/vnd.oci.image.manifest.v1+json"
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert json.loads(body)["artifactType"] == RECORD_MEDIA_TYPE
    assert EMPTY_DIGEST in state["blobs"]
    # a second push uploads only the new record blob: the empty config is there (HEAD)
    uploads = state["uploads"]
    carry.Registry(parse_ref(f"{addr}/cw/app:main"), credentials=creds_user_pw).push_record(make_record("r2"))
    assert state["uploads"] == uploads + 1

    got = carry.Registry(parse_ref(f"{addr}/cw/app:main"), credentials=creds_user_pw).fetch_record()
    assert got == make_record("r2")
    assert "application/vnd.oci.image.manifest.v1+json" in state["accepts"][-1]
    if mode == "bearer":
        assert "repository:cw/app:pull,push" in state["scopes"]
        assert "Bearer tok-pull,push" in state["auth_seen"]
    if mode == "basic":
        assert "Basic " + base64.b64encode(b"user:pw").decode() in state["auth_seen"]


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_anonymous_push_is_refused_with_a_clear_line(fake_registry, mode):
    addr, _ = fake_registry(mode)
    reg = carry.Registry(parse_ref(f"{addr}/cw/app:main"), credentials=no_creds)
    with pytest.raises(BaselineError) as e:
        reg.push_record(make_record())
    text = str(e.value)
    assert "\n" not in text
    assert ("not allowed to push to" in text and "docker login" in text) or "token service" in text


def test_fetch_missing_tag_and_foreign_artifacts(fake_registry):
    addr, state = fake_registry()
    reg = carry.Registry(parse_ref(f"{addr}/cw/app:main"), credentials=no_creds)
    with pytest.raises(NoRecord, match=re.escape(f"no record at {addr}/cw/app:main-cachewhy")):
        reg.fetch_record()
    image = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": EMPTY_DIGEST, "size": 2},
             "layers": []}
    state["manifests"]["main-cachewhy"] = (json.dumps(image).encode(), "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(BaselineError, match="is not a cachewhy record"):
        reg.fetch_record()
    # a record layer whose blob does not match its digest
    blob = carry.record_bytes(make_record())
    manifest = carry.make_manifest(make_record(), blob)
    state["manifests"]["main-cachewhy"] = (manifest, "application/vnd.oci.image.manifest.v1+json")
    state["blobs"][json.loads(manifest)["layers"][0]["digest"]] = (blob + b" ", "application/octet-stream")
    with pytest.raises(BaselineError, match="does not match its digest"):
        reg.fetch_record()
    # a corrupt record behind a correct digest
    bad = b'{"schema": "cachewhy.record/v1"}'
    manifest = carry.make_manifest(make_record(), bad)
    state["manifests"]["main-cachewhy"] = (manifest, "application/vnd.oci.image.manifest.v1+json")
    state["blobs"][json.loads(manifest)["layers"][0]["digest"]] = (bad, "application/octet-stream")
    with pytest.raises(StoreError, match="missing keys"):
        reg.fetch_record()


def test_import_through_the_fake_registry(fake_registry, monkeypatch, tmp_path):
    addr, _ = fake_registry("basic")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    write_config(tmp_path / "d", {"auths": {addr: {"auth": b64("user:pw")}}})
    rec = make_record()
    assert carry.export_record([f"type=registry,ref={addr}/cw/app:pr-1,mode=max"], rec) == [
        f"record {rec['id']} pushed to {addr}/cw/app:pr-1-cachewhy"]
    got = carry.import_record([f"type=registry,ref={addr}/cw/app:pr-1"], project_of(rec))
    assert got.record == rec and got.notes == []


# ------------------------------------------------------------------ how `cachewhy build` picks the baseline

def baseline_for(tmp_path: Path, argv: list[str], store_records: list[dict] = ()):
    """The Baseline of `cachewhy build ARGV CTX`, with a store holding `store_records`."""
    from analyzer import buildx  # noqa: PLC0415
    from analyzer.commands.build import parse_options  # noqa: PLC0415
    from analyzer.sources.run import RunBaseline  # noqa: PLC0415
    from analyzer.record import project_of as project_of_args  # noqa: PLC0415

    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    opts = parse_options(["--store", str(tmp_path / "store"), *argv, str(ctx)])
    args = buildx.parse_args(opts.buildx_argv)
    project = project_of_args(args, args.dockerfile_path())
    store = Store(tmp_path / "store", fsync=False)
    for rec in store_records:
        store.save(dict(rec, project=project))
    return RunBaseline(opts.store, opts.against, opts.baseline, args, args.dockerfile_path(), None), project


def test_baseline_precedence(tmp_path):
    local = make_record("20260101T000000000000-0000000a")
    imported = make_record("20260101T000000000000-0000000b")
    given = make_record("20260101T000000000000-0000000c")
    _, project = baseline_for(tmp_path, [])
    carry.write_record_file(tmp_path / "cache", dict(imported, project=project))
    carry.write_record_file(tmp_path / "given", dict(given, project=project))
    cache_from = ["--cache-from", f"type=local,src={tmp_path / 'cache'}"]
    given_arg = ["--baseline", str(tmp_path / "given" / RECORD_FILE)]

    b, _ = baseline_for(tmp_path, [], [local])
    assert (b.previous["id"], b.source, b.notes) == (local["id"], "store", [])

    b, _ = baseline_for(tmp_path, cache_from)
    assert (b.previous["id"], b.source) == (imported["id"], "cache-from")
    assert b.notes == [f"compared with the record imported with --cache-from type=local,src={tmp_path / 'cache'} "
                       f"(build {imported['id']})"]

    b, _ = baseline_for(tmp_path, [*cache_from, *given_arg])
    assert (b.previous["id"], b.source) == (given["id"], "baseline")
    assert "compared with the record given with --baseline" in b.notes[0]

    b, _ = baseline_for(tmp_path, [*cache_from, *given_arg, "--against", local["id"]])
    assert (b.previous["id"], b.source) == (local["id"], "against")
    assert "not used: --against" in b.notes[0]


def test_baseline_falls_back_to_the_store_with_a_note(tmp_path):
    local = make_record("20260101T000000000000-0000000a")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / RECORD_FILE).write_text("garbage")
    b, _ = baseline_for(tmp_path, ["--cache-from", f"type=local,src={tmp_path / 'cache'}"], [local])
    assert b.previous["id"] == local["id"] and b.source == "store"
    [note] = b.notes
    assert "corrupt JSON" in note and note.endswith(f"compared with the previous build {local['id']} of the local store")

    b, _ = baseline_for(tmp_path, ["--baseline", str(tmp_path / "cache" / RECORD_FILE)])
    assert b.previous["id"] == local["id"] and b.source == "store"
    [note] = b.notes
    assert note.startswith(f"--baseline {tmp_path / 'cache' / RECORD_FILE}: corrupt JSON")
    assert note.endswith("of the local store")

    elsewhere = tmp_path / "elsewhere"  # an empty store
    elsewhere.mkdir()
    b, _ = baseline_for(elsewhere, ["--baseline", str(tmp_path / "nowhere.json")])
    assert b.previous is None
    assert b.notes == [f"--baseline {tmp_path / 'nowhere.json'}: no such file; no previous build to compare with"]


def test_export_only_after_a_successful_complete_build(tmp_path):
    b, project = baseline_for(tmp_path, ["--cache-to", f"type=local,dest={tmp_path / 'out'}"])
    rec = make_record(project=project)
    b.export(rec, 1)
    b.export(dict(rec, complete=False), 0)
    assert not (tmp_path / "out").exists()
    b.export(rec, 0)
    assert carry.read_record_file(tmp_path / "out" / RECORD_FILE) == rec


def test_imported_record_is_not_this_machines_stat_cache(tmp_path):
    imported = make_record("20260101T000000000000-0000000b", snapshot={"files": "from another runner"})
    _, project = baseline_for(tmp_path, [])
    carry.write_record_file(tmp_path / "cache", dict(imported, project=project))
    b, _ = baseline_for(tmp_path, ["--cache-from", f"type=local,src={tmp_path / 'cache'}"])
    assert b.previous["id"] == imported["id"]
    assert b._local is None  # the snapshot of another machine never serves as the stat cache


# ------------------------------------------------------------------ records of another store's hash key

def test_records_hashed_with_another_key_do_not_show_every_env_as_changed(tmp_path):
    from analyzer import explain as explain_mod  # noqa: PLC0415
    from analyzer import record as record_mod  # noqa: PLC0415
    from tests.unit.test_explain import record_of  # noqa: PLC0415

    prev = record_of("multistage-warm")
    cur = record_of("multistage-change")
    cur["project"] = prev["project"]
    same = explain_mod.explain(cur, prev)
    # the same build, hashed with another key (another runner's fresh store)
    other = record_mod.make_hasher(b"another key")
    foreign = json.loads(json.dumps(prev))
    for step in foreign["steps"]:
        if step.get("op"):
            step["op"] = record_mod.redact_op(_unhash(step["op"]), other)
    foreign["hash_key_id"] = other("\0cachewhy hash key id")
    assert cur["hash_key_id"] != foreign["hash_key_id"]
    got = explain_mod.explain(cur, foreign)
    kinds = lambda a: [(m.step["line"], m.cause.kind) for m in a.roots]  # noqa: E731
    assert kinds(got) == kinds(same)
    assert not [c for m in got.misses for c in [m.cause, *m.also] if c.kind == "env-changed"]
    assert any("another store's hash key" in n for n in got.notes)
    assert not any("hash key" in n for n in same.notes)


def _unhash(op: dict) -> dict:
    """An op whose env values are plain again (any value: only their equality matters here)."""
    op = json.loads(json.dumps(op))
    meta = ((op.get("Op") or {}).get("exec") or {}).get("meta") or {}
    meta["env"] = [e.split("=", 1)[0] + "=" + "v" for e in meta.get("env") or []]
    return op


def test_shared_hash_key_from_the_environment(tmp_path, monkeypatch):
    from analyzer.record import store_key  # noqa: PLC0415

    monkeypatch.delenv("CACHEWHY_HASH_KEY", raising=False)
    a, b = store_key(tmp_path / "a"), store_key(tmp_path / "b")
    assert a != b  # each store makes its own
    monkeypatch.setenv("CACHEWHY_HASH_KEY", "ci secret")
    assert store_key(tmp_path / "a") == store_key(tmp_path / "c") != a
    assert not (tmp_path / "c").exists()
