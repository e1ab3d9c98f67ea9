"""cachewhy's own options, taken out of an argument list that may also hold
buildx's: everything that is not ours stays in order, untouched."""

from __future__ import annotations

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
                found.setdefault(key, [])
                found[key].append(value)  # type: ignore[union-attr]
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


def positionals(argv: list[str], rest: list[str], command: str) -> list[str]:
    """The positional arguments left by take_options; an unknown option is a usage error."""
    after = len(argv) - argv.index("--") - 1 if "--" in argv else 0
    before = rest[: len(rest) - after]
    for tok in before:
        if tok.startswith("-") and tok != "-":
            raise UsageError(f"{command}: unknown option {tok.partition('=')[0]!r} "
                             f"(try `cachewhy {command} --help`)")
    return rest


def parse_width(found: dict[str, object]) -> int:
    """--width's value, else the default width (analyzer/report/fit.py: COLUMNS, the terminal's, 80)."""
    from analyzer.report.fit import parse_width as width_of_option  # noqa: PLC0415

    return width_of_option(found.get("width"))


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
