"""Dockerfile structure, and the mapping from BuildKit vertex names to it.

BuildKit's progress stream names every Dockerfile step vertex like
``[builder 2/5] RUN make``.  This module parses a Dockerfile the way
BuildKit's Dockerfile frontend does (parser directives, line continuations,
comment and blank lines inside continuations, heredocs, JSON form, flags) and
records where every instruction sits, so that such names can be mapped back
to exact line ranges without provenance (failed builds, logs from elsewhere).

Naming rules (moby/buildkit ``frontend/dockerfile/dockerfile2llb/convert.go``,
``prefixCommand``):

* ``"[" + [platform + " "] + [stage + " "] + "%*d/%d" % (i, M) + "] " + text``;
* ``stage`` is the lower-cased ``AS`` name or ``stage-N``; it is left out when
  the build has exactly one *dispatch state*.  Every extra source state
  counts: each stage, each ``COPY --from=<image>``, and each ``RUN --mount``
  whose ``from=`` is empty (a scratch state) or not a stage of the file;
* ``M`` counts the FROM of an image-based stage (not ``scratch``, not another
  stage) plus every ADD, COPY, RUN and WORKDIR (and inherited ONBUILD
  triggers); ``i`` is padded with spaces to the width of ``M``;
* a WORKDIR that resolves to ``/`` makes no vertex and does *not* advance
  ``i``, but it is counted in ``M`` (so such a stage never shows ``i == M``);
* ``COPY --link`` makes two vertices with the same prefix, the second named
  ``LINK COPY …``; ONBUILD triggers are named ``[s i/M] ONBUILD RUN …``;
* multi-platform builds put the platform first (``linux/amd64->arm64`` when
  cross-compiling); ``docker buildx bake`` puts the target name before all.

Standard library only; nothing here talks to an engine.
"""

from __future__ import annotations

import bisect
import csv
import functools
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from analyzer.collector import paused

__all__ = [
    "METADATA_KEYWORDS",
    "STEP_KEYWORDS",
    "Dockerfile",
    "DockerfileError",
    "Instruction",
    "Stage",
    "VertexName",
    "expand_vars",
    "is_internal_name",
    "locate",
    "locate_name",
    "parse",
    "parse_mount",
    "parse_vertex_name",
]


class DockerfileError(ValueError):
    """Raised by :func:`parse` when it is not given a string."""


#: Instructions that make a vertex named ``[stage i/M] …`` (FROM as well when
#: the base is an image).
STEP_KEYWORDS = frozenset({"RUN", "COPY", "ADD", "WORKDIR"})

#: Instructions that only change the image config: no vertex of their own.
METADATA_KEYWORDS = frozenset({
    "ARG", "ENV", "LABEL", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "SHELL",
    "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "VOLUME", "MAINTAINER",
})

# parseMaybeJSON / parseMaybeJSONToList in BuildKit's parser
_JSON_KEYWORDS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
# parseString: the whole rest is one value
_STRING_KEYWORDS = frozenset({"WORKDIR", "USER", "MAINTAINER", "STOPSIGNAL"})
# parseStringsWhitespaceDelimited: split on whitespace only, quotes are not grouping
_WS_KEYWORDS = frozenset({"FROM", "EXPOSE", "COPY", "ADD", "VOLUME"})
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})

_WS_RE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_WORD_RE = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_DIRECTIVE_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_VAR_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGE_N_RE = re.compile(r"^stage-(\d+)$")

_MOUNT_KEY_ALIASES = {
    "src": "source",
    "dst": "target",
    "destination": "target",
    "ro": "readonly",
}
_MOUNT_BOOL_KEYS = frozenset({"readonly", "ro", "readwrite", "rw", "required"})


# --------------------------------------------------------------------------
# data model


