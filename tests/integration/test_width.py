"""Every line of every command's terminal output fits the width, on real builds:
at 80 columns (--width 80, COLUMNS=80) and at the default (no terminal: 80)."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from analyzer.report.fit import width_of
from tests.conftest import BASE_IMAGE, REPO, run_cachewhy

pytestmark = pytest.mark.engine

# long names everywhere a line can carry one: stage, instruction, files, error
DOCKERFILE = """\
FROM {base} AS a-stage-with-a-rather-long-name-for-the-table
WORKDIR /work-{nonce}
COPY config-with-a-long-name-{nonce}.txt ./
RUN cat config-with-a-long-name-{nonce}.txt > /combined-output-of-every-input.txt && echo "a long shell line that does not fit" && sleep 1

FROM a-stage-with-a-rather-long-name-for-the-table AS final
COPY src/ ./src/
RUN ls src > /listing-of-sources.txt && cat src/*.txt >> /listing-of-sources.txt && sleep 1
"""

FAILING = """\
FROM {base}
WORKDIR /fail-{nonce}
COPY nothere.txt /
"""


def check(res: subprocess.CompletedProcess, width: int, what: str) -> str:
    text = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    assert "Traceback" not in text, (what, text[-2000:])
    # buildx's own lines (its error epilogue) pass as buildx prints them: a drop-in
    # does not rewrite them, and CI problem matchers read them whole
    wide = [line for line in text.splitlines() if width_of(line) > width and not line.startswith("ERROR: ")]
    assert not wide, f"{what}: {len(wide)} line(s) wider than {width}:\n" + "\n".join(wide)
    return text


def _project(tmp_path: Path) -> tuple[Path, Path, str]:
    nonce = uuid.uuid4().hex[:10]
    deep = tmp_path / "a-folder-with-a-long-name" / "and-another-one-below-it" / "project"
    (deep / "src").mkdir(parents=True)
    (deep / "Dockerfile").write_text(DOCKERFILE.format(base=BASE_IMAGE, nonce=nonce))
    (deep / f"config-with-a-long-name-{nonce}.txt").write_text("c\n")
    for i in range(14):  # more changed files than a line can name
        (deep / "src" / f"source-file-number-{i:02d}-with-a-long-name.txt").write_text(f"{i}\n")
    failing = tmp_path / "failing-project-with-a-long-folder-name"
    failing.mkdir()
    (failing / "Dockerfile").write_text(FAILING.format(base=BASE_IMAGE, nonce=nonce))
    return deep, failing, nonce


def test_every_command_fits_80_columns(tmp_path: Path) -> None:
    began = time.time()
    ctx, failing, nonce = _project(tmp_path)
    store = str(tmp_path / "store")
    name = f"cw-width-{nonce}"
    common = ["--network=none", "--output=type=cacheonly", "--build-arg", f"BUILDKIT_BUILD_NAME={name}"]
    live = {"CACHEWHY_LIVE": "plain"}  # the live progress lines are checked too

    for width_args, env in (([], {"COLUMNS": "80"}), (["--width", "80"], {}), ([], {"COLUMNS": ""})):
        env = {**live, **env}
        # build: cold, then with every source changed (a root with many files, cascades)
        res = run_cachewhy("build", "--store", store, *width_args, *common, str(ctx), env=env)
        check(res, 80, f"build cold {width_args} {env}")
        assert res.returncode == 0
        for f in (ctx / "src").iterdir():
            f.write_text(f.read_text() + "more\n")
        res = run_cachewhy("build", "--store", store, *width_args, *common, str(ctx), env=env)
        out = check(res, 80, f"build change {width_args} {env}")
        assert "Why: 1 root cause" in out
        # a failed step: its error keeps its end
        res = run_cachewhy("build", "--store", store, *width_args, "--network=none", "--output=type=cacheonly",
                           str(failing), env=env)
        assert res.returncode == 1
        out = check(res, 80, "build failing")
        table = out[out.index("LINE "):]
        assert '"/nothere.txt": not found' in " ".join(table.split()), table

    env = {"COLUMNS": "80"}
    for args in (["show"], ["show", "^1"], ["show", "^2"], ["diff", "^2", "^1"], ["history"], ["advise"],
                 ["trends"], ["predict", str(ctx)]):
        res = run_cachewhy(*args, "--store", store, env=env, timeout=300)
        check(res, 80, " ".join(args))
    # the store's records, as analyze reads a log of a plain build
    log = tmp_path / "plain.log"
    with open(log, "wb") as f:
        res = subprocess.run(["docker", "buildx", "build", "--progress=rawjson", *common, str(ctx)], stderr=f,
                             timeout=300)
    assert res.returncode == 0
    res = run_cachewhy("analyze", "--no-record", "--context", str(ctx), str(log), env=env)
    check(res, 80, "analyze")
    # explain and explain --since read the builder's history of the plain builds
    res = run_cachewhy("explain", env=env, timeout=300)
    check(res, 80, "explain")
    window = f"{int(time.time() - began) + 5}s"
    res = run_cachewhy("explain", "--since", window, env=env, timeout=600)
    out = check(res, 80, "explain --since")
    assert "Build " in out

    # every command's --help
    for command in ("build", "analyze", "diff", "show", "history", "advise", "explain", "watch", "predict",
                    "trends"):
        res = run_cachewhy(command, "--help", env=env)
        check(res, 80, f"{command} --help")
    check(run_cachewhy("--help", env=env), 80, "--help")


def test_history_takes_width(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for name in ("multistage-warm", "multistage-change"):
        res = run_cachewhy("analyze", "--store", str(store), "--context", str(tmp_path / ("x" * 60)),
                           "--metadata-file", str(REPO / "testdata" / "rawjson" / f"{name}.meta.json"),
                           str(REPO / "testdata" / "rawjson" / f"{name}.jsonl"))
        assert res.returncode == 0, res.stderr
    for w in ("64", "80", "160"):
        res = run_cachewhy("history", "--store", str(store), "--width", w)
        assert res.returncode == 0, res.stderr
        out = check(res, int(w), f"history --width {w}")
        lines = out.splitlines()
        if w == "160":  # one line a build
            assert len(lines) == 3 and lines[1].endswith("unknown at Dockerfile:6"), out
        else:  # two: the numbers, then the context and the top cause, whole
            assert len(lines) == 6 and lines[3] == "  \u2026" + "x" * 31 + " \u00b7 unknown at Dockerfile:6", out
            assert "\u2026" not in lines[2]
    assert run_cachewhy("history", "--store", str(store), "--width", "x").returncode == 2


def test_watch_fits_80_columns(tmp_path: Path) -> None:
    import os  # noqa: PLC0415
    import selectors  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import sys  # noqa: PLC0415

    ctx, _failing, nonce = _project(tmp_path)
    name = f"cw-watch-{nonce}"
    build = ["docker", "buildx", "build", "--network=none", "--output=type=cacheonly", "--build-arg",
             f"BUILDKIT_BUILD_NAME={name}", str(ctx)]
    assert subprocess.run(build, capture_output=True, timeout=300).returncode == 0
    for f in (ctx / "src").iterdir():
        f.write_text(f.read_text() + "more\n")
    env = {**os.environ, "CACHEWHY_LIVE": "none", "COLUMNS": "80"}
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "watch", "--store", str(tmp_path / "store")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        started, deadline = b"", time.monotonic() + 60
        while b"watching" not in started and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=1):
                started += os.read(proc.stderr.fileno(), 4096)
        assert b"watching" in started, started
        assert subprocess.run(build, capture_output=True, timeout=300).returncode == 0
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        out, deadline = b"", time.monotonic() + 120
        while name.encode() not in out and time.monotonic() < deadline:
            if sel.select(timeout=1):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
        time.sleep(0.5)  # the rest of the paragraph
        if sel.select(timeout=1):
            out += os.read(proc.stdout.fileno(), 65536)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        res = subprocess.CompletedProcess(proc.args, proc.returncode, out, proc.stderr.read())
        text = check(res, 80, "watch")
        para = next((p for p in text.split("\n\n") if name in p), "")
        assert para and "Dockerfile:7 COPY src/ ./src/" in " ".join(para.split()), text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
