"""cachewhy's options. `build` takes its own out of an argument list that also
holds buildx's (take_options: everything that is not ours stays in order,
untouched); every other command declares its options with argparse (Parser,
and the parent parsers of the shared groups below). Both validate values
with the same check_* functions."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from analyzer.errors import UsageError


def take_options(argv: list[str], spec: dict[str, str], switches: dict[str, str] | None = None,
                 foreign_value_flags: frozenset[str] | set[str] = frozenset(),
                 repeatable: frozenset[str] | set[str] = frozenset()) -> tuple[dict[str, object], list[str]]:
    """Split argv into our options and the rest.

    `spec` maps option names taking a value to attribute names, `switches`
    those taking none. A value of a foreign flag (e.g. buildx's `-t NAME`) is
    never read as ours. `--` ends our options; what follows is left as is.
    Options named in `repeatable` collect a list.
    """
    switches = switches or {}
    found: dict[str, object] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            rest.extend(argv[i + 1:])
            break
        name, eq, value = tok.partition("=")
        if name in spec:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value = argv[i + 1]
                i += 1
            key = spec[name]
            if name in repeatable:
                values = found.setdefault(key, [])
                assert isinstance(values, list)
                values.append(value)
            else:
                found[key] = value
            i += 1
            continue
        if name in switches and not eq:
            found[switches[name]] = True
            i += 1
            continue
        rest.append(tok)
        if name in foreign_value_flags and not eq and i + 1 < len(argv):
            rest.append(argv[i + 1])
            i += 1
        i += 1
    return found, rest


def wants_help(argv: list[str]) -> bool:
    head = argv[: argv.index("--")] if "--" in argv else argv
    return any(a in ("-h", "--help") for a in head)


def _one_edit(a: str, b: str) -> bool:
    """Are a and b one insertion, deletion, substitution or swap of neighbours apart?"""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k, (x, y) in enumerate(zip(short, long_)) if x != y), len(short))
    return short[i:] == long_[i + 1:]


def check_typos(argv: list[str], own: set[str] | frozenset[str], own_value: set[str] | frozenset[str],
                foreign: set[str] | frozenset[str], foreign_value: set[str] | frozenset[str]) -> None:
    """Refuse a long option that neither we nor the wrapped command know and
    that is one edit away from one of ours: meant for us, it would otherwise
    reach buildx and come back as its usage text. Options the wrapped command
    knows (`foreign`) pass, whatever they look like; so does everything after `--`."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return
        name, eq, _ = tok.partition("=")
        if name in own_value or name in foreign_value:
            i += 1 if eq else 2
            continue
        if tok.startswith("--") and name not in own and name not in foreign:
            near = sorted(o for o in own if _one_edit(name, o))
            if near:
                raise UsageError(f"unknown option {name} (did you mean {' or '.join(near)}?)")
        i += 1


# --- declared options: the commands that pass nothing through to buildx ---------
#
# Each such command declares its options with argparse: its own, plus the
# shared groups of the parent parsers below (store, width, outputs, gates,
# builder). Parsing gives an Options (a typed namespace, as pipdeptree does);
# errors are one line and exit 2 (UsageError), never argparse's usage dump.
# `build` keeps take_options (its arguments are buildx's) but validates its own
# values with the same check_* functions.

MIN_WIDTH = 40  # narrower than this, no report line fits


def check_width(raw: object, option: str = "--width") -> int:
    """A report width: a whole number of at least MIN_WIDTH columns."""
    try:
        width = int(str(raw))
    except ValueError:
        raise UsageError(f"{option} takes a number of columns (at least {MIN_WIDTH}), not {raw!r}") from None
    if width < MIN_WIDTH:
        raise UsageError(f"{option} must be at least {MIN_WIDTH} columns, not {width}")
    return width


def check_count(raw: object, option: str, allow_all: bool = False) -> int | None:
    """A count of at least 1 (`--limit`, `--top`); `all` (when allowed) is None: no limit."""
    text = str(raw)
    if allow_all and text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"{option} takes a number >= 1{' or `all`' if allow_all else ''}, not {text!r}")
    return n


def default_width() -> int:
    """The width when --width is not given: COLUMNS, else the terminal's, else 80 (analyzer/report/fit.py)."""
    from analyzer.report.fit import default_width as fitting  # noqa: PLC0415

    return fitting()


