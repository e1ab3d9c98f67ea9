"""What the engine says now, for a prediction: the base images' digests and
whether the previous build's cache records are still there.

Image lookups go through python-on-whales (the docker CLI), imported here
only: its import costs most of a second, which `cachewhy build` never pays.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # tarfile and fnmatch are imported where an image is compared: not on every prediction
    import tarfile


@dataclass
class Resolved:
    """A base image as the build will resolve it."""

    ref: str  # as the Dockerfile names it (global ARG defaults and build args expanded)
    name: str  # normalised: docker.io/library/alpine:3.20
    digest: str | None  # sha256:… or None when nothing answered
    where: str  # "local image store", "registry", "pinned", or "" (nothing answered)
    note: str | None = None  # why it is not known


def normalise_image(ref: str) -> str:
    """`alpine` -> `docker.io/library/alpine:latest`, as BuildKit names image sources."""
    name, at, digest = ref.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not at:
        name += ":latest"
    return name + (f"@{digest}" if at else "")


def _client():  # type: ignore[no-untyped-def]
    from python_on_whales import DockerClient  # noqa: PLC0415 - 0.6-1 s of imports: this path only

    from analyzer.buildx import docker_command  # noqa: PLC0415

    return DockerClient(client_call=docker_command())


def resolve_images(refs: list[str]) -> tuple[dict[str, "Resolved"], list[str]]:
    """Each image as the build will resolve it: the local image store first, then the
    registry (`docker buildx imagetools inspect`); a note for those neither answers."""
    out: dict[str, Resolved] = {}
    notes: list[str] = []
    if not refs:
        return out, notes
    try:
        docker = _client()
        from python_on_whales.exceptions import DockerException  # noqa: PLC0415
        from python_on_whales.utils import run  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001 - no docker CLI: every image is unknown, said once
        for ref in refs:
            name = normalise_image(ref)
            out[name] = Resolved(ref, name, None, "", f"not looked up: {exc}")
        notes.append(f"base image digests were not looked up ({exc}): assumed unchanged")
        return out, notes
    for ref in refs:
        name = normalise_image(ref)
        if "@" in name:  # pinned: the build uses this digest whatever the tag says
            bare, _, digest = name.partition("@")
            out[bare] = Resolved(ref, bare, digest, "pinned")
            continue
        got: Resolved | None = None
        try:
            image = docker.image.inspect(ref)
            repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
            digests = [d.partition("@")[2] for d in image.repo_digests or []
                       if normalise_image(d.partition("@")[0] + ":x").rsplit(":", 1)[0] == repo]
            got = Resolved(ref, name, digests[0] if digests else image.id, "local image store")
        except DockerException:
            pass
        if got is None:
            try:
                text = run([*docker.docker_cmd, "buildx", "imagetools", "inspect", "--format",
                            "{{json .Manifest}}", ref])
                digest = json.loads(str(text or "{}")).get("digest")
                if digest:
                    got = Resolved(ref, name, str(digest), "registry")
            except (DockerException, ValueError) as exc:
                said = " ".join(str(getattr(exc, "stderr", "") or exc).split())[:160]
                got = Resolved(ref, name, None, "", f"neither the local image store nor the registry "
                                                    f"answered ({said})")
        if got is None:
            got = Resolved(ref, name, None, "", "neither the local image store nor the registry answered")
        if got.digest is None:
            notes.append(f"base image {ref}: {got.note}; assumed unchanged since the last build")
        out[name] = got
    return out, notes


def cache_description(step: dict) -> str | None:
    """The Description BuildKit gives the cache record of a step's result, or None
    when it cannot be told from the record (values of build args in the name)."""
    op = step.get("op") or {}
    body = op.get("Op") or {}
    if "exec" in body:
        args = ((body["exec"] or {}).get("meta") or {}).get("args") or []
        return "mount / from exec " + " ".join(str(a) for a in args)
    instr = step.get("instruction") or ""
    if not instr or "<" in instr or step.get("index") is None:  # a build arg's value was in the name
        return None
    return instr


def cache_records(builder: str | None) -> tuple[list[dict] | None, str | None]:
    """The builder's cache records as DiskUsage lists them (ID, Description, Parents),
    or (None, why) when the builder does not answer. Plain data: it crosses from the
    lookup process to the one that decides."""
    try:
        from analyzer.buildkit.connect import Client  # noqa: PLC0415

        with Client(builder) as client:
            records = client.disk_usage()
    except Exception as exc:  # noqa: BLE001 - any failure: say so, assume the cache holds
        said = " ".join(str(exc).split())[:200]
        return None, (f"the builder's cache records could not be read ({said}): assumed the cache still holds "
                      "the last build's steps")
    return [_usage(r) for r in records], None


def cache_presence(previous: dict, records: list[dict] | None,
                   why: str | None = None) -> tuple[dict[str, bool | None] | None, str | None, list[str]]:
    """Previous step id -> whether its cache record is still on the builder: a record
    with the step's Description whose Parents hold the record of the step before it;
    and the previous build's cache mounts that are gone (`gone_cache_mounts`).
    (None, why, []) when the builder did not answer (`cache_records`)."""
    if records is None:
        return None, why, []
    return presence_from_records(previous, records), None, gone_cache_mounts(previous, records)


@dataclass
class BuilderFacts:
    """What buildx says of a builder, asked once a prune is evident (a CLI call, ~0.2 s)."""

    driver: str | None  # "docker": the docker engine's own BuildKit; "buildkitd": an address; None: unknown
    #: the shortest Keep Duration of its GC rules, in seconds (inf: no rule collects by age);
    #: None when not known
    gc_keep_s: float | None = None


def builder_facts(builder: str | None) -> BuilderFacts:
    """The buildx driver and GC policy of the builder `--builder` names (None: the current
    one), from `docker buildx inspect`; `docker://` is dockerd's BuildKit (its policy not
    known), a buildkitd address a standalone one."""
    import subprocess  # noqa: PLC0415

    from analyzer.buildkit.address import parse_target  # noqa: PLC0415
    from analyzer.buildx import docker_command  # noqa: PLC0415

    try:
        target = parse_target({"builder": builder})
        if target.kind == "docker":
            return BuilderFacts("docker")
        if target.kind != "buildx":
            return BuilderFacts("buildkitd")
        res = subprocess.run([*docker_command(), "buildx", "inspect", *([target.where] if target.where else [])],
                             capture_output=True, text=True, timeout=30, check=False)
    except Exception:  # noqa: BLE001 - no CLI, a bad name: nothing is known
        return BuilderFacts(None)
    if res.returncode != 0:
        return BuilderFacts(None)
    return facts_of_inspect(res.stdout)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def facts_of_inspect(text: str) -> BuilderFacts:
    """The builder's `Driver:` and the shortest `Keep Duration:` (a Go duration, 48h0m0s)
    of its GC rules, from `docker buildx inspect`'s output."""
    driver, keep = None, None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            continue
        if key == "Driver" and driver is None and not line.startswith(" "):
            driver = value
        elif key == "Keep Duration":
            parts = _DURATION.findall(value)
            if parts and "".join(n + u for n, u in parts) == value:
                seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
                keep = seconds if keep is None else min(keep, seconds)
    if driver is None:
        return BuilderFacts(None)
    gc = "GC Policy" in text
    return BuilderFacts(driver, keep if keep is not None else (math.inf if gc else None))


