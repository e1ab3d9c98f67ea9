"""CI gates: turn a cache regression into a non-zero exit code.

Shared by `build`, `analyze`, `show` and `diff`. A gate reads the finished
report (report/model.py), never the build itself:

* `--fail-below-hit-ratio R` trips when the hit ratio (cached / (cached +
  rebuilt) Dockerfile steps) is below R. R is 0..1 or a percentage (`80%`).
  A build in which no cacheable step ran has no hit ratio: the gate does not
  trip.
* `--fail-on CAUSE[,CAUSE…]` (repeatable) trips when a root miss has one of
  these cause kinds (its main cause or one listed under `also`), or a cascade
  does for the kinds only cascades carry (`stage-changed`), or a cascade
  step's own further cause does.

Gates come after the build's own result: a failed build keeps its exit code
(the tripped gates are still printed); otherwise a tripped gate exits
`GATE_EXIT`. This module is imported by every command's `--help`: keep it light.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field

from analyzer.causes import KINDS
from analyzer.errors import UsageError
from analyzer.model import Report, ReportMiss

#: Exit code of a build (or analysis) that a gate failed.
GATE_EXIT = 4

# option -> attribute, for analyzer.options.take_options
GATE_OPTIONS = {
    "--fail-below-hit-ratio": "fail_below_hit_ratio",
    "--fail-on": "fail_on",
    "--fail-above-time": "fail_above_time",
}
GATE_REPEATABLE = frozenset({"--fail-on"})


def _help() -> str:
    """The gates' lines of a command's --help; the kinds come from the cause-kind table."""
    kinds = textwrap.wrap("exit 4 when a root cause is of one of these kinds (repeatable): " + ", ".join(KINDS) + ",",
                          width=56, break_on_hyphens=False)
    kinds[-1] = kinds[-1][:-1]
    return ("  --fail-below-hit-ratio R\n"
            "                     exit 4 when the cache hit ratio is below R (0..1, or a\n"
            "                     percentage such as 80%)\n"
            "  --fail-on CAUSE[,CAUSE...]\n"
            + "".join(f"{'':21}{line}\n" for line in kinds)
            + "  --fail-above-time T\n"
              "                     exit 4 when the rebuilt steps take (a prediction:\n"
              "                     will take) more than T (seconds, or 90s, 5m, 1h)\n")


GATE_HELP = _help()


@dataclass
class Gates:
    min_hit_ratio: float | None = None
    fail_on: list[str] = field(default_factory=list)
    max_time_s: float | None = None  # --fail-above-time: a budget for the rebuilt steps' time

    @property
    def active(self) -> bool:
        return self.min_hit_ratio is not None or bool(self.fail_on) or self.max_time_s is not None

    @classmethod
    def from_options(cls, found: dict[str, object]) -> "Gates":
        gates = cls()
        raw = found.get("fail_below_hit_ratio")
        if raw is not None:
            gates.min_hit_ratio = parse_ratio(str(raw))
        budget = found.get("fail_above_time")
        if budget is not None:
            gates.max_time_s = parse_duration(str(budget))
        given = found.get("fail_on") or []
        values: list[object] = [given] if isinstance(given, str) else list(given)  # type: ignore[call-overload]
        kinds: list[str] = []
        for value in values:
            for kind in str(value).split(","):
                kind = kind.strip()
                if not kind:
                    continue
                if kind not in KINDS:
                    raise UsageError(f"--fail-on: unknown cause {kind!r}; valid causes: {', '.join(KINDS)}")
                if kind not in kinds:
                    kinds.append(kind)
        if values and not kinds:
            raise UsageError(f"--fail-on needs a cause; valid causes: {', '.join(KINDS)}")
        gates.fail_on = kinds
        return gates

    def check(self, report: Report) -> list[str]:
        """One line per tripped gate (without the `cachewhy: gate:` prefix)."""
        out: list[str] = []
        if self.min_hit_ratio is not None:
            ratio = (report.get("summary") or {}).get("hit_ratio")
            if ratio is not None and ratio < self.min_hit_ratio:
                got, want = _percentages(ratio, self.min_hit_ratio)
                out.append(f"hit ratio {got} below {want}")
        if self.fail_on:
            out.extend(_cause_hits(report, set(self.fail_on)))
        if self.max_time_s is not None:
            took = (report.get("summary") or {}).get("rebuilt_time_s") or 0.0
            if took > self.max_time_s:
                verb = "will take" if report.get("prediction") is not None else "took"
                out.append(f"the rebuilt steps {verb} {took:.1f}s, above the budget of {self.max_time_s:g}s")
        return out

    def apply(self, report: Report | None, returncode: int, stream=None) -> int:  # type: ignore[no-untyped-def]
        """Print the tripped gates; the exit code: `returncode` when non-zero
        (the build's own failure wins), else GATE_EXIT when a gate tripped.

        `report` None (the analysis failed) with gates asked for: the gates
        cannot be checked, which fails them (a CI gate must not pass unseen)."""
        if not self.active:
            return returncode
        stream = stream or sys.stderr
        if report is None:
            lines = ["not checked: the build could not be analysed"]
        else:
            lines = self.check(report)
        for line in lines:
            stream.write(f"cachewhy: gate: {line}\n")
        stream.flush()
        if returncode != 0:
            return returncode
        return GATE_EXIT if lines else 0


def parse_ratio(text: str) -> float:
    """`0.8`, `.8`, `80%` -> 0.8; anything else outside 0..1 is a usage error."""
    t = text.strip()
    try:
        if t.endswith("%"):
            value = float(t[:-1]) / 100.0
        else:
            value = float(t)
            if value > 1.0:
                raise UsageError(f"--fail-below-hit-ratio takes a ratio from 0 to 1 or a percentage "
                                 f"(e.g. 0.8 or 80%), not {text!r}")
    except ValueError:
        raise UsageError(f"--fail-below-hit-ratio takes a ratio from 0 to 1 or a percentage "
                         f"(e.g. 0.8 or 80%), not {text!r}") from None
    if not 0.0 <= value <= 1.0:  # NaN too: every comparison with it is false
        raise UsageError(f"--fail-below-hit-ratio must be between 0 and 1 (0% and 100%), not {text!r}")
    return value


def parse_duration(text: str) -> float:
    """`300`, `90s`, `5m`, `1h`, `1.5m` -> seconds; anything else is a usage error."""
    t = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(t[-1:], None)
    number = t[:-1] if scale is not None else t
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        value = float("nan")
    if not value >= 0.0 or value == float("inf"):  # NaN fails this too
        raise UsageError(f"--fail-above-time takes a duration such as 300, 90s, 5m or 1h, not {text!r}")
    return value


def _percentages(got: float, want: float) -> tuple[str, str]:
    """Both as percentages, with as many decimals as it takes to tell them apart."""
    for decimals in range(5):
        a, b = f"{got * 100:.{decimals}f}", f"{want * 100:.{decimals}f}"
        if a != b:
            break
    return f"{a}%", f"{b}%"


def _where(report: Report, miss: ReportMiss) -> str:
    name = ((report.get("build") or {}).get("dockerfile") or "Dockerfile").rsplit("/", 1)[-1]
    if name in ("", "-"):
        name = "Dockerfile"
    line = miss.get("line")
    return f"{name}:{line}" if line else f"{name} ({(miss.get('instruction') or miss.get('id') or '?')[:40]})"


def _cause_hits(report: Report, kinds: set[str]) -> list[str]:
    out: list[str] = []
    for miss in report.get("misses") or []:
        cause = miss.get("cause") or {}
        also = [c.get("kind") for c in miss.get("also") or []]
        where = _where(report, miss)
        if miss.get("root"):
            if cause.get("kind") in kinds:
                out.append(f"root cause {cause['kind']} at {where}")
            for kind in also:
                if kind in kinds and kind != cause.get("kind"):
                    out.append(f"root cause {kind} at {where} (besides {cause.get('kind')})")
        else:
            # a cascade inherits its root's kind (already counted at the root),
            # but stage-changed and the step's own further causes are its own
            if cause.get("kind") == "stage-changed" and "stage-changed" in kinds:
                out.append(f"cause stage-changed at {where}")
            for kind in also:
                if kind in kinds:
                    out.append(f"cause {kind} at {where} (a cascade step)")
    seen: set[str] = set()
    return [x for x in out if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]
