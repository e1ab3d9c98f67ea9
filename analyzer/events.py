"""Read the `docker buildx build --progress=rawjson` event stream.

buildx writes the stream to stderr as a sequence of JSON objects, each one a
BuildKit `SolveStatus` (moby/buildkit `client/graph.go`)::

    SolveStatus   {vertexes?, statuses?, logs?, warnings?}
    Vertex        {digest, inputs?, name?, started?, completed?, cached?,
                   error?, progressGroup?}
    VertexStatus  {id, vertex?, name?, total?, current, timestamp, started?,
                   completed?}
    VertexLog     {vertex?, stream?, data (base64), timestamp}
    VertexWarning {vertex?, level?, short? (base64), detail? ([base64]), url?,
                   sourceInfo?, range?}

Recent buildx writes one object per line; buildx 0.13 pretty-prints them over
several lines (`{` and `}` alone at column 0, the body indented). On failure
plain-text lines follow the JSON (the Dockerfile snippet and the
`ERROR: failed to build: ...` line). Both layouts, mixtures of them and any
garbage are accepted: whatever is not a well-formed object is kept as a plain
message line, and parts of an object with the wrong types are skipped and
counted. Nothing in here raises on bad input.

`EventDecoder` turns lines into objects and messages; `BuildEvents` folds the
objects of one build (a vertex digest is updated many times, the last present
value of each field wins); `read_events` and `load_file` do both for a whole
stream. Folding is meant to cost less than the standard `json.loads` alone:
lines are decoded by orjson (falling back to the standard parser for what
orjson refuses), raw fields are stored as they come, timestamps stay strings
(`parse_time` turns them into POSIX seconds when needed), and log chunks are
kept as their base64 text; only the bounded tail is ever decoded.
"""

from __future__ import annotations

import binascii
import json
import os
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import Any
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from operator import mul, sub

from analyzer.collector import paused

__all__ = [
    "DEFAULT_LOG_LIMIT",
    "MAX_MESSAGES",
    "MAX_MESSAGE_CHARS",
    "MAX_STATUS_IDS",
    "BuildEvents",
    "EventDecoder",
    "Vertex",
    "VertexLog",
    "Warning",
    "load_file",
    "parse_time",
    "read_events",
]

#: Bytes of log output kept per vertex (the last ones).
DEFAULT_LOG_LIMIT = 64 * 1024
#: Plain-text message lines kept per build.
MAX_MESSAGES = 10_000
#: Characters kept of one message line.
MAX_MESSAGE_CHARS = 4096
#: Status ids kept per vertex (the oldest is evicted beyond that).
MAX_STATUS_IDS = 200

# When the message list is full, lines are dropped from just after the first
# _MESSAGES_HEAD ones, _MESSAGES_DROP at a time: the start of the stream (cache
# import warnings) and its end (the error epilogue) are what explain a build.
_MESSAGES_HEAD = 1_000
_MESSAGES_DROP = 1_000
# Characters kept of the last `ERROR:` line (it is kept apart from `messages`).
_MAX_ERROR_CHARS = 64 * 1024

_a2b_base64 = binascii.a2b_base64
_std_loads = json.loads
try:
    from orjson import loads as _fast_loads
except ImportError:  # no wheel for this platform: the standard parser alone
    _fast_loads = json.loads  # type: ignore[assignment]
_raw_decode = json.JSONDecoder().raw_decode
_DECODE_ERRORS = (ValueError, RecursionError)  # JSONDecodeError is a ValueError (orjson's too)


def _json_loads(text: str) -> object:
    """`json.loads`, by orjson: three times faster on buildx's lines, most of
    which are base64 log data. What orjson refuses and the standard parser
    takes (NaN, a lone surrogate escape, a number beyond a double, a BOM) is
    decoded by the latter, so the same input is accepted. (orjson reads an
    integer beyond 64 bits as a float; BuildKit's integers are 64-bit.)"""
    try:
        return _fast_loads(text)
    except _DECODE_ERRORS:
        return _std_loads(text)

