"""What the engine says now, for a prediction: the base images' digests and
whether the previous build's cache records are still there.

Image lookups go through python-on-whales (the docker CLI), imported here
only: its import costs most of a second, which `cachewhy build` never pays.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any


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
        if not recs and s.get("status") == "cached" and not desc.startswith("mount / from exec "):
            # A file op's record carries the vertex name of the build that made it, and a
            # cached step may have had another name there (a renamed stage in `COPY --from`,
            # another path with the same content): the same index and keyword may be it.
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
