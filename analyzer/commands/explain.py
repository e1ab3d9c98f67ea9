"""`cachewhy explain [REF|^N]`: explain a build cachewhy did not run, from the
builder's own build history (BuildKit's Control API, over gRPC).

The build's progress comes from its history record (the logs blob, or a
Status replay), its steps' LLB ops and Dockerfile lines from the provenance
attestation BuildKit keeps with every successful build. It is compared with
the previous build of the same Dockerfile, target and platform in the
builder's history, or with a stored record (--against). The pipeline is the
one of `cachewhy build` and `cachewhy analyze`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from analyzer.buildkit.address import parse_target
from analyzer.errors import InputError, UsageError
from analyzer.gates import Gates
from analyzer.options import (
    Parser,
    add_groups,
    builder_options,
    gate_options,
    limit_option,
    output_options,
    store_options,
    width_options,
)
from analyzer.outputs import Outputs

if TYPE_CHECKING:
    from analyzer.store import Store

SUMMARY = """\
explain [REF|^N|BUNDLE.dockerbuild|FOLDER|--since 1h] [--against REF]
      explain a build from the builder's own history or an exported bundle
      (any build, not only cachewhy's): compared with the previous build"""


def parser() -> Parser:
    p = Parser("explain", """\
cachewhy explain [OPTIONS] [REF|^N]
       cachewhy explain [OPTIONS] BUNDLE.dockerbuild [--against OTHER]
       cachewhy explain [--report-json FILE] FOLDER
       cachewhy explain --since DURATION [--report-json FILE] [--builder NAME]
       cachewhy explain --list [--builder NAME] [--limit N]""", """\
Explains a build that ran on a BuildKit builder, whoever ran it (plain
`docker buildx build`, an IDE, compose), from the builder's build history:
its steps and cache statuses, and (for a build that succeeded) its
provenance, which maps each step to its Dockerfile line and LLB op. The
first line names the build: ref, name, when, Dockerfile.

REF is a history ref (`docker buildx history ls`; the `builder/node/` prefix
may be left out, a unique prefix is enough) or ^N, the Nth newest build
(^0, the default, is the newest; the engine self-test build of
scripts/engine.sh, named cachewhy-engine-check, is skipped). It is compared
with the previous build of the same project in the whole history: same
Dockerfile name, target, build name and (in a git checkout) folders, the
same platforms first, else other platforms (then `platform-changed`); of
several, the newest whose Dockerfile shares most of its lines. A build that
stopped before its steps (a Dockerfile error) is never compared with.
BuildKit keeps no snapshot of the context files. When both builds' contexts
were git checkouts (buildx then records their revisions) and the checkout
here holds both commits, the changed files are named, read from git. When
nothing else about a step differs (instruction, LLB op, base images, build
args) and the builder's cache (DiskUsage) still holds the step's previous
result, its cache was not evicted: it is `context-changed` by elimination,
without file names (`cachewhy build`, or --repo with git, names them).
Otherwise such a step is `unknown`, naming what it could not compare.

BUNDLE.dockerbuild is what `docker buildx history export` writes and
docker/build-push-action uploads: its newest build is compared with the
previous build of the same project in it, or with OTHER's with --against.
A FOLDER of bundles (a downloaded CI artifact set) is explained build by
build, oldest first, each against the previous build of its project among
them: a paragraph each, --report-json an array. Bundles need no Docker; they
hold no view of a builder's cache.""", """\
Exit codes: 0, 4 when a gate trips, 2 for bad arguments, an unknown ref or
a file that is not a bundle, 3 when the builder cannot be reached or keeps
no build history.""", parents=[builder_options()])
    p.add_argument("--against", metavar="REF", help="compare with this stored record (id, id prefix, ^N, "
                                                    "record file) instead of the builder's previous build; "
                                                    "with a bundle: another bundle")
    add_groups(p, store_options())
    p.add_argument("--repo", metavar="DIR", help="the git checkout to read the builds' revisions from "
                                                 "(default: the one holding the current folder)")
    p.add_argument("--since", metavar="DURATION",
                   help="explain every build completed in the last DURATION (90s, 30m, 1h, 2d), oldest first, "
                        "a paragraph each; --report-json writes their reports as one JSON array")
    p.add_argument("--list", action="store_true", dest="list_records", help="list the builder's history records, newest first")
    limit_option(p, None, "with --list: the newest N (default 20)", allow_all=False)
    add_groups(p, output_options(), gate_options(), width_options())
    return p




def say_which(line: str, width: int, stream: "TextIO | None" = None) -> None:
    """The report's first line: which build it explains (on the report's stream:
    stdout, or stderr when a report format goes to stdout). What does not fit
    goes on a second line: ref, name and when first."""
    head, rest = line, ""
    while len(head) > width and ", " in head:
        head, _, last = head.rpartition(", ")
        rest = f"{last}, {rest}" if rest else last
    lines = [head] + (["  " + rest] if rest else [])
    lines = [x if len(x) <= width else x[: width - 1] + "\u2026" for x in lines]
    try:
        (stream or sys.stderr).write("\n".join(lines) + "\n")
    except BrokenPipeError:
        pass


# --------------------------------------------------------------------------
# --since


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `30m`, `1h`, `2d` (a bare number is seconds)."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:], None)
    number = raw[:-1] if unit else raw
    try:
        value = float(number)
    except ValueError:
        value = -1
    if not value > 0:
        raise UsageError(f"--since takes a duration such as 90s, 30m, 1h or 2d, not {text!r}")
    return value * (unit or 1)


def explain_recent(client: Any, records: list[Any], after: float, *, store: "Store", outputs: Outputs,
                   gates: Gates, width: int, repo: str | None) -> int:
    """Each build created after `after` (epoch seconds), oldest first: a paragraph each."""
    from analyzer.buildkit.history import is_engine_check  # noqa: PLC0415

    picked = [i for i, r in enumerate(records) if r.CreatedAt.seconds + r.CreatedAt.nanos / 1e9 >= after
              and not is_engine_check(r)]
    if not picked:
        sys.stderr.write(f"cachewhy: no build in the builder's history since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(after))}\n")
    return explain_each(client, records, picked, store=store, outputs=outputs, gates=gates, width=width,
                        repo=repo)


def explain_each(client: Any, records: list[Any], picked: list[int], *, store: "Store", outputs: Outputs,
                 gates: Gates, width: int, repo: str | None) -> int:
    """The builds at `picked` (indexes into records, newest first), oldest first:
    a paragraph each, their reports as one JSON array; the gates apply to each."""
    from analyzer.outputs import render_json, write_file  # noqa: PLC0415
    from analyzer.watching import explained  # noqa: PLC0415

    out = sys.stderr if outputs.report_json == "-" else sys.stdout  # stdout may be the JSON's
    reports, code = [], 0
    for index in reversed(picked):  # oldest first, as they ran
        text, outcome = explained(client, records, index, store=store, width=width, repo=repo)
        out.write(text + "\n\n")
        out.flush()
        if outcome is not None:
            reports.append(outcome.report)
            code = max(code, gates.apply(outcome.report, 0))
    if outputs.report_json:
        write_file(outputs.report_json, render_json(reports))  # type: ignore[arg-type]
    return code


# --------------------------------------------------------------------------
# the command


def run(argv: list[str], debug: bool) -> int:
    opts = parser().parse(argv)
    if opts is None:
        return 0
    found = opts.found()
    refs = opts.args
    if len(refs) > 1:
        raise UsageError(f"explain takes one REF, not {len(refs)}: {' '.join(refs)}")
    outputs = Outputs.from_options(found)
    gates = Gates.from_options(found)
    width = opts.report_width
    if opts.limit is not None and not opts.list_records:
        raise UsageError("--limit goes with --list")
    limit = opts.limit or 20
    if opts.list_records and refs:
        raise UsageError("--list takes no REF")
    since = parse_duration(str(found["since"])) if "since" in found else None
    if since is not None:
        if refs or opts.list_records or found.get("against"):
            raise UsageError("--since explains every recent build: it takes no REF, --list or --against")
        others = [f.option for f, _ in outputs.requested() if f.attr != "report_json"]
        if others:
            raise UsageError(f"--since gives a paragraph per build and --report-json; not {', '.join(others)}")
    if refs and (refs[0].endswith(".dockerbuild") or os.path.isdir(refs[0])):
        if found.get("list") or since is not None or found.get("builder"):
            raise UsageError("a bundle or a folder of bundles takes no --list, --since or --builder")
        return explain_bundles(refs[0], found, store_dir=opts.store, outputs=outputs, gates=gates, width=width)
    if str(found.get("against") or "").endswith(".dockerbuild"):
        raise UsageError("--against BUNDLE.dockerbuild goes with a bundle: cachewhy explain BUNDLE.dockerbuild "
                         "--against OTHER.dockerbuild")
    target = parse_target(found)

    from analyzer.buildkit.connect import Client  # noqa: PLC0415
    from analyzer.sources.history import list_records, pick  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415
    from analyzer.watching import explain_build  # noqa: PLC0415

    store = open_store(opts.store)
    with Client(target) as client:
        records = client.history()
        if opts.list_records:
            list_records(records[:limit])
            return 0
        if since is not None:
            try:
                return explain_recent(client, records, time.time() - since, store=store, outputs=outputs,
                                      gates=gates, width=width, repo=found.get("repo"))  # type: ignore[arg-type]
            except BrokenPipeError:  # `cachewhy explain --since 1d | head`: the reader went away
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        index = pick(records, refs[0] if refs else None)
        outcome = explain_build(client, records, index, store=store, against=found.get("against"),  # type: ignore[arg-type]
                                repo=found.get("repo"))  # type: ignore[arg-type]

    from analyzer.buildkit.history import headline  # noqa: PLC0415
    from analyzer.deliver import deliver  # noqa: PLC0415

    from analyzer.outputs import report_stream  # noqa: PLC0415

    out = report_stream(outputs)  # stdout, as for every command that wraps no build
    say_which(f"Build {headline(records[index])}", width, out)
    deliver(outcome, outputs, None, width, stream=out)  # a history build is the builder's, not kept in the store
    return gates.apply(outcome.report, 0)


def explain_bundles(where: str, found: dict[str, Any], *, store_dir: str | None, outputs: Outputs, gates: Gates,
                    width: int) -> int:
    """`explain BUNDLE.dockerbuild [--against OTHER.dockerbuild]`: its newest
    build, compared with the previous build of the same project in it, or with
    OTHER's; `explain FOLDER`: each build of the bundles under it, oldest first,
    against the previous build of the same project among them."""
    from analyzer.buildkit import bundle  # noqa: PLC0415
    from analyzer.buildkit.history import headline, is_engine_check  # noqa: PLC0415
    from analyzer.store import open_store  # noqa: PLC0415
    from analyzer.watching import explain_build  # noqa: PLC0415

    store = open_store(store_dir)
    repo = found.get("repo")
    against = found.get("against")
    if os.path.isdir(where):
        if against:
            raise UsageError("a folder of bundles is compared within itself: it takes no --against")
        others = [f.option for f, _ in outputs.requested() if f.attr != "report_json"]
        if others:
            raise UsageError(f"a folder of bundles gives a paragraph per build and --report-json; "
                             f"not {', '.join(others)}")
        paths = bundle.find_bundles(where)
        if not paths:
            raise InputError(f"{where}: no {bundle.SUFFIX} file in it (`docker buildx history export` writes them)")
        bundles = bundle.load(paths)
        records = bundles.history()
        picked = [i for i, r in enumerate(records) if not is_engine_check(r)]
        try:
            return explain_each(bundles, records, picked, store=store, outputs=outputs, gates=gates, width=width,
                                repo=repo)  # type: ignore[arg-type]
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if against is not None and not (str(against).endswith(bundle.SUFFIX) and os.path.isfile(str(against))):
        raise UsageError(f"--against {against}: a bundle is compared with another bundle (OTHER.dockerbuild)")
    if not os.path.isfile(where):
        raise InputError(f"{where}: no such bundle")
    bundles = bundle.load([where] + ([str(against)] if against else []))
    records = bundles.history()
    mine = [i for i, r in enumerate(records) if bundles.origin[r.Ref] == where and not is_engine_check(r)]
    if not mine:
        raise InputError(f"{where} holds only the engine's self-test build")
    index = mine[0]  # its newest build
    pool = {r.Ref for r in records if bundles.origin[r.Ref] == str(against)} if against else None
    outcome = explain_build(bundles, records, index, store=store, against=None, repo=repo,  # type: ignore[arg-type]
                            pool=pool)

    from analyzer.deliver import deliver  # noqa: PLC0415

    from analyzer.outputs import report_stream  # noqa: PLC0415

    out = report_stream(outputs)  # stdout, as for every command that wraps no build
    say_which(f"Build {headline(records[index])}", width, out)
    deliver(outcome, outputs, None, width, stream=out)  # a bundle's build is not kept in the store
    return gates.apply(outcome.report, 0)