_B64_ERRORS = (binascii.Error, ValueError, TypeError)
_b64_chars = re.compile(r"[A-Za-z0-9+/=]*").fullmatch  # the base64 alphabet and padding


# --------------------------------------------------------------------------
# Timestamps

_TIME_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d\d):?(\d\d))?",
    re.ASCII,
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


# "YYYY-MM-DDTHH:MM:SS" -> POSIX seconds, for the form BuildKit writes (UTC,
# "Z"); the timestamps of one build share few distinct seconds.
_SECOND_CACHE: dict[str, int] = {}


#: Timestamps outside these bounds are impossible for a build that ran (year 9999, 1970):
#: they are not used for times (a build time of 4,000 million minutes helps nobody).
#: The upper bound leaves a day for clocks of other machines that run ahead.
_EARLIEST_NS = 946_684_800 * 1_000_000_000  # 2000-01-01
_LATEST_NS = (int(__import__("time").time()) + 86_400) * 1_000_000_000


def possible_ns(ns: int | None) -> int | None:
    """`ns` when a build can have happened then (2000 up to a day ahead), else None."""
    return ns if ns is None or _EARLIEST_NS <= ns <= _LATEST_NS else None


def _parse_ns(s: object) -> int | None:
    """An RFC 3339 timestamp as integer nanoseconds since the epoch, or None.

    Fraction digits beyond nanoseconds are cut off; a missing offset is UTC.
    """
    if type(s) is not str:
        return None
    # Fast path: "2026-11-28T01:46:03.17875921Z" or "2026-11-28T01:46:03Z".
    if s[-1:] == "Z":
        secs = _SECOND_CACHE.get(s[:19])
        if secs is not None:
            n = len(s)
            if n == 20:
                return secs * 1_000_000_000
            frac = s[20:-1]
            if s[19] == "." and 0 < n - 21 <= 9 and frac.isdigit() and frac.isascii():
                return secs * 1_000_000_000 + int(frac) * 10 ** (30 - n)
    ns = _parse_ns_slow(s)
    if ns is not None and s[-1:] == "Z" and s[19:20] in (".", "Z"):
        if len(_SECOND_CACHE) >= 4096:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[s[:19]] = _parse_ns_slow(s[:19] + "Z") // 1_000_000_000  # type: ignore[operator]
    return ns


def _parse_ns_slow(s: str) -> int | None:
    m = _TIME_RE.fullmatch(s.strip())
    if m is None:
        return None
    y, mo, d, h, mi, sec, frac, _z, sign, oh, om = m.groups()
    year, month, day = int(y), int(mo), int(d)
    hour, minute, second = int(h), int(mi), int(sec)
    if not 1 <= month <= 12 or day < 1 or hour > 23 or minute > 59 or second > 60:
        return None
    dim = _DAYS_IN_MONTH[month - 1]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        dim = 29
    if day > dim:
        return None
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if sign is not None:
        off_h, off_m = int(oh), int(om)
        if off_h > 23 or off_m > 59:
            return None
        off = off_h * 3600 + off_m * 60
        secs -= off if sign == "+" else -off
    ns = secs * 1_000_000_000
    if frac:
        ns += int(frac[:9].ljust(9, "0"))
    return ns


def parse_time(s: str | None) -> float | None:
    """POSIX seconds of an RFC 3339 timestamp such as BuildKit writes.

    Handles `2026-11-28T01:46:03.17875921Z`: up to nanosecond fractions (or
    none), `Z` or a `+hh:mm`/`-hh:mm` offset. Returns None for None, non-strings
    and anything that is not such a timestamp.
    """
    ns = _parse_ns(s)
    return None if ns is None else ns / 1e9


# --------------------------------------------------------------------------
# Folded records


