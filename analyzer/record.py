"""The record of one build: everything a later build is compared against.

Built from the run (arguments, exit code), the graph (steps, statuses,
timings), the provenance (each step's LLB op and what it reads) and the
context snapshot. Values that may be secret never enter a record in clear:
build-arg values and env values in ops are kept as a short keyed hash, which
still shows that two values differ; vertex names (which carry expanded
build-arg values) are replaced by the Dockerfile's own text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from analyzer import dockerfile as dfmod
from analyzer.model import ContextInput, Project, Record, RecordStep

from analyzer.buildx import BuildArgs
from analyzer.graph import BuildGraph, Step
from analyzer.provenance import LLBStep, Provenance

if TYPE_CHECKING:
    from analyzer.sources import BuildArgValues, BuildInput

SCHEMA = "cachewhy.record/v1"

Hasher = Callable[[str], str]

HASH_KEY_ENV = "CACHEWHY_HASH_KEY"  # one key for the stores of several machines (CI runners)
_KEY_ID_INPUT = "\0cachewhy hash key id"  # hashed into `hash_key_id`: which key a record's hashes use


def store_key(store_root: Path) -> bytes:
    """The store's secret key for value hashes (made on first use, mode 0600).

    `CACHEWHY_HASH_KEY` (any secret text) replaces it, so that records made on
    different machines (CI runners, each with a fresh store) hash equal values
    equally and can be compared. Raises OSError when the store cannot hold one."""
    return store_key_noted(store_root)[0]


_KEY_BYTES = 32


def _read_key(path: Path) -> bytes | None:
    """The key in `path`; None when there is none; ValueError when it is damaged
    (not a regular file, not 64 hex digits). Never opened for a blocking read."""
    import stat  # noqa: PLC0415

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory, a link
        raise ValueError(exc.strerror or str(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = os.read(fd, 4 * _KEY_BYTES)
    finally:
        os.close(fd)
    key = bytes.fromhex(data.decode("ascii", "replace").strip())  # ValueError when damaged
    if len(key) != _KEY_BYTES:
        raise ValueError(f"{len(key)} bytes, not {_KEY_BYTES}")
    return key


def store_key_noted(store_root: Path) -> tuple[bytes, list[str]]:
    """store_key, and a note when a damaged `hash.key` was replaced: values hashed
    with the old key are then not compared (as with another store's key)."""
    shared = os.environ.get(HASH_KEY_ENV, "")
    if shared:
        return hashlib.sha256(b"cachewhy hash key\0" + shared.encode("utf-8", "surrogateescape")).digest(), []
    path = Path(store_root) / "hash.key"
    notes: list[str] = []
    try:
        key = _read_key(path)
        if key is not None:
            return key, notes
    except ValueError as exc:
        notes.append(f"the store's hash key {path} was damaged ({exc}) and is replaced by a new one; values "
                     "hashed with the old key are not compared")
        aside = path.with_name(f"hash.key.damaged-{os.getpid()}")
        try:
            os.rename(path, aside)  # kept aside, not deleted: it is the user's file
        except OSError as err:
            raise OSError(err.errno, f"cannot replace the damaged {path}: {err.strerror}") from None
    Path(store_root).mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(_KEY_BYTES)
    tmp = path.with_name(f".hash.key.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    try:
        got = _read_key(path)
    except ValueError:
        got = None
    return (got if got is not None else key), notes


def make_hasher(key: bytes) -> Hasher:
    def hasher(value: str) -> str:
        return "h:" + hmac.new(key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:12]
    return hasher


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def redact_op(op: dict, hasher: Hasher) -> dict:
    """The op with every env value replaced by its keyed hash."""
    op = json.loads(json.dumps(op))  # deep copy of plain JSON
    meta = ((op.get("Op") or {}).get("exec") or {}).get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("env"), list):
        meta["env"] = [_redact_env(e, hasher) for e in meta["env"]]
    return op


def _redact_env(entry: Any, hasher: Hasher) -> Any:
    if not isinstance(entry, str):
        return entry
    name, eq, value = entry.partition("=")
    return f"{name}={hasher(value)}" if eq else entry


def _step_inputs(prov: Provenance, llb: LLBStep) -> tuple[list[str], list[ContextInput], list[str]]:
    """Which images, which parts of the local context and which remote
    sources (URLs, git) one op reads directly."""
    images: list[str] = []
    remotes: list[str] = []
    context: list[ContextInput] = []
    inputs = [prov.steps.get(i) for i in llb.input_ids]

    def source_of(index: int) -> dict | None:
        found = inputs[index] if 0 <= index < len(inputs) else None
        return (found.op.get("Op") or {}).get("source") if found is not None else None

    for index in range(len(inputs)):
        src = source_of(index)
        ident = str((src or {}).get("identifier", ""))
        if ident.startswith("docker-image://"):
            images.append(ident)
        elif ident.startswith(("http://", "https://", "git://")):
            remotes.append(ident)
    body = llb.op.get("Op") or {}
    for action in (body.get("file") or {}).get("actions") or []:
        copy = (action.get("Action") or {}).get("copy")
        if not copy:
            continue
        src = source_of(int(action.get("secondaryInput", -1)))
        if src and str(src.get("identifier", "")).startswith("local://"):
            context.append({
                "source": src["identifier"][len("local://"):],
                "path": copy.get("src", "/"),
                "include": list(copy.get("include_patterns") or []),
                "exclude": list(copy.get("exclude_patterns") or []),
            })
    for mount in (body.get("exec") or {}).get("mounts") or []:
        src = source_of(int(mount.get("input", -1)))
        if src and str(src.get("identifier", "")).startswith("local://") and mount.get("dest") != "/":
            context.append({
                "source": src["identifier"][len("local://"):],
                "path": mount.get("selector") or "/",
                "include": [], "exclude": [], "mount": mount.get("dest"),
            })
    return images, context, remotes


def _safe_name(step: Step) -> str:
    """A display name without expanded build-arg values."""
    if step.keyword is None:
        return step.name
    where = " ".join(x for x in (step.platform, step.stage) if x)
    pos = f"{step.index}/{step.total}" if step.index is not None else ""
    return f"[{(where + ' ') if where else ''}{pos}] {step.keyword}"


def step_id(digest: str, length: int = 12) -> str:
    return digest.split(":", 1)[-1][:length]


def step_ids(digests: Iterable[str]) -> dict[str, str]:
    """Digest -> step id: 12 hex digits, more where digests share their first 12
    (ids must tell steps apart: a log may carry any digests)."""
    digests = list(dict.fromkeys(digests))
    length = 12
    while True:
        ids = {d: step_id(d, length) for d in digests}
        if len(set(ids.values())) == len(ids) or length > 80:
            break
        length *= 2
    if len(set(ids.values())) != len(ids):  # equal after the algorithm prefix: number them
        seen: dict[str, int] = {}
        for d, i in ids.items():
            seen[i] = seen.get(i, 0) + 1
            if seen[i] > 1:
                ids[d] = f"{i}-{seen[i]}"
    return ids


def step_dict(step: Step, prov: Provenance | None, hasher: Hasher, sid: str | None = None) -> RecordStep:
    out: RecordStep = {
        "id": sid or step_id(step.digest),
        "digest": step.digest,
        "name": _safe_name(step),
        "keyword": step.keyword,
        "stage": step.stage,
        "index": step.index,
        "line": step.line,
        "end_line": step.end_line,
        "also_at": [{"line": line, "stage": stage, "instruction": text}
                    for line, _end, stage, text in step.other_locations],
        "instruction": step.instruction if step.keyword is not None else None,
        "status": step.status.value,
        "cached": step.cached,
        "started": step.started,
        "completed": step.completed,
        "duration_s": round(step.duration_s, 6) if step.duration_s is not None else None,
        "error": step.error[:2000] if step.error else None,
        "inputs": list(step.inputs),
        "platform": step.platform,
    }
    llb = prov.op_for(step.digest) if prov is not None else None
    if prov is not None and llb is not None:
        op = redact_op(llb.op, hasher)
        out["op"] = op
        out["op_hash"] = hashlib.sha256(canonical(op).encode()).hexdigest()
        out["image_inputs"], out["context_inputs"], out["remote_inputs"] = _step_inputs(prov, llb)
    return out


def redact_argv(argv: list[str]) -> list[str]:
    """The buildx arguments with build-arg values left out."""
    out: list[str] = []
    hide_next = False
    for tok in argv:
        if hide_next:
            out.append(tok.partition("=")[0] + ("=<redacted>" if "=" in tok else ""))
            hide_next = False
        elif tok == "--build-arg":
            out.append(tok)
            hide_next = True
        elif tok.startswith("--build-arg="):
            name = tok[len("--build-arg="):].partition("=")[0]
            out.append(f"--build-arg={name}=<redacted>")
        else:
            out.append(tok)
    return out


def make_scrubber(values: dict[str, str]) -> Callable[[str], str]:
    """Replace build-arg values in free text by `<NAME>`: BuildKit expands them into
    vertex names and messages. Values of under 3 characters are left (they would
    garble the text and say little)."""
    pairs = sorted(((v, k) for k, v in values.items() if v and len(v) >= 3), key=lambda p: -len(p[0]))
    if not pairs:
        return lambda text: text

    def scrub(text: str) -> str:
        for value, name in pairs:
            if value in text:
                text = text.replace(value, f"<{name}>")
        return text
    return scrub


# $NAME, ${NAME}, ${NAME:-word} and the like in Dockerfile text
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")


def values_in_names(steps: Iterable[Step]) -> dict[str, str]:
    """Name -> value of the variables BuildKit expanded into vertex names, found by
    laying each step's Dockerfile text (with `$NAME`) over its vertex name (with the
    value). `build` knows these values from its command line and provenance;
    `analyze` of a log learns them here, so both redact the same."""
    out: dict[str, str] = {}
    for step in steps:
        if step.keyword is None or not step.instruction or "$" not in step.instruction:
            continue
        vname = dfmod.parse_vertex_name(step.name)
        if vname is None:
            continue
        template = " ".join(step.instruction.replace("\\\n", " ").split())
        expanded = " ".join(vname.text.split())
        pattern, names, pos = [], [], 0
        for m in _VAR.finditer(template):
            pattern.append(re.escape(template[pos:m.start()]))
            pattern.append("(.*?)")
            names.append(m.group(1) or m.group(2))
            pos = m.end()
        if not names or len(names) > 20:  # a pathological text: not worth a slow regex
            continue
        pattern.append(re.escape(template[pos:]))
        try:
            got = re.fullmatch("".join(pattern), expanded)
        except re.error:
            continue
        if got is None:
            continue
        for name, value in zip(names, got.groups()):
            if value and "$" not in value:
                out.setdefault(name, value)
    return out


def known_values(build_args: "BuildArgValues", prov: Provenance | None, hasher: Hasher,
                 dockerfile_text: str | None = None) -> dict[str, str]:
    """Hash -> value for the values this build knows in clear: its build args (command
    line and provenance), the env values of its ops, the ARG/ENV values its Dockerfile
    writes. Only `--show-values` reads it, at report time; it never enters a record.
    A previous build's values are not here: its record holds only their hashes."""
    out = build_args.reveal_table(hasher)
    values: list[str] = []
    if prov is not None:
        values += [v for k, v in prov.args.items() if k.startswith("build-arg:")]
        for llb in prov.steps.values():
            env = (((llb.op.get("Op") or {}).get("exec") or {}).get("meta") or {}).get("env")
            if isinstance(env, list):
                values += [str(e).partition("=")[2] for e in env if "=" in str(e)]
    for value in set(values):
        out[hasher(value)] = value
    if dockerfile_text:
        from analyzer.explain import _definitions, _value_hash  # noqa: PLC0415 - the hash explain shows

        for defs in _definitions({"dockerfile_text": dockerfile_text}).values():
            out[_value_hash(defs)] = "; ".join(v for _, v in defs)
    return out


def project_of(args: BuildArgs, dockerfile_path: Path | None) -> Project:
    """What makes two builds comparable: context, Dockerfile, target, platforms."""
    return project(args.context, args.context_dir, dockerfile_path, args.target, args.platforms)


def project(context: str | None, context_dir: Path | None, dockerfile_path: Path | None, target: str | None,
            platforms: list[str]) -> Project:
    """A build's project (record["project"]): what the store finds its previous build by."""
    return {
        "context": str(context_dir.resolve()) if context_dir is not None else (context or "-"),
        "dockerfile": str(dockerfile_path.resolve()) if dockerfile_path is not None else "-",
        "target": target,
        "platforms": sorted(platforms),
    }


def follow_paths(df: Any, context: str | None = None) -> list[str] | None:
    """The context paths a Dockerfile's COPY/ADD and bind mounts read (None: all of it).
    `context`: those of the named build context (`--build-context NAME=DIR`) that
    `COPY --from=NAME` and `RUN --mount=from=NAME` read, instead of the main one's.

    Only these are hashed, as BuildKit transfers only these."""
    paths: list[str] = []
    for ins in df.instructions:
        if ins.keyword in ("COPY", "ADD") and ins.flag("--from") == context:
            for src in ins.sources:
                if "://" in src or src.startswith("git@"):
                    continue
                paths.append(src)
        elif ins.keyword == "RUN":
            for mount in ins.mounts:
                if mount.get("type", "bind") == "bind" and (mount.get("from") or None) == context:
                    paths.append(mount.get("source") or ".")
    clean = []
    for p in paths:
        p = p.strip().lstrip("/")
        while p.startswith("./"):
            p = p[2:]
        if p in ("", "."):
            return None
        if "$" in p:  # expanded by build args we do not evaluate here
            return None
        clean.append(p.rstrip("/"))
    return sorted(set(clean))


def build_record(inp: "BuildInput", *, record_id: str, graph: BuildGraph, hasher: Hasher,
                 complete: bool) -> Record:
    """The record of one build (schema cachewhy.record/v1, docs/record-json.md)."""
    prov = inp.provenance
    inv = inp.invocation
    prov_args = prov.args if prov is not None else None
    build_args = inv.build_args.hashed(hasher, prov_args)
    ordered = graph.ordered()
    # and what BuildKit wrote into the vertex names (a log's values are known only there)
    scrub = inv.build_args.scrubber(prov_args, learned=values_in_names(ordered))
    ids = step_ids(s.digest for s in ordered)
    steps = [step_dict(s, prov, hasher, ids[s.digest]) for s in ordered]
    for st in steps:  # text BuildKit expanded with build-arg values (names, errors) loses them here
        if st["instruction"]:
            st["instruction"] = scrub(st["instruction"])
        if st["name"]:
            st["name"] = scrub(st["name"])
        if st["error"]:
            st["error"] = scrub(st["error"])
    return {
        "schema": SCHEMA,
        "id": record_id,
        "created": inp.started,
        "completed_at": inp.ended,
        "duration_s": round(inp.ended - inp.started, 3),
        "complete": complete,
        "exit_code": inp.exit_code,
        "interrupted": inp.interrupted,
        "project": inp.project,
        "invocation": {
            "argv": list(inv.argv),
            "builder": inv.builder,
            "no_cache": inv.no_cache,
            "no_cache_filter": inv.no_cache_filter,
            "cache_from": inv.cache_from,
            "cache_to": inv.cache_to,
        },
        "build_args": build_args,
        "buildx_ref": None,
        "has_provenance": prov is not None,
        "hash_key_id": hasher(_KEY_ID_INPUT),  # records with other ids hashed their values with another key
        "dockerfile_text": inp.dockerfile_text,
        # uri -> "alg:digest": image digests, downloaded files' sha256, git commits
        "materials": [[uri, next((f"{alg}:{d}" for alg, d in digest.items()), None)]
                      for uri, digest in (prov.materials if prov else [])],
        "messages": [scrub(m[:500]) for m in inp.events.messages if m.startswith(("WARNING", "ERROR"))][:50],
        "steps": steps,
        "snapshot": inp.snapshot,
        # name -> snapshot of each named local build context (--build-context NAME=DIR);
        # records without it (older ones) compare the main context only
        "named_snapshots": inp.named_snapshots or None,
    }