@dataclass
class Instruction:
    """One instruction, with its exact place in the file."""

    keyword: str  # upper-case: RUN, COPY, ...
    line: int  # 1-based first line
    end_line: int  # 1-based last line (continuations and heredoc bodies included)
    text: str  # as written, continuation lines joined with one space, no heredoc bodies
    original: str  # the exact source lines line..end_line joined with "\n"
    stage: int | None  # index of its stage; None before the first FROM
    flags: dict[str, list[str]] = field(default_factory=dict)  # "--from" -> ["planner"]; "--link" -> [""]
    args: list[str] = field(default_factory=list)  # words after the flags (JSON form decoded, quotes removed)
    heredocs: list[tuple[str, str]] = field(default_factory=list)  # (name, body)
    rest: str = ""  # what follows the keyword and the flags, as BuildKit joins it
    json_form: bool = False  # RUN ["a", "b"], COPY ["a", "b"], ...
    trigger: Instruction | None = None  # the instruction inside an ONBUILD

    def __hash__(self) -> int:  # consistent with the generated __eq__
        return hash((self.keyword, self.line, self.end_line, self.text))

    # -- flags ------------------------------------------------------------
    def flag(self, name: str) -> str | None:
        """The last value of flag `name` (``"--from"`` or ``"from"``), or None."""
        if not name.startswith("--"):
            name = "--" + name
        values = self.flags.get(name)
        return values[-1] if values else None

    @property
    def from_ref(self) -> str | None:
        """``COPY --from=<ref>`` / ``ADD --from``: a stage name, index or image."""
        return self.flag("--from")

    @property
    def is_link(self) -> bool:
        v = self.flag("--link")
        return v is not None and v.lower() not in ("false", "0")

    # -- COPY / ADD -------------------------------------------------------
    @property
    def sources(self) -> list[str]:
        """COPY/ADD source arguments (all but the last), heredoc markers excluded."""
        if self.trigger is not None:
            return self.trigger.sources
        if self.keyword not in ("COPY", "ADD") or len(self.args) < 2:
            return []
        names = {name for name, _ in self.heredocs}
        out = []
        for a in self.args[:-1]:
            if names and not self.json_form:
                m = _HEREDOC_WORD_RE.match(a)
                if m and _unquote(m.group(3)) in names:
                    continue
            out.append(a)
        return out

    @property
    def destination(self) -> str | None:
        """COPY/ADD destination (the last argument)."""
        if self.trigger is not None:
            return self.trigger.destination
        if self.keyword in ("COPY", "ADD") and self.args:
            return self.args[-1]
        return None

    # -- RUN --------------------------------------------------------------
    @property
    def mounts(self) -> list[dict[str, str]]:
        """The parsed ``--mount`` options of a RUN (``type`` defaults to bind)."""
        if self.trigger is not None:
            return self.trigger.mounts
        return [parse_mount(v) for v in self.flags.get("--mount", [])]

    # -- ARG / ENV / LABEL ------------------------------------------------
    @property
    def assignments(self) -> list[tuple[str, str | None]]:
        """``(name, value)`` pairs of an ARG, ENV or LABEL (value None: ``ARG X``).

        Values have their quotes removed; ``$VARS`` are left as written.
        """
        if self.keyword not in ("ARG", "ENV", "LABEL"):
            return []
        words = _split_words(self.rest, raw=True)
        if not words:
            return []
        if self.keyword in ("ENV", "LABEL") and "=" not in words[0]:
            # legacy "ENV KEY value with spaces"
            parts = _WS_RE.split(self.rest.strip(), 1)
            return [(parts[0], _unquote(parts[1]) if len(parts) > 1 else "")]
        out: list[tuple[str, str | None]] = []
        for w in words:
            k, sep, v = w.partition("=")
            out.append((_unquote(k), _unquote(v) if sep else None))
        return out

    @property
    def effective_keyword(self) -> str:
        """The keyword that names the vertex: the trigger's for ONBUILD."""
        if self.keyword == "ONBUILD" and self.trigger is not None:
            return self.trigger.keyword
        return self.keyword


@dataclass
class Stage:
    """One ``FROM`` block."""

    index: int
    name: str  # AS name lower-cased, or "stage-N"
    alias: str | None  # AS name as written
    base: str  # the FROM argument as written (may contain $VARS)
    base_stage: int | None  # the earlier stage it builds on (FROM <stage>)
    from_line: int
    platform: str | None  # --platform value as written
    instructions: list[Instruction] = field(default_factory=list)  # FROM first
    steps: list[Instruction] = field(default_factory=list)  # RUN/COPY/ADD/WORKDIR-not-"/" in order
    counted: int = 0  # M as BuildKit counts it
    resolved_base: str = ""  # base with global ARG defaults expanded
    is_scratch: bool = False
    triggers: list[Instruction] = field(default_factory=list)  # ONBUILD inherited from base_stage
    workdirs: dict[int, str | None] = field(default_factory=dict)  # WORKDIR line -> resolved dir (None: unknown)
    deps: list[int] = field(default_factory=list)  # stages it reads: base, COPY --from, RUN --mount from=

    def __hash__(self) -> int:
        return hash((self.index, self.name, self.from_line))

    @property
    def from_instruction(self) -> Instruction:
        return self.instructions[0]

    @property
    def image_base(self) -> bool:
        """True when the FROM pulls an image (and so makes a ``FROM`` vertex)."""
        return self.base_stage is None and not self.is_scratch

    @property
    def positions(self) -> list[Instruction]:
        """Instructions in vertex-index order: ``positions[i - 1]`` is step ``i``."""
        out: list[Instruction] = []
        if self.image_base:
            out.append(self.instructions[0])
        out.extend(t for t in self.triggers if t.effective_keyword in STEP_KEYWORDS)
        out.extend(self.steps)
        return out


