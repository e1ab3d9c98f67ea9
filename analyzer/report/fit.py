"""Every terminal line within the width: measured as a terminal shows it,
wrapped or cut with `…`, never beyond.

The one place that knows how wide a line is on screen (our colour escapes
take no room, East Asian wide characters take two columns, combining marks
none) and how to make text fit: `cut` keeps the start, `cut_middle` keeps
the start and the end (an error's meaningful end: `"/nothere.txt": not
found`), `wrap` breaks prose at spaces with a hanging indent, `join_wrapped`
breaks a footer between its parts, and `block` is the last guarantee every
renderer applies to what it returns.
"""

from __future__ import annotations

import os
import re
import unicodedata

ELLIPSIS = "\u2026"
#: the width when neither --width, COLUMNS nor a terminal says: one 80-column screen
DEFAULT_WIDTH = 80
MIN_WIDTH = 40  # as analyzer/options.py checks --width: narrower, no report line fits

_SGR = re.compile(r"\x1b\[[0-9;]*m")


def default_width() -> int:
    """COLUMNS, else the terminal's width (stdout's, else stderr's), else 80."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(MIN_WIDTH, int(env))
    for fd in (1, 2):
        try:
            if os.isatty(fd):
                return max(MIN_WIDTH, os.get_terminal_size(fd).columns)
        except OSError:
            continue
    return DEFAULT_WIDTH


def _char_width(c: str) -> int:
    if unicodedata.combining(c) or c in "\u200b\u200d":
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def width_of(text: str) -> int:
    """Columns `text` takes on a terminal (one line; colour escapes take none)."""
    plain = _SGR.sub("", text)
    if plain.isascii():
        return len(plain)
    return sum(_char_width(c) for c in plain)


def _take(text: str, columns: int) -> tuple[str, bool]:
    """The longest start of `text` within `columns` (escapes kept), and whether it is cut."""
    out: list[str] = []
    used, i, coloured = 0, 0, False
    while i < len(text):
        m = _SGR.match(text, i)
        if m:
            out.append(m.group())
            coloured = True
            i = m.end()
            continue
        w = _char_width(text[i])
        if used + w > columns:
            return "".join(out) + ("\x1b[0m" if coloured else ""), True
        out.append(text[i])
        used += w
        i += 1
    return "".join(out), False


def cut(text: str, width: int) -> str:
    """`text` as it is when it fits, else its start and `…`, `width` columns in all."""
    if width_of(text) <= width:
        return text
    head, _ = _take(text, max(0, width - 1))
    return head + ELLIPSIS


def cut_middle(text: str, width: int) -> str:
    """`text` when it fits, else its start, `…` and as much of its end as fits:
    the end of an error message is the part that says what went wrong."""
    if width_of(text) <= width:
        return text
    plain = _SGR.sub("", text)
    room = max(0, width - 1)
    tail_room = min(room, max(room * 2 // 3, room - 20))
    tail: list[str] = []
    used = 0
    for c in reversed(plain):
        w = _char_width(c)
        if used + w > tail_room:
            break
        tail.append(c)
        used += w
    head, _ = _take(plain, room - used)
    return head + ELLIPSIS + "".join(reversed(tail))


def wrap(text: str, width: int, indent: str = "", hang: str | None = None) -> list[str]:
    """`text` in lines of at most `width` columns, broken at spaces: the first
    line starts with `indent`, the others with `hang` (default: `indent`). A
    word longer than a line is broken where it must be."""
    hang = indent if hang is None else hang
    words = text.split()
    lines: list[str] = []
    line = indent
    fresh = True  # nothing but the indent on `line` yet
    for word in words:
        sep = "" if fresh else " "
        if width_of(line) + len(sep) + width_of(word) <= width:
            line += sep + word
            fresh = False
            continue
        if not fresh:
            lines.append(line)
            line, fresh = hang, True
        while width_of(line) + width_of(word) > width:  # a word longer than a line
            room = max(1, width - width_of(line))
            piece, _ = _take(word, room)
            if not piece:
                break
            lines.append(line + piece)
            word = word[len(piece):]
            line = hang
        line += word
        fresh = not word
    if not fresh or not lines:
        lines.append(line)
    return [cut(x, width) for x in lines]


def wrap_end(text: str, width: int, indent: str, hang: str, max_lines: int) -> list[str]:
    """`wrap`, in at most `max_lines` lines: what does not fit is taken out of
    the middle (`…`), so the end stays."""
    lines = wrap(text, width, indent, hang)
    if len(lines) <= max_lines:
        return lines
    budget = (width - width_of(hang)) * max_lines - (width_of(indent) - width_of(hang))
    short = text
    while len(lines) > max_lines and budget > 10:
        short = cut_middle(text, budget)
        lines = wrap(short, width, indent, hang)
        budget -= 8  # a word that moved to the next line costs its room
    return lines[:max_lines]


def join_wrapped(parts: list[str], sep: str, width: int, hang: str = "") -> list[str]:
    """Parts joined by `sep` on as few lines as fit; a line breaks between parts."""
    lines: list[str] = []
    line = ""
    for part in parts:
        if not line:
            line = (hang if lines else "") + part
        elif width_of(line + sep + part) <= width:
            line += sep + part
        else:
            lines.append(line)
            line = hang + part
    if line or not lines:
        lines.append(line)
    return [cut(x, width) for x in lines]


def block(text: str, width: int) -> str:
    """Every line of `text` within `width`: the guarantee every terminal
    renderer gives last (lines made to fit before pass unchanged)."""
    return "\n".join(cut(line, width) for line in text.split("\n"))
