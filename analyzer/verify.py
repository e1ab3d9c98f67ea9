"""`cachewhy advise --verify`: does the advice hold on the real engine?

For one root miss and one rule: copy the context twice (original and advised
Dockerfile), build each cold, replay the edit that caused the miss, build
again, and compare what the engine rebuilt. The context files' old contents
are not stored (records keep hashes only), so the edit is replayed as a
content change of the same files: a line of whitespace unique to this run and variant
is appended to each modified file, added files are absent in the first build,
removed ones present (with synthetic content). A build-arg change is replayed
with two synthetic values. Nothing else is changed, nothing is pruned: the
first build runs with `--no-cache` (cold, yet it fills the cache for the
second), and the unique edit keeps the second from hitting any older entry.
"""

from __future__ import annotations

import difflib
import re
import shutil
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, cast

from analyzer.model import Record, Report, ReportMiss
from analyzer.report.rows import fmt_time

# cache-mount makes the rebuilt steps faster, not cached: verified by time, with a margin for noise
_FASTER = 0.7  # the mounted step takes at most 70% of the original's time …
_FASTER_BY_S = 1.0  # … and at least this much less


@dataclass
class Measure:
    """One build of a variant, as the engine reported it."""

    exit_code: int
    rebuilt: int  # Dockerfile steps the engine ran
    cached: int  # Dockerfile steps the engine took from its cache
    rebuilt_s: float  # their own time
    wall_s: float  # the whole `docker buildx build`
    log: str | None  # the rawjson stream, kept beside the copy (None once the temporary folder is gone)
    error: str | None = None
    stale_installs: int = 0  # rebuilt apt installs whose separate `apt-get update` stayed cached
    steps: dict[int, list] = field(default_factory=dict)  # Dockerfile line -> [status, own time]


@dataclass
class Variant:
    cold: Measure | None = None
    warm: Measure | None = None  # after the replayed edit: what the comparison is about


@dataclass
class Result:
    context: str | None
    dockerfile: str | None
    line: int | None
    instruction: str
    kind: str
    rule: str
    message: str
    verified: bool
    verdict: str
    replay: str = ""
    change: str = ""  # unified diff of the Dockerfile (and .dockerignore)
    original: Variant = field(default_factory=Variant)
    advised: Variant = field(default_factory=Variant)

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- the edit

def _mark(nonce: str) -> str:
    """A trailing line of spaces and tabs spelling `nonce` in bits: a real content change
    that almost every file format (source, JSON, YAML, requirements) takes as blank."""
    bits = bin(int(nonce[:8], 16))[2:].zfill(32)
    return "\n" + "".join(" \t"[int(b)] for b in bits) + "\n"


@dataclass
class Replay:
    """The edit that caused a miss, as it is redone in a copy."""

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    build_arg: str | None = None

    def describe(self) -> str:
        if self.build_arg:
            return f"build arg {self.build_arg} changed (two synthetic values)"
        parts = [f"{', '.join(fs[:3])}{f' and {len(fs) - 3} more' if len(fs) > 3 else ''} {what}"
                 for fs, what in ((self.modified, "modified"), (self.added, "added"), (self.removed, "removed")) if fs]
        return "; ".join(parts) + " (a content change unique to this run)"

    def before(self, ctx: Path, nonce: str) -> None:
        """The copy as it was before the edit."""
        for rel in self.added:
            p = ctx / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
        for rel in [*self.removed, *self.modified]:
            p = ctx / rel.rstrip("/")
            if rel.endswith("/"):
                p.mkdir(parents=True, exist_ok=True)
            elif not p.exists():  # gone from the context since, or removed by the edit itself
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(f"cachewhy verify {nonce}\n")

    def after(self, ctx: Path, original: Path, nonce: str) -> None:
        """The edit, redone: the files' real content is not stored, so each gets a unique change."""
        for rel in self.removed:
            p = ctx / rel.rstrip("/")
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
        for rel in self.added:
            src, p = original / rel.rstrip("/"), ctx / rel.rstrip("/")
            if rel.endswith("/") or src.is_dir():
                p.mkdir(parents=True, exist_ok=True)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            if src.is_file():
                shutil.copy2(src, p)
            with open(p, "a", encoding="utf-8") as f:
                f.write(_mark(nonce))
        for rel in self.modified:
            p = ctx / rel
            if p.is_file():
                with open(p, "a", encoding="utf-8") as f:
                    f.write(_mark(nonce))

    def build_args(self, nonce: str, phase: str) -> list[str]:
        return ["--build-arg", f"{self.build_arg}=cachewhy-verify-{nonce}-{phase}"] if self.build_arg else []


