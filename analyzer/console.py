"""The one writer of every terminal line: nothing that came from a build drives a terminal or a CI runner.

File names, instruction texts, stage names, errors and stored paths may hold
any character: a file named `\\x1b]8;;…` or `::add-mask::x` is anybody's to
make. cli.py puts a `Writer` in front of stdout and stderr for the whole run,
so every line cachewhy writes (reports, notes, errors, progress, tracebacks)
passes here:

- control characters (C0, C1, DEL) and so every escape sequence become visible
  text (`\\x1b`); bidirectional controls (U+202E…) and line/paragraph
  separators become `\\u202e`: they could reorder or split what a reader sees.
  Only cachewhy's own colours and the live view's redraw pass, and only in a
  `trusted` write (the text renderers neutralise what they show first).
- under GitHub Actions (GITHUB_ACTIONS=true) no line can start, after
  whitespace, with `::` or `##[`, which the runner would read as a workflow
  command; such a line gets a `\\` in front. cachewhy's own annotations are
  written with `command=True`.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, TextIO

# C0 but tab and newline, DEL, C1; bidi embeddings, overrides, isolates and marks;
# the line and paragraph separators (a new line to some viewers, not to others)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# what a trusted write may carry: SGR colours, and the live view's "cursor up N lines, clear below"
_OWN_ESCAPES = re.compile(r"\x1b\[[0-9;]{0,16}m|\x1b\[[0-9]{1,4}F\x1b\[J")
_COMMAND_STARTS = ("::", "##[")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def neutralise(text: object) -> str:
    """`text` with every control character and bidi control as visible text (`\\x1b`, `\\u202e`)."""
    s = "" if text is None else str(text)
    return _UNSAFE.sub(_visible, s)


def neutralise_tree(obj: Any) -> Any:
    """A copy of a JSON-like value (a report) with every string neutralised."""
    if isinstance(obj, str):
        return neutralise(obj) if _UNSAFE.search(obj) else obj
    if isinstance(obj, dict):
        return {neutralise_tree(k): neutralise_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [neutralise_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(neutralise_tree(v) for v in obj)
    return obj


def _trusted(text: str) -> str:
    """cachewhy's own escape sequences kept, anything else neutralised."""
    out, pos = [], 0
    for m in _OWN_ESCAPES.finditer(text):
        out.append(neutralise(text[pos:m.start()]))
        out.append(m.group())
        pos = m.end()
    out.append(neutralise(text[pos:]))
    return "".join(out)


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _could_start_command(head: str) -> bool:
    return any(c.startswith(head) for c in _COMMAND_STARTS)


class Writer:
    """A text stream that neutralises what it is given (see the module docstring)."""

    def __init__(self, stream: TextIO, guard_commands: bool | None = None) -> None:
        self.stream = stream
        self.guard = in_github_actions() if guard_commands is None else guard_commands
        self._head = ""  # the start of the current line while it could still become a command
        self._bol = True  # nothing but whitespace written on the current line yet

    # the rest of the stream's interface (isatty, fileno, encoding, buffer…) is the stream's
    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def write(self, text: str, *, trusted: bool = False, command: bool = False) -> int:
        s = _trusted(text) if trusted else neutralise(text)
        if command or not self.guard:
            if self._head:
                s, self._head = self._head + s, ""
            self.stream.write(s)
            self._bol = s.endswith("\n") if s else self._bol
            return len(text)
        self.stream.write(self._guarded(s))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _guarded(self, s: str) -> str:
        out: list[str] = []
        pieces = s.split("\n")
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if self._bol:
                head = self._head + piece
                self._head = ""
                rest = head.lstrip()
                if last and (not rest or (len(rest) < 3 and _could_start_command(rest))):
                    self._head = head  # undecided: wait for the rest of the line
                    continue
                out.append(_escape_command(head))
                self._bol = not rest
            else:
                out.append(piece)
            if not last:
                out.append("\n")
                self._bol = True
        return "".join(out)

    def flush(self) -> None:
        if self._head:
            rest = self._head.lstrip()
            if rest:  # a lone ":" or "#" at the end: escaped, the next write could complete it
                self.stream.write(self._head[: len(self._head) - len(rest)] + "\\" + rest)
                self._head, self._bol = "", False
        self.stream.flush()


def _escape_command(line: str) -> str:
    rest = line.lstrip()
    if rest.startswith(_COMMAND_STARTS):
        return line[: len(line) - len(rest)] + "\\" + rest
    return line


def write(stream: TextIO, text: str, *, trusted: bool = False, command: bool = False) -> None:
    """Write through `stream`'s Writer, or through a Writer made for this write."""
    if isinstance(stream, Writer):
        stream.write(text, trusted=trusted, command=command)
    else:
        w = Writer(stream)
        w.write(text, trusted=trusted, command=command)
        w.flush()


class installed:
    """`with installed():` stdout and stderr go through Writers, restored at the end."""

    def __enter__(self) -> "installed":
        self.saved = (sys.stdout, sys.stderr)
        if not isinstance(sys.stdout, Writer) and sys.stdout is not None:
            sys.stdout = Writer(sys.stdout)  # type: ignore[assignment]
        if not isinstance(sys.stderr, Writer) and sys.stderr is not None:
            sys.stderr = Writer(sys.stderr)  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        for w in (sys.stdout, sys.stderr):
            if isinstance(w, Writer):
                try:
                    w.flush()
                except (OSError, ValueError):
                    pass
        sys.stdout, sys.stderr = self.saved
