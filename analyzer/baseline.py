"""Carry build records with the build cache, so a fresh CI runner still has
the previous build to compare with.

A CI job starts with an empty record store, but it imports the build cache
an earlier job exported (``--cache-from``). That earlier job's record tells
what the imported cache was built from, so cachewhy exports its record with
the cache and imports it with the cache:

* ``--cache-to type=local,dest=DIR``: after a successful build the record is
  written to ``DIR/cachewhy-record.json`` (atomically; BuildKit's own files in
  DIR are left alone). ``--cache-from type=local,src=DIR`` reads it back.
* ``--cache-to type=registry,ref=R``: the record is pushed as a small OCI
  artifact beside R: same repository, tag ``<R's tag or latest>-cachewhy``,
  an OCI image manifest with ``artifactType`` `RECORD_MEDIA_TYPE`, the empty
  config (`EMPTY_MEDIA_TYPE`, ``{}``) and one layer, the record's JSON.
  ``--cache-from type=registry,ref=R`` fetches that tag's manifest and blob.
* ``--baseline FILE``: a record file handed over directly (a CI artifact).

Nothing here may break a build: every problem (network, authentication, a
missing artifact, a corrupt record) becomes a one-line note and the build is
compared with the local store's previous record, or with nothing. A record
read from anywhere must pass `store.parse_record` (schema upgrade and
`validate_record`).

The registry client speaks the OCI distribution API with urllib: plain http
for loopback registries (and ``registry.insecure=true``), https otherwise;
Basic credentials and Bearer token challenges, with credentials read from the
docker CLI's config (``auths``, or a credential helper).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import re
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.atomic import write_atomic
from analyzer.errors import CachewhyError, InputError
from analyzer.model import Project, Record

RECORD_FILE = "cachewhy-record.json"
RECORD_MEDIA_TYPE = "application/vnd.cachewhy.record.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_BLOB).hexdigest()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TAG_SUFFIX = "-cachewhy"
TITLE_ANNOTATION = "org.opencontainers.image.title"
CREATED_ANNOTATION = "org.opencontainers.image.created"
ID_ANNOTATION = "cachewhy.record.id"

MAX_RECORD_BYTES = 256 * 1024 * 1024  # a record with a huge context snapshot; anything bigger is not ours


def _timeout() -> float:
    """Seconds per registry request: CACHEWHY_REGISTRY_TIMEOUT, else 15."""
    try:
        value = float(os.environ.get("CACHEWHY_REGISTRY_TIMEOUT", "") or 15)
    except ValueError:
        return 15.0
    return value if 0 < value < 3600 else 15.0


TIMEOUT_S = _timeout()
USER_AGENT = "cachewhy"

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"

_TAG_RE = re.compile(r"[\w][\w.-]{0,127}\Z")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*\Z")
_HOST_RE = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::\d+)?\Z")


class BaselineError(InputError):
    """A record could not be imported or exported (one line; never fails a build)."""


class NoRecord(BaselineError):
    """The cache holds no cachewhy record (nothing was exported there yet)."""


# --------------------------------------------------------------------------
# --cache-from / --cache-to values


@dataclass
class CacheSpec:
    """One --cache-from / --cache-to value, as buildx reads it (CSV of key=value)."""

    raw: str
    type: str
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def insecure(self) -> bool:
        return self.attrs.get("registry.insecure", "").lower() in ("true", "1")


def parse_cache_spec(value: str) -> CacheSpec:
    """``type=registry,ref=R,mode=max`` -> CacheSpec; a bare ``R`` is a registry ref (as buildx reads it)."""
    value = value.strip()
    if "=" not in value:
        return CacheSpec(value, "registry", {"ref": value})
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        fields = value.split(",")
    attrs: dict[str, str] = {}
    for f in fields:
        key, _, val = f.partition("=")
        attrs[key.strip().lower()] = val.strip()
    kind = attrs.pop("type", "") or ("registry" if "ref" in attrs else "")
    return CacheSpec(value, kind.lower(), attrs)


# --------------------------------------------------------------------------
# registry references


@dataclass(frozen=True)
class RegistryRef:
    host: str        # as it names the registry: docker.io, ghcr.io, localhost:5000
    repository: str  # app/cache (library/x on Docker Hub)
    tag: str | None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def hostname(self) -> str:
        """The host without its port ([::1] -> ::1)."""
        h = self.host
        if h.startswith("["):
            return h[1:h.index("]")] if "]" in h else h
        return h.rsplit(":", 1)[0] if h.count(":") == 1 else h

    @property
    def loopback(self) -> bool:
        name = self.hostname.lower()
        return name in ("localhost", "::1") or name.startswith("127.")

    @property
    def artifact_tag(self) -> str:
        return record_tag(self.tag)

    def artifact(self) -> str:
        """Where the record of this cache lives, e.g. ``localhost:5000/app/cache:main-cachewhy``."""
        return f"{self.host}/{self.repository}:{self.artifact_tag}"


def record_tag(tag: str | None) -> str:
    """The tag of the record artifact beside a cache tag (a tag holds at most 128 characters)."""
    base = tag or "latest"
    return base[: 128 - len(TAG_SUFFIX)] + TAG_SUFFIX


def parse_ref(text: str) -> RegistryRef:
    """A docker image reference: [host[:port]/]repo[/...][:tag][@digest]."""
    ref = text.strip()
    if not ref:
        raise BaselineError("empty registry reference")
    name, _, digest = ref.partition("@")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG_RE.match(tag):
            raise BaselineError(f"bad tag {tag!r} in {text!r}")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host, repo = first, rest
    else:
        host, repo = DOCKER_HUB, name
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
    if not _HOST_RE.match(host):
        raise BaselineError(f"bad registry host {host!r} in {text!r}")
    if host == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    if not _REPO_RE.match(repo):
        raise BaselineError(f"bad repository name {repo!r} in {text!r}")
    return RegistryRef(host, repo, tag, digest or None)


# --------------------------------------------------------------------------
# the artifact


def record_bytes(record: dict) -> bytes:
    """A record as the store writes it."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_manifest(record: dict, blob: bytes) -> bytes:
    """The OCI image manifest of a record artifact (an OCI 1.1 artifact with the empty config)."""
    annotations = {ID_ANNOTATION: str(record.get("id", ""))}
    created = record.get("created")
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        import time  # noqa: PLC0415

        annotations[CREATED_ANNOTATION] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": RECORD_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY_BLOB)},
        "layers": [{
            "mediaType": RECORD_MEDIA_TYPE,
            "digest": sha256_digest(blob),
            "size": len(blob),
            "annotations": {TITLE_ANNOTATION: RECORD_FILE},
        }],
        "annotations": annotations,
    }
    return json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode("utf-8")