def replay_of(miss: dict) -> Replay | str:
    """How to redo the edit behind a root miss, or why it cannot be redone."""
    cause = miss.get("cause") or {}
    kind = cause.get("kind")
    if kind == "context-changed":
        files = cause.get("files") or {}
        r = Replay(added=list(files.get("added") or []), modified=list(files.get("modified") or []),
                   removed=list(files.get("removed") or []))
        if not (r.added or r.modified or r.removed):
            return "the record names no changed file to replay"
        if any(p.startswith("/") or ".." in p.split("/") for p in [*r.added, *r.modified, *r.removed]):
            return "a changed path is outside the context"
        return r
    if kind == "build-arg-changed":
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*) changed", cause.get("detail") or "")
        return Replay(build_arg=m.group(1)) if m else "the record does not name the build arg"
    return f"a {kind} miss cannot be replayed (only changed context files and build args are)"


# ---------------------------------------------------------------- building

def _stale_installs(graph, df) -> int:  # type: ignore[no-untyped-def]
    """Rebuilt `apt-get install` steps run on package lists that a separate, cached update made."""
    from analyzer.advice import APT_INSTALL, APT_UPDATE, apt_update_before  # noqa: PLC0415
    from analyzer.graph import Status  # noqa: PLC0415

    status = {s.line: s.status for s in graph.steps.values() if s.is_step and s.line}
    n = 0
    for line, st in status.items():
        ins = df.instruction_at(line)
        if st is not Status.REBUILT or ins is None or ins.keyword != "RUN":
            continue
        if not re.search(APT_INSTALL, ins.text) or re.search(APT_UPDATE, ins.text):
            continue
        upd = apt_update_before(df, ins)
        if upd is not None and status.get(upd.line) is Status.CACHED:
            n += 1
    return n


def build(ctx: Path, dockerfile: Path, argv: list[str], out: Path) -> Measure:
    """One `docker buildx build` of the copy; its rawjson stream is kept in `out`.rawjson."""
    from analyzer import dockerfile as dfmod  # noqa: PLC0415
    from analyzer.buildx import BuildArgs, run_build  # noqa: PLC0415
    from analyzer.events import BuildEvents  # noqa: PLC0415
    from analyzer.graph import build_graph  # noqa: PLC0415
    from analyzer.provenance import load_metadata  # noqa: PLC0415

    work = out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    log_path = out.with_suffix(".rawjson")
    events = BuildEvents()
    has_output = any(a in ("-o", "--output") or a.startswith(("-o=", "--output=")) for a in argv)
    args = BuildArgs(argv=[*argv, *([] if has_output else ["--output=type=cacheonly"]),
                           "-f", str(dockerfile), str(ctx)])
    with open(log_path, "w", encoding="utf-8") as log:
        def on_line(line: str) -> None:
            log.write(line)
            events.feed_line(line)
        result = run_build(args, on_line, workdir=work)
    events.close()
    df = dfmod.parse(dockerfile.read_text(encoding="utf-8"))
    locations = None
    if result.metadata_path is not None:
        prov = load_metadata(result.metadata_path).primary()
        locations = prov.vertex_lines() if prov is not None else None
    graph = build_graph(events, df, locations)
    summary = graph.summary()
    return Measure(exit_code=result.returncode, rebuilt=summary.rebuilt, cached=summary.cached,
                   rebuilt_s=round(summary.rebuilt_time_s, 3), wall_s=round(result.ended - result.started, 3),
                   log=str(log_path), error=events.error_message() if result.returncode else None,
                   stale_installs=_stale_installs(graph, df),
                   steps={s.line: [s.status.value, round(s.duration_s or 0.0, 3)]
                          for s in graph.steps.values() if s.is_step and s.line})


# ---------------------------------------------------------------- one advice

def _diff(old: str, new: str, name: str) -> list[str]:
    return list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"{name} (original)",
                                     f"{name} (advised)", n=1, lineterm=""))


