"""`cachewhy predict`: which steps the next build will rebuild and why, without building."""

from __future__ import annotations

import sys

from analyzer.errors import UsageError
from analyzer.gates import GATE_HELP, GATE_OPTIONS, GATE_REPEATABLE, Gates
from analyzer.options import check_width, take_options, wants_help
from analyzer.outputs import OUTPUT_HELP, OUTPUT_OPTIONS, OUTPUT_SWITCHES, Outputs

SUMMARY = """\
predict [CACHEWHY OPTIONS] [DOCKER BUILDX BUILD ARGS] PATH
      which steps `cachewhy build` with these arguments will rebuild,
      why, and about how long it will take, without building"""

USAGE = f"""\
usage: cachewhy predict [CACHEWHY OPTIONS] [DOCKER BUILDX BUILD ARGS] PATH

Compares the build these `docker buildx build` arguments describe with the
last build of the same project in the store (context, Dockerfile, target,
platforms): the Dockerfile, build args, the context files as they are now
(same .dockerignore rules as `cachewhy build`), the base images' current
digests (local image store, else the registry) and the builder's cache
records. Prints the steps that will rebuild, their root causes (the kinds
and words a build's report uses) and the time they took last time. Steps
whose rebuild cannot be told from disk (ADD <url> without --checksum, a RUN
that downloads, a remote git context) are marked "may-rebuild". Nothing is
built; the exit code is 0, or 4 when a gate trips.

cachewhy options:
{OUTPUT_HELP}{GATE_HELP}  --store DIR        where build records are kept  [CACHEWHY_STORE]
  --against REF      compare with this record (id, id prefix, ^N, file)
                     instead of the last build of the same project
  --width N          width of the report           [COLUMNS]
  -h, --help         this help
"""

_OPTIONS = {**OUTPUT_OPTIONS, **GATE_OPTIONS, "--width": "width", "--store": "store", "--against": "against"}


def run(argv: list[str], debug: bool) -> int:
    if wants_help(argv):
        sys.stdout.write(USAGE)
        return 0
    from analyzer.buildx import VALUE_FLAGS, parse_args  # noqa: PLC0415

    found, rest = take_options(argv, _OPTIONS, OUTPUT_SWITCHES, foreign_value_flags=VALUE_FLAGS,
                               repeatable=GATE_REPEATABLE)
    outputs = Outputs.from_options(found)
    gates = Gates.from_options(found)
    from analyzer.report.fit import default_width  # noqa: PLC0415

    width = default_width()
    if "width" in found:
        width = check_width(found["width"])  # the same rule as every command's --width
    args = parse_args(rest)
    if args.context is None:
        raise UsageError("no build context given (PATH, as for `docker buildx build`)")

    from analyzer.pipeline import analyse  # noqa: PLC0415
    from analyzer.sources.prediction import from_args  # noqa: PLC0415

    inp, baseline = from_args(args, store_dir=found.get("store"), against=found.get("against"))  # type: ignore[arg-type]
    outcome = analyse(inp, baseline)
    from analyzer.deliver import publish  # noqa: PLC0415

    publish(outcome.report, outputs, width, known=outcome.known_values)
    return gates.apply(outcome.report, 0)