@dataclass
class Vertex:
    """The merged state of one vertex digest after all its updates."""

    digest: str
    inputs: list[str] = field(default_factory=list)
    name: str = ""
    started: str | None = None  # raw RFC 3339 string of the last start
    completed: str | None = None
    cached: bool = False
    error: str | None = None
    progress_group: dict | None = None  # raw {"id", "name", "weak"?}
    updates: int = 0  # how many updates were folded
    first_started: str | None = None  # the earliest `started` (a vertex may restart)

    def duration_s(self) -> float | None:
        """Seconds from `started` to `completed` of the last run.

        None when either is missing or unparsable, or when `completed` is
        older than `started` (the vertex restarted and that run has not
        completed).
        """
        a = _parse_ns(self.started)
        if a is None:
            return None
        b = _parse_ns(self.completed)
        if b is None or b < a:
            return None
        return (b - a) / 1e9


def _b64_size(s: str) -> int:
    """Decoded size of padded base64 text."""
    return (len(s) >> 2) * 3 - s.count("=", -2)


_EQ = repeat("=")
_MINUS2 = repeat(-2)
_THREE = repeat(3)
_FOUR = repeat(4)


class VertexLog:
    """The output of one vertex: the last `limit` bytes, and how much there was.

    Attributes: `vertex`, `data` (bytes, the tail), `total_bytes` (all bytes
    written, including those no longer kept), `streams` (1 stdout, 2 stderr),
    `limit`. Folding only stores the base64 text of each chunk; sizes are
    counted in batches and only the chunks still within the tail are ever
    decoded, when `data` or `text()` is read.
    """

    __slots__ = ("_chunks", "_counted", "_pending", "_tail", "_total", "_uncounted", "limit", "streams", "vertex")

    def __init__(
        self,
        vertex: str,
        data: bytes = b"",
        total_bytes: int | None = None,
        streams: Iterable[int] = (),
        limit: int = DEFAULT_LOG_LIMIT,
    ) -> None:
        self.vertex = vertex
        self.limit = max(0, int(limit))
        self.streams: set[int] = set(streams)
        self._tail = b""  # decoded, at most `limit` bytes, older than _chunks
        self._chunks: list[str] = []  # base64 text not yet decoded, oldest first
        self._counted = 0  # how many of _chunks are counted in _pending/_total
        self._uncounted = 0  # base64 characters of the chunks not counted yet
        self._pending = 0  # decoded size of the counted chunks
        self._total = 0
        if data:
            self.append(data)
        if total_bytes is not None:
            self._total = total_bytes

    # -- writing --------------------------------------------------------------

    def append(self, chunk: bytes, stream: int | None = None) -> None:
        """Add decoded bytes."""
        tail = self._decode() + bytes(chunk)
        self._total += len(chunk)
        self._tail = tail[len(tail) - self.limit :] if len(tail) > self.limit else tail
        if stream is not None:
            self.streams.add(stream)

    def _account(self) -> None:
        """Count the chunks added since the last call; drop those outside the tail."""
        chunks = self._chunks
        new = chunks[self._counted :] if self._counted else chunks
        if new:
            # Every chunk's length is a multiple of 4 and '=' only pads.
            size = sum(map(len, new)) // 4 * 3 - sum(map(str.count, new, _EQ, _MINUS2))
            self._total += size
            self._pending += size
            self._counted = len(chunks)
            self._uncounted = 0
        if self._pending >= self.limit + max(4096, self.limit):
            self._trim()

    def _trim(self) -> None:
        """Forget chunks that fall wholly outside the tail (all are counted)."""
        chunks = self._chunks
        pending = self._pending
        excess = pending - self.limit
        if excess > 0 and chunks:
            # Chunk i decodes to 3*len/4 - pads bytes; dropping the first k
            # keeps `limit` bytes while 3*sum(len) - 4*sum(pads) <= 4*excess.
            # Computed in C: this runs over every chunk of a big log.
            keys = list(
                map(
                    sub,
                    map(mul, accumulate(map(len, chunks)), _THREE),
                    map(mul, accumulate(map(str.count, chunks, _EQ, _MINUS2)), _FOUR),
                )
            )
            drop = bisect_right(keys, 4 * excess)
            if drop:
                del chunks[:drop]
                self._counted -= drop
                self._pending = pending = pending - keys[drop - 1] // 4
        if pending >= self.limit:
            self._tail = b""

    def _decode(self) -> bytes:
        if self._chunks:
            self._account()
            self._trim()
            parts = [self._tail] if self._pending < self.limit else []
            for c in self._chunks:
                try:
                    parts.append(_a2b_base64(c))
                except _B64_ERRORS:  # checked for shape only when folded
                    pass
            tail = b"".join(parts)
            self._tail = tail[len(tail) - self.limit :] if len(tail) > self.limit else tail
            self._chunks = []
            self._counted = 0
            self._pending = 0
        return self._tail

    # -- reading --------------------------------------------------------------

    @property
    def data(self) -> bytes:
        """The last (at most `limit`) bytes written."""
        return self._decode()

    @property
    def total_bytes(self) -> int:
        """All bytes written, including those no longer kept."""
        if len(self._chunks) > self._counted:
            self._account()
        return self._total

    @total_bytes.setter
    def total_bytes(self, value: int) -> None:
        self._account()
        self._total = value

    @property
    def truncated(self) -> bool:
        """True when earlier output was dropped."""
        return self.total_bytes > len(self.data)

    def text(self) -> str:
        """The kept bytes as UTF-8, undecodable bytes replaced."""
        return self._decode().decode("utf-8", errors="replace")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VertexLog):
            return NotImplemented
        return (
            self.vertex == other.vertex
            and self.data == other.data
            and self.total_bytes == other.total_bytes
            and self.streams == other.streams
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"VertexLog(vertex={self.vertex!r}, data=<{len(self.data)} bytes>, "
            f"total_bytes={self.total_bytes}, streams={sorted(self.streams)!r})"
        )


