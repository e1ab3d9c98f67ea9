"""A prediction: which steps the next build will rebuild, and why, before it runs.

A prediction is one more source for the cause engine. From the previous
build's record and what is there now (the Dockerfile, the build args, the
context snapshot, the base images' digests, the builder's cache records) it
makes a *forecast* record: the previous build's steps, carried over where
the Dockerfile still has them, each with the status the build will give it.
explain.py then explains the forecast exactly as it explains a finished
build, so a predicted cause has the same kind and the same words as the one
the build will get.

What decides a status, as BuildKit decides it:
  * a step whose own definition changed (text, build-arg/ENV values in its
    op, base image digest, context files it reads) gets a new cache key;
  * so does every step built on it (the cascade);
  * a step with an unchanged key is rebuilt only when it is needed (a step
    after it is rebuilt, or it is the target's result) and its cache record
    is gone (`cache-evicted`);
  * a prune on dockerd's BuildKit drops every cache key: when one is certain
    (keys_dropped), every step rebuilds and the first is `cache-evicted`;
  * what cannot be known from disk (ADD <url> without --checksum, a remote git
    context, the files a COPY --from reads in a stage that rebuilds) is marked
    "may rebuild", never counted as cached. A RUN that downloads is not: BuildKit
    reruns it only for a new cache key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from analyzer import notes as N
from analyzer.model import Report
from analyzer.notes import Note, as_note
from analyzer.probe import FilesCompared, Resolved, compare_image_files, normalise_image  # noqa: F401 - named here too

if TYPE_CHECKING:
    from collections.abc import Iterable

    from analyzer.buildx import BuildArgs
    from analyzer.dockerfile import Dockerfile, Instruction, Stage
    from analyzer.record import Hasher

#: The status of a step whose rebuild cannot be told from what is on disk.
MAY_REBUILD = "may-rebuild"


def keys_dropped(now: "Now", previous: dict | None) -> str | None:
    """The premise that no step of the last build is cached any more, or None.

    A cache mount of the last build is gone: a prune or the builder's garbage
    collection removed it. On dockerd's BuildKit (the buildx `docker` driver) a prune
    that removes any record drops every cache key, although DiskUsage still lists the
    other records; its garbage collection does not (both checked on dockerd 28.5:
    docs/predict.md). The GC collects by age only what was unused for its rules'
    Keep Duration, so the prune is taken as certain when the last build itself used
    every mount that is gone (its RUN ran) less than that long ago. Elsewhere the
    steps are may-rebuild: a standalone BuildKit keeps the other records' keys."""
    import time  # noqa: PLC0415

    if not now.mounts_gone or now.driver != "docker" or now.gc_keep_s is None or not previous:
        return None
    started, took = previous.get("created"), previous.get("duration_s") or 0.0
    if not isinstance(started, (int, float)):
        return None
    if time.time() - (started + took) >= now.gc_keep_s:
        return None
    ran = {s.get("line") for s in previous.get("steps") or [] if s.get("status") == "rebuilt"}
    for gone in now.mounts_gone:  # "DEST (line N)", as probe.gone_cache_mounts names them
        line = gone.rpartition("(line ")[2].rstrip(")")
        if not line.isdigit() or int(line) not in ran:
            return None  # not used by the last build: the GC may have collected it
    return (f"the cache mount {now.mounts_gone[0]} is gone: something pruned the builder since the last build; "
            "dockerd's BuildKit drops every cache key on any prune")


@dataclass
class Now:
    """What a prediction compares with the previous build: the build as it would start now."""

    args: "BuildArgs"
    dockerfile_path: Path | None
    dockerfile_text: str
    snapshot: dict | None
    images: dict[str, Resolved] = field(default_factory=dict)  # normalised name -> resolved
    #: cache-record check: previous step id -> present? (None: cannot tell); None: the builder did not answer
    cache: dict[str, bool | None] | None = None
    cache_note: str | None = None
    #: the previous build's cache mounts no record holds now: a prune or a GC since (probe.gone_cache_mounts)
    mounts_gone: list[str] = field(default_factory=list)
    #: the buildx driver of the builder ("docker": dockerd's BuildKit) and the shortest Keep Duration
    #: of its GC rules (s), asked once a cache mount is gone (probe.builder_facts)
    driver: str | None = None
    gc_keep_s: float | None = None
    notes: list[str] = field(default_factory=list)
    #: name -> snapshot (JSON) of each named local context (--build-context NAME=DIR), as build takes them
    named_snapshots: dict | None = None
    #: (previous, current) Snapshot objects, parsed once (50,000 files take most of a second to parse)
    snapshots: tuple[Any, Any] | None = None
    #: the builder's cache records as DiskUsage lists them (None: it did not answer)
    usage: list[dict] | None = None
    #: (old image, new image, paths, platform) -> FilesCompared: asked only for an image that
    #: moved behind a COPY --from or a bind mount (tests stub it)
    compare_images: Any = compare_image_files


@dataclass
class Forecast:
    record: dict  # the forecast record: what explain.py reads
    may_rebuild: dict[str, str]  # step id -> why its rebuild cannot be predicted
    notes: list["str | Note"]
    explainer: Any = None  # the cause engine that decided the statuses: it explains them too


# ------------------------------------------------------------------ images

def _image_name(identifier: str) -> str:
    return identifier.removeprefix("docker-image://").partition("@")[0]


def stage_image_refs(df: "Dockerfile", stages: list["Stage"], build_args: dict[str, str | None],
                     build_contexts: dict[str, str] | None = None) -> list[str]:
    """The images the built stages start from or copy from, expanded as the build will expand them.
    A name given with --build-context is that context: its docker-image:// reference, or nothing."""
    scope = _global_args(df, build_args)
    contexts = build_contexts or {}
    refs: list[str] = [v.removeprefix("docker-image://") for v in contexts.values() if v.startswith("docker-image://")]
    for st in stages:
        if st.image_base:
            refs.append(_expand(st.base, scope))
        for ins in st.instructions:
            ref = ins.from_ref if ins.keyword == "COPY" else None
            if ref and df.resolve_ref(ref) is None:
                refs.append(_expand(ref, scope))
            if ins.keyword == "RUN":
                for m in ins.mounts:
                    ref = m.get("from")
                    if ref and df.resolve_ref(ref, allow_index=False) is None:
                        refs.append(_expand(ref, scope))
    out: list[str] = []
    for r in refs:
        if r and "$" not in r and r.lower() != "scratch" and r not in out and r not in contexts:
            out.append(r)
    return out