class _Lookups(NamedTuple):
    made_for: tuple[int, int]  # (stages, instructions) when made
    by_name: dict[str, Stage]  # lower-case name -> the first stage of that name
    by_alias: dict[str, Stage]  # the same, stages with an AS name only
    by_base: dict[tuple, list[Stage]]  # (resolved base, platform) -> image-based stages
    starts: list[int]  # each instruction's first line, in file order


@dataclass
class Dockerfile:
    text: str
    instructions: list[Instruction]
    stages: list[Stage]
    global_args: list[Instruction]  # ARG before the first FROM
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)  # syntax / escape / check
    # lookups by name, base image and line, made on first use (a file of
    # thousands of stages is asked once per step), again if stages were added
    _index: _Lookups | None = field(default=None, init=False, repr=False, compare=False)

    def _lookups(self) -> _Lookups:
        made_for = (len(self.stages), len(self.instructions))
        if self._index is None or self._index.made_for != made_for:
            by_name: dict[str, Stage] = {}
            by_alias: dict[str, Stage] = {}
            by_base: dict[tuple, list[Stage]] = {}
            for st in self.stages:
                by_name.setdefault(st.name, st)
                if st.alias is not None:
                    by_alias.setdefault(st.name, st)
                if st.image_base:
                    by_base.setdefault((st.resolved_base, st.platform), []).append(st)
            self._index = _Lookups(made_for, by_name, by_alias, by_base, [ins.line for ins in self.instructions])
        return self._index

    def stage_by_name(self, name: str) -> Stage | None:
        """A stage by ``AS`` name (any case), ``stage-N`` or index string."""
        if not isinstance(name, str):
            return None
        key = name.strip().lower()
        st = self._lookups().by_name.get(key)
        if st is not None:
            return st
        m = _STAGE_N_RE.match(key)
        if m or key.isdigit():
            idx = int(m.group(1) if m else key)
            if 0 <= idx < len(self.stages):
                return self.stages[idx]
        return None

    def resolve_ref(self, ref: str | None, allow_index: bool = True) -> Stage | None:
        """The stage a ``COPY --from=`` reference names (None: an image).

        Like BuildKit: an ``AS`` name (any case) or, for COPY only, a stage
        index; ``stage-N`` is no reference.  For ``RUN --mount from=`` pass
        allow_index=False.
        """
        if not ref:
            return None
        if ref.isdigit() and allow_index:
            idx = int(ref)
            return self.stages[idx] if idx < len(self.stages) else None
        return self._lookups().by_alias.get(ref.lower())

    def instruction_at(self, line: int) -> Instruction | None:
        """The instruction whose line range contains `line`."""
        i = bisect.bisect_right(self._lookups().starts, line) - 1  # instructions are in file order, never overlapping
        if i >= 0 and self.instructions[i].line <= line <= self.instructions[i].end_line:
            return self.instructions[i]
        return None

    def uses_extra_state(self) -> bool:
        """True when a source other than the stages adds a dispatch state.

        That is a ``RUN --mount`` whose ``from=`` is empty (any mount type: a
        scratch state) or not a stage of the file, or a ``COPY --from=`` that
        names an image.  Vertex names then carry the stage even in
        single-stage Dockerfiles (``[stage-0 2/2] RUN --mount=…``).
        """
        # ONBUILD triggers are expanded after BuildKit has fixed the names
        for ins in self.instructions:
            if ins.stage is None:
                continue
            if ins.keyword == "RUN":
                for m in ins.mounts:
                    if self.resolve_ref(m.get("from") or None, allow_index=False) is None:
                        return True
            elif ins.keyword == "COPY":
                ref = ins.from_ref
                if ref and self.resolve_ref(ref) is None:
                    return True
        return False

    def names_carry_stage(self) -> bool:
        """Whether step vertex names include the stage name."""
        return len(self.stages) > 1 or self.uses_extra_state()

    def vertex_instructions(self) -> list[Instruction]:
        """Every instruction that makes a ``[… i/M]`` vertex (image FROMs
        included), in file order."""
        out = []
        for st in self.stages:
            if st.image_base:
                out.append(st.instructions[0])
            out.extend(st.steps)
        return sorted(out, key=lambda i: i.line)

    def shared_from(self, stage: Stage) -> list[Stage]:
        """Image-based stages whose FROM is the same image and platform.

        BuildKit merges identical image sources into one vertex, named after
        just one of those stages.
        """
        if not stage.image_base:
            return [stage]
        return list(self._lookups().by_base.get((stage.resolved_base, stage.platform), ()))


