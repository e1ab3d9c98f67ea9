"""Fixes, not only causes: one concrete piece of advice per root miss whose cost
the Dockerfile made avoidable (docs/advice/).

Works on the report dict (cachewhy.report/v1) and the Dockerfile's text, so a
stored report can be advised again. Each advice is
``{"rule", "message", "lines", "saved_s"}``: ``saved_s`` is the time this build
would have saved (the rebuilt steps the change keeps cached), ``None`` when the
change makes steps faster rather than cached and cachewhy cannot measure by how much.
Advice tied to no miss (a cached `RUN curl` download that may be stale) is the
report's own `advice`. `rewrite` turns a rule's advice into the changed
Dockerfile that `cachewhy advise --verify` (verify.py) builds. Every rule is
one row of TABLE (name, detection, advice, rewrite, how it is verified).
Never raises: advice is a bonus, the report stands without it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from analyzer.report.rows import fmt_time
from analyzer.model import Advice, CauseDict, Record, Report, ReportMiss, ReportStep

# package manager -> (regex on a RUN's text, manifests it reads, cache mount target)
MANAGERS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "pip": (r"\bpip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b",
            ("requirements.txt", "pyproject.toml", "setup.py", "setup.cfg"), "/root/.cache/pip"),
    "uv": (r"\buv\s+(sync|pip\s+install)\b", ("pyproject.toml", "uv.lock"), "/root/.cache/uv"),
    "poetry": (r"\bpoetry\s+install\b", ("pyproject.toml", "poetry.lock"), "/root/.cache/pypoetry"),
    "npm": (r"\bnpm\s+(ci|install|i)\b", ("package.json", "package-lock.json"), "/root/.npm"),
    "yarn": (r"\byarn(\s+install)?\s*($|&&|;|\|\||--)", ("package.json", "yarn.lock"), "/usr/local/share/.cache/yarn"),
    "pnpm": (r"\bpnpm\s+(install|i)\b", ("package.json", "pnpm-lock.yaml"), "/root/.local/share/pnpm/store"),
    "cargo": (r"\bcargo\s+(build|fetch|install)\b", ("Cargo.toml", "Cargo.lock"), "/usr/local/cargo/registry"),
    "go": (r"\bgo\s+mod\s+download\b", ("go.mod", "go.sum"), "/go/pkg/mod"),
    "bundle": (r"\bbundle(\s+install)?\s*($|&&|;|\|\||--)", ("Gemfile", "Gemfile.lock"), None),
    "composer": (r"\bcomposer\s+install\b", ("composer.json", "composer.lock"), "/root/.cache/composer"),
    "apt": (r"\bapt(-get)?\s+(-\S+\s+)*install\b", (), "/var/cache/apt"),
    "apk": (r"\bapk\s+(-\S+\s+)*add\b", (), "/etc/apk/cache"),
}

# (pattern to add to .dockerignore, predicate on a context-relative path)
_DIRS = (".git", ".hg", ".svn", "node_modules", "__pycache__", ".cache", ".pytest_cache", ".mypy_cache",
         ".tox", ".idea", ".vscode", "dist", "build", "target")
_FILES = ("*.log", "*.swp", "*.pyc", ".DS_Store")


def managers_in(text: str) -> list[str]:
    """The package managers a RUN's text installs with, in MANAGERS order."""
    return [name for name, (rx, _, _) in MANAGERS.items() if re.search(rx, text)]


def _changed(cause: CauseDict) -> list[str]:
    files = cause.get("files")
    if not files:
        return []
    return [*(files.get("added") or []), *(files.get("modified") or []), *(files.get("removed") or [])]


def _refs(text: str, name: str) -> bool:
    return re.search(rf"\$({re.escape(name)}\b|\{{{re.escape(name)}[}}:])", text) is not None


def _ignore_pattern(path: str, sources: list[str]) -> str | None:
    """The .dockerignore pattern that would keep `path` out, unless a COPY names it on purpose."""
    parts = path.rstrip("/").split("/")
    for i, part in enumerate(parts[:-1] if not path.endswith("/") else parts):
        if part in _DIRS:
            named = "/".join(parts[: i + 1])
            if any(s.strip("./") and s.strip("/").startswith(named) for s in sources):
                return None  # COPY build/ … : wanted
            return part if i == 0 else f"**/{part}"
    base = parts[-1]
    for pat in _FILES:
        if fnmatch.fnmatch(base, pat):
            return pat if len(parts) == 1 or pat.startswith("*") else f"**/{pat}"
    return None


def _ignored_already(pattern: str, dockerignore: str | None) -> bool:
    if not dockerignore:
        return False
    lines = {ln.strip().strip("/") for ln in dockerignore.splitlines() if ln.strip() and not ln.startswith("#")}
    return pattern.strip("/") in lines or pattern.removeprefix("**/") in lines