# ------------------------------------------------------------------ variables

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand(text: str, scope: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        whole = m.group(0)
        if name in scope:
            return scope[name]
        if ":-" in whole or (whole.startswith("${") and "-" in whole):
            return whole.split("-", 1)[1].rstrip("}")
        return ""
    return _VAR.sub(sub, text)


def _global_args(df: "Dockerfile", build_args: dict[str, str | None]) -> dict[str, str]:
    scope: dict[str, str] = {}
    for ins in df.global_args:
        for name, default in ins.assignments:
            if build_args.get(name) is not None:
                scope[name] = str(build_args[name])
            elif default is not None:
                scope[name] = _expand(default, scope)
    return scope


def _stage_chain(df: "Dockerfile", index: int) -> list["Stage"]:
    """A stage, then the stage it starts from (`FROM base`), and so on up to an image
    (bounded: a cycle of stages is no build, but must not hang)."""
    chain = [df.stages[index]]
    while chain[-1].base_stage is not None and len(chain) <= len(df.stages):
        chain.append(df.stages[chain[-1].base_stage])
    return chain


def variable_scope(df: "Dockerfile", line: int, arg_tokens: dict[str, str],
                   arg_values: dict[str, str] | None = None) -> dict[str, tuple[str, str | None]] | None:
    """Name -> (token, value) of the ARG and ENV variables in force at `line` (those
    BuildKit puts in a RUN's environment).

    `arg_tokens` stands for the build args' values (their keyed hashes): tokens compare
    values without holding them, and two Dockerfiles give equal tokens exactly when their
    values come out equal. `arg_values` are the values themselves, known for the build
    about to run only; a value is None where it is not known."""
    ins = df.instruction_at(line)
    if ins is None or ins.stage is None:
        return None
    chain = _stage_chain(df, ins.stage)
    clear = arg_values is not None
    values = arg_values or {}

    def assign(scope: dict[str, tuple[str, str | None]], name: str, raw: str, prefix: str = "") -> None:
        token = prefix + _expand(raw, {k: t for k, (t, _) in scope.items()})
        value = _expand(raw, {k: v for k, (_, v) in scope.items() if v is not None}) if clear else None
        scope[name] = (token, value)

    globals_: dict[str, tuple[str, str | None]] = {}
    for g in df.global_args:
        for name, default in g.assignments:
            if name in arg_tokens:
                globals_[name] = (arg_tokens[name], values.get(name))
            elif default is not None:
                assign(globals_, name, default)
    scope: dict[str, tuple[str, str | None]] = {}
    for st in reversed(chain):
        for i in st.instructions[1:]:
            if st is chain[0] and i.line >= line:
                break
            if i.keyword == "ARG":
                for name, default in i.assignments:
                    if name in arg_tokens:
                        scope[name] = (arg_tokens[name], values.get(name))
                    elif default is not None:
                        assign(scope, name, default)
                    elif name in globals_:
                        scope[name] = globals_[name]
            elif i.keyword == "ENV":
                for name, value in i.assignments:
                    assign(scope, name, value or "", "env:")
    return scope


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _stage_setting(df: "Dockerfile", line: int, keyword: str) -> list[str] | None:
    """The words of the last USER or SHELL in force at `line`: in its stage, else in the
    stage it starts from (`FROM base`), whose image config carries it."""
    ins = df.instruction_at(line)
    if ins is None or ins.stage is None:
        return None
    chain = _stage_chain(df, ins.stage)
    value = None
    for st in reversed(chain):
        for i in st.instructions[1:]:
            if st is chain[0] and i.line >= line:
                break
            if i.keyword == keyword:
                value = list(i.args) or [i.rest]
    return value


# ------------------------------------------------------------------ the plan

def built_stages(df: "Dockerfile", target: str | None) -> list["Stage"]:
    """The stages a build of `target` (None: the last stage) builds, in file order."""
    if not df.stages:
        return []
    last = df.stage_by_name(target) if target else df.stages[-1]
    if last is None:
        return []
    todo, seen = [last.index], set()
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(d for d in df.stages[i].deps if d not in seen)
    return [st for st in df.stages if st.index in seen]


def _planned(df: "Dockerfile", stages: list["Stage"]) -> list[dict]:
    """One step dict per vertex the Dockerfile makes in the built stages (FROMs included)."""
    out = []
    for st in stages:
        if st.image_base:
            f = st.instructions[0]
            out.append({"id": f"plan-{f.line}", "keyword": "FROM", "stage": st.name, "line": f.line,
                        "end_line": f.end_line, "instruction": f.text, "status": "source"})
        for ins in st.steps:
            out.append({"id": f"plan-{ins.line}", "keyword": ins.keyword, "stage": st.name, "line": ins.line,
                        "end_line": ins.end_line, "instruction": ins.text, "status": "cached"})
    return out


def may_rebuild_reason(ins: "Instruction | None", step: dict, remote_context: bool) -> str | None:
    """Why this step's rebuild cannot be predicted from disk, or None.

    A RUN that downloads is not one of them: BuildKit runs a step again only for a new
    cache key (or a lost record), never for what the command would fetch (checked on
    the engine: an unchanged `RUN wget …` stays cached with the network on)."""
    if remote_context and any(c.get("source") == "context" for c in step.get("context_inputs") or []):
        return "reads the build context, a remote git repository fetched at build time"
    if ins is None:
        return None
    if ins.keyword == "ADD" and not ins.flag("--checksum"):
        urls = [s for s in ins.sources if "://" in s or s.startswith("git@")]
        if urls:
            return f"ADD {urls[0][:60]} without --checksum: BuildKit fetches it again at every build"
    return None


def _named_sources(step: dict) -> list[str]:
    return sorted({str(c.get("source")) for c in step.get("context_inputs") or [] if c.get("source") != "context"})


def forecast(previous: dict | None, now: Now, hasher: "Hasher") -> Forecast:
    """The forecast record of the build `now` describes, against the `previous` record."""
    from analyzer import dockerfile as dfmod  # noqa: PLC0415
    from analyzer.explain import _Explainer, match_steps  # noqa: PLC0415
    from analyzer.record import SCHEMA, _KEY_ID_INPUT, project_of, redact_argv  # noqa: PLC0415

    args = now.args
    df = dfmod.parse(now.dockerfile_text)
    stages = built_stages(df, args.target)
    notes: list["str | Note"] = list(now.notes)
    if args.target and not stages:
        notes.append(f"the Dockerfile has no stage {args.target!r}: the build will fail")
    plan = _planned(df, stages)
    prev_steps = list((previous or {}).get("steps") or [])
    pairs = match_steps(plan, prev_steps) if previous else {}
    prev_from = {(s.get("stage"), "FROM"): s for s in prev_steps if s.get("keyword") == "FROM"}
    for s in prev_steps:  # a FROM shared by several stages is one vertex, listed once
        if s.get("keyword") == "FROM":
            for also in s.get("also_at") or []:
                prev_from.setdefault((also.get("stage"), "FROM"), s)
    prev_by_digest = {s["digest"]: s for s in prev_steps if s.get("digest")}
    old_df = dfmod.parse(previous["dockerfile_text"]) if previous and previous.get("dockerfile_text") else None
    arg_tokens_now = {k: "arg:" + hasher(v) for k, v in args.build_args.items() if v is not None}
    arg_tokens_before = {k: "arg:" + v for k, v in ((previous or {}).get("build_args") or {}).items() if v}
    remote_context = args.context is not None and args.context_dir is None and args.context != "-"

    steps: list[dict] = []
    emitted: dict[str, dict] = {}  # digest -> the forecast step that has it
    last_of_stage: dict[str, str] = {}
    stage_names = {st.index: st.name for st in df.stages}
    for cand in plan:
        ins = df.instruction_at(cand["line"])
        if cand["keyword"] == "FROM":
            p = prev_from.get((cand["stage"], "FROM"))
        else:
            p = pairs.get(cand["id"])
        if p is not None:
            # the stage as it is called now: explain pairs renamed stages by their names
            s = dict(p, stage=cand["stage"], line=cand["line"], end_line=cand["end_line"],
                     instruction=cand["instruction"], also_at=[], status=cand["status"])
        else:
            digest = "forecast:" + hashlib.sha256(f"{cand['stage']}\0{cand['line']}\0{cand['instruction']}"
                                                  .encode()).hexdigest()
            s = dict(cand, id="new-" + digest[-10:], digest=digest, duration_s=None, op=None, inputs=[],
                     image_inputs=[], context_inputs=[], remote_inputs=[], also_at=[])
        st = df.stages[ins.stage] if ins is not None and ins.stage is not None else None
        # inputs: the step before it in its stage (or the stage it starts from), the stages it
        # copies or mounts from, and the sources (context, images) it read last time
        inputs: list[str] = []
        linked_onto = None
        if cand["keyword"] != "FROM" and st is not None and ins is not None:
            if st.name in last_of_stage:
                inputs.append(last_of_stage[st.name])
            elif st.base_stage is not None and stage_names[st.base_stage] in last_of_stage:
                inputs.append(last_of_stage[stage_names[st.base_stage]])
            if _linked(ins) and inputs:
                # COPY --link copies onto nothing; a merge then lays it on what came before
                # (checked on the engine: an edit above it leaves it cached)
                linked_onto = inputs.pop()
            refs = [ins.from_ref] if ins.keyword in ("COPY", "ADD") and ins.from_ref else []
            refs += [ref for m in ins.mounts if (ref := m.get("from"))] if ins.keyword == "RUN" else []
            copied = []
            for ref in refs:
                other = df.resolve_ref(ref)
                if other is not None and other.name in last_of_stage:
                    inputs.append(last_of_stage[other.name])
                    copied.append(last_of_stage[other.name])
            # read by content (BuildKit checksums what it copies or mounts), unless it is also the
            # step this one is built on (FROM that stage)
            s["copied_from"] = [d for d in copied if d != (inputs[0] if inputs else None)]
            if p is not None:
                inputs += [d for d in p.get("inputs") or [] if d in prev_by_digest
                           and prev_by_digest[d].get("keyword") is None and not _is_merge(prev_by_digest[d])]
        s["inputs"] = list(dict.fromkeys(inputs))
        if st is not None:
            last_of_stage[st.name] = s["digest"]
        if p is not None:
            _carry_op(s, p, df, old_df, arg_tokens_now, arg_tokens_before, hasher,
                      {k: v for k, v in args.build_args.items() if v is not None})
            _carry_file_op(s, p, df, old_df, arg_tokens_now, arg_tokens_before)
            s["image_inputs"] = [_now_image(i, now.images) for i in p.get("image_inputs") or []]
        if st is not None and cand["keyword"] != "FROM" and st.image_base and st.steps and st.steps[0] is ins:
            s["image_inputs"] = _stage_base_now(s.get("image_inputs") or [], ins, df, args.build_args, now.images)
        first = emitted.get(s["digest"])
        if first is not None:
            # Two instructions that were one vertex (the same step in two stages, `also_at`):
            # still one if they are built on the same things, as BuildKit merges equal ops.
            same = (first["inputs"], first.get("image_inputs"), _from_base(first)) == \
                (s["inputs"], s.get("image_inputs"), _from_base(s))
            if same:
                first["also_at"].append({"line": s["line"], "stage": s["stage"], "instruction": s["instruction"]})
                if st is not None:
                    last_of_stage[st.name] = first["digest"]
                continue
            s["digest"] = "forecast:" + hashlib.sha256(f"{s['stage']}\0{s['line']}\0{s['digest']}".encode()).hexdigest()
            s["id"] = "split-" + s["digest"][-10:]
            if st is not None:
                last_of_stage[st.name] = s["digest"]
        emitted[s["digest"]] = s
        steps.append(s)
        if linked_onto is not None and st is not None:
            merge = "forecast-merge:" + hashlib.sha256(f"{linked_onto}\0{s['digest']}".encode()).hexdigest()
            steps.append({"id": "merge-" + merge[-10:], "digest": merge, "keyword": None, "line": None,
                          "stage": None, "instruction": None, "status": "internal", "name": f"LINK {cand['instruction']}",
                          "inputs": [linked_onto, s["digest"]], "image_inputs": [], "context_inputs": [],
                          "remote_inputs": [], "also_at": [], "duration_s": None, "op": None})
            last_of_stage[st.name] = merge

    project = project_of(args, now.dockerfile_path)
    build_args = {name: (hasher(v) if v is not None else None) for name, v in args.build_args.items()}
    record = {
        "schema": SCHEMA,
        "id": None,
        "created": None,
        "duration_s": None,
        "complete": True,
        "exit_code": None,
        "interrupted": None,
        "project": project,
        "invocation": {"argv": redact_argv(args.argv), "builder": args.builder, "no_cache": args.no_cache,
                       "no_cache_filter": args.no_cache_filter, "cache_from": args.cache_from,
                       "cache_to": args.cache_to},
        "build_args": build_args,
        "has_provenance": bool(previous and previous.get("has_provenance")),
        "hash_key_id": hasher(_KEY_ID_INPUT),
        "dockerfile_text": now.dockerfile_text,
        "materials": [],
        "messages": [],
        "steps": steps,
        "snapshot": now.snapshot,
        "named_snapshots": now.named_snapshots,
    }
    premise = keys_dropped(now, previous)
    may, ex = _decide(record, previous, now, df, remote_context, all_gone=premise is not None, notes=notes)
    if premise is not None:
        notes.append(Note(N.EVICTION_EVIDENCE, N.CACHE, premise))
    return Forecast(record, may, notes, ex)


def _linked(ins: "Instruction") -> bool:
    return ins.keyword in ("COPY", "ADD") and ins.flag("--link") not in (None, "false")


def _is_merge(step: dict) -> bool:
    return "merge" in (((step.get("op") or {}).get("Op")) or {})


def _from_base(step: dict) -> str | None:
    """A FROM step's image, as written without its `AS` name (None for other steps)."""
    if step.get("keyword") != "FROM":
        return None
    return re.sub(r"\s+AS\s+\S+\s*$", "", str(step.get("instruction") or ""), flags=re.IGNORECASE)


#: the largest context snapshot (entries) of an older build that cached_by_older reads
OLDER_MAX_FILES = 20_000


def cached_by_older(fc: Forecast, older: "Iterable[dict]", now: Now, hasher: "Hasher") -> None:
    """Steps that will rebuild against the last build but are the same as in an older
    build of the project whose records the builder still has: BuildKit finds them by
    their cache key (checked on the engine: an edit reverted is all cached). Set
    cached, and said in a note."""
    import dataclasses  # noqa: PLC0415

    from analyzer import probe  # noqa: PLC0415
    from analyzer.snapshot import Snapshot  # noqa: PLC0415

    todo = {s.get("line"): s for s in fc.record["steps"]
            if s.get("line") and s.get("status") in ("rebuilt", MAY_REBUILD) and s.get("keyword") != "FROM"}
    if not todo or now.usage is None or now.mounts_gone:
        return
    current = now.snapshots[1] if now.snapshots is not None else None
    for rec in older:
        snapshots = None
        if len(((rec.get("snapshot") or {}).get("entries")) or []) > OLDER_MAX_FILES:
            continue  # parsing its snapshot would cost more than the prediction itself
        if current is not None:  # the snapshot of now is an object: pair it with this build's
            try:
                snapshots = (Snapshot.from_json(rec["snapshot"]), current)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        cache, _, gone = probe.cache_presence(rec, now.usage)
        if gone:
            continue
        other = forecast(rec, dataclasses.replace(now, cache=cache, snapshots=snapshots, notes=[]), hasher)
        hits = [line for line, s in todo.items() for o in other.record["steps"]
                if o.get("line") == line and o.get("status") == "cached" and o.get("keyword") == s.get("keyword")]
        for line in hits:
            step = todo.pop(line)
            step["status"] = "cached"
            fc.may_rebuild.pop(step["id"], None)
        if hits:
            shown = ", ".join(str(x) for x in sorted(hits)[:8]) + ("…" if len(hits) > 8 else "")
            fc.notes.append(f"line{'s' if len(hits) > 1 else ''} {shown} {'are' if len(hits) > 1 else 'is'} as in "
                            f"build {rec.get('id')}, whose cache records the builder still has: cached")
        if not todo:
            return


def _now_image(identifier: str, images: dict[str, Resolved]) -> str:
    """The image input with the digest the build will resolve now (unchanged when nothing answered)."""
    name = _image_name(identifier)
    got = images.get(name)
    if got is None or not got.digest:
        return identifier
    return f"docker-image://{name}@{got.digest}"


def _stage_base_now(inputs: list[str], ins: "Instruction", df: "Dockerfile", build_args: dict[str, str | None],
                    images: dict[str, Resolved]) -> list[str]:
    """The image inputs of a stage's first step, with the base image the build will use now.

    `FROM $IMAGE` with another --build-arg names another image: its digest decides. The
    same digest under another name keeps the cache key (checked on the engine), so the
    previous identifier stays; a name that does not resolve is a change, digest unknown."""
    st = df.stages[ins.stage] if ins.stage is not None else None
    if st is None:
        return inputs
    scope = _global_args(df, build_args)
    ref = normalise_image(_expand(st.base, scope))
    got = images.get(ref)
    digest = got.digest if got is not None and got.digest else None
    # the step's own image reads (COPY --from=IMAGE, RUN --mount=from=IMAGE) are not its base
    own = {normalise_image(_expand(r, scope)) for r in
           ([ins.from_ref] if ins.keyword in ("COPY", "ADD") and ins.from_ref else [])
           + ([m["from"] for m in ins.mounts if m.get("from")] if ins.keyword == "RUN" else [])}
    base = [i for i in inputs if _image_name(i) not in own]
    rest = [i for i in inputs if _image_name(i) in own]
    if digest is not None and any(_image_repo_digest(i) == digest for i in base):
        return inputs
    if digest is None and any(_image_name(i) == ref for i in base):
        return inputs  # nothing answered for it: assumed unchanged, as said in the notes
    return [f"docker-image://{ref}@{digest}" if digest else f"docker-image://{ref}", *rest]


def _image_repo_digest(identifier: str) -> str:
    return identifier.partition("@")[2]


def _carry_op(s: dict, p: dict, df: "Dockerfile", old_df: "Dockerfile | None", now_args: dict[str, str],
              before_args: dict[str, str], hasher: "Hasher", now_values: dict[str, str]) -> None:
    """The previous step's op, with the environment and user this Dockerfile and these build args give it."""
    op = p.get("op")
    meta = ((op or {}).get("Op") or {}).get("exec", {}).get("meta") if op else None
    if not isinstance(meta, dict) or old_df is None or not p.get("line"):
        return
    now_scope = variable_scope(df, s["line"], now_args, now_values)
    old_scope = variable_scope(old_df, p["line"], before_args)
    if now_scope is None or old_scope is None:
        return
    env = list(meta.get("env") or [])
    names = [str(e).partition("=")[0] for e in env]
    changed = False
    for name in sorted(set(now_scope) | set(old_scope)):
        new, old = now_scope.get(name), old_scope.get(name)
        if (new or (None,))[0] == (old or (None,))[0]:
            continue
        changed = True
        entry = None
        if new is not None:  # the keyed hash of the value, as the build's record will hold it
            entry = f"{name}={hasher(new[1]) if new[1] is not None else 'h:' + _token_hash(new[0])[:12]}"
        if name in names:
            i = names.index(name)
            if entry is None:
                del env[i], names[i]
            else:
                env[i] = entry
        elif entry is not None:
            env.append(entry)
            names.append(name)
    user_now, user_before = _stage_setting(df, s["line"], "USER"), _stage_setting(old_df, p["line"], "USER")
    shell_now, shell_before = _stage_setting(df, s["line"], "SHELL"), _stage_setting(old_df, p["line"], "SHELL")
    if not changed and user_now == user_before and shell_now == shell_before:
        return
    new_meta = dict(meta, env=env)
    if user_now != user_before:
        new_meta["user"] = " ".join(user_now or [])
    ins = df.instruction_at(s["line"])
    if shell_now != shell_before and ins is not None and not ins.json_form and meta.get("args"):
        # a shell-form RUN runs its command under the SHELL in force: its args change with it
        new_meta["args"] = [*(shell_now or ["/bin/sh", "-c"]), list(meta["args"])[-1]]
    op = dict(op or {})
    op["Op"] = dict(op["Op"], exec=dict(op["Op"]["exec"], meta=new_meta))
    s["op"] = op


def _read_by_content(s: dict, p: dict, prev_by_digest: dict[str, dict]) -> dict[str, list[str]] | None:
    """The images the previous step read by content only (the source of a copy, a bind
    mount that is not the root), each with the paths it read; None when an image it read
    is its root filesystem or a copy's destination (read by key: a moved image rebuilds it),
    or the op does not say; {} when no digest moved (nothing to compare)."""
    op = ((p.get("op") or {}).get("Op")) or {}
    inputs = p.get("inputs") or []

    def image_at(index: Any) -> str | None:  # an index the op JSON leaves out is 0 (proto3)
        try:
            d = str(inputs[int(index)]) if int(index) >= 0 else ""
        except (TypeError, ValueError, IndexError):
            return None
        source = (((prev_by_digest.get(d) or {}).get("op") or {}).get("Op") or {}).get("source") or {}
        ident = str(source.get("identifier", ""))
        return ident if ident.startswith("docker-image://") else None

    by_content: dict[str, list[str]] = {}
    by_key: set[str] = set()
    for action in (op.get("file") or {}).get("actions") or []:
        if (base := image_at(action.get("input", 0))) is not None:
            by_key.add(base)
        copy = (action.get("Action") or {}).get("copy")
        img = image_at(action.get("secondaryInput", 0))
        if img is not None:
            if copy and copy.get("src"):
                by_content.setdefault(img, []).append(str(copy["src"]))
            else:
                by_key.add(img)
    for mount in (op.get("exec") or {}).get("mounts") or []:
        img = image_at(mount.get("input", 0))
        if img is None:
            continue
        if mount.get("dest") == "/" or mount.get("mountType") not in (None, 0, "BIND"):
            by_key.add(img)  # the root filesystem, or a cache mount's base: by key
        else:
            by_content.setdefault(img, []).append(str(mount.get("selector") or "/"))
    moved = [i for i in p.get("image_inputs") or [] if i not in (s.get("image_inputs") or [])]
    if not moved:  # an image named by --build-context without a digest, resolved at build time
        unpinned = [i for i in s.get("image_inputs") or [] if "@" not in i]
        return {} if unpinned and not any(i in by_key for i in unpinned) else None
    if any(i in by_key or i not in by_content for i in moved):
        return None
    return {i: list(dict.fromkeys(by_content[i])) for i in moved}


def _compare_moved(read: dict[str, list[str]], s: dict, now: Now, compared: dict[tuple, FilesCompared],
                   notes: list | None) -> tuple[str | None, bool]:
    """(why the step may rebuild, or None; whether it rebuilds) for a step whose images
    behind a COPY --from or a bind mount moved: it rebuilds when the files it reads differ."""
    new_by_name = {_image_name(i): i for i in s.get("image_inputs") or []}
    verb = "mounts" if s.get("keyword") == "RUN" else "copies"
    platforms = list(getattr(now.args, "platforms", None) or [])
    unknown: list[str] = []
    for old, paths in read.items():
        name = _image_name(old)
        new = new_by_name.get(name)
        what = f"{verb} {', '.join(paths)[:60]} from {name.removeprefix('docker.io/')[:50]}"
        if new is None:
            unknown.append(f"{what}, which moved: it rebuilds only if those files changed")
            continue
        if len(platforms) > 1:
            got = FilesCompared(None, [], "the build is for several platforms; compared for none")
        else:
            key = (old, new, tuple(paths), platforms[0] if platforms else None)
            if key not in compared:
                try:
                    compared[key] = now.compare_images(old, new, paths, key[3])
                except Exception as exc:  # noqa: BLE001 - said in the reason
                    compared[key] = FilesCompared(None, [], f"the comparison failed ({exc})")
            got = compared[key]
        moved = f"{name.removeprefix('docker.io/')[:50]} moved to a new digest"
        if got.same is False:
            if notes is not None:
                files = ", ".join(got.differ[:3]) + (" …" if len(got.differ) > 3 else "")
                notes.append(f"Dockerfile:{s.get('line')}: {moved}, and {files} "
                             f"differ{'s' if len(got.differ) == 1 else ''} in it")
            return None, True
        if got.same is None:
            unknown.append(f"{what}, which moved to a new digest; the files were not compared: {got.why}. "
                           "It rebuilds only if they changed")
        elif notes is not None:
            notes.append(f"Dockerfile:{s.get('line')}: {moved}, but the files it {verb} "
                         f"({', '.join(paths)[:60]}) are the same: BuildKit keeps the step")
    return (unknown[0] if unknown else None), False


def _carry_file_op(s: dict, p: dict, df: "Dockerfile", old_df: "Dockerfile | None", now_args: dict[str, str],
                   before_args: dict[str, str]) -> None:
    """A COPY, ADD or WORKDIR whose text expands an ARG or ENV: its file op (paths,
    destination) changes with their values, though its text does not. The carried op
    is marked changed then, and explain names the variables (variable_causes)."""
    op = p.get("op")
    if not isinstance(op, dict) or "file" not in (op.get("Op") or {}) or old_df is None or not p.get("line"):
        return
    names = sorted({m.group(1) or m.group(2) for m in _VAR.finditer(str(s.get("instruction") or ""))})
    if not names:
        return
    now_scope = variable_scope(df, s["line"], now_args) or {}
    old_scope = variable_scope(old_df, p["line"], before_args) or {}
    moved = [n for n in names if (now_scope.get(n) or (None,))[0] != (old_scope.get(n) or (None,))[0]]
    if moved:
        s["op"] = dict(op, variables_changed=moved)


def _decide(record: dict, previous: dict | None, now: Now, df: "Dockerfile", remote_context: bool,
            all_gone: bool = False, notes: list | None = None) -> tuple[dict[str, str], Any]:
    """Set each forecast step's status; return the steps that may rebuild, with why, and
    the cause engine's explainer of the forecast (it explains the statuses set here)."""
    from analyzer.explain import _Explainer, _is_step  # noqa: PLC0415

    steps = record["steps"]
    by_digest = {s["digest"]: s for s in steps}
    ex = _Explainer(record, previous, snapshots=now.snapshots)
    order = [s for s in ex.steps if _is_step(s)]  # Dockerfile order: inputs come first
    changed: dict[str, bool] = {}
    maybe: dict[str, str] = {}
    compared: dict[tuple, FilesCompared] = {}  # one comparison per image pair and paths
    no_cache_all = bool((record.get("invocation") or {}).get("no_cache"))
    # all_gone: every cache key dropped (keys_dropped), every step rebuilds whatever it reads
    for s in order:
        p = ex.matches.get(s["id"])
        near = ex.nearest(s["digest"])
        ins = df.instruction_at(s["line"]) if s.get("line") else None
        causes = ex.own_causes(s, p)
        kinds = {c.kind for c in causes}
        content_why = None
        copied = set(s.get("copied_from") or [])
        upstream = any(changed.get(n["digest"]) for n in near if n["digest"] not in copied)
        before_unbuilt = p is not None and p.get("status") not in ("rebuilt", "cached")
        if s.get("keyword") == "WORKDIR" and kinds == {"no-cache-requested"} and not no_cache_all:
            causes = []  # --no-cache-filter leaves a stage's WORKDIR to the cache (checked on the engine)
        elif (kinds == {"base-image-changed"} and p is not None and not all_gone
              and not (upstream or before_unbuilt)):
            # a new key whatever the files hold (built on a change, or not run last time): no comparison
            # BuildKit reads the files of an image behind COPY --from or a bind mount by content:
            # compare them in the image read last time and in the one now
            read = _read_by_content(s, p, ex.prev_by_digest)
            if read:
                content_why, rebuilds = _compare_moved(read, s, now, compared, notes)
                if not rebuilds:
                    causes = []
            elif ((read is not None or not (p.get("op") or {}).get("Op")) and ins is not None
                  and ins.keyword in ("COPY", "ADD") and ins.from_ref and df.resolve_ref(ins.from_ref) is None):
                # no digests to compare, or a record without the op: which files it copies is not known
                content_why = (f"copies from {ins.from_ref[:40]}, which moved to a new digest: it rebuilds only "
                               "if the files it copies changed")
                causes = []
        from_changed = [n for n in near if n["digest"] in copied and changed.get(n["digest"])]
        changed[s["digest"]] = bool(causes) or upstream or before_unbuilt
        if not changed[s["digest"]]:
            why = content_why
            if why is None and from_changed:
                up = from_changed[0]
                why = (f"{'copies' if s.get('keyword') != 'RUN' else 'mounts'} from stage {up.get('stage')}, which "
                       f"will rebuild (line {up.get('line')}): it rebuilds only if the files it reads changed")
            if why is None:
                why = may_rebuild_reason(ins, s, remote_context)
            if why is None and now.mounts_gone:
                # its record is there, but a prune or a GC ran since the last build: on dockerd's
                # BuildKit a prune drops every cache key, a GC does not (keys_dropped)
                why = (f"the cache mount {now.mounts_gone[0]} is gone: the builder was pruned or garbage-collected "
                       "since the last build; dockerd's BuildKit drops every cache key on a prune, not on a GC")
            named = [n for n in _named_sources(s) if n not in (now.named_snapshots or {})]
            if why is None and named:
                why = f"reads the build context{'s' if len(named) > 1 else ''} {', '.join(named)}, not compared"
            maybe_up = next((n for n in near if n["digest"] in maybe), None)
            if why is None and maybe_up is not None:
                why = f"built on line {maybe_up.get('line')}, which may rebuild"
            if why is not None and not all_gone:
                maybe[s["digest"]] = why
    # Unchanged steps are rebuilt only when needed and their cache record is gone:
    # walk back from the target's result.
    needed: set[str] = set()
    dependents: dict[str, list[str]] = {}
    for s in order:
        for n in ex.nearest(s["digest"]):
            dependents.setdefault(n["digest"], []).append(s["digest"])
    for s in order:
        if not dependents.get(s["digest"]):
            needed.add(s["digest"])  # a result of the build (the target's last step)
    rebuilt: set[str] = {d for d, c in changed.items() if c}
    for s in reversed(order):
        d = s["digest"]
        if d in rebuilt:
            continue
        if d in needed or any(x in rebuilt for x in dependents.get(d, [])):
            present = False if all_gone else (True if now.cache is None else now.cache.get(s["id"], True))
            if present is None and d not in maybe:
                maybe[d] = ("its cache record was found under another step name only: BuildKit names a "
                            "record after the build that made it")
            elif not present:
                rebuilt.add(d)
    # a step after an evicted one is cached when its own record is there: nothing to do
    for s in steps:
        if not _is_step(s):
            continue
        if s["digest"] in rebuilt:
            s["status"] = "rebuilt"
        elif s["digest"] in maybe:
            s["status"] = MAY_REBUILD
        else:
            s["status"] = "cached"
    return {by_digest[d]["id"]: why for d, why in maybe.items() if by_digest[d]["status"] == MAY_REBUILD}, ex


# ------------------------------------------------------------------ the report

def notes_after(fc: Forecast, now: Now) -> list[Note]:
    """What the forecast says after its causes: new steps without a time, and a
    cache that could not be checked."""
    out: list[Note] = []
    new = [s for s in fc.record["steps"] if s.get("status") == "rebuilt"
           and s.get("keyword") not in (None, "FROM") and s.get("duration_s") is None]
    if new:
        out.append(Note(N.NO_TIME, N.SOURCE,
                        f"{len(new)} new step{'s' if len(new) != 1 else ''}: no time known from the last build"))
    if now.cache is None:
        out.append(Note(N.CACHE_UNKNOWN, N.CACHE,
                        now.cache_note or "assumed the cache still holds the last build's steps"))
    return out


def add_prediction(report: Report, fc: Forecast, previous: dict | None, now: Now) -> None:
    """The report's `prediction` block (the marker that it is one, and what it
    compared), and a summary that counts may-rebuild steps apart."""
    steps = fc.record["steps"]
    rebuilt = [s for s in steps if s.get("status") == "rebuilt" and s.get("keyword") not in (None, "FROM")]
    report["prediction"] = {
        "baseline": (previous or {}).get("id"),
        "expected_s": round(sum(s.get("duration_s") or 0.0 for s in rebuilt), 3),
        "steps_without_time": sum(1 for s in rebuilt if s.get("duration_s") is None),
        "may_rebuild": [{"id": s["id"], "line": s.get("line"), "instruction": s.get("instruction"),
                         "reason": fc.may_rebuild[s["id"]]} for s in steps if s["id"] in fc.may_rebuild],
        "cache": "checked" if now.cache is not None else "assumed",
        "images": [{"ref": r.ref, "name": r.name, "digest": r.digest, "from": r.where or None}
                   for r in now.images.values()],
    }
    summ = report["summary"]
    summ["may_rebuild"] = len(fc.may_rebuild)
    counted = (summ.get("cached") or 0) + (summ.get("rebuilt") or 0) + len(fc.may_rebuild)
    # a step that may rebuild is no cache hit: --fail-below-hit-ratio must not pass on a guess
    summ["hit_ratio"] = round((summ.get("cached") or 0) / counted, 4) if counted else None


# ------------------------------------------------------------------ what is there now

def _in_background(work: "Any") -> "Any":
    """Run `work()` in a forked child (a thread where there is no fork); the returned
    function waits for it and gives its result, or {"error": why}."""
    import os  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    if not hasattr(os, "fork"):
        import threading  # noqa: PLC0415

        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box.update(work())
            except Exception as exc:  # noqa: BLE001 - said by the caller
                box["error"] = repr(exc)
        t = threading.Thread(target=run, daemon=True)
        t.start()

        def wait_thread() -> dict[str, Any]:
            t.join()
            return box
        return wait_thread
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: work, send, and leave without running the parent's exit handlers
        code = 0
        try:
            os.close(r)
            try:
                data = pickle.dumps(work())
            except BaseException as exc:  # noqa: BLE001 - anything, sent back as one line
                data = pickle.dumps({"error": f"{exc!r}"})
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)

    def wait_child() -> dict[str, Any]:
        chunks = []
        with os.fdopen(r, "rb") as f:
            chunks.append(f.read())
        os.waitpid(pid, 0)
        try:
            got = pickle.loads(b"".join(chunks))
        except Exception:  # noqa: BLE001 - the child died before it answered
            return {"error": "the lookup process ended without an answer"}
        return got if isinstance(got, dict) else {"error": "the lookup process gave no answer"}
    return wait_child