def gone_cache_mounts(previous: dict, records: list[dict]) -> list[str]:
    """`RUN --mount=type=cache` mounts of the previous build that no cache record holds
    any more ("DEST (line N)"): something pruned the builder's cache since."""
    ids = {d.rpartition('with id "')[2].rstrip('"') for d in (r.get("Description") or "" for r in records)
           if d.startswith("cached mount ") and 'with id "' in d}
    out = []
    for s in previous.get("steps") or []:
        if s.get("status") not in ("rebuilt", "cached"):
            continue
        for m in ((((s.get("op") or {}).get("Op") or {}).get("exec") or {}).get("mounts") or []):
            cache_id = (m.get("cacheOpt") or {}).get("ID")
            if m.get("mountType") in (3, "CACHE") and cache_id and cache_id not in ids:
                out.append(f"{m.get('dest')} (line {s.get('line')})")
    return out


def _usage(r: Any) -> dict:
    return {"ID": r.ID, "Description": r.Description, "Parents": list(r.Parents)}


def presence_from_records(previous: dict, records: list[dict]) -> dict[str, bool | None]:
    """See cache_presence; `records` as DiskUsage gives them (ID, Description, Parents).
    None: a record that may be the step's, found under another name only."""
    # a file op's record is described by its vertex name, "[stage i/M] COPY …" (the stage only
    # where names carry it): keyed here by the instruction and i
    by_desc: dict[str, list[dict]] = {}
    for r in records:
        desc = r.get("Description") or ""
        if desc.startswith("["):
            head, sep, text = desc.partition("] ")
            index = head.rsplit(" ", 1)[-1].lstrip("[").partition("/")[0]
            if sep and index.isdigit():
                desc = f"{index}\0{text}"
        by_desc.setdefault(desc, []).append(r)
    steps = previous.get("steps") or []
    by_digest = {s["digest"]: s for s in steps if s.get("digest")}
    found: dict[str, set[str] | None] = {}  # digest -> candidate record ids (None: cannot tell)
    unsure: set[str] = set()  # digests whose record was found under another name only

    def chain_input(s: dict) -> dict | None:
        for d in s.get("inputs") or []:
            p = by_digest.get(d)
            if p is not None and p.get("keyword") not in (None,):
                return p
        return None

    def candidates(s: dict, depth: int = 0) -> set[str] | None:
        d = s["digest"]
        if d in found:
            return found[d]
        if s.get("keyword") == "FROM" or depth > 500:
            found[d] = None
            return None
        desc = cache_description(s)
        if desc is not None and not desc.startswith("mount / from exec "):
            desc = f"{s.get('index')}\0{desc}"
        if desc is None:
            found[d] = None
            return None
        before = chain_input(s)
        parents = candidates(before, depth + 1) if before is not None else None

        def under_parents(recs: list[dict]) -> list[dict]:
            return [r for r in recs if set(r.get("Parents") or []) & parents] if parents is not None else recs
        recs = under_parents(by_desc.get(desc, []))
        if (not recs and (s.get("status") == "cached" or "$" in (s.get("instruction") or ""))
                and not desc.startswith("mount / from exec ")):
            # A file op's record carries the vertex name of the build that made it, with the
            # values of the variables it expands: a cached step may have had another name
            # there (a renamed stage in `COPY --from`, another path with the same content),
            # and a `$NAME` has its value in it: the same index and keyword may be it.
            head = f"{s.get('index')}\0{s.get('keyword')} "
            recs = under_parents([r for k, rs in by_desc.items() if k.startswith(head) for r in rs])
            if recs:
                unsure.add(d)
        found[d] = {r["ID"] for r in recs}
        return found[d]

    out: dict[str, bool | None] = {}
    for s in steps:
        if s.get("keyword") in (None, "FROM") or s.get("status") not in ("rebuilt", "cached"):
            continue
        got = candidates(s)
        if got is not None:
            out[s["id"]] = None if s["digest"] in unsure else bool(got)
    return out