class _Ctx:
    def __init__(self, report: Report, dockerfile_text: str | None, context: str | None) -> None:
        from analyzer import dockerfile as dfmod  # noqa: PLC0415

        self.report = report
        self.df = dfmod.parse(dockerfile_text) if dockerfile_text else None
        self.by_id = {m["id"]: m for m in report.get("misses") or []}
        self.duration = {s["id"]: float(s.get("duration_s") or 0.0) for s in report.get("steps") or []}
        self.context = Path(context) if context and context != "-" and "://" not in context else None
        self.dockerignore: str | None = None
        if self.context is not None:
            try:
                from analyzer import confined  # noqa: PLC0415

                self.dockerignore = confined.read_text(self.context, ".dockerignore")
            except OSError:
                pass
        df_path = (report.get("build") or {}).get("dockerfile")
        self.dockerfile_rel: str | None = None
        if df_path and self.context is not None:
            try:
                self.dockerfile_rel = str(Path(df_path).relative_to(self.context))
            except ValueError:
                pass

    def ins(self, line: int | None):  # type: ignore[no-untyped-def]
        return self.df.instruction_at(line) if self.df is not None and line else None

    def cascade(self, root: ReportMiss) -> list[ReportMiss]:
        """The root and its followers, in Dockerfile order."""
        out = [root, *(self.by_id[f] for f in root.get("followers") or [] if f in self.by_id)]
        return sorted(out, key=lambda m: m.get("line") or 0)

    def own(self, m: ReportMiss) -> float:
        return self.duration.get(m["id"], 0.0)

    def exists(self, name: str) -> bool | None:
        if self.context is None:
            return None
        return (self.context / name).is_file()


# --- rules -------------------------------------------------------------------

def _cmf_plan(c: _Ctx, root: ReportMiss):  # type: ignore[no-untyped-def]
    """What rule 1 found: (the COPY, the install RUN, its managers, the manifests, every install moved)."""
    cause = root.get("cause") or {}
    ins = c.ins(root.get("line"))
    if cause.get("kind") != "context-changed" or ins is None or ins.keyword not in ("COPY", "ADD") or ins.from_ref:
        return None
    changed = _changed(cause)
    installs = []
    for m in c.cascade(root)[1:]:
        run = c.ins(m.get("line"))
        if run is None or run.keyword != "RUN" or run.stage != ins.stage or run.line < ins.line:
            continue
        found = managers_in(run.text)
        if found:
            installs.append((m, run, found))
    if not installs:
        return None
    m, run, found = installs[0]
    manifests: list[str] = []
    for name in found:
        wanted = list(MANAGERS[name][1])
        if name == "pip":  # `-r FILE` names the manifest; `pip install .` reads the project's
            wanted = re.findall(r"(?:-r|--requirement)[\s=]+(\S+)", run.text) or wanted
        for w in wanted:
            if w not in manifests and (c.exists(w) is not False or w in changed):
                manifests.append(w)
    if any(f in manifests or f.rsplit("/", 1)[-1] in manifests for f in changed):
        return None  # a manifest changed: the install had to run again
    if any(re.search(rf"(?<![\w./-]){re.escape(f.rsplit('/', 1)[-1])}(?![\w-])", run.text) for f in changed):
        return None  # the install names a changed file (e.g. a package list): it reads it
    return ins, run, found, manifests, installs, changed


def _copy_manifest_first(c: _Ctx, root: ReportMiss, plan: Any) -> Advice:
    """Rule 1: `COPY .` before an install that only needs the manifests."""
    ins, run, found, manifests, installs, changed = plan
    if any(n in ("apt", "apk") for n in found) and not manifests:
        message = (f"`{ins.text}` (line {ins.line}) comes before `{_short(run.text)}` (line {run.line}), "
                   f"which reads nothing from it; move the install above the COPY")
    else:
        already = [w for w in manifests if _copied_before(c, ins, w)]
        if already and len(already) == len(manifests):
            message = (f"`{ins.text}` (line {ins.line}) comes before `{_short(run.text)}` (line {run.line}) "
                       f"although {', '.join(f'`{w}`' for w in already)} is copied earlier; move the install "
                       f"above line {ins.line}")
        else:
            names = " ".join(manifests) or "the manifest"
            message = (f"`{ins.text}` (line {ins.line}) brings {_what(changed)} into the layer that "
                       f"`{_short(run.text)}` (line {run.line}) depends on; copy `{names}` first, install, "
                       f"then copy the rest")
    saved = sum(c.own(x) for x, _, _ in installs)
    return {"rule": "copy-manifest-first", "message": message,
            "lines": sorted({ins.line, *(r.line for _, r, _ in installs)}), "saved_s": round(saved, 3)}


def _copied_before(c: _Ctx, copy_ins, name: str) -> bool:  # type: ignore[no-untyped-def]
    for ins in c.df.instructions if c.df is not None else []:
        if ins.line >= copy_ins.line:
            break
        if (ins.stage == copy_ins.stage and ins.keyword in ("COPY", "ADD") and not ins.from_ref
                and any(s.removeprefix("./") == name or s.rsplit("/", 1)[-1] == name for s in ins.sources)):
            return True
    return False