def gather(args: "BuildArgs", load_previous: "Any", *, check_cache: bool = True) -> tuple[Now, dict | None]:
    """The build `args` describe, as it would start now: its Dockerfile, its context snapshot
    (the same .dockerignore rules and paths as `cachewhy build`), its base images' digests,
    and whether the previous build's cache records are still on the builder; and the
    previous record (`load_previous()`, read while the engine is asked)."""
    from analyzer import dockerfile as dfmod  # noqa: PLC0415
    from analyzer import probe  # noqa: PLC0415
    from analyzer import snapshot as snapmod  # noqa: PLC0415
    from analyzer.errors import InputError  # noqa: PLC0415
    from analyzer.record import follow_paths  # noqa: PLC0415

    df_path = args.dockerfile_path()
    if df_path is None:
        raise InputError("a prediction needs the Dockerfile on disk (not `-f -`)")
    try:
        text = df_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read the Dockerfile {df_path}: {exc.strerror or exc}") from None
    df = dfmod.parse(text)
    now = Now(args=args, dockerfile_path=df_path, dockerfile_text=text, snapshot=None)
    refs = stage_image_refs(df, built_stages(df, args.target), args.build_args,
                            getattr(args, "build_contexts", None))
    # The engine's answers (docker CLI, gRPC) come from a child process while this one
    # reads the previous record and hashes the context: importing python-on-whales and
    # grpc is CPU work that a thread would do under this process's GIL, one after the
    # other with the snapshot. The child needs nothing of the previous record: it hands
    # back the builder's cache records, matched with the record here.
    def ask_engine() -> dict[str, Any]:
        probed: dict[str, Any] = {"images": probe.resolve_images(refs)}
        if check_cache:
            probed["usage"] = probe.cache_records(args.builder)
        return probed

    asking = _in_background(ask_engine)
    try:
        previous = load_previous()
    except BaseException:
        asking()
        raise
    ctx = args.context_dir
    if ctx is not None and ctx.is_dir():
        prev_snap = None  # this machine's last snapshot: its stat data spares re-hashing unchanged files
        if previous and previous.get("snapshot") and not previous["snapshot"].get("git"):
            try:
                prev_snap = snapmod.Snapshot.from_json(previous["snapshot"])
            except (ValueError, KeyError, TypeError):
                prev_snap = None
        try:
            excludes = snapmod.read_dockerignore(ctx, df_path)
            snap = snapmod.snapshot(ctx, excludes=excludes, follow=follow_paths(df), previous=prev_snap)
            if prev_snap is not None:  # the cause engine reads these objects, not JSON
                now.snapshots = (prev_snap, snap)
                now.snapshot = {"parsed": True}
            else:
                now.snapshot = snap.to_json()
        except Exception as exc:  # noqa: BLE001 - said, and context files are then not compared
            now.notes.append(f"the context could not be snapshotted: {exc}")
    named = snapmod.named_context_dirs(getattr(args, "build_contexts", None) or {})
    if named:  # --build-context NAME=DIR: snapshotted as build snapshots them
        prev_named = (previous or {}).get("named_snapshots")
        now.named_snapshots, problems = snapmod.snapshot_named(
            named, {name: follow_paths(df, name) for name in named}, prev_named if isinstance(prev_named, dict) else None)
        now.notes += problems
    probed = asking()
    if ctx is None and args.context is None:
        raise InputError("no build context given (PATH, as for `docker buildx build`)")
    if "error" in probed:
        now.notes.append(f"the engine could not be asked about images and cache: {probed['error']}")
    now.images, notes = probed.get("images") or ({}, [])
    now.notes += notes
    if "usage" in probed:
        now.usage = probed["usage"][0]
    if "usage" in probed and previous is not None:
        now.cache, now.cache_note, now.mounts_gone = probe.cache_presence(previous, *probed["usage"])
    if now.mounts_gone:  # a prune or a GC since the last build: what it did depends on the builder
        facts = probe.builder_facts(args.builder)
        now.driver, now.gc_keep_s = facts.driver, facts.gc_keep_s
    return now, previous