@dataclass
class VertexName:
    platform: str | None
    stage: str | None  # None when the name carries no stage (single-state build)
    index: int  # i
    total: int  # M
    text: str  # instruction text after "] "
    keyword: str  # first word of the instruction, upper-case (COPY for "LINK COPY …")
    is_link_merge: bool
    target: str | None  # bake target prefix, if any
    onbuild: bool = False  # "[s i/M] ONBUILD RUN …": a trigger inherited from the base stage
    name: str = ""  # the full vertex name


# --------------------------------------------------------------------------
# lexing helpers


def _split_words(s: str, escape: str = "\\", raw: bool = False) -> list[str]:
    """Split on unquoted whitespace.  raw=True keeps quotes and escapes."""
    if "'" not in s and '"' not in s and escape not in s:
        return s.split()  # nothing quoted or escaped, as in most instructions
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    quote = ""
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if quote:
            if c == quote:
                quote = ""
                if raw:
                    buf.append(c)
            elif c == escape and quote == '"' and i + 1 < n:
                nxt = s[i + 1]
                if raw:
                    buf.append(c + nxt)
                elif nxt in ('"', escape, "$", "`"):
                    buf.append(nxt)
                else:
                    buf.append(c + nxt)
                i += 1
            else:
                buf.append(c)
        elif c.isspace():
            if in_word:
                words.append("".join(buf))
                buf = []
                in_word = False
        else:
            in_word = True
            if c in ("'", '"'):
                quote = c
                if raw:
                    buf.append(c)
            elif c == escape and i + 1 < n:
                buf.append(c + s[i + 1] if raw else s[i + 1])
                i += 1
            else:
                buf.append(c)
        i += 1
    if in_word:
        words.append("".join(buf))
    return words


def _unquote(word: str, escape: str = "\\") -> str:
    """Remove shell quotes and escapes from one word, leaving $VARS alone."""
    result, _ = expand_vars(word, None, escape)
    return result


