"""Declared options (analyzer/options.py): the same validation everywhere, one
line and exit 2; declared parsers keep every option their help names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analyzer import causes, options
from analyzer.errors import UsageError
from analyzer.outputs import FORMATS
from tests.conftest import REPO

# every command that takes --width or --limit, with what else it needs to get as far as parsing
WIDTH = [["build", "."], ["predict", "."], ["analyze", "x.log"], ["diff", "a", "b"], ["show"], ["explain"],
         ["watch"], ["history"]]
LIMIT = [["history"], ["advise"], ["trends"], ["explain", "--list"]]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/nonexistent", "HOME": "/nonexistent", "CACHEWHY_LIVE": "none"})


@pytest.mark.parametrize("argv", WIDTH, ids=lambda a: a[0])
@pytest.mark.parametrize("width", ["39", "-5", "wide"])
def test_every_width_below_40_is_refused_the_same_way(argv, width):
    res = _run(argv[0], "--width", width, *argv[1:])
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("cachewhy: --width "), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


@pytest.mark.parametrize("argv", LIMIT, ids=lambda a: " ".join(a))
@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_every_limit_below_1_is_refused_the_same_way(argv, limit):
    res = _run(*argv, "--limit", limit)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("cachewhy: --limit takes a number >= 1"), res.stderr


@pytest.mark.parametrize("command", ["build", "predict", "analyze", "diff", "show", "history", "advise", "trends",
                                     "explain", "watch"])
def test_the_lists_above_are_every_command_that_takes_the_option(command):
    help_text = _run(command, "--help").stdout
    assert ("--width N" in help_text) == any(a[0] == command for a in WIDTH), command
    assert ("--limit N" in help_text) == any(a[0] == command for a in LIMIT), command


def test_the_checks():
    assert options.check_width("40") == 40 and options.check_width(120) == 120
    with pytest.raises(UsageError, match="at least 40"):
        options.check_width("39")
    assert options.check_count("all", "--limit", allow_all=True) is None
    assert options.check_count("3", "--top") == 3
    with pytest.raises(UsageError, match="--top takes a number >= 1, not 'all'"):
        options.check_count("all", "--top")


def _parser() -> options.Parser:
    p = options.Parser("demo", "cachewhy demo [OPTIONS] X", "A demo.",
                       parents=[options.store_options(), options.output_options(), options.gate_options(),
                                options.width_options(), options.builder_options()])
    options.limit_option(p, 20, "the newest N")
    return p


def test_a_declared_parser_gives_typed_options():
    opts = _parser().parse(["--store", "s", "--fail-on", "unknown", "--fail-on=cache-evicted", "--report-json", "-",
                            "--width", "80", "x", "--", "-y"])
    assert opts is not None
    assert (opts.store, opts.width, opts.limit, opts.args) == ("s", 80, 20, ["x", "-y"])
    assert opts.fail_on == ["unknown", "cache-evicted"]
    found = opts.found()
    assert found["report_json"] == "-" and "report_md" not in found


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "demo: unknown option '--bogus'"),
    (["--stor", "s"], "demo: unknown option '--stor'"),  # no abbreviations: a typo is not another option
    (["--store"], "demo: argument --store: expected one argument"),
])
def test_a_declared_parser_fails_in_one_line(argv, message):
    with pytest.raises(UsageError) as info:
        _parser().parse(argv)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_help_names_every_format_and_cause_kind(capsys):
    assert _parser().parse(["--help"]) is None
    text = capsys.readouterr().out
    assert text.startswith("usage: cachewhy demo [OPTIONS] X\n")
    for f in FORMATS:
        assert f"{f.option} FILE" in text
    flat = " ".join(text.split())
    assert ", ".join(causes.KINDS) in flat
    assert max(len(line) for line in text.splitlines()) <= 80
