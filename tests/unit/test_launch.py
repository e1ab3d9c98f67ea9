"""analyzer/launch.py: `cachewhy build` starts buildx before importing the rest of cachewhy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer import buildx, launch
from analyzer.cli import main
from analyzer.commands import build
from analyzer.errors import UsageError
from analyzer.outputs import OUTPUT_SWITCHES
from tests.conftest import PROJECTS, RAWJSON

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` that records its arguments and writes a captured rawjson log to stderr."""
    calls = tmp_path / "calls.jsonl"
    script = tmp_path / "docker.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.stderr.write(open({str(RAWJSON / 'multistage-warm.jsonl')!r}).read())\n"
    )
    monkeypatch.setenv("CACHEWHY_DOCKER", f"{sys.executable} {script}")
    monkeypatch.delenv("BUILDX_METADATA_PROVENANCE", raising=False)
    return calls


def _calls(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_option_names_are_builds() -> None:
    # a name missing in launch.py would only cost the early start; keep them in step
    assert set(launch.OWN_OPTIONS) == set(build._OPTIONS)
    assert set(launch.OWN_SWITCHES) == set(OUTPUT_SWITCHES)
    assert launch.VALUE_FLAGS is buildx.VALUE_FLAGS


@pytest.mark.parametrize("argv", [
    ["-t", "x", "."],
    ["--progress", "plain", "-t", "x", "."],
    ["--progress=tty", "--metadata-file", "m.json", "."],
    ["--metadata-file=m.json", "--build-arg", "A=--progress", "."],
    ["-f", "-", ".", "--", "--progress", "x"],
    ["--live", "plain", "--report-json", "r.json", "--fail-on", "cache-evicted", "--no-cache", "ctx"],
    ["-t", "--live", "."],  # the value of buildx's -t, not cachewhy's option
    ["--show-values", "--store=s", "--width", "80", "--baseline", "b.json", "."],
    ["--progress"],
])
def test_the_early_command_is_the_one_build_runs(argv: list[str], fake_docker: Path) -> None:
    launch.start(argv)
    opts = build.parse_options(argv)
    args = buildx.parse_args(opts.buildx_argv)
    got = launch.take(args.argv, args.metadata_file)
    assert got is not None
    assert got.wait() == 0
    meta = [] if args.metadata_file else ["--metadata-file", os.path.join(got.workdir, "metadata.json")]
    assert _calls(fake_docker) == [["buildx", "build", "--progress=rawjson", *meta, *args.argv]]
    assert got.own_metadata == (args.metadata_file is None)
    launch.remove_workdir(got.workdir)


def test_another_command_is_stopped_and_not_used(fake_docker: Path) -> None:
    launch.start(["-t", "x", "."])
    got = launch._started
    assert got is not None and got.workdir and os.path.isdir(got.workdir)
    assert launch.take(["-t", "y", "."], None) is None
    assert got.returncode is not None and not os.path.exists(got.workdir)
    assert launch.take(["-t", "x", "."], None) is None  # taken once at most


@pytest.mark.parametrize("argv", [["--help"], ["-t", "x", "-h", "."], ["--against", "^1", "."],
                                  ["--against=^1", "."], ["--live"]])
def test_no_early_start_when_in_doubt(argv: list[str], fake_docker: Path) -> None:
    launch.start(argv)
    assert launch._started is None and not _calls(fake_docker)


def test_a_usage_error_stops_the_early_buildx(fake_docker: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--fail-on", "bogus", "."]) == UsageError.exit_code
    assert launch._started is None
    assert "--fail-on" in capsys.readouterr().err


def test_build_reads_the_early_buildx(fake_docker: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    rc = main(["build", "--live", "plain", "--store", str(store), "--report-json", str(tmp_path / "r.json"),
               str(PROJECTS / "multistage")])
    assert rc == 0
    calls = _calls(fake_docker)
    assert len(calls) == 1 and calls[0][:3] == ["buildx", "build", "--progress=rawjson"]
    workdir = os.path.dirname(calls[0][4])
    assert not os.path.exists(workdir)  # removed after the analysis
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["hit_ratio"] == 1.0
    assert len(list(store.glob("2*.json"))) == 1
    assert "cache hits" in capsys.readouterr().err


def test_nothing_heavy_is_imported_before_buildx_starts() -> None:
    code = ("import sys; before = set(sys.modules); from analyzer import cli, launch; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                         check=True).stdout.split()
    for heavy in ("dataclasses", "subprocess", "tempfile", "json", "traceback", "analyzer.commands.build",
                  "analyzer.buildx", "analyzer.outputs", "analyzer.gates"):
        assert heavy not in out, heavy