# ------------------------------------------------------------------ files in two images

#: Entries every container of an image shows in place of the image's own (dockerd's init
#: layer, checked on dockerd 28.5 with `docker cp`): a difference there cannot be seen.
CONTAINER_MADE = (".dockerenv", "dev/console", "dev/pts", "dev/shm", "etc/hostname", "etc/hosts", "etc/mtab",
                  "etc/resolv.conf", "proc", "sys")
_WILDCARD = re.compile(r"[*?\[]")


@dataclass
class FilesCompared:
    """The files a step reads from an image, in the image it read last time and in the one now."""

    same: bool | None  # None: could not tell (see why)
    differ: list[str]  # absolute paths that differ (the first few), when not same
    why: str | None = None  # why it could not tell


def entry_digest(member: "tarfile.TarInfo", data: Any) -> str:
    """What BuildKit's content checksum reads of one file (cache/contenthash): its type,
    mode, owner, link target, device numbers, xattrs (not security.* but
    security.capability, not system.*) and content. Not its mtime, nor the owner's name."""
    import tarfile  # noqa: PLC0415

    h = hashlib.sha256()
    kind = member.type if member.type != tarfile.AREGTYPE else tarfile.REGTYPE
    h.update(repr((kind, member.mode & 0o7777, member.uid, member.gid, member.linkname if member.issym() or
                   member.islnk() else "", member.devmajor if member.isdev() else 0,
                   member.devminor if member.isdev() else 0)).encode())
    xattrs = sorted((k, v) for k, v in (member.pax_headers or {}).items() if k.startswith("SCHILY.xattr.")
                    and (k == "SCHILY.xattr.security.capability"
                         or not k.startswith(("SCHILY.xattr.security.", "SCHILY.xattr.system."))))
    h.update(repr(xattrs).encode("utf-8", "surrogateescape"))
    if data is not None:
        while chunk := data.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tar_digests(stream: Any, base: str = "/", pattern: str | None = None) -> tuple[dict[str, str], list[str]]:
    """Absolute path -> entry_digest of each member of a tar stream, as `docker cp C:SRC -`
    writes it (member names relative to `base`, the directory SRC is in), with the entries a
    container makes itself (CONTAINER_MADE) left out and listed apart. `pattern`: only the
    members whose path matches it (an absolute COPY source with wildcards, per path
    component) and what lies under them."""
    import tarfile  # noqa: PLC0415

    out: dict[str, str] = {}
    hidden: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for m in tar:
            rel = m.name
            while rel.startswith(("./", "/")):
                rel = rel[1:] if rel.startswith("/") else rel[2:]
            rel = rel.rstrip("/")
            if not rel or rel == ".":
                continue  # the root directory: a container's own, not the image's
            path = posixpath.join(base, rel)
            if pattern is not None and not _under_match(path, pattern):
                continue
            inner = path.lstrip("/")
            if inner in CONTAINER_MADE or inner.startswith(tuple(p + "/" for p in CONTAINER_MADE)):
                hidden.append(path)
                continue
            out[path] = entry_digest(m, tar.extractfile(m) if m.isreg() else None)
    return out, hidden