# ------------------------------------------------------------------ the score (build --predict)

def score(report: dict, built: Report | dict) -> dict:
    """Predicted against actual, per Dockerfile step (by line) and per root (line and kind).

    `report` is the prediction's report, `built` the report of the build that followed.
    A step marked may-rebuild is counted apart: never as a right or wrong "cached"."""
    def by_line(rep: Report | dict) -> dict[int, str]:
        return {line: s.get("status") or "" for s in rep.get("steps") or []
                if (line := s.get("line")) and s.get("status") not in ("source", "internal", None)}

    predicted, actual = by_line(report), by_line(built)
    lines = sorted(set(predicted) & set(actual))
    missed = ("rebuilt", "failed")
    right, wrongly_cached, wrongly_rebuilt, maybe, maybe_rebuilt = 0, [], [], [], []
    for line in lines:
        p, a = predicted[line], actual[line]
        if p == MAY_REBUILD:
            maybe.append(line)
            if a in missed:
                maybe_rebuilt.append(line)
            continue
        if a not in ("cached",) + missed:
            continue  # canceled or skipped by a failure: nothing to score
        if (p in missed) == (a in missed):
            right += 1
        elif a in missed:
            wrongly_cached.append(line)
        else:
            wrongly_rebuilt.append(line)

    def roots(rep: Report | dict) -> list[list[Any]]:
        return [[m.get("line"), (m.get("cause") or {}).get("kind")] for m in rep.get("misses") or [] if m.get("root")]

    want, got = roots(built), roots(report)
    roots_right = sum(1 for r in want if r in got)
    scored = right + len(wrongly_cached) + len(wrongly_rebuilt)
    return {
        "baseline": (report.get("prediction") or {}).get("baseline"),
        "steps": scored,
        "steps_right": right,
        "wrongly_cached": wrongly_cached,
        "wrongly_rebuilt": wrongly_rebuilt,
        "may_rebuild": maybe,
        "may_rebuild_rebuilt": maybe_rebuilt,
        "predicted_rebuilt": [ln for ln in lines if predicted[ln] in missed],
        "rebuilt": [ln for ln in lines if actual[ln] in missed],
        "roots_predicted": got,
        "roots": want,
        "roots_right": roots_right,
        "expected_s": (report.get("prediction") or {}).get("expected_s"),
        "rebuilt_s": (built.get("summary") or {}).get("rebuilt_time_s"),
    }