def record_layer(manifest_data: bytes, where: str) -> dict:
    """The record layer's descriptor of a manifest, or BaselineError."""
    try:
        manifest = json.loads(manifest_data)
    except (ValueError, UnicodeDecodeError):
        raise BaselineError(f"{where}: the manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise BaselineError(f"{where}: the manifest is not a JSON object")
    layers = manifest.get("layers")
    layers = layers if isinstance(layers, list) else []
    ours = [x for x in layers if isinstance(x, dict) and x.get("mediaType") == RECORD_MEDIA_TYPE]
    if manifest.get("artifactType") != RECORD_MEDIA_TYPE and not ours:
        kind = manifest.get("artifactType") or manifest.get("mediaType") or "unknown"
        raise BaselineError(f"{where} is not a cachewhy record ({kind})")
    if not ours:
        raise BaselineError(f"{where}: the manifest has no {RECORD_MEDIA_TYPE} layer")
    layer = ours[0]
    digest, size = layer.get("digest"), layer.get("size")
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise BaselineError(f"{where}: the record layer has no sha256 digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > MAX_RECORD_BYTES:
        raise BaselineError(f"{where}: the record layer's size {size!r} is not plausible")
    return layer


def parse(data: bytes, where: str) -> Record:
    """Decode and check a record (store.parse_record: upgrade to the current schema, validate_record)."""
    from analyzer.store import parse_record  # noqa: PLC0415

    return parse_record(data, where)


# --------------------------------------------------------------------------
# credentials (docker CLI config)


def docker_config_file() -> Path:
    d = os.environ.get("DOCKER_CONFIG")
    return Path(os.path.expanduser(d)) / "config.json" if d else Path.home() / ".docker" / "config.json"


def _auth_key(key: str) -> str:
    """A key of `auths` as a host: https://index.docker.io/v1/ -> index.docker.io."""
    k = key.strip().lower()
    for prefix in ("https://", "http://"):
        k = k.removeprefix(prefix)
    return k.split("/", 1)[0]


def _host_keys(host: str) -> set[str]:
    host = host.lower()
    if host == DOCKER_HUB:
        return {"docker.io", "index.docker.io", "registry-1.docker.io"}
    return {host}


@dataclass
class Credentials:
    username: str
    password: str


def read_credentials(host: str, config: Path | None = None,
                     run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> tuple[Credentials | None, str | None]:
    """Credentials for `host` from the docker CLI config, and a note when they
    exist but cannot be used (None, None: anonymous)."""
    path = config or docker_config_file()
    try:
        conf = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return None, f"cannot read {path}: {getattr(e, 'strerror', None) or e}"
    if not isinstance(conf, dict):
        return None, f"{path} is not a JSON object"
    keys = _host_keys(host)
    helper = None
    helpers = conf.get("credHelpers")
    if isinstance(helpers, dict):
        helper = next((v for k, v in helpers.items() if _auth_key(k) in keys and isinstance(v, str)), None)
    auths = conf.get("auths")
    entry = None
    if isinstance(auths, dict):
        entry = next((v for k, v in auths.items() if _auth_key(k) in keys and isinstance(v, dict)), None)
    has_auth = bool(entry and (entry.get("auth") or entry.get("password")))
    if helper is None and isinstance(conf.get("credsStore"), str) and conf["credsStore"] and not has_auth:
        helper = conf["credsStore"]  # the CLI's default store, unless an inline login is there
    if helper:
        return _from_helper(helper, host, run)
    if not entry:
        return None, None
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(str(entry["auth"]), validate=False).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, f"the auth of {host} in {path} is not base64 user:password"
        if sep:
            return Credentials(user, password), None
        return None, f"the auth of {host} in {path} is not base64 user:password"
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"]), None
    if entry.get("identitytoken"):
        return None, f"the login of {host} in {path} is an identity token, which cachewhy does not use"
    return None, None


def _from_helper(helper: str, host: str, run: Callable[..., subprocess.CompletedProcess]) -> tuple[Credentials | None, str | None]:
    exe = f"docker-credential-{helper}"
    server = DOCKER_HUB_AUTH_KEY if host == DOCKER_HUB else host
    try:
        res = run([exe, "get"], input=server.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"credential helper {exe} could not run ({getattr(e, 'strerror', None) or e})"
    if res.returncode != 0:
        out = (res.stdout or b"").decode(errors="replace").strip()
        if "credentials not found" in out.lower():
            return None, None
        return None, f"credential helper {exe} failed: {out[:120] or 'exit ' + str(res.returncode)}"
    try:
        got = json.loads(res.stdout)
        user, secret = got["Username"], got["Secret"]
    except (ValueError, KeyError, TypeError):
        return None, f"credential helper {exe} gave no Username/Secret"
    if user == "<token>":
        return None, f"credential helper {exe} gave an identity token, which cachewhy does not use"
    return Credentials(str(user), str(secret)), None


# --------------------------------------------------------------------------
# WWW-Authenticate

_PARAM_RE = re.compile(r'\s*([A-Za-z][A-Za-z0-9_.-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` -> ("bearer", {realm, service, scope})."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[m.group(1).lower()] = value
        pos = m.end()
    return scheme.lower(), params


# --------------------------------------------------------------------------
# the registry client


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _NoRedirectOnWrite(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if req.get_method() not in ("GET", "HEAD"):
            return None  # a write is never replayed elsewhere
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Registry:
    """An OCI distribution API client for one repository, with Basic and Bearer auth."""

    def __init__(self, ref: RegistryRef, *, insecure: bool = False, timeout: float = TIMEOUT_S,
                 credentials: Callable[[str], tuple[Credentials | None, str | None]] = read_credentials) -> None:
        self.ref = ref
        self.insecure = insecure
        self.timeout = timeout
        self._credentials = credentials
        self._creds: tuple[Credentials | None, str | None] | None = None
        self._auth: str | None = None  # Authorization header that worked
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self.scheme = "http" if ref.loopback else "https"
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _NoRedirectOnWrite())

    # ---- plumbing --------------------------------------------------------

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.ref.api_host}"

    def creds(self) -> Credentials | None:
        if self._creds is None:
            self._creds = self._credentials(self.ref.host)
        return self._creds[0]

    @property
    def creds_note(self) -> str | None:
        return self._creds[1] if self._creds else None

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str],
              max_bytes: int | None = None) -> Response:
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("User-Agent", USER_AGENT)
        for k, v in headers.items():
            if k.lower() == "authorization":
                req.add_unredirected_header(k, v)  # never sent on to a blob store's redirect
            else:
                req.add_header(k, v)
        try:
            resp = self._opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            try:
                body = e.read(64 * 1024)
            except OSError:
                body = b""
            return Response(e.code, {k.lower(): v for k, v in (e.headers or {}).items()}, body)
        with resp:
            limit = max_bytes if max_bytes is not None else 4 * 1024 * 1024
            body = resp.read(limit + 1) if method != "HEAD" else b""
            if len(body) > limit:
                raise BaselineError(f"{url}: the answer is larger than {limit} bytes")
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                push: bool = False, max_bytes: int | None = None) -> Response:
        """A request to the registry, answering one auth challenge; network errors -> BaselineError."""
        url = path if "://" in path else self.base + path
        hdrs = dict(headers or {})
        try:
            if self._auth:
                hdrs["Authorization"] = self._auth
            resp = self._send(method, url, data, hdrs, max_bytes)
            if resp.status == 401:
                auth = self._answer(resp.headers.get("www-authenticate", ""), push)
                if auth:
                    self._auth = hdrs["Authorization"] = auth
                    resp = self._send(method, url, data, hdrs, max_bytes)
        except BaselineError:
            raise
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, ssl.SSLError) and self.insecure and self.scheme == "https":
                self.scheme = "http"  # registry.insecure: plain http after a TLS failure, as BuildKit does
                return self.request(method, path.replace("https://", "http://", 1), data, headers, push, max_bytes)
            raise BaselineError(f"cannot reach {self.ref.host}: {getattr(reason, 'strerror', None) or reason}") from None
        except (OSError, ValueError) as e:  # timeouts, resets, malformed answers
            raise BaselineError(f"cannot reach {self.ref.host}: {getattr(e, 'strerror', None) or e}") from None
        if resp.status in (401, 403):
            raise BaselineError(self._denied(resp, push))
        return resp

    def _denied(self, resp: Response, push: bool) -> str:
        what = "push to" if push else "read"
        who = "" if self.creds() else " (no credentials for it in the docker config: docker login " + self.ref.host + ")"
        extra = f"; {self.creds_note}" if self.creds_note else ""
        return f"not allowed to {what} {self.ref.host}/{self.ref.repository}: HTTP {resp.status}{who}{extra}"

    def _answer(self, header: str, push: bool) -> str | None:
        scheme, params = parse_challenge(header)
        creds = self.creds()
        if scheme == "basic":
            if creds is None:
                return None
            return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        if scheme != "bearer" or not params.get("realm"):
            return None
        scope = params.get("scope") or f"repository:{self.ref.repository}:{'pull,push' if push else 'pull'}"
        if scope in self._tokens:
            tok = self._tokens[scope]
            if "Bearer " + tok != self._auth:
                return "Bearer " + tok
        query = {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        hdrs = {}
        if creds is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        resp = self._send("GET", url, None, hdrs)
        if resp.status != 200:
            raise BaselineError(f"the token service of {self.ref.host} refused ({resp.status}): "
                                f"{_error_text(resp)}" + ("" if creds else "; no credentials in the docker config"))
        try:
            got = json.loads(resp.body)
            token = got.get("token") or got.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise BaselineError(f"the token service of {self.ref.host} gave no token")
        self._tokens[scope] = token
        return "Bearer " + token

    # ---- the API ---------------------------------------------------------

    def _path(self, kind: str, what: str) -> str:
        return f"/v2/{self.ref.repository}/{kind}/{what}"

    def blob_exists(self, digest: str) -> bool:
        resp = self.request("HEAD", self._path("blobs", digest), push=True)
        return resp.status == 200

    def push_blob(self, data: bytes, digest: str) -> None:
        if self.blob_exists(digest):
            return
        resp = self.request("POST", f"/v2/{self.ref.repository}/blobs/uploads/", data=b"",
                            headers={"Content-Length": "0"}, push=True)
        if resp.status != 202 or not resp.headers.get("location"):
            raise BaselineError(f"{self.ref.host}: starting a blob upload gave HTTP {resp.status}: {_error_text(resp)}")
        location = urllib.parse.urljoin(self.base + "/", resp.headers["location"])
        url = location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        resp = self.request("PUT", url, data=data, headers={"Content-Type": "application/octet-stream",
                                                             "Content-Length": str(len(data))}, push=True)
        if resp.status not in (201, 204):
            raise BaselineError(f"{self.ref.host}: uploading a blob gave HTTP {resp.status}: {_error_text(resp)}")

    def push_record(self, record: dict) -> str:
        """Push the record artifact; return the manifest's digest."""
        blob = record_bytes(record)
        self.push_blob(EMPTY_BLOB, EMPTY_DIGEST)
        self.push_blob(blob, sha256_digest(blob))
        manifest = make_manifest(record, blob)
        resp = self.request("PUT", self._path("manifests", self.ref.artifact_tag), data=manifest,
                            headers={"Content-Type": OCI_MANIFEST}, push=True)
        if resp.status not in (200, 201, 202):
            raise BaselineError(f"{self.ref.host}: storing the manifest {self.ref.artifact_tag} gave "
                                f"HTTP {resp.status}: {_error_text(resp)}")
        return sha256_digest(manifest)

    def fetch_record(self) -> Record:
        where = self.ref.artifact()
        resp = self.request("GET", self._path("manifests", self.ref.artifact_tag),
                            headers={"Accept": OCI_MANIFEST})
        if resp.status == 404:
            raise NoRecord(f"no record at {where}")
        if resp.status != 200:
            raise BaselineError(f"{where}: HTTP {resp.status}: {_error_text(resp)}")
        layer = record_layer(resp.body, where)
        resp = self.request("GET", self._path("blobs", layer["digest"]), max_bytes=MAX_RECORD_BYTES)
        if resp.status != 200:
            raise BaselineError(f"{where}: its record blob gave HTTP {resp.status}: {_error_text(resp)}")
        if sha256_digest(resp.body) != layer["digest"]:
            raise BaselineError(f"{where}: the record blob does not match its digest")
        return parse(resp.body, f"the record at {where}")


def _error_text(resp: Response) -> str:
    """The first error of an OCI error body, or the start of the body."""
    try:
        errs = json.loads(resp.body).get("errors") or []
        if errs:
            e = errs[0]
            return f"{e.get('code', '')} {e.get('message', '')}".strip()[:200]
    except (ValueError, AttributeError, TypeError):
        pass
    return resp.body[:200].decode(errors="replace").strip() or "(no body)"


# --------------------------------------------------------------------------
# local folders and files


def read_record_file(path: Path | str, where: str | None = None) -> Record:
    """A record file, checked; BaselineError (NoRecord when it is not there)."""
    p = Path(os.path.expanduser(os.fspath(path)))
    where = where or f"record file {p}"
    try:
        size = p.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise BaselineError(f"{where}: {size} bytes is too large for a record")
        data = p.read_bytes()
    except FileNotFoundError:
        raise NoRecord(f"{where}: no such file") from None
    except IsADirectoryError:
        raise BaselineError(f"{where} is a directory, not a record file") from None
    except OSError as e:
        raise BaselineError(f"cannot read {where}: {e.strerror or e}") from None
    return parse(data, where)


def write_record_file(folder: Path | str, record: dict) -> Path:
    """Write ``folder/cachewhy-record.json`` atomically (temporary file, rename)."""
    d = Path(os.path.expanduser(os.fspath(folder)))
    target = d / RECORD_FILE
    try:
        d.mkdir(parents=True, exist_ok=True)
        # private: it holds hashes and file names, and CI uploads what sits beside a cache
        write_atomic(target, record_bytes(record), mode=0o600)
    except OSError as e:
        raise BaselineError(f"cannot write {target}: {e.strerror or e}") from None
    return target


# --------------------------------------------------------------------------
# import and export, as `cachewhy build` uses them

CARRIED_TYPES = ("local", "registry")


def fetch_from_cache(spec: CacheSpec) -> Record:
    """The record carried by one --cache-from source; BaselineError (NoRecord) otherwise."""
    if spec.type == "local":
        src = spec.attrs.get("src")
        if not src:
            raise BaselineError("no src= folder")
        return read_record_file(Path(src) / RECORD_FILE)
    if spec.type == "registry":
        ref = spec.attrs.get("ref")
        if not ref:
            raise BaselineError("no ref=")
        return Registry(parse_ref(ref), insecure=spec.insecure).fetch_record()
    raise BaselineError(f"type={spec.type or '?'} caches cannot carry a cachewhy record")


def export_to_cache(spec: CacheSpec, record: dict) -> str:
    """Write or push the record beside one --cache-to destination; what was done (one line)."""
    if spec.type == "local":
        dest = spec.attrs.get("dest")
        if not dest:
            raise BaselineError("no dest= folder")
        return f"record {record['id']} written to {write_record_file(dest, record)}"
    if spec.type == "registry":
        ref = spec.attrs.get("ref")
        if not ref:
            raise BaselineError("no ref=")
        r = parse_ref(ref)
        Registry(r, insecure=spec.insecure).push_record(record)
        return f"record {record['id']} pushed to {r.artifact()}"
    raise BaselineError(f"type={spec.type or '?'} caches cannot carry a cachewhy record")


def mismatch(record: Record | dict, project: dict | None) -> str | None:
    """Why `record` is not of the same build as `project` (None: it is). The
    context folder may differ (another runner); the target, the platforms and
    the Dockerfile's place in the context may not."""
    if project is None:
        return None
    other = record.get("project") or {}
    if other.get("target") != project.get("target"):
        return f"it is of target {other.get('target') or '(default)'}, not {project.get('target') or '(default)'}"
    if sorted(set(other.get("platforms") or [])) != sorted(set(project.get("platforms") or [])):
        return (f"it is of platforms {','.join(other.get('platforms') or []) or '(default)'}, "
                f"not {','.join(project.get('platforms') or []) or '(default)'}")

    def rel(p: Project | dict) -> str | None:
        ctx, df = p.get("context"), p.get("dockerfile")
        if not isinstance(ctx, str) or not isinstance(df, str) or not os.path.isabs(ctx) or not os.path.isabs(df):
            return df if isinstance(df, str) else None
        return os.path.relpath(df, ctx)
    if rel(other) != rel(project):
        return f"its Dockerfile is {rel(other)}, not {rel(project)}"
    return None


@dataclass
class Imported:
    record: Record | None
    source: str | None  # e.g. "--cache-from type=registry,ref=…"
    notes: list[str]


def import_record(cache_from: list[str], project: dict | None) -> Imported:
    """The record of the first --cache-from source that carries one of this
    build; notes for the sources that were tried and could not be used."""
    notes: list[str] = []
    for value in cache_from:
        try:
            spec = parse_cache_spec(value)
            if spec.type not in CARRIED_TYPES:
                continue  # gha, s3, azblob, inline: see foreign_cache_note
            record = fetch_from_cache(spec)
            why_not = mismatch(record, project)
            if why_not:
                notes.append(f"--cache-from {value}: its record {record.get('id')} is not used: {why_not}")
                continue
            return Imported(record, f"--cache-from {value}", notes)
        except NoRecord as e:
            notes.append(f"--cache-from {value}: {e} (none exported there yet)")
        except CachewhyError as e:  # BaselineError, StoreError (a corrupt or foreign record)
            notes.append(f"--cache-from {value}: no record imported: {e}")
        except Exception as e:  # noqa: BLE001 - whatever happens, the build goes on
            notes.append(f"--cache-from {value}: no record imported: {e!r}")
    return Imported(None, None, notes)


def foreign_cache_note(cache_from: list[str]) -> str | None:
    """A hint for a build with nothing to compare with that imports a cache
    no record travels with (type=gha, s3, azblob)."""
    kinds = [parse_cache_spec(v).type for v in cache_from]
    if any(k in CARRIED_TYPES for k in kinds):
        return None
    other = [k for k in kinds if k not in ("inline", "")]
    if not other:
        return None
    return (f"the cache imported with --cache-from type={other[0]} carries no cachewhy record (only type=local "
            "and type=registry do): keep the record store between CI jobs, see docs/baseline.md")


def export_record(cache_to: list[str], record: dict) -> list[str]:
    """Carry the record with every --cache-to of a carrying type (type=gha, s3,
    azblob and inline cannot carry it: skipped); one line per destination."""
    lines: list[str] = []
    for value in cache_to:
        try:
            spec = parse_cache_spec(value)
            if spec.type not in CARRIED_TYPES:
                continue
            lines.append(export_to_cache(spec, record))
        except CachewhyError as e:
            lines.append(f"--cache-to {value}: the record was not exported: {e} (the build is not affected)")
        except Exception as e:  # noqa: BLE001
            lines.append(f"--cache-to {value}: the record was not exported: {e!r} (the build is not affected)")
    return lines