def _under_match(name: str, pattern: str) -> bool:
    import fnmatch  # noqa: PLC0415

    parts, pats = name.strip("/").split("/"), pattern.strip("/").split("/")
    return len(parts) >= len(pats) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pats))


def _literal_prefix(path: str) -> str:
    """The directory above a path's first wildcard component (`/usr/*/uv` -> `/usr`)."""
    parts = [p for p in path.split("/") if p]
    keep = []
    for p in parts:
        if _WILDCARD.search(p):
            break
        keep.append(p)
    return "/" + "/".join(keep)


def compare_image_files(old: str, new: str, paths: list[str], platform: str | None = None) -> FilesCompared:
    """Whether `paths` (COPY sources or bind-mount sources; wildcards as BuildKit expands them;
    `/` the whole filesystem) hold the same files, as BuildKit's content checksum sees them, in
    image `old` and image `new` (`docker-image://NAME@sha256:…`). Both must be in the local
    image store: a container of each is created, never started, read with `docker cp`, and
    removed. Costs nothing unless called: only for an image that moved."""
    import subprocess  # noqa: PLC0415
    import tarfile  # noqa: PLC0415

    try:
        docker = _client()
        from python_on_whales.exceptions import DockerException  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001 - no docker CLI: cannot tell
        return FilesCompared(None, [], f"the docker CLI could not be used ({exc})")
    refs: list[str] = []
    layers: list[list[str]] = []
    for which, ident in (("the image it read last time", old), ("the image it will read", new)):
        name, _, digest = ident.removeprefix("docker-image://").partition("@")
        found = None
        for ref in ([digest] if digest else []) + ([f"{name}@{digest}"] if digest else [name]):
            try:
                image = docker.image.inspect(ref)
                found = image.id
                layers.append(list(getattr(image.root_fs, "layers", None) or []))
                break
            except DockerException:
                continue
        if found is None:
            bare = name.removeprefix("docker.io/").removeprefix("library/")
            short = f"{bare}@{digest[:19]}…" if digest else bare
            return FilesCompared(None, [], f"{which} ({short}) is not in the local image store")
        refs.append(found)
    if platform is None and layers[0] and layers[0] == layers[1]:
        return FilesCompared(True, [])  # the same layers (a re-tag, a new config): the same files
    containers: list[str] = []
    try:
        views: list[tuple[dict[str, str], list[str]]] = []
        for ref in refs:
            c = docker.container.create(ref, ["cachewhy-compare"], pull="never", labels={"cachewhy": "compare"},
                                        **({"platform": platform} if platform else {}))
            containers.append(c.id)
            digests: dict[str, str] = {}
            hidden: list[str] = []
            for path in paths:
                path = posixpath.normpath("/" + path.lstrip("/"))
                wild = bool(_WILDCARD.search(path))
                src = _literal_prefix(path) if wild else path
                base = posixpath.dirname(src)
                proc = subprocess.Popen([*map(str, docker.docker_cmd), "cp", "-L", f"{c.id}:{src}", "-"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                try:
                    try:
                        got, masked = tar_digests(proc.stdout, base, path if wild else None)
                    except tarfile.TarError:
                        got, masked = {}, []
                finally:
                    err = proc.communicate()[1]
                if proc.returncode != 0:
                    said = " ".join(err.decode(errors="replace").split())
                    if "Could not find the file" not in said:
                        return FilesCompared(None, [], f"`docker cp` of {src} failed ({said[:120]})")
                    got, masked = {}, []  # not there: as BuildKit, nothing to copy (or the build fails)
                digests.update(got)
                hidden += masked
            views.append((digests, hidden))
    except DockerException as exc:
        said = " ".join(str(getattr(exc, "stderr", "") or exc).split())[:160]
        return FilesCompared(None, [], f"a container of the image could not be created ({said})")
    finally:
        for cid in containers:
            try:
                docker.container.remove(cid, force=True, volumes=True)  # an image's VOLUMEs get one each
            except Exception:  # noqa: BLE001,S110 - gone already: nothing left to clean
                pass
    (a, hidden_a), (b, hidden_b) = views
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if differ:
        return FilesCompared(False, differ[:5])
    hidden = sorted(set(hidden_a) | set(hidden_b))
    if hidden:
        return FilesCompared(None, [], f"no difference except in {', '.join(hidden[:3])}"
                                       f"{' …' if len(hidden) > 3 else ''}, which a container does not show")
    return FilesCompared(True, [])