def score_lines(sc: dict, width: int = 80) -> list[str]:
    """The prediction beside the build, for the terminal."""
    def span(lines: list[int]) -> str:
        text = ", ".join(str(x) for x in lines) or "none"
        return text if len(text) <= width - 30 else text[: width - 31] + "\u2026"

    ok = sc["steps_right"] == sc["steps"] and sc["roots_right"] == len(sc["roots"])
    head = (f"Prediction {'right' if ok else 'scored'}: {sc['steps_right']}/{sc['steps']} step statuses, "
            f"{sc['roots_right']}/{len(sc['roots'])} root causes")
    out = [head,
           f"  {'predicted to rebuild':<22} {span(sc['predicted_rebuilt'])}",
           f"  {'rebuilt':<22} {span(sc['rebuilt'])}"]
    if sc["may_rebuild"]:
        out.append(f"  {'marked may-rebuild':<22} {span(sc['may_rebuild'])} "
                   f"({len(sc['may_rebuild_rebuilt'])} rebuilt)")
    if sc["wrongly_cached"]:
        out.append(f"  {'predicted cached':<22} {span(sc['wrongly_cached'])} (rebuilt)")
    if sc["wrongly_rebuilt"]:
        out.append(f"  {'predicted to rebuild':<22} {span(sc['wrongly_rebuilt'])} (cached)")
    exp, took = sc.get("expected_s"), sc.get("rebuilt_s")
    if exp is not None and took is not None:
        out.append(f"  {'time':<22} about {exp:.1f}s predicted, {took:.1f}s taken")
    return out