@dataclass
class Warning:
    """A build warning (BuildKit build checks and the like), decoded."""

    vertex: str | None
    level: int
    short: str
    detail: list[str] = field(default_factory=list)
    url: str | None = None
    filename: str | None = None  # sourceInfo.filename, e.g. "Dockerfile"
    ranges: list[tuple[int, int]] = field(default_factory=list)  # 1-based (start, end) lines


# --------------------------------------------------------------------------
# Lines -> objects


def _b64_text(value: object) -> str | None:
    """Base64 → text (undecodable bytes replaced), or None when `value` is not base64."""
    if type(value) is not str or len(value) & 3 or _b64_chars(value) is None:
        return None
    try:
        return _a2b_base64(value).decode("utf-8", errors="replace")
    except _B64_ERRORS:
        return None


def _split_objects(s: str) -> list[object] | None:
    """Objects written back to back on one line (`{..}{..}`), with any text
    after the last one as a trailing message; None when `s` does not start
    with a complete object."""
    out: list[object] = []
    idx, n = 0, len(s)
    while True:
        while idx < n and s[idx] in " \t\r\n":
            idx += 1
        if idx >= n or s[idx] != "{":
            break
        try:
            obj, idx = _raw_decode(s, idx)
        except _DECODE_ERRORS:
            break
        out.append(obj)
    if not out:
        return None
    rest = s[idx:]
    if rest.strip():
        out.append(rest)
    return out