def _verdict(rule: str, before: Variant, after: Variant, lines: list[int]) -> tuple[bool, str]:
    b, a = before.warm, after.warm
    if before.cold is None or b is None or before.cold.exit_code or b.exit_code:
        failed = b if b is not None and b.exit_code else before.cold
        return False, f"not verified: the original Dockerfile did not build in the copy ({_why(failed)})"
    if after.cold is None or a is None or after.cold.exit_code or a.exit_code:
        failed = a if a is not None and a.exit_code else after.cold
        return False, f"not verified: the advised Dockerfile failed to build ({_why(failed)})"
    from analyzer.advice import BY_NAME  # noqa: PLC0415 - what a rule's verification compares

    verified_by = BY_NAME[rule].verified_by if rule in BY_NAME else "steps"
    if verified_by == "fresh-lists":
        if b.stale_installs and not a.stale_installs:
            return True, (f"verified: the install ran on fresh package lists ({a.rebuilt} step(s) rebuilt, "
                          f"the update with it), where the original reused a cached `apt-get update`")
        return False, "not verified: the original's install did not run on a cached update after this edit"
    if verified_by == "time":  # the mounted step keeps its line: compare its own time
        line = lines[0] if lines else None
        at = line or 0  # no step has line 0: nothing found, 0.0 s
        was, now = (b.steps.get(at) or [None, 0.0])[1], (a.steps.get(at) or [None, 0.0])[1]
        if now <= was * _FASTER and was - now >= _FASTER_BY_S:
            return True, f"verified: the install (line {line}) took {fmt_time(now)} instead of {fmt_time(was)}"
        return False, (f"not verified: after the same edit the install (line {line}) took {fmt_time(now)} with the "
                       f"mount and {fmt_time(was)} without; a cache mount pays off when the package manager "
                       f"downloads (build with the network it needs)")
    if a.rebuilt < b.rebuilt:
        less = b.rebuilt - a.rebuilt
        return True, (f"verified: the same edit rebuilt {a.rebuilt} step(s) instead of {b.rebuilt} "
                      f"({less} fewer, {fmt_time(max(0.0, b.rebuilt_s - a.rebuilt_s))} less step time)")
    return False, (f"not verified: the same edit rebuilt {a.rebuilt} step(s) with the advice and "
                   f"{b.rebuilt} without it")


def _why(m: Measure | None) -> str:
    if m is None:
        return "not built"
    return (m.error or f"exit {m.exit_code}").splitlines()[0][:200]


def verify_one(record: Record, miss_id: str, rule: str, workdir: Path, argv: list[str],
               say: Callable[[str], None]) -> Result:
    """Apply `rule`'s change for root miss `miss_id` of `record` in copies of its context and
    measure both Dockerfiles after the same edit."""
    from analyzer.advice import advise, rewrite  # noqa: PLC0415

    report: Report = record.get("report") or cast(Report, {})
    project = record.get("project") or {}
    context = (report.get("build") or {}).get("context") or project.get("context")
    dockerfile = (report.get("build") or {}).get("dockerfile") or project.get("dockerfile")
    text = record.get("dockerfile_text")
    miss: ReportMiss = next((m for m in report.get("misses") or [] if m.get("id") == miss_id), cast(ReportMiss, {}))
    found = [a for a in (miss.get("advice") or advise(report, text, context).get(miss_id) or []) if a["rule"] == rule]
    res = Result(context=context, dockerfile=dockerfile, line=miss.get("line"), instruction=miss.get("instruction") or "",
                 kind=(miss.get("cause") or {}).get("kind") or "unknown", rule=rule,
                 message=found[0]["message"] if found else "", verified=False, verdict="")

    def stop(why: str) -> Result:
        res.verdict = f"not verified: {why}"
        return res

    if not found:
        return stop(f"{rule} does not apply to this miss")
    src = Path(context) if context and "://" not in context and context != "-" else None
    if src is None or not src.is_dir():
        return stop(f"the context {context} is not a folder here")
    if not text:
        return stop("the record keeps no Dockerfile text")
    change = rewrite(report, miss_id, rule, text, str(src))
    if change is None:
        return stop(f"cachewhy cannot apply {rule}'s change to this Dockerfile itself")
    replay = replay_of(cast(dict, miss))
    if isinstance(replay, str):
        return stop(replay)
    res.replay = replay.describe()

    # the Dockerfile goes where it was: inside the context at the same path, or beside the copy
    rel = None
    if dockerfile and dockerfile != "-":
        try:
            rel = Path(dockerfile).relative_to(src)
        except ValueError:
            rel = None
    name = str(rel) if rel is not None else "Dockerfile"
    ignore_old = (src / ".dockerignore").read_text(encoding="utf-8", errors="replace") \
        if (src / ".dockerignore").is_file() else ""
    ignore_new = ignore_old + ("" if not ignore_old or ignore_old.endswith("\n") else "\n") + \
        "".join(p + "\n" for p in change["dockerignore"])
    diff = _diff(text, change["dockerfile"], name)
    if change["dockerignore"]:
        diff += _diff(ignore_old, ignore_new, ".dockerignore")
    res.change = "\n".join(diff)

    try:
        _build_both(res, src, rel, text, change["dockerfile"], ignore_old, ignore_new, replay, workdir, argv, say)
    except OSError as exc:  # the copy could not be made (permissions, disk full)
        return stop(f"cannot copy the context: {exc.strerror or exc}")
    res.verified, res.verdict = _verdict(rule, res.original, res.advised, found[0].get("lines") or [])
    return res


