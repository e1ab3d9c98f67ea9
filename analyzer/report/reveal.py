"""`--show-values`: the values behind the short keyed hashes of a report.

A report (like the record it comes from) names a build-arg or ENV value only
by its hash (`h:` and 12 hex digits). With `--show-values` each hash whose
value this run knows in clear (record.known_values: the current build's own
values) is shown as `"value" (h:…)` in every output of this run. The stored
record and its stored report are never revealed: a previous build's values
stay hashes.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

from analyzer.model import Report

_HASH = re.compile(r"h:[0-9a-f]{12}(?![0-9a-f])")
_REDACTED = " (value redacted)"


def reveal(report: Report, values: dict[str, str]) -> Report:
    """A copy of `report` with every known hash shown with its value."""
    if not values:
        return report

    def sub(m: re.Match) -> str:
        value = values.get(m.group(0))
        return m.group(0) if value is None else f"{json.dumps(value, ensure_ascii=False)} ({m.group(0)})"

    def walk(x: Any) -> Any:
        if isinstance(x, str):
            if "h:" not in x:
                return x
            y = _HASH.sub(sub, x)
            return y.replace(_REDACTED, "") if y != x else x
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return cast(Report, walk(report))  # the same keys, values shown