class EventDecoder:
    """Incremental: feed text lines (with or without trailing newline) as they arrive.

    `feed_line` returns the items completed by that line: a dict for each
    JSON object, a str for each plain-text line (line terminator removed;
    blank lines are dropped). A pretty-printed object is collected from its
    `{` line to its `}` line; if anything else at column 0 interrupts it, or
    it does not parse, its lines come out as plain text.
    """

    #: An unterminated pretty-printed object longer than this is given up.
    max_pending_chars = 256 * 1024 * 1024

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._pending_chars = 0

    @property
    def pending(self) -> bool:
        """True while inside a pretty-printed object."""
        return bool(self._pending)

    def feed_line(self, line: str) -> list[object]:
        if type(line) is not str:
            if isinstance(line, (bytes, bytearray)):
                line = bytes(line).decode("utf-8", errors="replace")
            else:
                line = str(line)
        line = line.removesuffix("\n")
        line = line.removesuffix("\r")
        if "\n" in line:
            # Several lines at once: a whole object, or split them up.
            if not self._pending and line[:1] == "{":
                try:
                    obj = _json_loads(line)
                except _DECODE_ERRORS:
                    pass
                else:
                    return [obj]
            out: list[object] = []
            for part in line.split("\n"):
                out.extend(self._feed(part.removesuffix("\r")))
            return out
        return self._feed(line)

    def close(self) -> list[object]:
        """Flush: an unterminated multi-line object becomes message lines."""
        return self._flush()

    def _flush(self) -> list[object]:
        lines = self._pending
        self._pending = []
        self._pending_chars = 0
        return [ln for ln in lines if ln.strip()]

    def _feed(self, line: str) -> list[object]:
        if self._pending:
            return self._feed_pending(line)
        return self._feed_plain(line)

    def _feed_plain(self, line: str) -> list[object]:
        stripped = line.strip()
        if not stripped:
            return []
        if stripped[0] != "{":
            return [line]
        try:
            obj = _json_loads(line)
        except _DECODE_ERRORS:
            pass
        else:
            return [obj]
        if stripped == "{" and line[0] == "{":
            self._pending = [line]
            self._pending_chars = len(line)
            return []
        split = _split_objects(line)
        return split if split is not None else [line]

    def _feed_pending(self, line: str) -> list[object]:
        first = line[:1]
        if first == "}" and line.rstrip() == "}":
            self._pending.append(line)
            text = "\n".join(self._pending)
            try:
                obj = _json_loads(text)
            except _DECODE_ERRORS:
                return self._flush()
            self._pending = []
            self._pending_chars = 0
            return [obj]
        if first in (" ", "\t") or not line:
            self._pending.append(line)
            self._pending_chars += len(line) + 1
            if self._pending_chars > self.max_pending_chars:
                return self._flush()
            return []
        # Something at column 0 that is not the closing brace: the object was
        # cut short. Its lines are text; this line starts afresh.
        return self._flush() + self._feed_plain(line)


# --------------------------------------------------------------------------
# Objects -> build state