def _build_both(res: Result, src: Path, rel: Path | None, text: str, advised: str, ignore_old: str,
                ignore_new: str, replay: Replay, workdir: Path, argv: list[str],
                say: Callable[[str], None]) -> None:
    rule = res.rule
    for label, variant, df_text, ignore in (("original", res.original, text, ignore_old),
                                             ("advised", res.advised, advised, ignore_new)):
        # an edit of its own per variant: the advised build must not find what the original's built
        nonce = uuid.uuid4().hex[:8]
        home = workdir / label
        ctx = home / "ctx"
        shutil.copytree(src, ctx, symlinks=True)
        df_path = ctx / rel if rel is not None else home / "Dockerfile"
        df_path.write_text(df_text, encoding="utf-8")
        if ignore != ignore_old:
            (ctx / ".dockerignore").write_text(ignore, encoding="utf-8")
        replay.before(ctx, nonce)
        say(f"{rule}: building the {label} Dockerfile cold")
        variant.cold = build(ctx, df_path, ["--no-cache", *argv, *replay.build_args(nonce, "a")], home / "cold")
        if variant.cold.exit_code:
            break
        replay.after(ctx, src, nonce)
        say(f"{rule}: building the {label} Dockerfile again, after the replayed edit")
        variant.warm = build(ctx, df_path, [*argv, *replay.build_args(nonce, "b")], home / "warm")
        if variant.warm.exit_code:
            break


# ---------------------------------------------------------------- over the store

def _say(msg: str) -> None:
    sys.stderr.write(f"cachewhy: {msg}\n")


def verify(groups: list[dict], records: dict[str, Record], argv: list[str], *, rules: set[str] | None = None,
           keep: Path | None = None, say: Callable[[str], None] | None = None) -> list[Result]:
    """Verify the advice of each group (from advice.recurring) that cachewhy can apply itself;
    the other advice is listed as not verified, with the reason."""
    from analyzer.advice import REWRITABLE  # noqa: PLC0415

    tell: Callable[[str], None] = say if say is not None else _say
    root = keep if keep is not None else Path(tempfile.mkdtemp(prefix="cachewhy-verify-"))
    out: list[Result] = []
    try:
        for g in groups:
            latest = g.get("latest") or {}
            for a in g.get("advice") or []:
                if rules and a["rule"] not in rules:
                    continue
                base = Result(context=g.get("context"), dockerfile=g.get("dockerfile"), line=g.get("line"),
                              instruction=g.get("instruction") or "", kind=g.get("kind") or "unknown",
                              rule=a["rule"], message=a.get("message") or "", verified=False, verdict="")
                record = records.get(latest.get("build") or "")
                if a["rule"] not in REWRITABLE or not latest.get("miss"):
                    base.verdict = "not verified: cachewhy does not apply this change itself"
                    out.append(base)
                    continue
                if record is None:
                    base.verdict = "not verified: the build record is gone"
                    out.append(base)
                    continue
                work = root / f"{len(out) + 1}-{a['rule']}"
                work.mkdir(parents=True, exist_ok=True)
                out.append(verify_one(record, latest["miss"], a["rule"], work, argv, tell))
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
            for r in out:
                for m in (r.original.cold, r.original.warm, r.advised.cold, r.advised.warm):
                    if m is not None:
                        m.log = None
    return out


def render(results: list[Result]) -> str:
    """The results side by side, as the terminal shows them."""
    if not results:
        return "No advice to verify.\n"
    out = []
    for r in results:
        name = (r.dockerfile or "Dockerfile").rsplit("/", 1)[-1] or "Dockerfile"
        instr = " ".join(r.instruction.split())
        out.append(f"{r.context or '-'}  {name}:{r.line}  {instr[:60]}")
        out.append(f"    {r.kind} · advice [{r.rule}]: {' '.join(r.message.replace('`', '').split())}")
        if r.change:
            out.append("    change:")
            out.extend(f"      {line}" for line in r.change.splitlines())
        if r.replay:
            out.append(f"    replayed edit: {r.replay}")
        rows = [(label, v) for label, v in (("original", r.original), ("advised", r.advised)) if v.cold]
        if rows:
            out.append(f"    {'':10}{'cold build':>12}{'after the edit: rebuilt':>26}{'cached':>8}"
                       f"{'step time':>11}{'build':>8}")
            for label, v in rows:
                cold = fmt_time(v.cold.wall_s) if v.cold and not v.cold.exit_code else "failed"
                if v.warm is None or v.warm.exit_code:
                    out.append(f"    {label:<10}{cold:>12}{'failed' if v.warm else '-':>26}")
                    continue
                w = v.warm
                out.append(f"    {label:<10}{cold:>12}{w.rebuilt:>26}{w.cached:>8}{fmt_time(w.rebuilt_s):>11}"
                           f"{fmt_time(w.wall_s):>8}")
        out.append(f"    {r.verdict}")
        out.append("")
    return "\n".join(out)
