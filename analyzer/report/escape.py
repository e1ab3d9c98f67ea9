"""Escaping of build text, one function per output format.

Everything a report shows that came from the build (instruction text, file
names, stage names, details, errors) may hold any character: a Dockerfile is
the author's, a file name is anybody's. Every format escapes such text here,
and only here, so each format has one place to get right:

- `md`: Markdown (GitHub, GitLab), safe in a table cell and in running text
- `html`: HTML text and attribute values
- `dot_str`: a DOT quoted string (a label, a tooltip, an identifier)
- `workflow_data`, `workflow_prop`: GitHub Actions workflow commands
- SARIF is JSON: json.dumps escapes it; `one_line` and `clean` still apply

Text the formats write themselves (headings, numbers, kind names) needs none.
"""

from __future__ import annotations

import html as _html
import re

# C0 and C1 control characters but tab and newline: never useful in a report,
# invalid in XML/SVG, and a terminal or a log viewer may act on them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
# bidirectional controls and line/paragraph separators: they reorder or split what a
# reader sees (a file name `a\u202etxt.exe`); shown as text, as the terminal shows them
BIDI = re.compile("[\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: object) -> str:
    """`text` as a string without control characters (\\r included; \\n and tabs kept)."""
    s = "" if text is None else str(text)
    s = _CONTROL.sub("", s.replace("\r\n", "\n").replace("\r", "\n"))
    return BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", s) if BIDI.search(s) else s


def one_line(text: object) -> str:
    """Whitespace runs, newlines included, as one space."""
    return _SPACE.sub(" ", clean(text)).strip()


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "\u2026"


# --- Markdown ---------------------------------------------------------------

# Inline Markdown syntax of CommonMark and GitHub/GitLab flavours: code spans,
# emphasis, strikethrough, links and images, math, table cell separators, and
# the backslash itself. Any ASCII punctuation may be backslash-escaped, so
# this leaves the text exactly as it was once rendered.
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~$])")


def md(text: object) -> str:
    """Build text for Markdown, on one line: safe in a table cell, a list item or a heading.

    Markdown syntax is backslash-escaped, `&`, `<` and `>` become entities
    (no raw HTML, no autolinks), newlines become spaces (a newline would end a
    table row).
    """
    s = one_line(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_PUNCT.sub(r"\\\1", s)


def md_code(text: object) -> str:
    """Build text shown as code in Markdown: `<code>` with escaped content.

    A backtick code span cannot hold a table cell's `|` safely on every
    renderer; `<code>` around escaped text can, and renders the same.
    """
    s = md(text)
    return f"<code>{s}</code>" if s else ""


# --- HTML --------------------------------------------------------------------

def html(text: object) -> str:
    """Build text for HTML content or a quoted attribute value: `& < > " '` as entities."""
    return _html.escape(clean(text), quote=True)


# --- DOT (Graphviz) ------------------------------------------------------------

def dot_str(text: object) -> str:
    """Build text as a DOT quoted string, quotes included, for any label, tooltip or id.

    Inside quotes only `"` and the backslash are special to the DOT grammar;
    Graphviz then reads backslash escapes (\\n, \\l, \\N, \\G…) and entities
    (`&amp;`) in labels. So: backslashes doubled, quotes escaped, `&`, `<`, `>`
    as entities (they reach SVG and HTML maps as text, never as markup), and
    newlines as Graphviz's own `\\n` line break.
    """
    s = clean(text)
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("\t", " ").replace("\n", "\\n")
    return f'"{s}"'


# --- GitHub Actions workflow commands ------------------------------------------

def workflow_data(text: object) -> str:
    """The message part of `::warning …::MESSAGE`: `%`, CR and LF percent-encoded.

    With its newlines encoded, the message can never start a line of its own,
    so nothing in it (`::error::`, `::add-mask::`…) is read as a command.
    """
    s = "" if text is None else str(text)
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_prop(text: object) -> str:
    """A property value of a workflow command (`file=`, `title=`): also `:` and `,`."""
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")