class BuildEvents:
    """Accumulates everything of one build."""

    def __init__(self, log_limit: int = DEFAULT_LOG_LIMIT) -> None:
        self.vertices: dict[str, Vertex] = {}  # insertion order = first seen
        self.logs: dict[str, VertexLog] = {}
        self.warnings: list[Warning] = []
        self.statuses: dict[str, dict[str, dict]] = {}  # vertex -> id -> last raw status
        self.messages: list[str] = []  # plain-text lines, in order
        self.messages_dropped = 0
        self.statuses_dropped = 0
        self.objects = 0  # JSON objects folded
        self.skipped = 0  # malformed parts skipped
        self.long_lines = 0  # lines dropped for their length (Lines)
        self.log_limit = max(0, int(log_limit))
        self._error: str | None = None
        self._decoder = EventDecoder()

    # -- input ----------------------------------------------------------------

    def feed_line(self, line: str) -> list[str]:
        """Decode one line of the stream and fold it; returns changed digests."""
        changed: list[str] = []
        for item in self._decoder.feed_line(line):
            self._take(item, changed)
        return changed

    def close(self) -> list[str]:
        """End of stream: an unfinished multi-line object becomes messages."""
        changed: list[str] = []
        for item in self._decoder.close():
            self._take(item, changed)
        return changed

    def _take(self, item: object, changed: list[str] | None) -> None:
        if type(item) is dict:
            self._fold(item, changed)
        elif type(item) is str:
            self.add_message(item)
        else:  # a JSON value that is not an object
            self.skipped += 1

    def apply(self, status: dict) -> list[str]:
        """Fold one SolveStatus; returns the digests whose vertex changed
        (those in its `vertexes`, first-seen order, once each)."""
        changed: list[str] = []
        if type(status) is dict:
            self._fold(status, changed)
        else:
            self.skipped += 1
        return changed

    def add_message(self, line: str) -> None:
        """Keep one plain-text line (bounded; blank lines are dropped)."""
        if type(line) is not str:
            line = (
                bytes(line).decode("utf-8", errors="replace")
                if isinstance(line, (bytes, bytearray))
                else str(line)
            )
        line = line.rstrip("\r\n")
        if not line.strip():
            return
        if line.lstrip().startswith("ERROR:"):
            self._error = line[:_MAX_ERROR_CHARS].strip()
        if len(line) > MAX_MESSAGE_CHARS:
            line = line[:MAX_MESSAGE_CHARS]
        msgs = self.messages
        msgs.append(line)
        if len(msgs) > MAX_MESSAGES:
            head = min(_MESSAGES_HEAD, MAX_MESSAGES - 1)
            drop = max(1, min(_MESSAGES_DROP, len(msgs) - head - 1))
            del msgs[head : head + drop]
            self.messages_dropped += drop

    # -- output ---------------------------------------------------------------

    def error_message(self) -> str | None:
        """The last plain-text line starting with `ERROR:` (in full), else None."""
        return self._error

    # -- folding --------------------------------------------------------------

    def _fold(self, status: dict, changed: list[str] | None) -> None:
        # The hot path of a big stream: most objects are one log chunk or one
        # status. Both are handled inline here; keep them cheap.
        self.objects += 1
        for key, value in status.items():
            if key == "logs":
                if type(value) is not list:
                    if value is not None:
                        self.skipped += 1
                    continue
                add_log = self._add_log
                for e in value:
                    if type(e) is dict:
                        add_log(e.get("vertex", ""), e.get("data"), e.get("stream"))
                    else:
                        self.skipped += 1
            elif key == "statuses":
                if type(value) is not list:
                    if value is not None:
                        self.skipped += 1
                    continue
                statuses = self.statuses
                for st in value:
                    if type(st) is not dict:
                        self.skipped += 1
                        continue
                    sid = st.get("id")
                    vx = st.get("vertex", "")
                    if type(sid) is not str or type(vx) is not str:
                        self.skipped += 1
                        continue
                    per = statuses.get(vx)
                    if per is None:
                        per = statuses[vx] = {}
                    elif len(per) >= MAX_STATUS_IDS and sid not in per:
                        del per[next(iter(per))]
                        self.statuses_dropped += 1
                    # The raw dict: id, name, current, total, timestamp, started, completed.
                    per[sid] = st
            elif key == "vertexes" and value is not None:
                self._fold_vertexes(value, changed)
            elif key == "warnings" and value is not None:
                self._fold_warnings(value)
            # anything else: a field of a newer buildx, ignored

    def _add_log(self, vx: object, data: object, stream: object) -> None:
        """One VertexLog entry, `data` as sent: base64 text.

        Only its shape is checked here (ASCII, a multiple of 4 long); it is
        decoded when read, leniently (characters outside the alphabet are
        ignored, a chunk that still fails is dropped).
        """
        if type(data) is not str or len(data) & 3 or not data.isascii() or type(vx) is not str:
            self.skipped += 1
            return
        lg = self.logs.get(vx)
        if lg is None:
            lg = self.logs[vx] = VertexLog(vx, limit=self.log_limit)
        # Store the text as it is; VertexLog counts and trims in batches, and
        # decodes only what is still in the tail when it is read.
        if len(data) > lg.limit:
            # Longer than the whole tail: kept as base64, it would stay whole while it
            # straddles the tail (most of a 2,000-step build's output). Cut it now.
            try:
                lg.append(_a2b_base64(data))
            except _B64_ERRORS:
                pass
        else:
            chunks = lg._chunks
            chunks.append(data)
            # Counted (and trimmed to the tail) every 64 chunks, or as soon as the
            # uncounted ones could decode to more than the tail: a step's output
            # is held at most about twice over, whatever the size of its chunks.
            lg._uncounted += len(data)
            if len(chunks) - lg._counted >= 64 or lg._uncounted * 3 > lg.limit * 4 + 16384:
                lg._account()
        if type(stream) is int:
            if stream not in lg.streams:
                lg.streams.add(stream)
        elif stream is not None:
            self.skipped += 1

    def _fold_vertexes(self, items: object, changed: list[str] | None) -> None:
        if type(items) is not list:
            self.skipped += 1
            return
        vertices = self.vertices
        for vd in items:
            if type(vd) is not dict:
                self.skipped += 1
                continue
            digest = vd.get("digest")
            if type(digest) is not str or not digest:
                self.skipped += 1
                continue
            v = vertices.get(digest)
            if v is None:
                v = vertices[digest] = Vertex(digest)
            v.updates += 1
            x = vd.get("inputs")
            if x is not None and x != v.inputs:
                if type(x) is list and all(type(i) is str for i in x):
                    v.inputs = x
                else:
                    self.skipped += 1
            x = vd.get("name")
            if x is not None:
                if type(x) is str:
                    v.name = x
                else:
                    self.skipped += 1
            x = vd.get("started")
            if x is not None and x != v.started:
                if type(x) is str:
                    v.started = x
                    fs = v.first_started
                    if fs is None:
                        v.first_started = x
                    else:
                        a, b = _parse_ns(x), _parse_ns(fs)
                        if a is not None and (b is None or a < b):
                            v.first_started = x
                else:
                    self.skipped += 1
            x = vd.get("completed")
            if x is not None:
                if type(x) is str:
                    v.completed = x
                else:
                    self.skipped += 1
            x = vd.get("cached")
            if x is not None:
                if type(x) is bool:
                    v.cached = x
                else:
                    self.skipped += 1
            x = vd.get("error")
            if x is not None:
                if type(x) is str:
                    v.error = x or None
                else:
                    self.skipped += 1
            x = vd.get("progressGroup")
            if x is not None:
                if type(x) is dict:
                    v.progress_group = x
                else:
                    self.skipped += 1
            if changed is not None and digest not in changed:
                changed.append(digest)

    def _fold_warnings(self, items: object) -> None:
        if type(items) is not list:
            self.skipped += 1
            return
        for w in items:
            if type(w) is not dict:
                self.skipped += 1
                continue
            warning = self._warning(w)
            if warning is not None:
                self.warnings.append(warning)

    def _warning(self, w: dict) -> Warning | None:
        vx = w.get("vertex")
        if vx is not None and type(vx) is not str:
            self.skipped += 1
            return None
        level = w.get("level")
        if level is None:
            level = 0
        elif type(level) is not int:
            self.skipped += 1
            level = 0
        short = ""
        x = w.get("short")
        if x is not None:
            text = _b64_text(x)
            if text is None:
                self.skipped += 1
            else:
                short = text
        detail: list[str] = []
        x = w.get("detail")
        if x is not None:
            if type(x) is list:
                for d in x:
                    text = _b64_text(d)
                    if text is None:
                        self.skipped += 1
                    else:
                        detail.append(text)
            else:
                self.skipped += 1
        url = w.get("url")
        if url is not None and type(url) is not str:
            self.skipped += 1
            url = None
        filename = None
        si = w.get("sourceInfo")
        if type(si) is dict:
            fn = si.get("filename")
            if type(fn) is str:
                filename = fn
        elif si is not None:
            self.skipped += 1
        ranges: list[tuple[int, int]] = []
        rs = w.get("range")
        if type(rs) is list:
            for r in rs:
                rng = _range_lines(r)
                if rng is None:
                    self.skipped += 1
                else:
                    ranges.append(rng)
        elif rs is not None:
            self.skipped += 1
        return Warning(
            vertex=vx or None, level=level, short=short, detail=detail,
            url=url or None, filename=filename, ranges=ranges,
        )


