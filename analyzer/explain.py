"""Why each step was rebuilt: root misses, cascades and their causes.

Works on two build records (the current one and the previous build of the
same project), never on raw vertex digests across builds: steps are matched
by stage, keyword and instruction text, then by position in the stage.

A rebuilt step is a *root* miss when none of its nearest step inputs (the
first Dockerfile step on each input edge) was rebuilt. Every other rebuilt
step follows from the roots of its rebuilt inputs. BuildKit itself cuts a
cascade where a rebuilt step produced identical bytes (COPY --from and bind
mounts are keyed on content), so only unbroken chains of rebuilt steps count.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Callable, cast

from analyzer import causes
from analyzer import notes as N
from analyzer.collector import paused
from analyzer.model import Record
from analyzer.notes import Note

KINDS = causes.KINDS  # the cause kinds this module gives: analyzer/causes.py lists them

MISSED = ("rebuilt", "failed")  # statuses of steps that ran because the cache had nothing
BUILT = ("rebuilt", "cached")  # statuses of steps whose result existed after that build


@dataclass
class Cause:
    kind: str
    detail: str
    files: dict[str, list[str]] | None = None
    root_id: str | None = None  # for stage-changed: the root miss it comes from

    def __post_init__(self) -> None:
        if self.kind not in causes.BY_NAME:  # a kind every output can name: analyzer/causes.py
            raise ValueError(f"cause kind {self.kind!r} is not in analyzer/causes.py")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "detail": self.detail}
        if self.files is not None:
            out["files"] = self.files
        return out


@dataclass
class Miss:
    step: dict
    root: bool
    cause: Cause
    also: list[Cause] = field(default_factory=list)
    caused_by: list[str] = field(default_factory=list)  # root step ids, for cascades
    followers: list[str] = field(default_factory=list)  # step ids that follow from this root
    time_lost_s: float = 0.0


@dataclass
class Analysis:
    current: dict
    previous: dict | None
    misses: list[Miss]
    notes: list[Note] = field(default_factory=list)

    @property
    def roots(self) -> list[Miss]:
        return [m for m in self.misses if m.root]


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


@functools.lru_cache(maxsize=8)
def _lines(text: str) -> list[str]:
    return text.splitlines()


def _parsed(text: str):  # type: ignore[no-untyped-def]
    """The parsed Dockerfile (dockerfile.parse keeps it per text: explain asks for it per step)."""
    from analyzer import dockerfile as dfmod  # noqa: PLC0415

    return dfmod.parse(text)


def _renumbered(pairs: dict[str, str], cur_text: str | None, prev_text: str | None) -> dict[str, str]:
    """Previous stage index -> its current index, for paired stages that moved:
    `COPY --from=0` of a stage that a stage inserted above made `--from=1`."""
    if not cur_text or not prev_text:
        return {}
    now = {st.name.lower(): st.index for st in _parsed(cur_text).stages}
    before = {st.name.lower(): st.index for st in _parsed(prev_text).stages}
    out = {}
    for c, p in pairs.items():
        i, j = now.get(c.lower()), before.get(p.lower())
        if i is not None and j is not None and i != j:
            out[str(j)] = str(i)
    return out


def _source_text(record: dict | None, step: dict) -> str:
    """The instruction as written, heredoc bodies included, whitespace folded
    (but in heredoc bodies, where it is content)."""
    lines, heredoc = _source_lines(record, step)
    return "\n".join(lines) if heredoc else _norm(" ".join(lines))


def _source_lines(record: dict | None, step: dict) -> tuple[list[str], bool]:
    """Each line of the instruction as written: the whole instruction at the step's
    first line, as the Dockerfile parser reads it (older records end a multi-line
    instruction at its first line); and whether it has heredocs. Whitespace is
    folded, except in heredoc bodies."""
    text = (record or {}).get("dockerfile_text")
    line = step.get("line")
    if not text or not isinstance(line, int):
        return [_norm(step.get("instruction"))], False
    ins = _parsed(text).instruction_at(line)
    end = ins.end_line if ins is not None and ins.line == line else (step.get("end_line") or line)
    raw = _lines(text)[line - 1:end]
    if ins is not None and ins.heredocs and raw:
        return [_norm(raw[0]), *(x.rstrip("\r") for x in raw[1:])], True
    return [_norm(x) for x in raw], False


def _text_change(old: list[str], new: list[str], new_line: int | None) -> str:
    """`old → new` of an edited instruction. For one on several lines (continuation
    lines, a heredoc) the lines that differ, after its first line and the line number
    where they start: what was edited stays in view, not the 80 characters before it."""
    if len(old) <= 1 and len(new) <= 1:
        return f"{_clip(' '.join(old))} \u2192 {_clip(' '.join(new))}"
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    was = " \u23ce ".join(x.strip() for x in old[head:len(old) - tail]) or "(no line)"
    now = " \u23ce ".join(x.strip() for x in new[head:len(new) - tail]) or "(no line)"
    where = f" (line {new_line + head})" if new_line else ""
    first = new[0].rstrip("\\`").rstrip()  # without its continuation mark
    return f"{_clip(first, 40)}{where}: {_clip(was, 60)} \u2192 {_clip(now, 60)}"


def _is_step(step: dict) -> bool:
    return step.get("keyword") not in (None, "FROM") and step.get("status") != "source"


def _dockerfile_order(steps: list[dict]) -> list[dict]:
    return sorted(steps, key=lambda s: (s.get("line") is None, s.get("line") or 0, s.get("keyword") != "FROM",
                                        s.get("started") or 0.0, s.get("id") or ""))


_STAGE_REF = re.compile(r"(--from=|\bfrom=)([^\s,]+)", re.IGNORECASE)
_AS_NAME = re.compile(r"\s+AS\s+\S+\s*$", re.IGNORECASE)


def _content_key(step: dict, stages: set[str]) -> tuple[str, str]:
    """What a step is, whatever its stage is called: keyword and text, with the
    names of the build's stages it reads (`COPY --from=builder`) and its own
    stage's `AS` name left out."""
    text = _norm(step.get("instruction"))
    text = _STAGE_REF.sub(lambda m: m.group(1) + ("<stage>" if m.group(2).lower() in stages else m.group(2)), text)
    if step.get("keyword") == "FROM":
        text = _AS_NAME.sub("", text)
    return str(step.get("keyword")), text