def _short(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _what(changed: list[str]) -> str:
    tops = sorted({f.split("/", 1)[0] + ("/" if "/" in f else "") for f in changed})
    if not tops:
        return "the context"
    shown = ", ".join(f"`{t}`" for t in tops[:3])
    return shown + (f" and {len(tops) - 3} more" if len(tops) > 3 else "")


def _dockerignore_plan(c: _Ctx, root: ReportMiss):  # type: ignore[no-untyped-def]
    """What rule 2 found: ({pattern: [changed files it keeps out]}, whether every changed file is ignorable)."""
    cause = root.get("cause") or {}
    ins = c.ins(root.get("line"))
    if cause.get("kind") != "context-changed":
        return None
    sources = ins.sources if ins is not None else []
    changed = _changed(cause)
    patterns: dict[str, list[str]] = {}
    ignorable = 0
    for f in changed:
        pat = _ignore_pattern(f, sources)
        if pat is None and c.dockerfile_rel and f == c.dockerfile_rel and any(s in (".", "./") for s in sources):
            pat = f
        if pat is not None:
            ignorable += 1
            if not _ignored_already(pat, c.dockerignore):
                patterns.setdefault(pat, []).append(f)
    if not patterns:
        return None
    return patterns, ignorable == len(changed)


def _dockerignore(c: _Ctx, root: ReportMiss, plan: Any) -> Advice:
    """Rule 2: changed files that .dockerignore could have kept out."""
    patterns, every = plan
    files = [f for fs in patterns.values() for f in fs]
    shown = ", ".join(f"`{f}`" for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    pats = ", ".join(f"`{p}`" for p in patterns)
    message = (f"{shown} changed and {'are' if len(files) != 1 else 'is'} "
               f"not needed in the image; add {pats} to .dockerignore"
               + ("" if every else " (other changed files still rebuild this step)"))
    return {"rule": "dockerignore", "message": message, "lines": [line] if (line := root.get("line")) else [],
            "saved_s": round(float(root.get("time_lost_s") or 0.0), 3) if every else None}


def _cache_mount_plan(c: _Ctx, root: ReportMiss):  # type: ignore[no-untyped-def]
    """What rule 3 found: (the rebuilt miss, its RUN, the package manager, the mount to add)."""
    if (root.get("cause") or {}).get("kind") == "no-previous-build":
        return None  # a first build: a cache mount would have been empty too
    for m in c.cascade(root):
        run = c.ins(m.get("line"))
        if run is None or run.keyword != "RUN":
            continue
        if any(mt.get("type") == "cache" for mt in run.mounts):
            continue
        for name in managers_in(run.text):
            target = MANAGERS[name][2]
            if target is None:
                continue
            mount = f"--mount=type=cache,target={target}" + (",sharing=locked" if name in ("apt", "apk") else "")
            return m, run, name, mount
    return None


def _cache_mount(c: _Ctx, root: ReportMiss, plan: Any) -> Advice:
    """Rule 3: a rebuilt package-manager step without a cache mount."""
    m, run, name, mount = plan
    extra = ""
    if name == "pip" and "--no-cache-dir" in run.text:
        extra = " and drop `--no-cache-dir`"
    elif name == "apt":
        extra = " (and remove /etc/apt/apt.conf.d/docker-clean, which empties it)"
    message = (f"`{_short(run.text)}` (line {run.line}) was rebuilt ({fmt_time(c.own(m))}) downloading "
               f"everything again; add `RUN {mount}`{extra} so {name} reuses its downloads")
    return {"rule": "cache-mount", "message": message, "lines": [run.line], "saved_s": None}


def _arg_plan(c: _Ctx, root: ReportMiss):  # type: ignore[no-untyped-def]
    """What rule 4 found: (the ARG's name, its declaration, its first use or None, the root's instruction)."""
    cause = root.get("cause") or {}
    ins = c.ins(root.get("line"))
    if cause.get("kind") != "build-arg-changed" or ins is None or c.df is None:
        return None
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*) changed", cause.get("detail") or "")
    if not match:
        return None
    name = match.group(1)
    if _refs(ins.text, name):
        return None  # the step uses it: the miss is wanted
    decl = None
    for i in c.df.instructions:
        if i.line >= ins.line:
            break
        if i.stage == ins.stage and i.keyword == "ARG" and any(k == name for k, _ in i.assignments):
            decl = i
    if decl is None:
        return None
    if any(i.stage == ins.stage and decl.line < i.line < ins.line and _refs(i.text, name)
           for i in c.df.instructions):
        return None  # used before the root already (`ENV X=$V` carries it into every later RUN)
    first_use = next((i for i in c.df.instructions if i.stage == ins.stage and i.line > ins.line
                      and i.keyword not in ("ARG",) and _refs(i.text, name)), None)
    return name, decl, first_use, ins


def _arg_late(c: _Ctx, root: ReportMiss, plan: Any) -> Advice:
    """Rule 4: an ARG declared long before its first use invalidates the steps in between."""
    name, decl, first_use, ins = plan
    cascade = c.cascade(root)
    if first_use is None:
        saved = sum(c.own(m) for m in cascade if m.get("stage") == root.get("stage"))
        message = (f"`ARG {name}` (line {decl.line}) is declared in this stage but no later instruction "
                   f"uses it, yet a change of it rebuilt line {ins.line} on; remove it, or move it to where "
                   f"it is used")
        lines = [decl.line]
    else:
        saved = sum(c.own(m) for m in cascade
                    if m.get("stage") == root.get("stage") and (m.get("line") or 0) < first_use.line)
        message = (f"`ARG {name}` (line {decl.line}) is first used at line {first_use.line}, but a change of it "
                   f"rebuilt line {ins.line} on; move the ARG down to just before line {first_use.line}")
        lines = [decl.line, first_use.line]
    return {"rule": "arg-late", "message": message, "lines": lines, "saved_s": round(saved, 3)}


def _pin_plan(c: _Ctx, root: ReportMiss):  # type: ignore[no-untyped-def]
    """What rule pin-base-image found: (the stage whose FROM moved, its resolved reference, its tag or None),
    or (the COPY/ADD whose --from image moved, that reference, None)."""
    cause = root.get("cause") or {}
    if cause.get("kind") != "base-image-changed" or c.df is None:
        return None
    ins = c.ins(root.get("line"))
    ref_from = ins.from_ref if ins is not None and ins.keyword in ("COPY", "ADD") else None
    if ref_from and c.df.resolve_ref(ref_from) is None:
        # the image that moved is the one COPY --from reads (an image, or a named
        # build context of one), not the stage's FROM
        if "@" in ref_from or "$" in ref_from:
            return None
        return ins, ref_from, None
    stage = None
    if ins is not None and ins.stage is not None:
        stage = c.df.stages[ins.stage]
    elif name := root.get("stage"):
        stage = c.df.stage_by_name(name)
    if stage is None:
        return None
    while stage.base_stage is not None:  # FROM <stage>: the image is that stage's
        stage = c.df.stages[stage.base_stage]
    ref = stage.resolved_base or stage.base
    if stage.is_scratch or "@" in ref or "$" in ref:
        return None
    tail = ref.rsplit("/", 1)[-1]
    tag = tail.split(":", 1)[1] if ":" in tail else None
    if tag not in (None, "latest"):
        return None
    return stage, ref, tag


def _pin_base_image(c: _Ctx, root: ReportMiss, plan: Any) -> Advice:
    """Rule pin-base-image: a base image referenced by a moving tag moved."""
    stage, ref, tag = plan
    if getattr(stage, "keyword", None) in ("COPY", "ADD"):  # the image of a COPY --from (or a named context)
        ins = stage
        head, _, tail = ref.rpartition("/")
        name = f"{head}/{tail.split(':', 1)[0]}" if head else tail.split(":", 1)[0]
        message = (f"`{ins.keyword} --from={ref}` (line {ins.line}) reads an image by a moving tag, and it "
                   f"moved; pin a digest where that image is named (`--from={name}@sha256:…`, or "
                   f"`--build-context {ref}=docker-image://…@sha256:…`) and bump it on purpose")
        return {"rule": "pin-base-image", "message": message, "lines": [ins.line],
                "saved_s": round(float(root.get("time_lost_s") or 0.0), 3)}
    message = (f"`FROM {stage.base}` (line {stage.from_line}) follows a moving tag"
               f"{'' if tag else ' (no tag: latest)'}, and it moved; pin a digest "
               f"(`FROM {ref.split(':')[0] if tag else ref}@sha256:…`) and bump it on purpose")
    return {"rule": "pin-base-image", "message": message, "lines": [stage.from_line],
            "saved_s": round(float(root.get("time_lost_s") or 0.0), 3)}


APT_INSTALL = r"\bapt(-get)?\s+(-\S+\s+)*install\b"
APT_UPDATE = r"\bapt(-get)?\s+(-\S+\s+)*update\b"


def _apt_plan(c: _Ctx, root: ReportMiss):  # type: ignore[no-untyped-def]
    """What rule 5 found: (the `apt-get update` RUN, the rebuilt install RUN after it)."""
    if c.df is None:
        return None
    for m in c.cascade(root):
        run = c.ins(m.get("line"))
        if run is None or run.keyword != "RUN" or not re.search(APT_INSTALL, run.text):
            continue
        if re.search(APT_UPDATE, run.text):
            continue  # updated in the same step
        upd = apt_update_before(c.df, run)
        rebuilt = {x.get("line") for x in c.by_id.values()}
        if upd is not None and upd.line not in rebuilt:  # an update that ran in this build made fresh lists
            return upd, run
    return None


def apt_update_before(df, run):  # type: ignore[no-untyped-def]
    """The separate `RUN apt-get update` (without an install) nearest before `run` in its stage, or None."""
    before = [i for i in df.instructions if i.stage == run.stage and i.keyword == "RUN" and i.line < run.line]
    upd = next((i for i in reversed(before) if re.search(APT_UPDATE, i.text)), None)
    if upd is None or re.search(r"\binstall\b", upd.text):
        return None
    return upd


def _apt_update_alone(c: _Ctx, root: ReportMiss, plan: Any) -> Advice:
    """Rule 5: `RUN apt-get update` alone, then a separate `RUN apt-get install` that was rebuilt."""
    upd, run = plan
    message = (f"`{_short(upd.text)}` (line {upd.line}) stays cached while `{_short(run.text)}` (line {run.line}) "
               f"is rebuilt on old package lists (stale versions, 404s); run them in one step: "
               f"`RUN apt-get update && apt-get install -y …`")
    return {"rule": "apt-update-alone", "message": message, "lines": [upd.line, run.line], "saved_s": None}


def _norm(path: str, cwd: str | None = None) -> str:
    """An absolute, normalised path (relative ones against `cwd`, default `/`)."""
    import posixpath  # noqa: PLC0415

    joined = path if path.startswith("/") else posixpath.join(cwd or "/", path)
    return posixpath.normpath(joined).replace("//", "/")


def _workdir_at(stage, line: int) -> str:  # type: ignore[no-untyped-def]
    """The WORKDIR in force at `line` of `stage` (`/` when unknown or unset)."""
    dirs = [d for ln, d in sorted(stage.workdirs.items()) if ln < line]
    return (dirs[-1] if dirs else None) or "/"


_OUTPUT_RX = re.compile(r"(?:\s-o\s*|\s--output[=\s]\s*|[^\d&>]>\s*)([^\s;&|<>()'\"]+)")


_INPUT_CHANGES = ("context-changed", "instruction-changed", "build-arg-changed", "env-changed",
                  "base-image-changed", "remote-changed")


def _artefact_plan(c: _Ctx, root: ReportMiss):  # type: ignore[no-untyped-def]
    """What rule 6 found: (the wholesale COPY --from, the stage copied, its source path, the artefact
    path or None, the RUN that writes it or None, the rebuilt misses of the copying stage from the COPY on)."""
    # only an input change can leave the artefact the same; a cold or evicted cache rebuilds it all anyway
    if c.df is None or (root.get("cause") or {}).get("kind") not in _INPUT_CHANGES:
        return None
    cascade = c.cascade(root)
    for m in cascade:
        copy = c.ins(m.get("line"))
        if copy is None or copy.keyword != "COPY" or not copy.from_ref or m is root:
            continue
        src_stage = c.df.resolve_ref(copy.from_ref)
        if src_stage is None or src_stage.index == copy.stage or len(copy.sources) != 1:
            continue
        source = _norm(copy.sources[0])
        end = src_stage.instructions[-1].end_line + 1
        trees = {"/", _workdir_at(src_stage, end)}
        for i in src_stage.instructions:  # where the stage put a whole context folder
            if i.keyword in ("COPY", "ADD") and not i.from_ref and i.destination and \
                    any(_norm(s) == "/" for s in i.sources):
                trees.add(_norm(i.destination, _workdir_at(src_stage, i.line)))
        if source not in trees:
            continue
        artefact, writer = None, None
        for run in reversed([i for i in src_stage.instructions if i.keyword == "RUN"]):
            for out in _OUTPUT_RX.findall(" " + run.text):
                path = _norm(out, _workdir_at(src_stage, run.line))
                if out.startswith("/dev/") or "$" in out or path == source:
                    continue
                if source == "/" or path.startswith(source.rstrip("/") + "/"):
                    artefact, writer = path, run
                    break
            if artefact:
                break
        copying = [x for x in cascade if x.get("stage") == m.get("stage") and (x.get("line") or 0) >= copy.line]
        return copy, src_stage, source, artefact, writer, copying
    return None


def _copy_artefact_only(c: _Ctx, root: ReportMiss, plan: Any) -> Advice:
    """Rule 6: a stage's whole output copied where one artefact would do."""
    copy, src_stage, source, artefact, writer, copying = plan
    what = "its whole filesystem" if source == "/" else f"all of `{source}`"
    lines = [x.get("line") for x in copying if x.get("line")]
    span = f"line {lines[0]}" if len(lines) == 1 else f"lines {min(lines)}-{max(lines)}"
    took = sum(c.own(x) for x in copying)
    if artefact:
        fix = f"copy only the artefact: `{_artefact_copy(copy, source, artefact)}`"
    else:
        fix = f"copy only the artefacts the image needs (`COPY --from={copy.from_ref} {source.rstrip('/')}/<artefact> …`)"
    message = (f"`{copy.text}` (line {copy.line}) copies {what} from stage `{src_stage.alias or src_stage.name}`, "
               f"so any change there rebuilt {span} ({fmt_time(took)}) even when the built artefact stayed the same; "
               f"{fix}")
    return {"rule": "copy-artefact-only", "message": message,
            "lines": sorted({copy.line, *([writer.line] if writer is not None else [])}), "saved_s": None}


def _artefact_copy(copy, source: str, artefact: str) -> str:  # type: ignore[no-untyped-def]
    """The COPY line that brings only `artefact` to where the wholesale copy put it."""
    rel = artefact[len(source.rstrip("/")) + 1:] if source != "/" else artefact.lstrip("/")
    dest = copy.destination or "."
    target = dest.rstrip("/") + "/" + rel if dest not in (".", "./") else rel
    flags = " ".join(f"{k}={v}" if v else k for k, vs in copy.flags.items() for v in vs)
    return f"COPY {flags} {artefact} {target}"


# --- advice not tied to a miss: a cached download may be stale -----------------

_FETCH_RX = re.compile(r"\b(curl|wget)\b")
_URL_RX = re.compile(r"\b(?:https?|ftp)://[^\s'\"|;&()<>]+")
_SHA256_RX = re.compile(r"\b[0-9a-fA-F]{64}\b")
_SAVE_AS_RX = re.compile(r"\s(?:-[A-Za-z]*[oO]|--output|--output-document)(?:=|\s+)([^\s;&|]+)")


def _add_url_plan(ins):  # type: ignore[no-untyped-def]
    """What rule add-url found in one cached RUN: the URLs it downloads with curl/wget."""
    if ins is None or ins.keyword != "RUN" or not _FETCH_RX.search(ins.text):
        return None
    return _URL_RX.findall(ins.text) or None


def _add_url(ins, urls: list[str]) -> Advice:  # type: ignore[no-untyped-def]
    """Rule add-url for one cached RUN: it downloads a URL with curl/wget."""
    url = urls[0]
    dest = next((d for d in _SAVE_AS_RX.findall(" " + ins.text) if d not in ("-", url)), None)
    if dest is None:  # piped into a shell or tar, or saved under its remote name
        dest = "./" + (url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "download")
    sha = _SHA256_RX.search(ins.text)
    add = f"ADD {f'--checksum=sha256:{sha.group(0).lower()} ' if sha else ''}{url} {dest}"
    more = f" (and {len(urls) - 1} more URL{'s' if len(urls) > 2 else ''})" if len(urls) > 1 else ""
    pin = "" if sha else " (with `--checksum=sha256:…` once the URL is pinned to a version)"
    message = (f"`{_short(ins.text, 60)}` (line {ins.line}) came from the cache: BuildKit does not fetch "
               f"{url}{more} again, so the image keeps the file of the build that first ran the step, even if "
               f"the remote file changed since; use `{add}`, which BuildKit re-checks on every build{pin}")
    return {"rule": "add-url", "message": message, "lines": [ins.line], "saved_s": None}


def stale_downloads(report: Report, dockerfile_text: str | None) -> list[Advice]:
    """Advice for the RUN curl/wget steps this build took from the cache (their file may be stale).

    A step that ran in this build fetched the URL just now: nothing to say about it.
    """
    if not dockerfile_text:
        return []
    from analyzer import dockerfile as dfmod  # noqa: PLC0415

    df = dfmod.parse(dockerfile_text)
    out: list[Advice] = []
    seen: set[int] = set()
    for step in report.get("steps") or []:
        line = step.get("line")
        if step.get("status") != "cached" or not line or line in seen:
            continue
        seen.add(line)
        ins = df.instruction_at(line)
        for rule in CACHED_RULES:
            plan = rule.plan(ins)
            if plan is not None:
                out.append(rule.advise(ins, plan))
    return sorted(out, key=lambda a: a["lines"][0])


def advise(report: Report, dockerfile_text: str | None, context: str | None = None) -> dict[str, list[Advice]]:
    """Advice per root miss id, rules in priority order; roots without advice are left out."""
    c = _Ctx(report, dockerfile_text, context)
    out: dict[str, list[Advice]] = {}
    for m in report.get("misses") or []:
        if not m.get("root"):
            continue
        found = [rule.advise(c, m, plan) for rule in ROOT_RULES if (plan := rule.plan(c, m)) is not None]
        if found:
            out[m["id"]] = found
    return out


def attach(report: Report, dockerfile_text: str | None, context: str | None = None) -> Report:
    """Adds `advice` to the report's root misses that have some, and the advice tied to no miss
    (cached downloads) as the report's own `advice` (in place); returns the report."""
    try:
        found = advise(report, dockerfile_text, context)
        stale = stale_downloads(report, dockerfile_text)
    except Exception:  # noqa: BLE001 - advice must never cost the report
        return report
    for m in report.get("misses") or []:
        if m["id"] in found:
            m["advice"] = found[m["id"]]
    if stale:
        report["advice"] = stale
    return report


# --- the advised change made concrete (for `cachewhy advise --verify`) -----------

class Change(NamedTuple):
    """A rule's change: Dockerfile edits (start, end, new lines; see _edit) and .dockerignore patterns."""

    ops: list[tuple[int, int, list[str]]]
    dockerignore: list[str]


def _flags_text(*instructions) -> str:  # type: ignore[no-untyped-def]
    """The flags of instructions as Dockerfile text, each once, with a trailing space when any."""
    seen: list[str] = []
    for ins in instructions:
        for k, vs in ins.flags.items():
            for v in vs:
                word = f"{k}={v}" if v else k
                if word not in seen:
                    seen.append(word)
    return "".join(w + " " for w in seen)


def _edit(text: str, ops: list[tuple[int, int, list[str]]]) -> str:
    """Replace lines start..end (1-based, inclusive; end = start - 1 inserts before start) bottom up."""
    lines = text.splitlines()
    for start, end, new in sorted(ops, key=lambda o: (o[0], o[1]), reverse=True):
        lines[start - 1:end] = new
    return "\n".join(lines) + "\n"


def _rewrite_copy_manifest_first(c: _Ctx, root: ReportMiss, plan: Any) -> Change | None:
    ins, run, found, manifests, _installs, _changed_files = plan
    moved = run.original.splitlines()
    ops: list[tuple[int, int, list[str]]] = [(run.line, run.end_line, [])]
    missing = [w for w in manifests if not _copied_before(c, ins, w)]
    if any(n in ("apt", "apk") for n in found) and not manifests or not missing:
        return Change([*ops, (ins.line, ins.line - 1, moved)], [])  # nothing to copy first: move the install up
    # the manifests go where `COPY .` would have put them (its destination, or the WORKDIR)
    whole = [s.rstrip("/") or "/" for s in ins.sources] in (["."], ["/"])
    base = (ins.destination or ".") if whole else "."
    base = "/" if base.rstrip("/") == "" else base.rstrip("/")
    into = base if base == "/" else base + "/"
    flags = _flags_text(ins)
    top = [w for w in missing if "/" not in w]
    copies = [f"COPY {flags}{' '.join(top)} {into}"] if top else []
    copies += [f"COPY {flags}{w} {into}{w}" for w in missing if "/" in w]
    return Change([*ops, (ins.line, ins.line - 1, [*copies, *moved])], [])


def _rewrite_apt_update_alone(c: _Ctx, root: ReportMiss, plan: Any) -> Change | None:
    upd, run = plan
    if upd.json_form or run.json_form or upd.heredocs or run.heredocs:
        return None
    merged = f"RUN {_flags_text(upd, run)}{upd.rest.strip()} && {run.rest.strip()}"
    return Change([(upd.line, upd.end_line, []), (run.line, run.end_line, [merged])], [])


def _rewrite_arg_late(c: _Ctx, root: ReportMiss, plan: Any) -> Change | None:
    name, decl, first_use, _ins = plan
    words = decl.rest.split()
    if len(words) != len(decl.assignments):
        return None  # a quoted default with spaces: not rewritten by hand here
    mine = [w for w, (k, _) in zip(words, decl.assignments) if k == name]
    others = [w for w, (k, _) in zip(words, decl.assignments) if k != name]
    ops: list[tuple[int, int, list[str]]] = [(decl.line, decl.end_line, [f"ARG {' '.join(others)}"] if others else [])]
    if first_use is not None:
        ops.append((first_use.line, first_use.line - 1, [f"ARG {mine[-1]}"]))
    return Change(ops, [])


def _rewrite_cache_mount(c: _Ctx, root: ReportMiss, plan: Any) -> Change | None:
    _m, run, name, mount = plan
    if name == "apt":  # docker-clean empties the cache after each install: drop it first
        if run.json_form or run.heredocs:
            return None
        merged = f"RUN {mount} {_flags_text(run)}rm -f /etc/apt/apt.conf.d/docker-clean; {run.rest.strip()}"
        return Change([(run.line, run.end_line, [merged])], [])
    new = re.sub(r"^(\s*)RUN\b", lambda mt: f"{mt.group(1)}RUN {mount}", run.original, count=1, flags=re.I)
    if name == "pip":
        new = re.sub(r"[ \t]+--no-cache-dir\b", "", new)
    return Change([(run.line, run.end_line, new.splitlines())], [])


def _rewrite_copy_artefact_only(c: _Ctx, root: ReportMiss, plan: Any) -> Change | None:
    if plan[3] is None:
        return None  # no artefact named by the stage's RUNs: which one to copy is the user's call
    copy, _stage, source, artefact, _writer, _copying = plan
    return Change([(copy.line, copy.end_line, [_artefact_copy(copy, source, artefact)])], [])


def _rewrite_dockerignore(c: _Ctx, root: ReportMiss, plan: Any) -> Change | None:
    return Change([], list(plan[0]))


# --- the rules ------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One advice rule (docs/advice/<name>.md): `plan` detects it, on a root miss
    (scope "root": `plan(ctx, miss)`) or on a cached step (scope "cached":
    `plan(instruction)`), and returns what it found, or None; `advise` turns
    that into the advice (`{"rule", "message", "lines", "saved_s"}`);
    `rewrite`, when cachewhy can apply the change itself, turns it into the
    Dockerfile edits and .dockerignore patterns that `advise --verify` builds;
    `verified_by` says what the verification compares: "steps" (fewer rebuilt),
    "time" (the mounted step's own time), "fresh-lists" (the install no longer
    ran on a cached `apt-get update`)."""

    name: str
    plan: Callable[..., Any]
    advise: Callable[..., Advice]
    rewrite: Callable[[_Ctx, ReportMiss, Any], Change | None] | None = None
    scope: str = "root"
    verified_by: str | None = None

    @property
    def doc_page(self) -> str:
        return f"docs/advice/{self.name}.md"


#: Every rule, in priority order: a root miss's advice lists its rules in this order.
TABLE: tuple[Rule, ...] = (
    Rule("copy-manifest-first", _cmf_plan, _copy_manifest_first, _rewrite_copy_manifest_first, verified_by="steps"),
    Rule("dockerignore", _dockerignore_plan, _dockerignore, _rewrite_dockerignore, verified_by="steps"),
    Rule("cache-mount", _cache_mount_plan, _cache_mount, _rewrite_cache_mount, verified_by="time"),
    Rule("arg-late", _arg_plan, _arg_late, _rewrite_arg_late, verified_by="steps"),
    Rule("apt-update-alone", _apt_plan, _apt_update_alone, _rewrite_apt_update_alone, verified_by="fresh-lists"),
    Rule("copy-artefact-only", _artefact_plan, _copy_artefact_only, _rewrite_copy_artefact_only,
         verified_by="steps"),
    Rule("pin-base-image", _pin_plan, _pin_base_image),
    Rule("add-url", _add_url_plan, _add_url, scope="cached"),
)
BY_NAME: dict[str, Rule] = {r.name: r for r in TABLE}
RULES: tuple[str, ...] = tuple(BY_NAME)
ROOT_RULES = tuple(r for r in TABLE if r.scope == "root")
CACHED_RULES = tuple(r for r in TABLE if r.scope == "cached")
#: rules whose change can be applied by cachewhy, and so verified by a rebuild
REWRITABLE: tuple[str, ...] = tuple(r.name for r in TABLE if r.rewrite is not None)


def rewrite(report: Report, miss_id: str, rule: str, dockerfile_text: str | None,
            context: str | None = None) -> dict | None:
    """The advice of `rule` for root miss `miss_id` as a concrete change:
    ``{"dockerfile": the rewritten text, "dockerignore": [patterns to add]}``, or None when
    the rule does not apply there or its change is not mechanical (pin-base-image, add-url)."""
    if not dockerfile_text:
        return None
    try:
        c = _Ctx(report, dockerfile_text, context)
        root = c.by_id.get(miss_id)
        if root is None or c.df is None:
            return None
        r = BY_NAME.get(rule)
        if r is None or r.rewrite is None or r.scope != "root":
            return None
        plan = r.plan(c, root)
        change = r.rewrite(c, root, plan) if plan is not None else None
    except Exception:  # noqa: BLE001 - an odd Dockerfile: no rewrite rather than a crash
        return None
    if change is None:
        return None
    ops, ignore = change
    if not ops and not ignore:
        return None
    return {"dockerfile": _edit(dockerfile_text, ops) if ops else dockerfile_text, "dockerignore": ignore}


# --- over the store's history -------------------------------------------------

def recurring(records: list[Record]) -> list[dict[str, Any]]:
    """Root misses grouped by (project, Dockerfile line, kind), most time lost first.

    Each group: context, dockerfile, line, instruction, kind, count, builds,
    time_lost_s, saved_s (summed over builds where known), advice (the newest),
    latest ({"build", "miss"}: where `--verify` replays it). Cached downloads
    (advice tied to no miss) are groups of kind "cached", after the misses.
    """
    groups: dict[tuple, dict[str, Any]] = {}
    for rec in sorted(records, key=lambda r: r.get("created") or 0):
        report = rec.get("report")
        if not isinstance(report, dict):
            continue
        build = report.get("build") or {}
        project = rec.get("project") or {}
        context = build.get("context") or project.get("context")
        dockerfile = build.get("dockerfile") or project.get("dockerfile")
        advice = {}
        if not any(m.get("advice") for m in report.get("misses") or []):
            # an older report: advise it now, from the Dockerfile kept in the record
            advice = advise(report, rec.get("dockerfile_text"), context) if rec.get("dockerfile_text") else {}
        for m in report.get("misses") or []:
            if not m.get("root"):
                continue
            kind = (m.get("cause") or {}).get("kind") or "unknown"
            key = (context, dockerfile, project.get("target"), m.get("line"), kind)
            g = groups.setdefault(key, {"context": context, "dockerfile": dockerfile, "target": project.get("target"),
                                        "line": m.get("line"), "kind": kind, "count": 0, "builds": [],
                                        "time_lost_s": 0.0, "saved_s": 0.0, "advice": []})
            g["count"] += 1
            g["builds"].append(rec.get("id"))
            g["time_lost_s"] = round(g["time_lost_s"] + float(m.get("time_lost_s") or 0.0), 3)
            g["instruction"] = m.get("instruction") or ""
            g["latest"] = {"build": rec.get("id"), "miss": m["id"]}
            adv = m.get("advice") or advice.get(m["id"]) or []
            if adv:
                g["advice"] = adv
                g["saved_s"] = round(g["saved_s"] + sum(a.get("saved_s") or 0.0 for a in adv[:1]), 3)
        stale = report.get("advice")
        if stale is None and rec.get("dockerfile_text"):  # none, or a report older than this rule
            stale = stale_downloads(report, rec.get("dockerfile_text"))
        for a in stale or []:
            line = a["lines"][0] if a.get("lines") else None
            key = (context, dockerfile, project.get("target"), line, "cached")
            g = groups.setdefault(key, {"context": context, "dockerfile": dockerfile, "target": project.get("target"),
                                        "line": line, "kind": "cached", "count": 0, "builds": [],
                                        "time_lost_s": 0.0, "saved_s": 0.0, "advice": []})
            g["count"] += 1
            g["builds"].append(rec.get("id"))
            step = next((s for s in report.get("steps") or [] if s.get("line") == line), None)
            g["instruction"] = (step.get("instruction") if step else None) or ""
            g["advice"] = [a]
            g["latest"] = {"build": rec.get("id"), "miss": None}
    return sorted(groups.values(), key=lambda g: (g["kind"] == "cached", -g["time_lost_s"], -g["count"]))
