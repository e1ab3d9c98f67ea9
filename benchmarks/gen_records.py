"""Synthetic build records for the root-cause and store benchmarks.

    python benchmarks/gen_records.py --steps 10000 OUT_DIR     # writes prev.json and cur.json

`pair(steps)` makes two records of one big multi-stage build in the shape
analyzer/record.py writes (`make_record` / `step_dict`): a previous build
with nearly every step cached, and the current one with one root miss per
stage (a tenth of the steps), each rebuilt to the end of its stage, plus the
cross-stage cascades that `COPY --from` carries. Root causes are mixed in
equal parts: an edited instruction, a changed build arg (env of the op), a
changed context file (both records carry a context snapshot, 5 files per
stage) and an evicted cache entry (nothing changed).

The Dockerfile (also in the records, as `dockerfile_text`) has stages of 10
lines: a FROM (one of five base images, which BuildKit merges into one vertex
each, with `also_at`), then WORKDIR, COPY src/, two RUNs, COPY --from an
earlier stage of the same block of 20 stages (a RUN in a block's first
stage), RUN, COPY a file, RUN, RUN. Blocks keep the chains of cross-stage
cascades as short as in real files whatever the size; with one unbounded
chain the number of roots each cascade follows from (the output) would grow
with the build, and no analysis could stay linear. Besides
the steps, the records hold the internal and source vertices a real build has
(load build definition, load metadata, the build context).

`realistic_record()` makes one record the way `cachewhy build` does, from a
real capture in testdata/ (events, provenance, context snapshot, report):
what the store benchmark saves 10,000 times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STAGE_LEN = 10  # FROM + 9 steps
BASES = [f"docker.io/library/base{i}:1.{i}" for i in range(5)]
FILES_PER_STAGE = 5
BLOCK = 20  # stages per block; COPY --from stays within a block


def _hex(rng: random.Random, n: int = 64) -> str:
    return "%0*x" % (n, rng.getrandbits(4 * n))


def _hash12(rng: random.Random) -> str:
    return "h:" + _hex(rng, 12)


def _exec_op(args: str, cwd: str, env: list[str]) -> dict:
    return {"Op": {"exec": {"meta": {"args": ["/bin/sh", "-c", args], "env": env, "cwd": cwd,
                                     "removeMountStubsRecursive": True},
                            "mounts": [{"dest": "/"}]}},
            "platform": {"Architecture": "amd64", "OS": "linux"}, "constraints": {}}


def _copy_op(src: str, dest: str) -> dict:
    return {"Op": {"file": {"actions": [{"input": 0, "secondaryInput": 1, "output": 0, "Action": {"copy": {
        "src": src, "dest": dest, "mode": -1, "followSymlink": True, "dirCopyContents": True,
        "createDestPath": True, "allowWildcard": True, "allowEmptyWildcard": True, "timestamp": -1}}}]}},
        "constraints": {}}


def _mkdir_op(path: str) -> dict:
    return {"Op": {"file": {"actions": [{"input": 0, "secondaryInput": -1, "output": 0, "Action": {"mkdir": {
        "path": path, "mode": 493, "makeParents": True, "timestamp": -1}}}]}},
        "platform": {"Architecture": "amd64", "OS": "linux"}, "constraints": {}}


def _layout(n_stages: int, seed: int) -> tuple[list[dict], list[str]]:
    """The build's instructions (per stage), the same for both records.

    Returns step templates (no digests yet) and the Dockerfile lines."""
    rng = random.Random(seed)
    lines = ["# syntax=docker/dockerfile:1", "ARG BUST=0", ""]
    steps: list[dict] = []
    for k in range(n_stages):
        base = BASES[k % len(BASES)]
        stage = f"s{k}"
        from_line = len(lines) + 1
        lines.append(f"FROM {base} AS {stage}")
        steps.append({"stage": stage, "keyword": "FROM", "line": from_line, "text": lines[-1], "base": base,
                      "pos": 0})
        # COPY --from an earlier stage of the same block of BLOCK stages (a
        # service's stages build on its own libraries, not on every stage of
        # the whole file): the chains of cross-stage cascades stay bounded,
        # as in real Dockerfiles, whatever the number of stages
        first = k - k % BLOCK
        src = None if k == first else rng.randint(first, k - 1)
        body = [
            ("WORKDIR", f"WORKDIR /w/{stage}"),
            ("COPY", f"COPY src/{stage}/ ./src/"),
            ("RUN", f"RUN make -C src build-{stage} > build.log && tail -n 3 build.log"),
            ("RUN", f"RUN ./src/test.sh --stage {stage} --jobs 2"),
            ("COPY", f"COPY --from=s{src} /out/s{src}.tar ./deps/") if src is not None
            else ("RUN", "RUN mkdir -p deps && touch deps/.keep"),
            ("RUN", "RUN tar -xf deps/*.tar -C deps 2>/dev/null; ls deps | wc -l > deps.count"),
            ("COPY", f"COPY conf/{stage}.conf ./app.conf"),
            ("RUN", "RUN cat app.conf deps.count > manifest && sha256sum manifest"),
            ("RUN", f"RUN mkdir -p /out && tar -cf /out/{stage}.tar manifest src"),
        ]
        for i, (kw, text) in enumerate(body, start=1):
            lines.append(text)
            t = {"stage": stage, "keyword": kw, "line": len(lines), "text": text, "pos": i, "stage_index": k}
            if text.startswith("COPY --from="):
                t["from_stage"] = src
            elif text.startswith("COPY src/"):
                t["context"] = f"/src/{stage}/"
            elif text.startswith("COPY conf/"):
                t["context"] = f"/conf/{stage}.conf"
            steps.append(t)
        lines.append("")
    return steps, lines


def _snapshot(n_stages: int, changed: set[int], rng: random.Random, taken_ns: int) -> dict:
    entries: dict[str, list] = {"src": ["dir", 0o755, 0, None, None, taken_ns - 10**12, taken_ns - 10**12, 1000],
                                "conf": ["dir", 0o755, 0, None, None, taken_ns - 10**12, taken_ns - 10**12, 1001]}
    ino = 2000
    for k in range(n_stages):
        stage = f"s{k}"
        entries[f"src/{stage}"] = ["dir", 0o755, 0, None, None, taken_ns - 10**12, taken_ns - 10**12, ino]
        ino += 1
        for j in range(FILES_PER_STAGE - 1):
            sha = hashlib.sha256(f"{stage}/{j}{'x' if (k in changed and j == 0) else ''}".encode()).hexdigest()
            entries[f"src/{stage}/f{j}.c"] = ["file", 0o644, 1000 + j, sha, None,
                                               taken_ns - 10**12, taken_ns - 10**12, ino]
            ino += 1
        entries[f"conf/{stage}.conf"] = ["file", 0o644, 64, hashlib.sha256(stage.encode()).hexdigest(), None,
                                         taken_ns - 10**12, taken_ns - 10**12, ino]
        ino += 1
    return {"v": 1, "root": "/work/app", "excludes": [], "follow": ["conf", "src"], "taken_ns": taken_ns,
            "stats": {"hashed_bytes": 0, "hashed_files": 0, "reused": len(entries)},
            "entries": dict(sorted(entries.items()))}


def _record(layout: list[dict], lines: list[str], *, rid: str, rng: random.Random, created: float,
            roots: dict[int, str], bust: str, n_stages: int, prev_rebuilt: float = 0.0) -> dict:
    """One record. `roots`: stage index -> cause kind of its root miss (at a
    position 1..4); empty for the previous build."""
    lines = list(lines)
    digest = lambda: "sha256:" + _hex(rng)
    defn = {"digest": digest(), "name": "[internal] load build definition from Dockerfile", "kind": "internal"}
    ctx = {"digest": digest(), "name": "[internal] load build context", "kind": "source"}
    metas = {b: {"digest": digest(), "name": f"[internal] load metadata for {b}", "kind": "source"} for b in BASES}
    froms: dict[str, dict] = {}
    t = created
    steps: list[dict] = []

    def vertex(v: dict) -> dict:
        return {"id": v["digest"][7:19], "digest": v["digest"], "name": v["name"], "keyword": None,
                "stage": None, "index": None, "line": None, "end_line": None, "also_at": [], "instruction": None,
                "status": v["kind"], "cached": False, "started": t, "completed": t + 0.01, "duration_s": 0.01,
                "error": None, "inputs": [], "platform": None}

    steps.append(vertex(defn))
    steps.append(vertex(ctx))
    for m in metas.values():
        steps.append(vertex(m))
    # where each stage's root miss is: before the COPY --from at position 5
    root_pos = {k: _root_position(k, kind) for k, kind in roots.items()}

    last_digest: dict[int, str] = {}
    last_rebuilt: dict[int, bool] = {}
    prev_digest = None
    rebuilding = False
    for tpl in layout:
        k = int(tpl["stage"][1:])
        text = tpl["text"]
        if tpl["keyword"] == "FROM":
            base = tpl["base"]
            fv = froms.get(base)
            if fv is None:
                d = digest()
                fv = froms[base] = {
                    "id": d[7:19], "digest": d, "name": f"[{tpl['stage']} 1/{STAGE_LEN}] FROM", "keyword": "FROM",
                    "stage": tpl["stage"], "index": 1, "line": tpl["line"], "end_line": tpl["line"], "also_at": [],
                    "instruction": text, "status": "source", "cached": False, "started": t, "completed": t + 0.02,
                    "duration_s": 0.02, "error": None, "inputs": [metas[base]["digest"]], "platform": None,
                    "op": {"Op": {"source": {"identifier": f"docker-image://{base}@sha256:{hashlib.sha256(base.encode()).hexdigest()}"}},
                           "platform": {"Architecture": "amd64", "OS": "linux"}, "constraints": {}},
                    "image_inputs": [], "context_inputs": [], "remote_inputs": []}
                fv["op_hash"] = hashlib.sha256(json.dumps(fv["op"], sort_keys=True).encode()).hexdigest()
                steps.append(fv)
            else:
                fv["also_at"].append({"line": tpl["line"], "stage": tpl["stage"], "instruction": text})
            prev_digest = fv["digest"]
            rebuilding = False
            continue
        pos = tpl["pos"]
        cause = roots.get(k) if root_pos.get(k) == pos else None
        if cause == "instruction-changed":
            text = text + " --verbose"
            lines[tpl["line"] - 1] = text
        if cause is not None:
            rebuilding = True
        inputs = [prev_digest]
        if "from_stage" in tpl:
            j = tpl["from_stage"]
            inputs.append(last_digest[j])
            if last_rebuilt.get(j):
                rebuilding = True  # BuildKit does not cut this one: the copied file changed
        if "context" in tpl:
            inputs.append(ctx["digest"])
        status = "rebuilt" if rebuilding else ("rebuilt" if (not roots and rng.random() < prev_rebuilt) else "cached")
        dur = round(rng.uniform(0.2, 4.0), 6) if status == "rebuilt" else 0.0
        d = digest()
        cwd = f"/w/{tpl['stage']}"
        env = ["PATH=h:1d11b36eaf0b", f"BUST={bust if (cause == 'build-arg-changed') else 'h:000000000000'}"]
        if tpl["keyword"] == "RUN":
            op = _exec_op(text[4:], cwd, env)
        elif tpl["keyword"] == "WORKDIR":
            op = _mkdir_op(cwd)
        else:
            src = tpl.get("context") or f"/out/s{tpl.get('from_stage')}.tar"
            op = _copy_op(src, cwd + "/")
        step = {
            "id": d[7:19], "digest": d, "name": f"[{tpl['stage']} {pos + 1}/{STAGE_LEN}] {tpl['keyword']}",
            "keyword": tpl["keyword"], "stage": tpl["stage"], "index": pos + 1, "line": tpl["line"],
            "end_line": tpl["line"], "also_at": [], "instruction": text, "status": status,
            "cached": status == "cached", "started": t, "completed": t + dur, "duration_s": dur, "error": None,
            "inputs": inputs, "platform": None, "op": op,
            "op_hash": hashlib.sha256(json.dumps(op, sort_keys=True).encode()).hexdigest(),
            "image_inputs": [], "remote_inputs": [],
            "context_inputs": ([{"source": "context", "path": tpl["context"], "include": [], "exclude": []}]
                               if "context" in tpl else []),
        }
        steps.append(step)
        t += dur or 0.001
        prev_digest = d
        if pos == STAGE_LEN - 1:
            last_digest[k] = d
            last_rebuilt[k] = rebuilding
    steps.append(vertex({"digest": digest(), "name": "exporting to image", "kind": "internal"}))
    changed_ctx = {k for k, c in roots.items() if c == "context-changed"}
    taken_ns = int(created * 1e9)
    rec = {
        "schema": "cachewhy.record/v1", "id": rid, "created": created, "completed_at": t,
        "duration_s": round(t - created, 3), "complete": True, "exit_code": 0, "interrupted": None,
        "project": {"context": "/work/app", "dockerfile": "/work/app/Dockerfile", "target": None, "platforms": []},
        "invocation": {"argv": ["--build-arg=BUST=<redacted>", "/work/app"], "builder": None, "no_cache": False,
                       "no_cache_filter": [], "cache_from": [], "cache_to": []},
        "build_args": {"BUST": bust}, "buildx_ref": None, "has_provenance": True,
        "dockerfile_text": "\n".join(lines) + "\n",
        "materials": [[f"pkg:docker/{b}?platform=linux%2Famd64", "sha256:" + hashlib.sha256(b.encode()).hexdigest()]
                      for b in BASES],
        "messages": [], "steps": steps,
        "snapshot": _snapshot(n_stages, changed_ctx, rng, taken_ns),
    }
    return rec


KINDS = ("instruction-changed", "build-arg-changed", "context-changed", "cache-evicted")


def _root_position(k: int, kind: str) -> int:
    """Position (1..4) of stage k's root miss: context changes hit the COPY
    src/ (2), build args a RUN (3, 4), the others anywhere before the
    COPY --from."""
    if kind == "context-changed":
        return 2
    if kind == "build-arg-changed":
        return 3 + (k // 4) % 2
    return 1 + (k // 4) % 4


def pair(steps: int = 10_000, seed: int = 7, roots: int | None = None) -> tuple[dict, dict, dict]:
    """(current, previous, facts) for a build of about `steps` Dockerfile steps
    (FROM lines not counted) with `roots` root misses (default: steps / 10)."""
    n_stages = max(1, -(-steps // (STAGE_LEN - 1)))
    n_roots = min(n_stages, steps // 10 if roots is None else roots)
    layout, lines = _layout(n_stages, seed)
    prev = _record(layout, lines, rid="20260101T000000000000-00000001", rng=random.Random(seed + 1),
                   created=1_790_000_000.0, roots={}, bust="h:000000000000", n_stages=n_stages, prev_rebuilt=0.02)
    # the stages with a root miss, spread evenly; the others rebuild only
    # from their COPY --from on, when the stage they copy from rebuilt
    with_root = [k for k in range(n_stages) if (k + 1) * n_roots // n_stages > k * n_roots // n_stages]
    roots = {k: KINDS[i % len(KINDS)] for i, k in enumerate(with_root)}
    cur = _record(layout, lines, rid="20260101T000100000000-00000002", rng=random.Random(seed + 2),
                  created=1_790_000_100.0, roots=roots, bust="h:111111111111", n_stages=n_stages)
    n_steps = sum(1 for s in cur["steps"] if s["keyword"] not in (None, "FROM"))
    edges = sum(len(s["inputs"]) for s in cur["steps"])
    facts = {"stages": n_stages, "steps": n_steps, "vertices": len(cur["steps"]), "edges": edges,
             "roots": len(roots), "rebuilt": sum(1 for s in cur["steps"] if s["status"] == "rebuilt"),
             "root_kinds": {k: sum(1 for v in roots.values() if v == k) for k in KINDS},
             "snapshot_entries": len(cur["snapshot"]["entries"])}
    return cur, prev, facts


def realistic_record(rid: str | None = None) -> dict:
    """One record made the way `cachewhy build` makes it, from the real capture
    testdata/rawjson/multistage-change (events + provenance) and a snapshot of
    testdata/projects/multistage; with its report, as the pipeline stores it."""
    sys.path.insert(0, str(REPO))
    from analyzer.buildx import RunResult, parse_args
    from analyzer.events import load_file
    from analyzer.pipeline import analyse
    from analyzer.snapshot import snapshot
    from analyzer.sources import Baseline
    from analyzer.sources.run import from_run

    ctx = REPO / "testdata" / "projects" / "multistage"
    raw = REPO / "testdata" / "rawjson"
    snap = snapshot(ctx, excludes=[], follow=["config.txt", "src", "static"]).to_json()
    inp = from_run(load_file(raw / "multistage-change.jsonl"), parse_args([str(ctx)]),
                   RunResult(returncode=0, started=1_790_000_000.0, ended=1_790_000_002.0,
                             metadata_path=raw / "multistage-change.meta.json"),
                   dockerfile_text=(ctx / "Dockerfile").read_text(), dockerfile_path=ctx / "Dockerfile",
                   snapshot=snap)
    out = analyse(inp, Baseline())
    rec = out.record
    if rid:
        rec["id"] = rid
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="write a synthetic pair of records (cur.json, prev.json)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    cur, prev, facts = pair(a.steps, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "cur.json").write_text(json.dumps(cur))
    (a.out / "prev.json").write_text(json.dumps(prev))
    json.dump(facts, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