def _aliases(step: dict) -> list[dict]:
    """The other places of a step that BuildKit ran once for several instructions
    (`also_at`: equal ops in two stages), as steps of their own stage and line."""
    return [{**step, "stage": a["stage"], "line": a.get("line"), "instruction": a.get("instruction")}
            for a in step.get("also_at") or [] if isinstance(a, dict) and a.get("stage") and a.get("instruction")]


def match_stages(cur: list[dict], prev: list[dict]) -> dict[str, str]:
    """Current stage name -> the previous build's same stage.

    By content first: the stages that share the most steps (keyword and text,
    base image included) pair, so a renamed stage, or one renumbered `stage-N`
    by an unnamed stage inserted above it, is still the same stage; a stage's own
    name decides between equals. Stages that share nothing pair by name."""
    def contents(steps: list[dict]) -> dict[str, list[tuple[str, str]]]:
        names = {str(s["stage"]).lower() for s in steps if s.get("stage")}
        out: dict[str, list[tuple[str, str]]] = {}
        for s in steps:
            if s.get("stage") and (_is_step(s) or s.get("keyword") == "FROM"):
                out.setdefault(s["stage"], []).append(_content_key(s, names))
                for also in _aliases(s):  # one vertex shared by several stages counts in each
                    out.setdefault(also["stage"], []).append(_content_key(also, names))
        return out

    now, before = contents(cur), contents(prev)
    scored = []
    for order, (c, keys) in enumerate(now.items()):
        for p, old in before.items():
            left = list(old)
            shared = 0
            for k in keys:
                if k in left:
                    left.remove(k)
                    shared += 1
            if shared:
                scored.append((-shared, c != p, order, c, p))
    out: dict[str, str] = {}
    taken: set[str] = set()
    for _, _, _, c, p in sorted(scored):
        if c not in out and p not in taken:
            out[c] = p
            taken.add(p)
    for c in now:
        if c not in out and c in before and c not in taken:
            out[c] = c
            taken.add(c)
    return out


def _heredoc_body(dockerfile_text: str | None, step: dict) -> str:
    """The heredoc bodies of the step's instruction ("" without any, or without the Dockerfile)."""
    if not dockerfile_text or not step.get("line"):
        return ""
    lines, heredoc = _source_lines({"dockerfile_text": dockerfile_text}, step)
    return "\n".join(lines[1:]) if heredoc else ""


def match_steps(cur: list[dict], prev: list[dict], cur_text: str | None = None,
                prev_text: str | None = None) -> dict[str, dict]:
    """Current step id -> the previous build's same step.

    Stages pair first (`match_stages`: by content, then name). Steps pair by
    (stage, keyword, instruction text) in order of appearance, then the
    leftovers by (stage, keyword, position among the stage's steps), which
    pairs an edited instruction with what it was. Given the Dockerfiles'
    texts, heredoc bodies are part of the text (`RUN <<EOF` alone says little).
    """
    stages = match_stages(cur, prev)
    cur_names = {str(s["stage"]).lower() for s in cur if s.get("stage")}
    prev_names = {str(s["stage"]).lower() for s in prev if s.get("stage")}
    cur_steps = [s for s in cur if _is_step(s)]
    prev_steps = [s for s in prev if _is_step(s)]
    # a current stage that pairs with no previous one must not take a step of a
    # previous stage that merely had its name (the stages were renumbered)
    unpaired = object()

    def stage_of(s: dict) -> object:
        st = s.get("stage")
        return stages.get(st, unpaired) if st else None

    by_text: dict[tuple, list[dict]] = {}
    for p in prev_steps:
        by_text.setdefault((p.get("stage"), *_content_key(p, prev_names), _heredoc_body(prev_text, p)),
                           []).append(p)
    for p in prev_steps:  # then its other places: a step of one stage may have been another's too
        for a in _aliases(p):
            by_text.setdefault((a["stage"], *_content_key(a, prev_names), _heredoc_body(prev_text, a)),
                               []).append(p)
    out: dict[str, dict] = {}
    used: set[str] = set()
    for s in cur_steps:
        cands = by_text.get((stage_of(s), *_content_key(s, cur_names), _heredoc_body(cur_text, s)))
        if cands:
            p = cands.pop(0)
            out[s["id"]] = p
            used.add(p["id"])

    def position(steps: list[dict], stage: Callable[[dict], object]) -> dict[tuple, dict]:
        counts: dict[tuple, int] = {}
        pos: dict[tuple, dict] = {}
        for s in sorted(steps, key=lambda x: (x.get("line") or 0)):
            key = (stage(s), s.get("keyword"))
            counts[key] = counts.get(key, 0) + 1
            pos[key + (counts[key],)] = s
        return pos

    prev_pos = {k: v for k, v in position(prev_steps, lambda p: p.get("stage")).items() if v["id"] not in used}
    for key, s in position(cur_steps, stage_of).items():
        if s["id"] not in out and key in prev_pos:
            out[s["id"]] = prev_pos.pop(key)
    return out


