"""Live progress while buildx runs, on stderr.

On a terminal: a small block redrawn in place (running steps with their
elapsed time, and a count line). Elsewhere (CI logs): one line per Dockerfile
step as it finishes. Steps are shown with the Dockerfile's own text, never
the vertex name, which carries expanded build-arg values.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from analyzer import console
from analyzer import dockerfile as dfmod
from analyzer.report import fit
from analyzer.events import BuildEvents, Vertex, parse_time
from analyzer.graph import Status, vertex_status

_REDRAW_EVERY_S = 0.12
_MAX_RUNNING_SHOWN = 5


class Progress:
    def __init__(self, mode: str, dockerfile: dfmod.Dockerfile | None, stream: TextIO | None = None,
                 width: int = 100) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "tty" if self.stream.isatty() else "plain"
        self.mode = mode
        self.dockerfile = dockerfile
        self.width = width
        self._labels: dict[str, str | None] = {}
        self._done: set[str] = set()
        self._drawn = 0
        self._last_draw = 0.0
        self._t0 = time.time()
        self._events: BuildEvents | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- labels ---------------------------------------------------------
    def label(self, v: Vertex) -> str | None:
        """`Dockerfile:7 COPY . /app`, or None for vertices that are not steps."""
        if v.digest in self._labels:
            return self._labels[v.digest]
        vname = dfmod.parse_vertex_name(v.name)
        text = None
        if vname is not None and vname.keyword != "FROM":
            ins = dfmod.locate(self.dockerfile, vname) if self.dockerfile is not None else None
            if ins is not None:
                text = f"{ins.line:>3} {ins.text}"
            else:
                stage = f"{vname.stage} " if vname.stage else ""
                text = f"[{stage}{vname.index}/{vname.total}] {vname.keyword}"
        if text is not None:
            text = console.neutralise(text)  # before it is cut to the width
        self._labels[v.digest] = text
        return text

    # -- events ---------------------------------------------------------
    def message(self, line: str) -> None:
        """A plain-text line from buildx (warnings, the error epilogue): always
        shown as is, whatever the progress mode, as buildx would show it."""
        with self._lock:
            self._clear()
            self._write(line if line.endswith("\n") else line + "\n")

    def update(self, events: BuildEvents, changed: list[str]) -> None:
        if self.mode == "none":
            return
        if self.mode == "plain":
            for d in changed:
                self._plain_line(events.vertices[d])
            return
        self._events = events
        if self._ticker is None:
            # a long step sends no events: redraw its elapsed time anyway
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        now = time.time()
        if now - self._last_draw >= _REDRAW_EVERY_S:
            with self._lock:
                self._draw(events, now)

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._events is not None and time.time() - self._last_draw >= 0.5:
                    self._draw(self._events, time.time())

    def finish(self, events: BuildEvents) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self.mode == "tty":
            with self._lock:
                self._clear()

    # -- plain ------------------------------------------------------------
    def _plain_line(self, v: Vertex) -> None:
        if v.digest in self._done:
            return
        status = vertex_status(v)
        if status in (Status.RUNNING, Status.SKIPPED):
            return
        label = self.label(v)
        if label is None:
            return
        self._done.add(v.digest)
        dur = v.duration_s()
        took = f"{dur:6.1f}s" if dur is not None and status is not Status.CACHED else " " * 7
        self._write(fit.cut(f"cachewhy: {status.value:<8} {took} {label}", self.width) + "\n")

    # -- terminal -----------------------------------------------------------
    def _draw(self, events: BuildEvents, now: float) -> None:
        running: list[tuple[float, str]] = []
        counts = {Status.CACHED: 0, Status.REBUILT: 0, Status.FAILED: 0}
        for v in list(events.vertices.values()):  # a snapshot: the reader thread adds vertices
            label = self.label(v)
            if label is None:
                continue
            status = vertex_status(v)
            if status in counts:
                counts[status] += 1
            elif status is Status.RUNNING:
                started = parse_time(v.started) or now
                running.append((started, label))
        running.sort()
        lines = [fit.cut(f"  \u25b8 {now - t:6.1f}s {label}", self.width) for t, label in running[:_MAX_RUNNING_SHOWN]]
        if len(running) > _MAX_RUNNING_SHOWN:
            lines.append(f"    \u2026 and {len(running) - _MAX_RUNNING_SHOWN} more running")
        lines.append(fit.cut(
            f"cachewhy: {counts[Status.CACHED]} cached, {counts[Status.REBUILT]} rebuilt, "
            f"{len(running)} running"
            + (f", {counts[Status.FAILED]} failed" if counts[Status.FAILED] else "")
            + f"  {now - self._t0:.1f}s", self.width))
        self._clear()
        self._write("\n".join(lines) + "\n")
        self._drawn = len(lines)
        self._last_draw = now

    def _clear(self) -> None:
        if self._drawn:
            # cursor up over the block, then clear to the end of the screen
            self._write(f"\x1b[{self._drawn}F\x1b[J", trusted=True)
            self._drawn = 0

    def _write(self, text: str, trusted: bool = False) -> None:
        """Write, and keep going if the reader went away: the build must go on.
        Through the console's writer: only our own redraw is `trusted`."""
        try:
            console.write(self.stream, text, trusted=trusted)
            self.stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.mode = "none"