def _line_of(pos: object) -> int | None:
    """`line` of a pb.Position (0 when omitted), or None when malformed."""
    if pos is None:
        return 0
    if type(pos) is not dict:
        return None
    line = pos.get("line", 0)
    return line if type(line) is int else None


def _range_lines(r: object) -> tuple[int, int] | None:
    if type(r) is not dict:
        return None
    start = _line_of(r.get("start"))
    end = _line_of(r.get("end"))
    if start is None or end is None:
        return None
    if end == 0 and "end" not in r:
        end = start
    return (start, end)


# --------------------------------------------------------------------------
# Whole streams


@paused
def read_events(lines: Iterable[str], log_limit: int = DEFAULT_LOG_LIMIT) -> BuildEvents:
    """Decode and fold a whole stream (lines of a file, of stdin, of a pipe)."""
    ev = BuildEvents(log_limit=log_limit)
    dec = ev._decoder
    fold = ev._fold
    take = ev._take
    fast_loads, std_loads = _fast_loads, _std_loads  # _json_loads, inlined: this loop is per line
    pending = False
    for line in lines:
        # Fast path: a one-line object (the parsers ignore the line terminator).
        if not pending and type(line) is str and line[:1] == "{":
            try:
                obj = fast_loads(line)
            except _DECODE_ERRORS:
                try:
                    obj = std_loads(line)
                except _DECODE_ERRORS:
                    obj = None
            if obj is not None:
                fold(obj, None)
                continue
        for item in dec.feed_line(line):
            take(item, None)
        pending = dec.pending
    for item in dec.close():
        take(item, None)
    return ev