def _env_map(step: dict) -> dict[str, str]:
    env = (((step.get("op") or {}).get("Op") or {}).get("exec") or {}).get("meta", {}).get("env") or []
    out = {}
    for e in env:
        name, _, value = str(e).partition("=")
        out[name] = value
    return out


def _without_env(op: dict | None) -> dict | None:
    if not op:
        return op
    op = {k: v for k, v in op.items() if k != "platform"}
    exec_op = (op.get("Op") or {}).get("exec")
    if isinstance(exec_op, dict) and isinstance(exec_op.get("meta"), dict) and "env" in exec_op["meta"]:
        meta = {k: v for k, v in exec_op["meta"].items() if k != "env"}
        op["Op"] = {**op["Op"], "exec": {**exec_op, "meta": meta}}
    return op


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _image_repo(identifier: str) -> tuple[str, str]:
    ref = identifier.removeprefix("docker-image://")
    name, _, digest = ref.partition("@")
    return name, digest


def _familiar(ref: str) -> tuple[str, str]:
    """(name, tag) of an image reference as Docker shows it: docker.io/library/ left out."""
    ref = ref.removeprefix("docker-image://").partition("@")[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    name, tag = (ref[:colon], ref[colon + 1:]) if colon > slash else (ref, "latest")
    name = name.removeprefix("docker.io/").removeprefix("index.docker.io/").removeprefix("library/")
    return name, tag


def _material_digest(identifier: str, materials: dict[str, str]) -> str | None:
    """The digest provenance lists for an image, among its materials (`pkg:docker/NAME@TAG?platform=…`
    package URLs); None when no material, or more than one digest, fits."""
    import urllib.parse  # noqa: PLC0415

    want = _familiar(identifier)
    found = set()
    for uri, digest in materials.items():
        if not uri.startswith("pkg:docker/") or not digest:
            continue
        path = urllib.parse.unquote(uri[len("pkg:docker/"):].partition("?")[0])
        name, _, tag = path.rpartition("@")
        if name and _familiar(f"{name}:{tag}") == want:
            found.add(digest)
    return found.pop() if len(found) == 1 else None


def _named_context_of(record: dict, identifier: str) -> str | None:
    """The name of the `--build-context NAME=docker-image://REF` that made this image input."""
    argv = (record.get("invocation") or {}).get("argv") or []
    want = _familiar(identifier)
    for i, tok in enumerate(argv):
        value = argv[i + 1] if tok == "--build-context" and i + 1 < len(argv) else (
            tok.partition("=")[2] if tok.startswith("--build-context=") else None)
        if value:
            name, _, ref = value.partition("=")
            if ref.startswith("docker-image://") and _familiar(ref) == want:
                return name
    return None


def _short_digest(d: str) -> str:
    return d[:19] if d else "?"


def _declared_args(record: dict) -> set[str]:
    """Names declared by an ARG anywhere in the Dockerfile (the parser's reading)."""
    return {name for name, defs in _definitions(record).items() if any(k == "ARG" for k, _ in defs)}


def _stage_metadata(record: dict | None, step: dict) -> list[tuple[str, str]] | None:
    """(keyword, text) of the ARG/ENV/USER/WORKDIR/SHELL lines before `step` in its stage."""
    text = (record or {}).get("dockerfile_text")
    if not text or not step.get("line"):
        return None
    df = _parsed(text)
    ins = df.instruction_at(step["line"])
    if ins is None or ins.stage is None:
        return None
    return [(i.keyword, _norm(i.text)) for i in df.stages[ins.stage].instructions
            if i.line < ins.line and i.keyword in ("ARG", "ENV", "USER", "WORKDIR", "SHELL")]


def _value_hash(defs: list[tuple[str, str]] | None) -> str:
    """A short hash of values written in the Dockerfile: shows a change, not the value."""
    if not defs:
        return "(unset)"
    import hashlib  # noqa: PLC0415

    return "h:" + hashlib.sha256("\0".join(v for _, v in defs).encode()).hexdigest()[:12]


_VAR_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def _definitions(record: dict | None) -> dict[str, list[tuple[str, str]]]:
    """Variable name -> [(ARG|ENV, value as written)] over the whole Dockerfile."""
    text = (record or {}).get("dockerfile_text")
    if not text:
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for ins in _parsed(text).instructions:
        if ins.keyword in ("ARG", "ENV"):
            for name, value in ins.assignments:
                out.setdefault(name, []).append((ins.keyword, value or ""))
    return out


def _arg_defaults(record: dict | None) -> set[str]:
    """Names an ARG of the record's Dockerfile gives a default value (`ARG V=1`, not `ARG V`)."""
    text = (record or {}).get("dockerfile_text")
    if not text:
        return set()
    return {name for ins in _parsed(text).instructions if ins.keyword == "ARG"
            for name, value in ins.assignments if value is not None}


class _Explainer:
    def __init__(self, cur: dict, prev: dict | None, held: dict[str, str] | None = None,
                 snapshots: tuple[Any, Any] | None = None) -> None:
        # the graph must be built from steps in Dockerfile order, whatever order they came in
        cur = dict(cur, steps=_dockerfile_order(cur.get("steps") or []))
        self.cur = cur
        self.prev = prev
        self.steps = cur.get("steps") or []
        self.by_digest = {s["digest"]: s for s in self.steps}
        self.by_id = {s["id"]: s for s in self.steps}
        self.matches = match_steps(self.steps, prev.get("steps") or [], cur.get("dockerfile_text"),
                                   prev.get("dockerfile_text")) if prev else {}
        # previous stage name -> its current name, for the stages that were renamed
        pairs = match_stages(self.steps, prev.get("steps") or []) if prev else {}
        self.renamed = {p.lower(): c for c, p in pairs.items() if c != p}
        self.renamed.update(_renumbered(pairs, cur.get("dockerfile_text"), (prev or {}).get("dockerfile_text")))
        self.prev_by_digest = {x["digest"]: x for x in (prev or {}).get("steps") or []}
        # nearest steps per digest, asked for up to three times per rebuilt step
        self._near_now: dict[str, list[dict]] = {}
        self._near_before: dict[str, list[dict]] = {}
        self._dags: dict[bool, Any] = {}  # the DAG of each build's steps (before: True), made when first walked
        self._changed_paths: dict[str, list[str]] = {}  # build context -> paths changed anywhere in it
        self._changed_index: dict[str, tuple[set[str], set[str]]] = {}
        self._named_pairs: dict[str, tuple[Any, Any] | None] = {}
        self._materials_now = dict((u, d) for u, d in cur.get("materials") or [])
        self._materials_before = dict((u, d) for u, d in (prev or {}).get("materials") or [])
        self.notes: list[Note] = []
        #: vertex digest -> the evidence that the step's previous result is still cached
        #: (the builder's DiskUsage: analyzer/buildkit/usage.py)
        self.held = held or {}
        self.args = _declared_args(cur) | set(cur.get("build_args") or {})
        if prev:
            self.args |= _declared_args(prev) | set(prev.get("build_args") or {})
        # Values are hashed with a key of the record's store (record.store_key). A
        # record from another store (imported with the cache on a fresh CI runner)
        # has other hashes for the same values: those values cannot be compared.
        cur_key, prev_key = cur.get("hash_key_id"), (prev or {}).get("hash_key_id")
        self.foreign_key = bool(cur_key and prev_key and cur_key != prev_key)
        self.uncompared: dict[str, list[str]] = {}  # step id -> build args whose values were not compared
        if self.foreign_key:
            self.notes.append(Note(N.HASH_KEY, N.COMPARISON,
                                   "the previous record was made with another store's hash key, so build-arg "
                                   "and ENV values were not compared (give both builds the same "
                                   "CACHEWHY_HASH_KEY: docs/baseline.md)"))
        #: (previous, current) short commits when both snapshots were read from git (analyzer/vcs.py)
        self.git_revisions: tuple[str, str] | None = None
        # (previous, current) Snapshot objects a caller already holds (a prediction): not parsed again
        self._snapshots = snapshots if snapshots is not None else self._load_snapshots()

    def _load_snapshots(self) -> tuple[Any, Any] | None:
        if not self.prev or not self.cur.get("snapshot") or not self.prev.get("snapshot"):
            return None
        from analyzer.snapshot import Snapshot  # noqa: PLC0415

        prev_git, cur_git = self.prev["snapshot"].get("git"), self.cur["snapshot"].get("git")
        if bool(prev_git) != bool(cur_git):  # git blob ids and sha256 sums cannot be compared
            self.notes.append(Note(N.SNAPSHOT, N.COMPARISON, "one build's context files were read from git, "
                                   "the other's from disk: they were not compared"))
            return None
        if cur_git and prev_git:
            self.git_revisions = (str(prev_git.get("revision"))[:7], str(cur_git.get("revision"))[:7])
        try:
            return Snapshot.from_json(self.prev["snapshot"]), Snapshot.from_json(self.cur["snapshot"])
        except (ValueError, KeyError, TypeError):
            self.notes.append(Note(N.SNAPSHOT, N.COMPARISON,
                                   "a context snapshot could not be read; changed files are not named"))
            return None

    # -- causes of one step, on its own -----------------------------------------
    def own_causes(self, s: dict, p: dict | None) -> list[Cause]:
        """What changed in this step itself: its text, op, images, files."""
        inv = self.cur.get("invocation") or {}
        if inv.get("no_cache"):
            return [Cause("no-cache-requested", "--no-cache: every step is built afresh")]
        if s.get("stage") and s["stage"] in (inv.get("no_cache_filter") or []):
            return [Cause("no-cache-requested", f"--no-cache-filter {s['stage']}: this stage is built afresh")]
        if self.prev is None:
            return [Cause("no-previous-build", "no earlier build of this context, Dockerfile and target to compare with")]
        if p is None:
            return [Cause("instruction-changed", f"new instruction: {_norm(s.get('instruction'))}")]
        causes: list[Cause] = []
        old_text, new_text = _source_text(self.prev, p), _source_text(self.cur, s)
        if old_text != new_text and self.renamed:  # `COPY --from=builder` of a stage now called `build`
            old_text = _STAGE_REF.sub(lambda m: m.group(1) + self.renamed.get(m.group(2).lower(), m.group(2)),
                                      old_text)
        if old_text != new_text:
            causes.append(Cause("instruction-changed", _text_change(_source_lines(self.prev, p)[0],
                                                                    _source_lines(self.cur, s)[0], s.get("line"))))
        if s.get("op") and p.get("op"):
            causes += self._op_causes(s, p, text_changed=bool(causes))
        elif not causes:  # no LLB ops to compare (a failed build has no provenance): read the Dockerfiles
            causes += self._metadata_text_causes(s, p)
        causes += self._image_causes(s, p)
        causes += self._remote_causes(s)
        causes += self._context_causes(s)
        if not causes:
            causes += self._parent_causes(s, p)
        return causes

    def _metadata_text_causes(self, s: dict, p: dict) -> list[Cause]:
        """ARG, ENV, USER, WORKDIR and SHELL lines before the step in its stage,
        compared as written: they make no step of their own, but change the next RUN."""
        before = _stage_metadata(self.prev, p)
        now = _stage_metadata(self.cur, s)
        if before is None or now is None or before == now:
            return []
        out = []
        for keyword in ("ARG", "ENV", "USER", "WORKDIR", "SHELL"):
            old = [t for k, t in before if k == keyword]
            new = [t for k, t in now if k == keyword]
            if old == new:
                continue
            if keyword == "ARG":
                out.append(Cause("build-arg-changed", "an ARG before it changed in the Dockerfile (values redacted)"))
            elif keyword == "ENV":
                out.append(Cause("env-changed", "an ENV before it changed in the Dockerfile (values redacted)"))
            else:
                out.append(Cause("instruction-changed", f"{'; '.join(old) or '(none)'} \u2192 {'; '.join(new) or '(none)'}"))
        return out

    def nearest(self, digest: str, before: bool = False) -> list[dict]:
        """The nearest Dockerfile steps of a vertex of this build (of the previous one:
        before=True), walked on the build's DAG (graph.nearest_steps)."""
        from analyzer.graph import inputs_dag, nearest_steps  # noqa: PLC0415

        memo = self._near_before if before else self._near_now
        got = memo.get(digest)
        if got is None:
            steps = self.prev_by_digest if before else self.by_digest
            dag = self._dags.get(before)
            if dag is None:
                dag = self._dags[before] = inputs_dag((d, s.get("inputs") or []) for d, s in steps.items())
            got = memo[digest] = [steps[d] for d in nearest_steps(dag, digest, lambda d: _is_step(steps[d]))]
        return got

    def _parent_causes(self, s: dict, p: dict) -> list[Cause]:
        """The step is the same, but what it is built on is not: an instruction
        before it was removed, added or moved."""
        prev_by_digest = self.prev_by_digest
        if p["digest"] not in prev_by_digest:
            return []
        new = self.nearest(s["digest"])
        old = self.nearest(p["digest"], before=True)
        now = {self.matches[n["id"]]["id"] if n["id"] in self.matches else "new:" + n["id"] for n in new}
        if now == {n["id"] for n in old}:
            return []
        fmt = lambda steps: ", ".join(f"line {x.get('line')} {_clip(_norm(x.get('instruction')), 40)}" for x in steps) or "the stage's base"  # noqa: E731
        return [Cause("instruction-changed", f"the steps before it changed: it was built on {fmt(old)}, "
                                             f"now on {fmt(new)}")]

    def _op_causes(self, s: dict, p: dict, text_changed: bool) -> list[Cause]:
        out: list[Cause] = []
        sp = (s["op"].get("platform") or {})
        pp = (p["op"].get("platform") or {})
        if sp and pp and sp != pp:
            fmt = lambda x: "/".join(str(x.get(k)) for k in ("OS", "Architecture", "Variant") if x.get(k))  # noqa: E731
            out.append(Cause("platform-changed", f"{fmt(pp)} \u2192 {fmt(sp)}"))
        cur_env, prev_env = _env_map(s), _env_map(p)
        for name in sorted(set(cur_env) | set(prev_env)):
            old, new = prev_env.get(name, "(unset)"), cur_env.get(name, "(unset)")
            if old == new:
                continue
            if self.foreign_key and name in prev_env and name in cur_env:  # hashed with other keys
                if name in self.args:
                    self.uncompared.setdefault(s["id"], []).append(name)
                continue
            kind = "build-arg-changed" if name in self.args else "env-changed"
            out.append(Cause(kind, f"{name} changed (value redacted): {old} \u2192 {new}"))
        if not text_changed and _without_env(s["op"]) != _without_env(p["op"]) and not out:
            out += self.variable_causes(s.get("instruction") or "")
            if not out:
                fields = self._op_fields_changed(s["op"], p["op"])
                out.append(Cause("instruction-changed", f"the step's definition changed ({fields}) "
                                                        f"although its Dockerfile text did not"))
        return out

    def variable_causes(self, text: str) -> list[Cause]:
        """Build args and ENV values that an instruction's text refers to and that changed."""
        out = []
        cur_args = self.cur.get("build_args") or {}
        prev_args = (self.prev or {}).get("build_args") or {}
        cur_defs, prev_defs = _definitions(self.cur), _definitions(self.prev)
        for name in sorted(set(_VAR_REF.findall(text))):
            hashed_apart = self.foreign_key and cur_args.get(name) and prev_args.get(name)
            if cur_args.get(name) != prev_args.get(name) and not hashed_apart:
                def shown(args: dict, record: dict | None) -> str:
                    # not given: the ARG's default in that build's Dockerfile, if it has one
                    given = args.get(name)
                    if given:
                        return str(given)
                    return "(Dockerfile default)" if name in _arg_defaults(record) else "(unset)"
                out.append(Cause("build-arg-changed", f"{name} changed (value redacted): "
                                                      f"{shown(prev_args, self.prev)} \u2192 {shown(cur_args, self.cur)}"))
            elif cur_defs.get(name) != prev_defs.get(name):
                kinds = {k for k, _ in cur_defs.get(name, []) + prev_defs.get(name, [])}
                kind = "env-changed" if kinds == {"ENV"} else "build-arg-changed"
                out.append(Cause(kind, f"{name} changed in the Dockerfile (value redacted): "
                                       f"{_value_hash(prev_defs.get(name))} \u2192 {_value_hash(cur_defs.get(name))}"))
        return out

    @staticmethod
    def _op_fields_changed(a: dict, b: dict) -> str:
        ea = ((a.get("Op") or {}).get("exec") or {})
        eb = ((b.get("Op") or {}).get("exec") or {})
        names = []
        if ea or eb:
            ma, mb = ea.get("meta") or {}, eb.get("meta") or {}
            for key, label in (("user", "USER"), ("cwd", "WORKDIR"), ("args", "command")):
                if ma.get(key) != mb.get(key):
                    names.append(f"{label} {mb.get(key)!r} \u2192 {ma.get(key)!r}")
            if ea.get("mounts") != eb.get("mounts"):
                names.append("mounts")
            if ea.get("network") != eb.get("network"):
                names.append("network")
        return ", ".join(names) or "file operation"

    def _image_causes(self, s: dict, p: dict) -> list[Cause]:
        cur_imgs = sorted(set(s.get("image_inputs") or []))
        prev_imgs = sorted(set(p.get("image_inputs") or []))
        if cur_imgs == prev_imgs:
            return self._unpinned_image_causes(cur_imgs)
        out = []
        prev_by_repo = dict(_image_repo(i) for i in prev_imgs)
        unpaired_old = [i for i in prev_imgs if i not in cur_imgs]
        for ident in cur_imgs:
            if ident in prev_imgs:
                continue
            repo, digest = _image_repo(ident)
            old = prev_by_repo.get(repo)
            if old is not None:
                out.append(Cause("base-image-changed", f"{repo}: {_short_digest(old)} \u2192 {_short_digest(digest)}"))
            elif len(unpaired_old) == 1 and len(cur_imgs) == len(prev_imgs):
                o_repo, o_digest = _image_repo(unpaired_old[0])
                out += self.variable_causes(self._from_text(s))
                out.append(Cause("base-image-changed", f"{o_repo}@{_short_digest(o_digest)} \u2192 "
                                                       f"{repo}@{_short_digest(digest)}"))
        return out

    def _unpinned_image_causes(self, images: list[str]) -> list[Cause]:
        """Images the op names without a digest (`--build-context NAME=docker-image://REF`:
        BuildKit resolves it at build time): the digests provenance lists for them."""
        out = []
        for ident in images:
            if "@" in ident:
                continue
            old = _material_digest(ident, self._materials_before)
            new = _material_digest(ident, self._materials_now)
            if old and new and old != new:
                repo = ident.removeprefix("docker-image://")
                via = _named_context_of(self.cur, ident)
                where = f" (--build-context {via})" if via else ""
                out.append(Cause("base-image-changed", f"{repo}{where}: {_short_digest(old)} \u2192 "
                                                       f"{_short_digest(new)}"))
        return out

    def _from_text(self, s: dict) -> str:
        """The FROM line (and COPY --from) text of the step's stage, for the variables in it."""
        text = self.cur.get("dockerfile_text")
        if not text or not s.get("stage"):
            return s.get("instruction") or ""
        stage = _parsed(text).stage_by_name(s["stage"])
        from_text = stage.instructions[0].text if stage is not None and stage.instructions else ""
        return from_text + " " + (s.get("instruction") or "")

    def _remote_causes(self, s: dict) -> list[Cause]:
        """`ADD <url>` / git sources: provenance lists what each resolved to."""
        out = []
        now, before = self._materials_now, self._materials_before
        for ident in s.get("remote_inputs") or []:
            uri = ident
            old, new = before.get(uri), now.get(uri)
            if old and new and old != new:
                out.append(Cause("remote-changed", f"{uri}: {_short_digest(old)} \u2192 {_short_digest(new)}"))
        return out

    def _snapshot_pair(self, source: str) -> tuple[Any, Any] | None:
        """(previous, current) snapshots of one build context: `context`, the main one,
        or a named one (`--build-context NAME=DIR`); None when one build has none."""
        if source == "context":
            return self._snapshots
        if source not in self._named_pairs:
            old = ((self.prev or {}).get("named_snapshots") or {}).get(source)
            new = (self.cur.get("named_snapshots") or {}).get(source)
            pair = None
            if isinstance(old, dict) and isinstance(new, dict):
                from analyzer.snapshot import Snapshot  # noqa: PLC0415

                try:
                    pair = Snapshot.from_json(old), Snapshot.from_json(new)
                except (ValueError, KeyError, TypeError):
                    self.notes.append(Note(N.SNAPSHOT, N.COMPARISON,
                                           f"a snapshot of the build context {source} could not be read; "
                                           "its changed files are not named"))
            self._named_pairs[source] = pair
        return self._named_pairs[source]

    def _context_causes(self, s: dict) -> list[Cause]:
        """The files the step reads from the main context and from named contexts
        that changed; those of a named context are named `NAME:path`."""
        by_source: dict[str, list[dict]] = {}
        for c in s.get("context_inputs") or []:
            by_source.setdefault(str(c.get("source")), []).append(c)
        from analyzer.snapshot import diff  # noqa: PLC0415

        added: set[str] = set()
        modified: set[str] = set()
        removed: set[str] = set()
        modes: dict[str, tuple[int, int]] = {}
        for source, inputs in sorted(by_source.items(), key=lambda kv: kv[0] != "context"):
            pair = self._snapshot_pair(source)
            if pair is None:
                continue
            old, new = pair
            if source not in self._changed_paths:  # one whole-context diff; per step only where it matters
                whole = diff(old, new)
                self._changed_paths[source] = [x.rstrip("/") for x in (*whole.added, *whole.modified, *whole.removed)]
            name = (lambda p: p) if source == "context" else (lambda p, src=source: f"{src}:{p}")
            for c in inputs:
                path = str(c.get("path") or "/").strip("/") or "."
                if not self._may_have_changed(source, path):
                    continue
                ch = diff(old, new, under=[path], include=c.get("include") or None,
                          exclude=c.get("exclude") or None)
                added |= {name(x) for x in ch.added}
                modified |= {name(x) for x in ch.modified}
                removed |= {name(x) for x in ch.removed}
                modes.update({name(x): m for x, m in ch.mode_changes.items()})
        if not (added or modified or removed):
            return []
        files = {"added": sorted(added), "modified": sorted(modified), "removed": sorted(removed)}
        parts = []
        for label, names in (("modified", files["modified"]), ("added", files["added"]), ("removed", files["removed"])):
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                parts.append(f"{shown} {label}")
        if modes:
            parts.append("; ".join(f"mode of {path} {old:o} \u2192 {new:o}" for path, (old, new) in sorted(modes.items())[:3]))
        if self.git_revisions and "context" in by_source:
            parts.append("from git, {} \u2192 {} (committed changes only)".format(*self.git_revisions))
        return [Cause("context-changed", "; ".join(parts), files)]

    def _may_have_changed(self, source: str, path: str) -> bool:
        """Could anything under this source path have changed? (Wildcards: assume so.)"""
        changed = self._changed_paths.get(source)
        if not changed:
            return False
        if path == "." or any(ch in path for ch in "*?["):
            return True
        if source not in self._changed_index:
            # every changed path and each folder above it: one set lookup per step
            exact = set(changed)
            above: set[str] = set()
            for c in exact:
                cut = c.rfind("/")
                while cut > 0:
                    above.add(c[:cut])
                    cut = c.rfind("/", 0, cut)
            self._changed_index[source] = (exact, above)
        exact, above = self._changed_index[source]
        if path in exact or path in above:
            return True
        cut = path.rfind("/")
        while cut > 0:  # the source sits inside something that changed (a folder replaced)
            if path[:cut] in exact:
                return True
            cut = path.rfind("/", 0, cut)
        return False

    # -- when nothing in the step changed ---------------------------------------
    def unchanged_cause(self, s: dict, p: dict | None) -> Cause:
        inv = self.cur.get("invocation") or {}
        both_ops = bool(s.get("op") and p and p.get("op"))
        compared = ["instruction text"]
        not_compared: list[str] = []
        if both_ops:
            compared.append("LLB op (args, env, mounts)")
            if s.get("image_inputs"):
                compared.append("base image digests")
        else:
            which = ("either build" if not s.get("op") and not (p and p.get("op"))
                     else "this build" if not s.get("op") else "the previous build")
            not_compared.append(f"its LLB op, base images and context files (no provenance for {which})")
        local = [c for c in s.get("context_inputs") or [] if c.get("source") == "context"]
        named = sorted({str(c.get("source")) for c in s.get("context_inputs") or [] if c.get("source") != "context"})
        paths = sorted({str(c.get("path") or "/").strip("/") or "." for c in local})
        files_unseen = False  # the context files it reads are all that was not compared
        if local and self._snapshots and self.git_revisions:
            compared.append("context files at git revisions {} and {}".format(*self.git_revisions))
            not_compared.append("uncommitted changes to the context files it reads (buildx records only the commit)")
            files_unseen = True
        elif local and self._snapshots:
            compared.append("context files")
        elif local:
            not_compared.append(f"the context files it reads ({', '.join(paths)}): no context snapshot of both builds")
            files_unseen = True
        snapped = [n for n in named if self._snapshot_pair(n) is not None]
        if snapped:
            compared.append(f"files of the build context{'s' if len(snapped) > 1 else ''} {', '.join(snapped)}")
        named = [n for n in named if n not in snapped]
        if named:
            not_compared.append(f"files of the build context{'s' if len(named) > 1 else ''} {', '.join(named)}")
        if p is not None and p.get("status") not in BUILT:
            return Cause("no-previous-build",
                         f"the previous build did not build this step (it was {p.get('status')})")
        import_warnings = [m for m in self.cur.get("messages") or [] if "cache" in m.lower() and "import" in m.lower()]
        if inv.get("cache_from"):
            detail = ("the step and its inputs are identical to the previous build, but the cache imported with "
                      f"--cache-from {', '.join(inv['cache_from'])} did not hold it")
            if import_warnings:
                detail += f" ({import_warnings[0]})"
            return Cause("cache-import-missing", detail)
        if files_unseen and both_ops and len(not_compared) == 1 and s.get("digest") in self.held:
            return self._context_by_elimination(s, paths, compared)
        if not_compared:
            return Cause("unknown", f"no difference found in the {', '.join(compared)}; "
                                    f"not compared: {'; '.join(not_compared)}")
        when = "was cached" if p is not None and p.get("status") == "cached" else "was built"
        return Cause("cache-evicted", f"the step and its inputs are identical to the previous build, where it {when}; "
                                      "its cache entry is gone (pruned or garbage-collected)")

    def _context_by_elimination(self, s: dict, paths: list[str], compared: list[str]) -> Cause:
        """The step's op and inputs are those of the previous build and its previous
        result is still cached (self.held): only the content it reads can differ."""
        what = "uncommitted changes in " if self.git_revisions else ""
        return Cause("context-changed",
                     f"{what}{', '.join(paths)} changed, by elimination: same {', '.join(compared)} and build "
                     f"args, and {self.held[s['digest']]}, so only the files' content can differ; to name "
                     f"the files, build with `cachewhy build`{'' if self.git_revisions else ' or give --repo'}")

    def _uncompared_cause(self, s: dict) -> Cause | None:
        """Nothing else changed, but build args the step reads were hashed with another key."""
        names = sorted(set(self.uncompared.get(s["id"]) or []))
        if not names:
            return None
        return Cause("unknown", f"no difference found, but the value{'s' if len(names) > 1 else ''} of "
                                f"{', '.join(names)} could not be compared: the previous record was made with "
                                "another store's hash key (CACHEWHY_HASH_KEY)")

    # -- the whole build --------------------------------------------------------
    def run(self) -> Analysis:
        rebuilt = {s["digest"] for s in self.steps if _is_step(s) and s.get("status") in MISSED}
        nearest = {d: self.nearest(d) for d in rebuilt}
        misses: dict[str, Miss] = {}
        for s in self.steps:
            if s["digest"] not in rebuilt:
                continue
            p = self.matches.get(s["id"])
            near_rebuilt = [n for n in nearest[s["digest"]] if n["digest"] in rebuilt]
            own = self.own_causes(s, p)
            if not near_rebuilt:
                cause = own[0] if own else (self._uncompared_cause(s) or self.unchanged_cause(s, p))
                misses[s["id"]] = Miss(s, True, cause, also=own[1:])
            else:
                misses[s["id"]] = Miss(s, False, Cause("unknown", ""),
                                       also=[c for c in own if c.kind not in ("no-previous-build",)])
        # cascades: the roots each rebuilt step follows from
        roots_of: dict[str, list[str]] = {}

        def rebuilt_near(digest: str) -> list[str]:
            return [n["digest"] for n in nearest[digest] if n["digest"] in rebuilt]

        def find_roots(start: str) -> list[str]:
            """The roots a rebuilt step follows from, walked without recursion (a chain
            of thousands of steps in any order); a step on the current path is not
            walked again (a cycle in a record from elsewhere, a self-loop)."""
            if misses[self.by_digest[start]["id"]].root:
                return [self.by_digest[start]["id"]]
            path = {start}
            stack: list[tuple[str, Any, list[str]]] = [(start, iter(rebuilt_near(start)), [])]

            def merge(into: list[str], found: list[str]) -> None:
                for r in found:
                    if r not in into:
                        into.append(r)
            while stack:
                digest, todo, out = stack[-1]
                for nd in todo:
                    if nd in path:
                        continue
                    sid = self.by_digest[nd]["id"]
                    if misses[sid].root:
                        merge(out, [sid])
                    elif nd in roots_of:
                        merge(out, roots_of[nd])
                    else:
                        path.add(nd)
                        stack.append((nd, iter(rebuilt_near(nd)), []))
                        break
                else:
                    stack.pop()
                    path.discard(digest)
                    roots_of[digest] = out
                    if stack:
                        merge(stack[-1][2], out)
            return roots_of[start]

        for s in self.steps:
            m = misses.get(s["id"])
            if m is None or m.root:
                continue
            m.caused_by = find_roots(s["digest"])
            if not m.caused_by:  # it follows from no root (a cycle in the record): it is one
                p = self.matches.get(s["id"])
                own = self.own_causes(s, p)
                m.root = True
                m.cause = own[0] if own else (self._uncompared_cause(s) or self.unchanged_cause(s, p))
                m.also = own[1:]
                continue
            near_rebuilt = [n for n in nearest[s["digest"]] if n["digest"] in rebuilt]
            first_root = misses[m.caused_by[0]] if m.caused_by else None
            if near_rebuilt and all(n.get("stage") != s.get("stage") for n in near_rebuilt):
                up = near_rebuilt[0]
                root_txt = (f"; root: line {first_root.step.get('line')} ({first_root.cause.kind})"
                            if first_root else "")
                m.cause = Cause("stage-changed", f"stage {up.get('stage')} rebuilt line {up.get('line')} "
                                                 f"({_norm(up.get('instruction'))[:60]}){root_txt}",
                                root_id=first_root.step["id"] if first_root else None)
            elif first_root is not None:
                m.cause = Cause(first_root.cause.kind,
                                f"follows from line {first_root.step.get('line')}: {first_root.cause.detail}",
                                root_id=first_root.step["id"])
        # time: each root's own duration plus its share of the cascade
        for m in misses.values():
            if m.root:
                m.time_lost_s += m.step.get("duration_s") or 0.0
            elif m.caused_by:
                share = (m.step.get("duration_s") or 0.0) / len(m.caused_by)
                for r in m.caused_by:
                    misses[r].time_lost_s += share
                    misses[r].followers.append(m.step["id"])
            m.time_lost_s = m.time_lost_s
        ordered = sorted((m for m in misses.values() if m.root), key=lambda m: (-m.time_lost_s, m.step.get("line") or 0))
        ordered += sorted((m for m in misses.values() if not m.root), key=lambda m: m.step.get("line") or 0)
        for m in ordered:
            m.time_lost_s = round(m.time_lost_s, 3) if m.root else round(m.step.get("duration_s") or 0.0, 3)
        return Analysis(self.cur, self.prev, ordered, self.notes)


@paused
def explain(current: Record | dict, previous: Record | dict | None, held: dict[str, str] | None = None) -> Analysis:
    """held: vertex digest -> evidence that the step's previous result is still in
    the builder's cache, for steps whose cache entry cannot have been evicted."""
    # the explainer reads records as the JSON they are (steps matched by their keys)
    return _Explainer(cast(dict, current), cast("dict | None", previous), held).run()