class Options(argparse.Namespace):
    """Every declared option of every command, typed; a command's parser sets
    the ones it declares (the others keep these class defaults)."""

    # store group
    store: str | None = None
    # width group
    width: int | None = None
    # outputs group: one attribute per outputs.FORMATS entry, and --show-values
    show_values: bool = False
    # gates group
    fail_below_hit_ratio: str | None = None
    fail_on: list[str] | None = None
    fail_above_time: str | None = None
    # builder group
    builder: str | None = None
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    tlsservername: str | None = None
    # counts and switches several commands share
    limit: int | None = None
    json: bool = False
    # each command's own (analyze, diff, advise, explain)
    metadata: str | None = None
    dockerfile: str | None = None
    context: str | None = None
    previous: str | None = None
    previous_metadata: str | None = None
    no_record: bool = False
    metadata_a: str | None = None
    metadata_b: str | None = None
    dockerfile_a: str | None = None
    dockerfile_b: str | None = None
    project: str | None = None
    top: int | None = None
    verify: bool = False
    rule: str | None = None
    keep: str | None = None
    against: str | None = None
    repo: str | None = None
    since: str | None = None
    list_records: bool = False  # explain --list
    projects: list[str] | None = None  # trends --project (repeatable)
    per: str | None = None
    markdown: bool = False
    html: str | None = None  # --html FILE (an output format, or the trends page)
    # positional arguments
    args: list[str]

    def found(self) -> dict[str, object]:
        """The options given, as the from_options constructors (Outputs, Gates, parse_target) read them."""
        return {k: v for k, v in vars(self).items() if v is not None and v is not False}

    @property
    def report_width(self) -> int:
        return self.width if self.width is not None else default_width()


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help on 80 columns, option names in a column of 20 (the commands' old help layout)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=21, width=79)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)  # cause kinds stay whole


class Parser(argparse.ArgumentParser):
    """argparse whose errors are a UsageError: one line, exit 2."""

    def __init__(self, command: str, usage: str, description: str, epilog: str = "",
                 parents: Sequence[argparse.ArgumentParser] = ()) -> None:
        super().__init__(prog=f"cachewhy {command}", usage=usage, description=description, epilog=epilog,
                         parents=list(parents), formatter_class=_Formatter, allow_abbrev=False, add_help=False)
        self.command = command
        self.add_argument("-h", "--help", action="store_true", help="this help")

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise UsageError(f"{self.command}: {message} (try `cachewhy {self.command} --help`)")

    def parse(self, argv: list[str], positional: str | None = None, most: int | None = None,
              least: int = 0) -> Options | None:
        """The options of argv, or None when it asks for help (the help is printed).
        Arguments that are not options are Options.args: at least `least`, at most
        `most` of them (`positional` names them in the error)."""
        if wants_help(argv):
            sys.stdout.write(self.format_help())
            sys.stdout.flush()
            return None
        # parsed into a plain namespace: argparse applies no default to an attribute the namespace has
        parsed, rest = self.parse_known_args(argv)
        opts = Options(**vars(parsed))
        cut = rest.index("--") if "--" in rest else len(rest)  # after `--`, nothing is an option
        for tok in rest[:cut]:
            if tok.startswith("-") and tok != "-":
                raise UsageError(f"{self.command}: unknown option {tok.partition('=')[0]!r} "
                                 f"(try `cachewhy {self.command} --help`)")
        rest = rest[:cut] + rest[cut + 1:]
        if (most is not None and len(rest) > most) or len(rest) < least:
            if positional is None:
                raise UsageError(f"{self.command}: unexpected argument {rest[0]!r} "
                                 f"(try `cachewhy {self.command} --help`)")
            raise UsageError(f"{self.command} takes {positional} (try `cachewhy {self.command} --help`)")
        opts.args = rest
        return opts


def _group() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False, allow_abbrev=False)


def store_options() -> argparse.ArgumentParser:
    p = _group()
    p.add_argument("--store", metavar="DIR", help="where build records are kept  [CACHEWHY_STORE]")
    return p


def width_options() -> argparse.ArgumentParser:
    p = _group()
    # a check_* function as the argparse type: its UsageError passes argparse by, as the one-line error
    p.add_argument("--width", metavar="N", type=check_width,
                   help=f"width of the report (at least {MIN_WIDTH})  [COLUMNS]")
    return p


def limit_option(p: argparse.ArgumentParser, default: int | None, what: str, allow_all: bool = True) -> None:
    p.add_argument("--limit", metavar="N|all" if allow_all else "N", default=default,
                   type=lambda raw: check_count(raw, "--limit", allow_all=allow_all), help=what)


def output_options() -> argparse.ArgumentParser:
    from analyzer.outputs import FORMATS  # noqa: PLC0415

    p = _group()
    last = len(FORMATS) - 1
    for i, f in enumerate(FORMATS):
        p.add_argument(f.option, metavar="FILE", dest=f.attr,
                       help=f"write {f.help}" + (" (FILE `-` writes to stdout)" if i == last else ""))
    p.add_argument("--show-values", action="store_true",
                   help="show build-arg and ENV values in this run's reports (default: a short keyed hash); "
                        "only the current build's values are known, never stored ones")
    return p


def gate_options() -> argparse.ArgumentParser:
    from analyzer.causes import KINDS  # noqa: PLC0415

    p = _group()
    p.add_argument("--fail-below-hit-ratio", metavar="R",
                   help="exit 4 when the cache hit ratio is below R (0..1, or a percentage such as 80%%)")
    p.add_argument("--fail-on", metavar="CAUSE[,CAUSE...]", action="append",
                   help="exit 4 when a root cause is of one of these kinds (repeatable): " + ", ".join(KINDS))
    p.add_argument("--fail-above-time", metavar="T",
                   help="exit 4 when the rebuilt steps take (a prediction: will take) more than T "
                        "(seconds, or 90s, 5m, 1h)")
    return p


def builder_options() -> argparse.ArgumentParser:
    p = _group()
    p.add_argument("--builder", metavar="NAME",
                   help="the buildx builder (default: the current one), a buildkitd address "
                        "(unix:///path.sock, tcp://host:port), or docker:// (the docker engine's BuildKit, "
                        "at DOCKER_HOST or docker://unix:///var/run/docker.sock)")
    p.add_argument("--tlscacert", metavar="FILE", help="with tcp://: the CA certificate to verify buildkitd by")
    p.add_argument("--tlscert", metavar="FILE", help="with tcp://: a client certificate (and --tlskey FILE)")
    p.add_argument("--tlskey", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--tlsservername", metavar="N", help="with tcp://: the name buildkitd's certificate holds")
    return p


def add_groups(parser: argparse.ArgumentParser, *groups: argparse.ArgumentParser) -> None:
    """The shared groups' options after a command's own (what parents= does, at the end of the help)."""
    for group in groups:
        parser._add_container_actions(group)  # noqa: SLF001 - argparse's own way to take a parent's actions
