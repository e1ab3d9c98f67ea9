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
    import shutil  # noqa: PLC0415

    if "width" in found:
        try:
            width = int(found["width"])  # type: ignore[call-overload]
        except ValueError:
            raise UsageError(f"--width takes a number, not {found['width']!r}") from None
        if width < 20:
            raise UsageError(f"--width must be at least 20, not {width}")
        return width
    return shutil.get_terminal_size((100, 24)).columns
