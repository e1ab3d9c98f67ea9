"""Notes: what a report says besides its causes, as data.

A note is about one thing (`about`) and is of one kind (`kind`); code picks
notes by those two fields, never by their wording, so a message can be
reworded without changing what cachewhy does. Reports and records keep the
text only (the v1 JSON is a list of strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# --- about: what a note speaks of ------------------------------------------
#: how the build's own input was read: which Dockerfile maps its steps, a log cut short
SOURCE = "source"
#: what the builder's history record said as it was read (before any baseline was chosen)
HISTORY = "history"
#: the choice of the build compared with (store, --previous, --against, --baseline, --cache-from)
BASELINE = "baseline"
#: the provenance: missing, or unreadable
PROVENANCE = "provenance"
#: the events themselves: a stream cut short, inputs never seen, the builder gone
EVENTS = "events"
#: the comparison of the two builds (hash keys, snapshots)
COMPARISON = "comparison"
#: the context files (snapshots, git revisions)
CONTEXT = "context"
#: the builder's cache now (evidence for cache-evicted)
CACHE = "cache"
#: the record itself (kept without a report)
RECORD = "record"

# --- kinds: what a note says ------------------------------------------------
DOCKERFILE_DIFFERS = "dockerfile-differs"  # the provenance's Dockerfile is not the one given
LINES_BORROWED = "lines-borrowed"  # steps mapped to the lines of another build's Dockerfile
LINES_FROM_ERROR = "lines-from-error"  # a failed build's steps mapped to its error's Dockerfile
NO_LINES = "no-lines"  # neither provenance nor Dockerfile: no line numbers
CUT_SHORT = "cut-short"  # the log ends mid-build
NO_PROVENANCE = "no-provenance"
PROVENANCE_UNREADABLE = "provenance-unreadable"
EVENTS_STOP = "events-stop"  # vertices still running when the events end
MISSING_INPUTS = "missing-inputs"
BUILDER_LOST = "builder-lost"  # buildx failed while steps ran: the builder went away or buildx stopped
READ_PROBLEM = "read-problem"  # part of a history record could not be read
NO_BASELINE = "no-baseline"
BASELINE_CHOSEN = "baseline-chosen"
BASELINE_REFUSED = "baseline-refused"
PREVIOUS_NO_PROVENANCE = "previous-no-provenance"
DIFFERENT_PROJECTS = "different-projects"
HASH_KEY = "hash-key"
SNAPSHOT = "snapshot"
GIT = "git"
EVICTION_EVIDENCE = "eviction-evidence"
CACHE_UNKNOWN = "cache-unknown"  # the builder's cache could not be inspected
STEPLESS_PASSED = "stepless-passed"  # newer builds that stopped before any step, passed over
NO_REPORT = "no-report"
LONG_LINES = "long-lines"  # log lines over the length cap, dropped
BAD_TIMES = "bad-times"  # impossible timestamps in the events, not used
STORE_FAULT = "store-fault"  # the record store cannot keep this build's record
NO_TIME = "no-time"  # a prediction's new steps: no time known from the last build
HASH_KEY_REPLACED = "hash-key-replaced"  # a damaged hash.key was replaced
RECORD_SKIPPED = "record-skipped"  # a record that cannot be compared was passed over
OTHER = "other"


@dataclass(frozen=True)
class Note:
    kind: str
    about: str
    text: str

    def __str__(self) -> str:
        return self.text

    def __contains__(self, words: str) -> bool:  # for readers (and tests) looking for words in the text
        return words in self.text


def texts(notes: Iterable[Note | str]) -> list[str]:
    """The notes as a report keeps them: their text, in order."""
    return [n.text if isinstance(n, Note) else n for n in notes]


def as_note(item: Note | str, about: str, kind: str = OTHER) -> Note:
    """A note, from a Note or from text whose maker gave it no kind."""
    return item if isinstance(item, Note) else Note(kind, about, item)