#: The longest line kept: BuildKit writes a step's output in chunks, so a rawjson line
#: is far shorter; a longer one is dropped (and counted) without being held whole.
MAX_LINE_BYTES = 64 * 1024 * 1024
#: Bytes of over-long lines dropped before the input is refused: /dev/zero has no
#: line break at all, and reading it to its end would never end.
MAX_DROPPED_BYTES = 256 * 1024 * 1024
_CHUNK = 1 << 20


class NotALog(ValueError):
    """The input cannot be a log: too much of it without a line break."""


class Lines:
    """The lines of a binary stream, "\n" kept, decoded as UTF-8 (errors replaced),
    in bounded memory: a line over MAX_LINE_BYTES is dropped as it streams by and
    counted in `dropped`; past MAX_DROPPED_BYTES of such lines, NotALog."""

    def __init__(self, stream: Any, max_line: int = MAX_LINE_BYTES, max_dropped: int = MAX_DROPPED_BYTES) -> None:
        self.stream = stream
        self.max_line = max_line
        self.max_dropped = max_dropped
        self.dropped = 0  # lines dropped for their length
        self.dropped_bytes = 0

    def __iter__(self) -> Iterator[str]:
        read = self.stream.read
        buf = b""
        skipping = False  # inside an over-long line: drop up to its end
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            if skipping:
                k = chunk.find(b"\n")
                if k < 0:
                    self._drop(len(chunk))
                    continue
                self._drop(k + 1)
                chunk, skipping = chunk[k + 1:], False
            buf += chunk
            k = buf.rfind(b"\n")
            if k >= 0:
                parts = buf[: k + 1].decode("utf-8", "replace").split("\n")
                buf = buf[k + 1:]
                for part in parts[:-1]:
                    if len(part) > self.max_line:  # a whole over-long line in one read
                        self.dropped += 1
                        self._drop(len(part))
                        continue
                    yield part + "\n"
            if len(buf) > self.max_line:
                self.dropped += 1
                self._drop(len(buf))
                buf, skipping = b"", True
        if buf and not skipping:
            yield buf.decode("utf-8", "replace")  # at most max_line bytes: checked above

    def _drop(self, n: int) -> None:
        self.dropped_bytes += n
        if self.dropped_bytes > self.max_dropped:
            raise NotALog(f"more than {self.max_dropped // (1024 * 1024)} MiB in lines of over "
                          f"{self.max_line // (1024 * 1024)} MiB")


def read_stream(stream: Any, log_limit: int = DEFAULT_LOG_LIMIT) -> BuildEvents:
    """Read a rawjson stream from a binary file object, in bounded memory (Lines)."""
    lines = Lines(stream)
    ev = read_events(lines, log_limit=log_limit)
    ev.long_lines = lines.dropped
    return ev


def load_file(path: str | os.PathLike[str], log_limit: int = DEFAULT_LOG_LIMIT) -> BuildEvents:
    """Read a saved rawjson stream (buildx's stderr) line by line, in bounded memory."""
    with open(path, "rb") as f:
        return read_stream(f, log_limit=log_limit)