def expand_vars(word: str, env: dict[str, str] | None, escape: str = "\\") -> tuple[str, bool]:
    """Shell-style word processing as BuildKit's lexer does it (no splitting).

    Removes quotes and escapes; with `env`, expands ``$X``, ``${X}``,
    ``${X:-d}``, ``${X-d}``, ``${X:+a}``, ``${X+a}``.  Returns
    ``(result, unresolved)``; unresolved is True when a variable was not in
    `env` (it then expands to the empty string).  With env=None variables
    are kept as written.
    """
    if "$" not in word and "'" not in word and '"' not in word and escape not in word:
        return word, False  # nothing to expand, unquote or unescape
    out: list[str] = []
    unresolved = False
    quote = ""
    i, n = 0, len(word)
    while i < n:
        c = word[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                out.append(c)
            i += 1
            continue
        if c == escape and i + 1 < n:
            nxt = word[i + 1]
            if quote == '"' and nxt not in ('"', escape, "$", "`"):
                out.append(c)
            out.append(nxt)
            i += 2
            continue
        if c == "'" and not quote:
            quote = "'"
            i += 1
            continue
        if c == '"':
            quote = "" if quote else '"'
            i += 1
            continue
        if c == "$" and env is not None:
            value, consumed, miss = _expand_one(word, i, env, escape)
            if consumed:
                out.append(value)
                unresolved = unresolved or miss
                i += consumed
                continue
        out.append(c)
        i += 1
    return "".join(out), unresolved


def _expand_one(word: str, i: int, env: dict[str, str], escape: str) -> tuple[str, int, bool]:
    """Expand the variable starting at word[i] == "$": (value, length, unresolved)."""
    if i + 1 < len(word) and word[i + 1] == "{":
        depth, j = 1, i + 2
        while j < len(word) and depth:
            if word[j] == "{":
                depth += 1
            elif word[j] == "}":
                depth -= 1
            j += 1
        if depth:
            return "", 0, False
        inner = word[i + 2:j - 1]
        m = _VAR_NAME_RE.match(inner)
        if not m:
            return "", 0, False
        name, op = m.group(0), inner[m.end():]
        is_set = name in env
        val = env.get(name, "")
        if op == "":
            return val, j - i, not is_set
        for prefix in (":-", ":+", "-", "+", ":?", "?"):
            if op.startswith(prefix):
                arg, miss = expand_vars(op[len(prefix):], env, escape)
                if prefix == ":-":
                    return (val, j - i, False) if val else (arg, j - i, miss)
                if prefix == "-":
                    return (val, j - i, False) if is_set else (arg, j - i, miss)
                if prefix == ":+":
                    return (arg, j - i, miss) if val else ("", j - i, False)
                if prefix == "+":
                    return (arg, j - i, miss) if is_set else ("", j - i, False)
                return val, j - i, not is_set
        # pattern operators (#, %, /): keep it simple, report the plain value
        return val, j - i, True
    m = _VAR_NAME_RE.match(word, i + 1)
    if not m:
        return "", 0, False
    name = m.group(0)
    return env.get(name, ""), m.end() - i, name not in env


def _extract_flags(s: str, escape: str) -> tuple[list[str], str]:
    """Leading ``--flag[=value]`` words (quotes removed) and the remainder."""
    flags: list[str] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            return flags, ""
        if not s.startswith("--", i):
            return flags, s[i:]
        buf: list[str] = []
        quote = ""
        blank_ok = False
        j = i
        while j < n:
            c = s[j]
            if quote:
                if c == quote:
                    quote = ""
                elif c == escape and j + 1 < n:
                    j += 1
                    buf.append(s[j])
                elif c != escape:
                    buf.append(c)
            elif c.isspace():
                break
            elif c in ("'", '"'):
                quote = c
                blank_ok = True
            elif c == escape:
                if j + 1 < n:
                    j += 1
                    buf.append(s[j])
            else:
                buf.append(c)
            j += 1
        word = "".join(buf)
        if word == "--":
            return flags, s[j:].strip()
        if word or blank_ok:
            flags.append(word)
        i = j


def _flags_dict(words: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in words:
        name, _, value = w.partition("=")
        out.setdefault(name, []).append(value)
    return out


def parse_mount(value: str) -> dict[str, str]:
    """Parse one ``--mount`` value into a dict with canonical keys.

    ``src`` becomes ``source``; ``dst``/``destination`` become ``target``;
    ``ro`` becomes ``readonly`` and ``rw``/``readwrite`` set ``readonly``
    to its negation; bare boolean keys get ``"true"``.  ``type`` defaults
    to ``bind``.  Other keys (id, sharing, uid, gid, mode, size, env,
    required) are kept lower-cased as written.
    """
    try:
        fields = next(csv.reader([value], skipinitialspace=False), [])
    except (csv.Error, StopIteration):
        fields = value.split(",")
    out: dict[str, str] = {}
    for f in fields:
        key, sep, val = f.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if not sep and key in _MOUNT_BOOL_KEYS:
            val = "true"
        if key in ("rw", "readwrite"):
            truth = val.strip().lower() in ("true", "1", "")
            out["readonly"] = "false" if truth else "true"
            continue
        out[_MOUNT_KEY_ALIASES.get(key, key)] = val
    out.setdefault("type", "bind")
    return out


def _parse_heredoc_word(word: str) -> tuple[str, bool] | None:
    """``<<EOF`` / ``<<-"EOF"`` / ``3<<EOF`` -> (name, chomp); else None."""
    m = _HEREDOC_WORD_RE.match(word)
    if not m or not m.group(3):
        return None
    words = _split_words(m.group(3))
    if len(words) != 1 or not words[0]:
        return None
    return words[0], m.group(2) == "-"


def _heredoc_markers(line: str) -> list[tuple[str, bool]]:
    out = []
    for w in _split_words(line, "\\", raw=True):
        hd = _parse_heredoc_word(w)
        if hd is not None:
            out.append(hd)
    return out


# --------------------------------------------------------------------------
# Dockerfile parsing


class _Lines:
    def __init__(self, text: str) -> None:
        raw = text.split("\n")
        if raw and raw[0].startswith("\ufeff"):
            raw[0] = raw[0][1:]
        self.lines = [ln.removesuffix("\r") for ln in raw]
        if text.endswith("\n") and self.lines and self.lines[-1] == "":
            self.lines.pop()


def _is_comment(s: str) -> bool:
    t = s.lstrip()
    return t.startswith("#")


def _cont_regex(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$")


def _trim_continuation(s: str, regex: re.Pattern[str]) -> tuple[str, bool]:
    """Strip a trailing line-continuation token: (line, is_end_of_line)."""
    if s.rstrip(" \t")[-1:] not in ("\\", "`"):
        return s, True  # no escape character (either kind) at the end: the regex cannot match
    if regex.search(s):
        return regex.sub(lambda m: m.group(1) or "", s, count=1), False
    return s, True


def _build_instruction(
    logical: str, display: str, line: int, end_line: int, original: str,
    escape: str, stage: int | None,
) -> Instruction:
    stripped = logical.strip()
    parts = _WS_RE.split(stripped, 1)
    kw = parts[0].upper()
    after_kw = parts[1] if len(parts) > 1 else ""
    flag_words, rest = _extract_flags(after_kw, escape)
    rest = rest.strip()
    ins = Instruction(
        keyword=kw, line=line, end_line=end_line, text=display, original=original,
        stage=stage, flags=_flags_dict(flag_words), rest=rest,
    )
    if kw == "ONBUILD":
        if rest:
            ins.trigger = _build_instruction(rest, rest, line, end_line, original, escape, stage)
            ins.args = _split_words(rest, escape)
        return ins
    if kw in _JSON_KEYWORDS and rest.startswith("["):
        try:
            decoded = json.loads(rest)
        except ValueError:
            decoded = None
        if isinstance(decoded, list) and all(isinstance(x, str) for x in decoded):
            ins.args = list(decoded)
            ins.json_form = True
            return ins
    if kw in _STRING_KEYWORDS:
        ins.args = [_unquote(rest, escape)] if rest else []
    elif kw in _WS_KEYWORDS:
        ins.args = [_unquote(w, escape) for w in _WS_RE.split(rest) if w]
    else:
        ins.args = _split_words(rest, escape)
    return ins


def _scan(text: str) -> tuple[list[Instruction], str, dict[str, str]]:
    """Split a Dockerfile into instructions (stage indexes still unset)."""
    src = _Lines(text)
    lines = src.lines
    n = len(lines)
    escape = "\\"
    directives: dict[str, str] = {}
    directives_done = False
    cont = _cont_regex(escape)
    out: list[Instruction] = []
    i = 0
    while i < n:
        first = lines[i].lstrip()
        if not directives_done:
            m = _DIRECTIVE_RE.match(first[1:].lstrip()) if first.startswith("#") else None
            key = m.group(1).lower() if m else ""
            if m and key in _VALID_DIRECTIVES and key not in directives:
                directives[key] = m.group(2)
                if key == "escape" and m.group(2) in ("\\", "`"):
                    escape = m.group(2)
                    cont = _cont_regex(escape)
                i += 1
                continue
            directives_done = True
        if _is_comment(first):
            first = ""
        start = i
        part, end = _trim_continuation(first, cont)
        if end and not part.strip():
            i += 1
            continue
        logical = [part]
        display = [part.strip()]
        while not end and i + 1 < n:
            i += 1
            nxt = lines[i]
            if _is_comment(nxt) or not nxt.strip():
                continue  # comment / empty continuation lines are skipped
            part, end = _trim_continuation(nxt, cont)
            logical.append(part)
            display.append(part.strip())
        joined = "".join(logical)
        shown = " ".join(p for p in display if p)
        # heredocs: RUN/COPY/ADD (also as ONBUILD trigger) in shell form
        heredocs: list[tuple[str, str]] = []
        words = _WS_RE.split(joined.strip(), 2)
        kw = words[0].upper() if words else ""
        inner_kw = words[1].upper() if kw == "ONBUILD" and len(words) > 1 else kw
        if inner_kw in _HEREDOC_KEYWORDS and "<<" in joined and not _looks_json(joined, escape):
            for name, chomp in _heredoc_markers(joined):
                body: list[str] = []
                while i + 1 < n:
                    i += 1
                    candidate = lines[i].lstrip("\t") if chomp else lines[i]
                    if candidate == name:
                        break
                    body.append(lines[i].lstrip("\t") if chomp else lines[i])
                heredocs.append((name, "".join(b + "\n" for b in body)))
        original = "\n".join(lines[start:i + 1])
        ins = _build_instruction(joined, shown, start + 1, i + 1, original, escape, None)
        ins.heredocs = heredocs
        if ins.trigger is not None:
            ins.trigger.heredocs = heredocs
        out.append(ins)
        i += 1
    return out, escape, directives


def _looks_json(joined: str, escape: str) -> bool:
    parts = _WS_RE.split(joined.strip(), 1)
    if len(parts) < 2:
        return False
    if parts[0].upper() == "ONBUILD":
        return _looks_json(parts[1], escape)
    _, rest = _extract_flags(parts[1], escape)
    rest = rest.strip()
    if not rest.startswith("["):
        return False
    try:
        decoded = json.loads(rest)
    except ValueError:
        return False
    return isinstance(decoded, list) and all(isinstance(x, str) for x in decoded)


def _apply_assignments(ins: Instruction, env: dict[str, str], global_env: dict[str, str], escape: str) -> None:
    """Update `env` with the values an ARG/ENV instruction sets (defaults only)."""
    if ins.keyword == "ENV":
        words = _split_words(ins.rest, escape, raw=True)
        if words and "=" not in words[0]:
            parts = _WS_RE.split(ins.rest.strip(), 1)
            val, _ = expand_vars(parts[1] if len(parts) > 1 else "", env, escape)
            env[parts[0]] = val
            return
        new = {}
        for w in words:
            k, sep, v = w.partition("=")
            if sep:
                new[k], _ = expand_vars(v, env, escape)
        env.update(new)
    elif ins.keyword == "ARG":
        for w in _split_words(ins.rest, escape, raw=True):
            k, sep, v = w.partition("=")
            if sep:
                env[k], _ = expand_vars(v, env, escape)
            elif k in global_env:
                env[k] = global_env[k]


def _resolve_workdir(cwd: str | None, raw: str, env: dict[str, str], escape: str) -> str | None:
    """The directory a WORKDIR switches to; None when it cannot be known
    (an unresolved variable, or relative to an unknown directory)."""
    path, unresolved = expand_vars(raw, env, escape)
    if unresolved:
        return None
    if not path.startswith("/"):
        if cwd is None:
            return None
        path = posixpath.join(cwd, path)
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile.  Never raises on odd input (unknown instructions
    are kept as they are); raises :class:`DockerfileError` only when `text`
    is not a string.  The same text gives the same object (treat it as read
    only): a build's analysis asks for it from several places."""
    if not isinstance(text, str):
        raise DockerfileError(f"Dockerfile text must be str, not {type(text).__name__}")
    return _parse(text)


@functools.lru_cache(maxsize=8)
@paused
def _parse(text: str) -> Dockerfile:
    instructions, escape, directives = _scan(text)

    stages: list[Stage] = []
    global_args: list[Instruction] = []
    global_env: dict[str, str] = {}
    names: dict[str, int] = {}
    env: dict[str, str] = {}
    cwd: str | None = "/"
    final_env: dict[int, dict[str, str]] = {}
    final_cwd: dict[int, str | None] = {}

    def close(st: Stage | None) -> None:
        if st is not None:
            final_env[st.index] = dict(env)
            final_cwd[st.index] = cwd

    current: Stage | None = None
    for ins in instructions:
        if ins.keyword == "FROM":
            close(current)
            idx = len(stages)
            ins.stage = idx
            args = ins.args
            base = args[0] if args else ""
            alias = args[2] if len(args) >= 3 and args[1].lower() == "as" else None
            resolved, unknown = expand_vars(base, global_env, escape)
            if unknown or not resolved:
                resolved = base
            base_stage = names.get(resolved.lower()) if resolved else None
            plat = ins.flag("--platform")
            current = Stage(
                index=idx, name=alias.lower() if alias else f"stage-{idx}", alias=alias,
                base=base, base_stage=base_stage, from_line=ins.line, platform=plat,
                instructions=[ins], resolved_base=resolved,
                is_scratch=base_stage is None and resolved.lower() == "scratch",
            )
            stages.append(current)
            if alias:
                names[alias.lower()] = idx
            if base_stage is not None:
                env = dict(final_env.get(base_stage, {}))
                cwd = final_cwd.get(base_stage, "/")
                current.deps.append(base_stage)
                current.triggers = [
                    t for t in stages[base_stage].instructions if t.keyword == "ONBUILD" and t.trigger is not None
                ]
            else:
                env, cwd = {}, "/"
            continue
        if current is None:
            ins.stage = None
            if ins.keyword == "ARG":
                global_args.append(ins)
                _apply_assignments(ins, global_env, {}, escape)
            continue
        ins.stage = current.index
        current.instructions.append(ins)
        if ins.keyword in ("ENV", "ARG"):
            _apply_assignments(ins, env, global_env, escape)
        elif ins.keyword == "WORKDIR":
            resolved_dir = _resolve_workdir(cwd, ins.rest, env, escape)
            current.workdirs[ins.line] = resolved_dir
            cwd = resolved_dir
            if resolved_dir != "/":
                current.steps.append(ins)
        elif ins.keyword in ("RUN", "COPY", "ADD"):
            current.steps.append(ins)
    close(current)

    for st in stages:
        n = 0 if not st.image_base else 1
        n += sum(1 for i in st.instructions if i.keyword in STEP_KEYWORDS)
        n += len(st.triggers)
        st.counted = n

    df = Dockerfile(
        text=text, instructions=instructions, stages=stages, global_args=global_args,
        escape=escape, directives=directives,
    )
    for st in stages:
        for ins in st.instructions:
            node = ins.trigger if ins.trigger is not None else ins
            deps: list[Stage | None] = []
            if node.keyword in ("COPY", "ADD"):
                deps.append(df.resolve_ref(node.from_ref))
            elif node.keyword == "RUN":
                deps.extend(df.resolve_ref(m.get("from"), allow_index=False) for m in node.mounts)
            for dep in deps:
                if dep is not None and dep.index != st.index and dep.index not in st.deps:
                    st.deps.append(dep.index)
    return df


# --------------------------------------------------------------------------
# vertex names

_VERTEX_RE = re.compile(r"^\[(?:(?P<pre>[^\]]*?)\s+)?(?P<i>\d+)/(?P<n>\d+)\] ?(?P<text>.*)$", re.DOTALL)


def parse_vertex_name(name: str) -> VertexName | None:
    """Parse ``[platform stage i/M] TEXT``; None for internal/exporter names."""
    if not isinstance(name, str):
        return None
    m = _VERTEX_RE.match(name)
    if not m:
        return None
    tokens = (m.group("pre") or "").split()
    platform = target = stage = None
    p = next((k for k, t in enumerate(tokens) if "/" in t), None)
    if p is not None:
        platform = tokens[p]
        target = " ".join(tokens[:p]) or None
        stage = " ".join(tokens[p + 1:]) or None
    elif len(tokens) == 1:
        stage = tokens[0]
    elif len(tokens) >= 2:
        target = " ".join(tokens[:-1])
        stage = tokens[-1]
    if stage is not None and stage.lower() == "internal":
        return None
    text = m.group("text")
    body = text
    onbuild = link = False
    first, _, remainder = body.partition(" ")
    if first == "ONBUILD":
        onbuild = True
        body = remainder
        first, _, remainder = body.partition(" ")
    if first == "LINK" and remainder.split(" ", 1)[0].upper() in ("COPY", "ADD"):
        link = True
        body = remainder
        first, _, remainder = body.partition(" ")
    return VertexName(
        platform=platform, stage=stage, index=int(m.group("i")), total=int(m.group("n")),
        text=text, keyword=first.upper(), is_link_merge=link, target=target,
        onbuild=onbuild, name=name,
    )


def is_internal_name(name: str) -> bool:
    """True for vertices that are no Dockerfile step: ``[internal] …``,
    ``exporting …``, ``resolving provenance …``, ``importing cache …``,
    ``[auth] …`` and anything else without a ``[… i/M]`` prefix."""
    return parse_vertex_name(name) is None


def _keyword_ok(ins: Instruction, vname: VertexName) -> bool:
    return ins.effective_keyword == vname.keyword


def _at(stage: Stage, vname: VertexName) -> Instruction | None:
    """The instruction at position vname.index of `stage`, if the keyword agrees."""
    pos = stage.positions
    k = vname.index - 1
    hit = pos[k] if 0 <= k < len(pos) and _keyword_ok(pos[k], vname) else None
    if stage.image_base and vname.keyword != "FROM" and not (hit is not None and _same_text(hit, vname)):
        # BuildKit treats an image without layers like scratch: no FROM
        # vertex, so step i is positions[i] (M still counts the FROM).
        alt = pos[1:]
        if 0 <= k < len(alt) and _keyword_ok(alt[k], vname) and (hit is None or _same_text(alt[k], vname)):
            return alt[k]
    return hit


def _same_text(ins: Instruction, vname: VertexName) -> bool:
    """Loose text check (vertex texts have ARG/ENV values expanded)."""
    mine = " ".join(ins.text.split())
    theirs = vname.text
    if vname.onbuild and theirs.startswith("ONBUILD "):
        theirs = theirs[len("ONBUILD "):]
    if vname.is_link_merge and theirs.startswith("LINK "):
        theirs = theirs[len("LINK "):]
    theirs = " ".join(theirs.split())
    return mine.split(" ", 1)[1:] == theirs.split(" ", 1)[1:]


def locate(df: Dockerfile, vname: VertexName | None) -> Instruction | None:
    """Map a parsed vertex name to its Dockerfile instruction.

    The stage comes from the name (``AS`` name or ``stage-N``); a name without
    a stage (single-state build) means the only stage, or else the last stage
    whose step count equals ``M``.  The position ``i`` indexes
    :attr:`Stage.positions` (the FROM of an image-based stage first).  The
    keyword must agree (FROM/RUN/COPY/ADD/WORKDIR); when it does not, the
    other stages with the same ``M`` are tried.  None when nothing fits.
    """
    if df is None or vname is None or not df.stages:
        return None
    tried: set[int] = set()
    stage = None
    if vname.stage is not None:
        stage = df.stage_by_name(vname.stage)
    if stage is not None:
        tried.add(stage.index)
        hit = _at(stage, vname)
        if hit is not None:
            return hit
    elif (vname.stage is None or vname.target is None) and len(df.stages) == 1:
        # no stage in the name, or a lone word that may be a bake target
        tried.add(0)
        hit = _at(df.stages[0], vname)
        if hit is not None:
            return hit
    for st in reversed(df.stages):
        if st.index in tried or st.counted != vname.total:
            continue
        hit = _at(st, vname)
        if hit is not None:
            return hit
    return None


def locate_name(df: Dockerfile, name: str) -> Instruction | None:
    """:func:`locate` for a raw vertex name."""
    return locate(df, parse_vertex_name(name))
