"""Where a report goes besides the terminal: files and stdout, one option per format.

Every format renders the report dict (report/model.py) to a string; this
module only knows the options and writes the strings, atomically.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import CachewhyError

# option -> attribute of Outputs
OUTPUT_OPTIONS = {
    "--report-json": "report_json",
}

OUTPUT_HELP = """\
  --report-json FILE write the JSON report (cachewhy.report/v1) to FILE,
                     `-` for stdout
"""


@dataclass
class Outputs:
    report_json: str | None = None

    @classmethod
    def from_options(cls, found: dict[str, object]) -> "Outputs":
        return cls(**{k: v for k, v in found.items() if k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def write_outputs(report: dict, outputs: Outputs) -> None:
    if outputs.report_json:
        write_file(outputs.report_json, json.dumps(report, indent=2, sort_keys=True) + "\n")


def write_file(dest: str, data: str) -> None:
    """Write `data` to `dest` (`-`: stdout) by a rename, so a reader never sees half a file."""
    if dest == "-":
        sys.stdout.write(data)
        sys.stdout.flush()
        return
    path = Path(dest)
    tmp = path.with_name(f".{path.name}.cachewhy-tmp")
    try:
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CachewhyError(f"cannot write {dest}: {exc.strerror or exc}") from None
