"""The cause kinds: the one table every output reads.

A cause kind is what `cause.kind` says in a report (`explain.Cause`). Its
label is what the terminal, Markdown, HTML, DOT and annotations say; its
summary finishes "the step missed because …" (docs index, SARIF rule
descriptions); its SARIF level decides how code scanning and workflow
annotations rank it; its page is docs/causes/<name>.md. Adding a kind here
is the whole of declaring it: the gate help (`--fail-on`), the docs index
(docs/causes/generate.py) and tests/unit/test_causes.py read this table.

This module is imported by every command's `--help` (through gates.py):
keep it free of imports.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where a kind's page is read online (SARIF helpUri, Markdown and HTML links).
DOCS_URL = "https://github.com/cachewhy/cachewhy/blob/main/docs/causes/{kind}.md"


@dataclass(frozen=True)
class CauseKind:
    name: str  # `cause.kind` in the report: "context-changed"
    label: str  # what the terminal says: "context changed"
    summary: str  # one line that finishes "the step missed because …"
    sarif_level: str = "warning"  # SARIF result level: "warning" | "note"

    @property
    def doc_page(self) -> str:
        """The kind's page, relative to the repository."""
        return f"docs/causes/{self.name}.md"

    @property
    def doc_url(self) -> str:
        return DOCS_URL.format(kind=self.name)


TABLE: tuple[CauseKind, ...] = (
    CauseKind("instruction-changed", "instruction changed",
              "the step's Dockerfile text changed, or an instruction before it was added, removed or moved"),
    CauseKind("context-changed", "context changed",
              "files under the step's COPY/ADD sources or bind mounts changed (added, modified, removed, mode)"),
    CauseKind("build-arg-changed", "build-arg changed",
              "a build arg in scope changed (name shown, values only as keyed hashes)"),
    CauseKind("env-changed", "ENV changed",
              "an ENV value changed (the first RUN after it is the root: ENV makes no step)"),
    CauseKind("base-image-changed", "base image changed",
              "its FROM (or COPY --from=<image>) resolved to another image digest"),
    CauseKind("stage-changed", "upstream stage changed",
              "a cascade across stages: COPY --from=<stage> or FROM <stage> whose stage was rebuilt"),
    CauseKind("cache-evicted", "cache evicted",
              "step and inputs identical to the previous build, where it existed: the cache entry is gone"),
    CauseKind("no-cache-requested", "no cache requested",
              "--no-cache was given, or --no-cache-filter named the step's stage"),
    CauseKind("cache-import-missing", "imported cache lacked it",
              "--cache-from was given, and the imported cache did not hold the step (or could not be read)"),
    CauseKind("remote-changed", "remote source changed",
              "an ADD <url> or git source resolved to other content"),
    CauseKind("no-previous-build", "no previous build",
              "nothing to compare with: the first build of this project, or the previous build never reached "
              "the step",
              sarif_level="note"),  # nothing is wrong: there was just nothing to compare with
    CauseKind("platform-changed", "platform changed",
              "the step's platform differs from the previous build's"),
    CauseKind("unknown", "cause unknown",
              "cachewhy found no difference but lacked the data to rule one out"),
)

BY_NAME: dict[str, CauseKind] = {k.name: k for k in TABLE}

#: The kinds' names in table order (the order of the docs and the gate help).
KINDS: tuple[str, ...] = tuple(BY_NAME)


def label(kind: str) -> str:
    """What the terminal calls a kind ("context changed"); an unknown name stays as it is."""
    k = BY_NAME.get(kind)
    return k.label if k else kind


def sarif_level(kind: str) -> str:
    k = BY_NAME.get(kind)
    return k.sarif_level if k else "warning"


def annotation_level(kind: str) -> str:
    """The GitHub workflow command of a kind's annotation (`::notice`, `::warning`)."""
    return {"note": "notice", "error": "error"}.get(sarif_level(kind), "warning")


def doc_url(kind: str) -> str | None:
    """The kind's page online; None for a name that is not a kind (no link to a page that does not exist)."""
    k = BY_NAME.get(kind)
    return k.doc_url if k else None
