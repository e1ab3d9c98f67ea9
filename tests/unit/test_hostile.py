"""Issue 18: hostile contexts, damaged stores and odd logs.

Each test is one attempt of the adversarial pass that broke cachewhy; it
asserts what the user (or the attacker) would check."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from analyzer import confined, console, launch
from analyzer.cli import main
from analyzer.snapshot import read_dockerignore

CANARY = "c4nary-0f-the-environment"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHEWHY_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("CACHEWHY_LIVE", "none")


def cw(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------- 1. files outside the context

def test_a_dockerignore_linked_to_the_environment_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("CANARY_TOKEN", CANARY)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / ".dockerignore").symlink_to("/proc/self/environ")
    assert read_dockerignore(ctx) == []


def test_a_dockerignore_linked_out_of_the_context_is_not_read(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("root:secret-hash:19000:0:99999:7:::\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / ".dockerignore").symlink_to(outside)
    assert read_dockerignore(ctx) == []
    (ctx / ".dockerignore").unlink()
    (ctx / ".dockerignore").symlink_to("../outside")  # relative: `..` stops at the context, as in BuildKit
    assert read_dockerignore(ctx) == []


def test_a_link_inside_the_context_is_read_as_buildkit_reads_it(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "conf").mkdir(parents=True)
    (ctx / "conf" / "ignore").write_text("node_modules\n")
    (ctx / ".dockerignore").symlink_to("conf/ignore")
    assert read_dockerignore(ctx) == ["node_modules"]
    (ctx / ".dockerignore").unlink()
    (ctx / ".dockerignore").symlink_to("/conf/ignore")  # absolute: rooted at the context
    assert read_dockerignore(ctx) == ["node_modules"]


def test_a_dockerfile_dockerignore_linked_out_is_not_read(tmp_path):
    (tmp_path / "outside").write_text("secret-pattern\n")
    ctx = tmp_path / "ctx"
    (ctx / "build").mkdir(parents=True)
    (ctx / "build" / "app.Dockerfile").write_text("FROM scratch\n")
    (ctx / "build" / "app.Dockerfile.dockerignore").symlink_to(tmp_path / "outside")
    (ctx / ".dockerignore").write_text("kept\n")
    # the Dockerfile's own ignore file would win; as BuildKit cannot read it, the context's is used
    assert read_dockerignore(ctx, ctx / "build" / "app.Dockerfile") == ["kept"]


def test_a_dockerfile_linked_out_of_its_folder_is_refused(tmp_path):
    (tmp_path / "shadow").write_text("root:secret-hash:19000\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").symlink_to(tmp_path / "shadow")
    with pytest.raises(FileNotFoundError):
        confined.read_beside(ctx / "Dockerfile")
    (ctx / "Dockerfile").unlink()
    (ctx / "Dockerfile.real").write_text("FROM scratch\n")
    (ctx / "Dockerfile").symlink_to("Dockerfile.real")
    assert confined.read_beside(ctx / "Dockerfile") == "FROM scratch\n"


def test_a_fifo_or_a_link_loop_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "Dockerfile")
    with pytest.raises(confined.Refused):
        confined.read_beside(tmp_path / "Dockerfile")  # would hang if opened for a blocking read
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(confined.Refused):
        confined.read_bytes(tmp_path, "a")


def write_log(path: Path, vertices: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"vertexes": [v]}) + "\n" for v in vertices))
    return path


def D(n: int) -> str:
    return "sha256:" + format(n, "064x")


def _t(s: float) -> str:
    return f"2026-01-01T00:00:{s:06.3f}Z"


def test_analyze_redacts_build_arg_values_in_step_names_as_build_does(capsys, tmp_path):
    secret = "s3cr3t-deploy-token-77"
    df = tmp_path / "Dockerfile"
    df.write_text('FROM alpine:3\nARG TOKEN\nRUN echo "deploying with $TOKEN"; exit 3\n')
    log = write_log(tmp_path / "build.log", [
        {"digest": D(2), "name": "[1/2] FROM docker.io/library/alpine:3", "started": _t(0), "completed": _t(1)},
        {"digest": D(3), "name": f'[2/2] RUN echo "deploying with {secret}"; exit 3', "inputs": [D(2)],
         "started": _t(1), "completed": _t(3),
         "error": f'process "/bin/sh -c echo \\"deploying with {secret}\\"; exit 3" did not complete '
                  "successfully: exit code: 3"},
    ])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = cw(capsys, "analyze", "--dockerfile", str(df), "--context", str(tmp_path),
                        "--report-json", str(out_dir / "r.json"), "--report-md", str(out_dir / "r.md"),
                        "--html", str(out_dir / "r.html"), str(log))
    assert code == 0, err
    assert "Dockerfile:3" in out  # the step is still shown, with its line
    assert secret not in out + err
    files = [p for p in [*out_dir.iterdir(), *(tmp_path / "store").iterdir()] if p.is_file()]
    assert len(files) >= 4
    for p in files:
        assert secret not in p.read_text(errors="replace"), p
    record = json.loads(next((tmp_path / "store").glob("2*.json")).read_text())
    run = [s for s in record["steps"] if s.get("keyword") == "RUN"][0]
    assert "<TOKEN>" in run["error"]


def test_a_killed_runs_private_folder_is_removed_by_the_next_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    dead = 2 ** 22 + 12345  # above pid_max's default: no such process
    left = tmp_path / f"cachewhy-{dead}-0123456789ab"
    left.mkdir(mode=0o700)
    (left / "metadata.json").write_text('{"buildx.build.provenance": {"args": {"build-arg:TOKEN": "x"}}}')
    alive = tmp_path / f"cachewhy-{os.getppid()}-0123456789ab"
    alive.mkdir(mode=0o700)
    shared = tmp_path / f"cachewhy-{dead}-fedcba987654"
    shared.mkdir(mode=0o755)  # not one of ours: not private
    mine = launch.make_workdir()
    try:
        assert not left.exists()
        assert alive.exists() and shared.exists()
        assert Path(mine).name.startswith(f"cachewhy-{os.getpid()}-")
        assert stat.S_IMODE(os.stat(mine).st_mode) == 0o700
    finally:
        launch.remove_workdir(mine)


def test_the_record_carried_beside_a_cache_is_private(tmp_path):
    from analyzer.baseline import write_record_file

    path = write_record_file(tmp_path / "cache", {"schema": "cachewhy.record/v1", "id": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ----------------------------------------------------------------- 2. terminal and CI injection

def test_neutralise_makes_controls_and_bidi_visible():
    assert console.neutralise("a\x1b[31mred\x1b]8;;http://x\x07b") == "a\\x1b[31mred\\x1b]8;;http://x\\x07b"
    assert console.neutralise("invoice\u202efdp.exe") == "invoice\\u202efdp.exe"
    assert console.neutralise("tab\tand\nnewline") == "tab\tand\nnewline"
    assert console.neutralise("\x9b2J\r") == "\\x9b2J\\x0d"


def test_the_writer_lets_only_cachewhys_own_escapes_through():
    buf = io.StringIO()
    w = console.Writer(buf, guard_commands=False)
    w.write("\x1b[32mcached\x1b[0m \x1b]0;title\x07\n", trusted=True)
    w.write("\x1b[32mnot ours\n")
    assert buf.getvalue() == "\x1b[32mcached\x1b[0m \\x1b]0;title\\x07\n\\x1b[32mnot ours\n"


@pytest.mark.parametrize("chunks", [
    ["  ::error title=INJECTED::x.txt\n"],
    ["  ", ":", ":error title=INJECTED::x.txt\n"],
    ["note\n\u00a0\u2003::add-mask::x\n"],
    ["ok\n   ##[error]old style\n"],
    [":", ":stop-commands::tok"],
])
def test_no_line_can_start_a_workflow_command(chunks):
    buf = io.StringIO()
    w = console.Writer(buf, guard_commands=True)
    for c in chunks:
        w.write(c)
    w.flush()
    for line in buf.getvalue().split("\n"):
        assert not line.lstrip().startswith(("::", "##[")), buf.getvalue()
    assert "INJECTED" in buf.getvalue() or "mask" in buf.getvalue() or "error" in buf.getvalue() \
        or "stop" in buf.getvalue()


def test_own_annotations_still_reach_the_runner():
    buf = io.StringIO()
    w = console.Writer(buf, guard_commands=True)
    w.write("::warning file=Dockerfile,line=3::COPY . /app rebuilt\n", command=True)
    w.write("::error::not ours\n")
    assert buf.getvalue().splitlines() == ["::warning file=Dockerfile,line=3::COPY . /app rebuilt",
                                           "\\::error::not ours"]


def hostile_log(tmp_path: Path) -> Path:
    """A build whose COPY names a file with an escape sequence, a workflow command and a bidi override."""
    name = "::error title=INJECTED::x.txt \x1b[31mred\x1b]0;pwned\x07 invoice\u202efdp.exe"
    return write_log(tmp_path / "hostile.log", [
        {"digest": D(2), "name": "[1/2] FROM docker.io/library/alpine:3", "started": _t(0), "completed": _t(1)},
        {"digest": D(3), "name": f"[2/2] COPY {name} /app/", "inputs": [D(2)], "started": _t(1),
         "completed": _t(3)},
    ])


def test_hostile_names_reach_no_terminal_raw(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    log = hostile_log(tmp_path)
    code, out, err = cw(capsys, "analyze", "--width", "40", "--report-md", str(out_dir / "r.md"),
                        "--html", str(out_dir / "r.html"), "--report-sarif", str(out_dir / "r.sarif"),
                        "--report-json", str(out_dir / "r.json"), "--dot", str(out_dir / "g.dot"), str(log))
    assert code == 0, err
    assert "COPY ::error title=INJ" in out  # the name is shown, harmless
    for stream in (out, err):
        assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream
        for line in stream.splitlines():
            if line.lstrip().startswith("::"):
                assert line.startswith(("::warning ", "::notice ", "::error file=")), line  # ours only
                assert "INJECTED::" not in line.split("::", 2)[1], line
    for p in out_dir.iterdir():
        text = p.read_text()
        assert "\x1b" not in text and "\u202e" not in text, p.name


def test_history_shows_a_stored_path_with_escapes_neutralised(capsys, tmp_path):
    ctx = tmp_path / "ctx\x1b]0;pwned\x07\u202e"
    ctx.mkdir()
    log = hostile_log(tmp_path)
    code, _, err = cw(capsys, "analyze", "--context", str(ctx), str(log))
    assert code == 0, err
    code, out, err = cw(capsys, "history")
    assert code == 0, err
    assert "pwned" in out + err
    assert "\x1b" not in out + err and "\x07" not in out + err and "\u202e" not in out + err


# ----------------------------------------------------------------- 3. reports are never lost

def simple_log(tmp_path: Path, name: str = "build.log", copy: str = "COPY app.txt /app/") -> Path:
    return write_log(tmp_path / name, [
        {"digest": D(0x21 << 200), "name": "[1/2] FROM docker.io/library/alpine:3", "started": _t(0),
         "completed": _t(1)},
        {"digest": D(0x22 << 200), "name": f"[2/2] {copy}", "inputs": [D(0x21 << 200)], "started": _t(1),
         "completed": _t(3)},
    ])


@pytest.mark.parametrize("fault", ["a file", "under a file", "full"])
def test_a_store_fault_is_one_note_and_every_report_still_comes(capsys, tmp_path, monkeypatch, fault):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder\n")
    store = {"a file": blocker, "under a file": blocker / "records", "full": tmp_path / "store"}[fault]
    if fault == "full":
        import errno

        from analyzer import store as store_mod

        def full(*_a, **_k):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(store_mod, "write_atomic", full)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    df = tmp_path / "Dockerfile"
    df.write_text("FROM alpine:3\nCOPY app.txt /app/\n")
    code, out, err = cw(capsys, "analyze", "--store", str(store), "--dockerfile", str(df),
                        "--report-json", str(out_dir / "r.json"), "--report-md", str(out_dir / "r.md"),
                        "--html", str(out_dir / "r.html"), str(simple_log(tmp_path)))
    assert code == 0, err
    assert "Why: 1 root cause" in out + err and "internal error" not in out + err
    report = json.loads((out_dir / "r.json").read_text())
    kept = [n for n in report["notes"] if "record is not kept" in n]
    assert len(kept) == 1 and str(store) in kept[0], report["notes"]
    assert "record is not kept" in (out_dir / "r.md").read_text()
    assert (out_dir / "r.html").stat().st_size > 1000
    assert blocker.read_text() == "not a folder\n"  # nothing the user had is altered


def test_a_report_to_stdout_is_refused_when_buildx_writes_there(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CACHEWHY_DOCKER", str(tmp_path / "no-such-docker"))  # never reached
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for option, buildx in (("--html", ["-o", "type=tar,dest=-"]), ("--report-json", ["--output=-"]),
                           ("--report-md", ["-o", "type=local,dest=-"])):
        code, out, err = cw(capsys, "build", option, "-", *buildx, str(ctx))
        assert code == 2, err
        assert out == ""
        assert err.count("\n") == 1 and err.startswith(f"cachewhy: {option} -: buildx writes to stdout"), err


# ----------------------------------------------------------------- 4. untrusted records

def _analyze(capsys, tmp_path, *extra: str) -> tuple[int, str, str]:
    df = tmp_path / "Dockerfile"
    if not df.exists():
        df.write_text("FROM alpine:3\nCOPY app.txt /app/\n")
    return cw(capsys, "analyze", "--dockerfile", str(df), "--context", str(tmp_path), *extra,
              str(simple_log(tmp_path)))


def _records(store: Path) -> list[Path]:
    return sorted(p for p in store.glob("2*.json"))


@pytest.mark.parametrize("damage", [
    lambda r: r["steps"].append(None),
    lambda r: r["steps"][0].update(id=None),
    lambda r: r["steps"][0].update(inputs=[["not", "a", "digest"]]),
    lambda r: r["steps"][1].update(id=r["steps"][0]["id"]),
    lambda r: r.update(build_args=["TOKEN"]),
    lambda r: r.update(materials=[None]),
])
def test_a_bad_record_in_the_store_is_skipped_with_a_note_and_the_new_one_saved(capsys, tmp_path, damage):
    store = tmp_path / "store"
    assert _analyze(capsys, tmp_path)[0] == 0
    assert _analyze(capsys, tmp_path)[0] == 0
    good, bad = _records(store)
    record = json.loads(bad.read_text())
    damage(record)
    bad.write_text(json.dumps(record))
    code, _, err = _analyze(capsys, tmp_path, "--report-json", str(tmp_path / "r.json"))
    assert code == 0 and "internal error" not in err, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert any(bad.stem in n and "skipped" in n for n in report["notes"]), report["notes"]
    assert report["previous"] == {"ref": good.stem}  # compared with the older, good one
    assert len(_records(store)) == 3  # the new build's record is kept
    code, out, err = cw(capsys, "history")
    assert code == 0, err


def test_a_bad_previous_record_file_is_skipped_with_a_note(capsys, tmp_path):
    assert _analyze(capsys, tmp_path)[0] == 0
    (record_path,) = _records(tmp_path / "store")
    record = json.loads(record_path.read_text())
    record["steps"][0]["inputs"] = {"a": 1}  # valid JSON, a step the analysis cannot read
    record["id"] = "20200101T000000000000-deadbeef"
    bad = tmp_path / "artifact.json"
    bad.write_text(json.dumps(record))
    code, out, err = _analyze(capsys, tmp_path, "--previous", str(bad), "--report-json", str(tmp_path / "r.json"))
    assert code == 0 and "internal error" not in out + err, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert any("20200101T000000000000-deadbeef" in n and "skipped" in n for n in report["notes"]), report["notes"]
    assert report["misses"]  # the build is still explained
    assert len(_records(tmp_path / "store")) == 2  # and its record kept


def test_a_fifo_in_the_store_is_skipped_without_waiting(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    env = dict(os.environ, CACHEWHY_STORE=str(tmp_path / "store"), CACHEWHY_LIVE="none")
    df = tmp_path / "Dockerfile"
    df.write_text("FROM alpine:3\nCOPY app.txt /app/\n")
    log = simple_log(tmp_path)
    run = [sys.executable, "-m", "analyzer"]
    args = ["analyze", "--dockerfile", str(df), "--context", str(tmp_path), str(log)]
    assert subprocess.run([*run, *args], env=env, cwd=REPO, capture_output=True, timeout=120).returncode == 0
    store = tmp_path / "store"
    os.mkfifo(store / "20990101T000000000000-0000beef.json")  # the newest "record"
    for index in store.glob("index.db*"):  # the index is rebuilt from the records, and an older
        index.unlink()                     # cachewhy's index.jsonl read first: a FIFO there too
    os.mkfifo(store / "index.jsonl")
    for cmd in (args, ["history"], ["show", "last"]):
        res = subprocess.run([*run, *cmd], env=env, cwd=REPO, capture_output=True, timeout=60)
        err = res.stderr.decode()
        assert res.returncode == 0 and "Traceback" not in err, (cmd, err)
    assert stat.S_ISFIFO(os.lstat(store / "index.jsonl").st_mode)  # left as it was


@pytest.mark.parametrize("damage", ["garbage", "directory", "fifo", "short"])
def test_a_damaged_hash_key_is_replaced_with_a_note(capsys, tmp_path, damage):
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    key = store / "hash.key"
    if damage == "garbage":
        key.write_text("\x00not hex at all\n")
    elif damage == "directory":
        key.mkdir()
    elif damage == "fifo":
        os.mkfifo(key)
    else:
        key.write_text("abcd\n")
    code, _, err = _analyze(capsys, tmp_path, "--report-json", str(tmp_path / "r.json"))
    assert code == 0 and "internal error" not in err, err
    notes = json.loads((tmp_path / "r.json").read_text())["notes"]
    assert any("hash key" in n and "damaged" in n for n in notes), notes
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(_records(store)) == 1
    code, _, err = _analyze(capsys, tmp_path, "--report-json", str(tmp_path / "r.json"))  # the new key holds
    assert not any("damaged" in n for n in json.loads((tmp_path / "r.json").read_text())["notes"])


# ----------------------------------------------------------------- 5. cachewhy's death takes buildx with it

FAKE_BUILDX = """#!/bin/sh
# a stand-in for `docker buildx build`: says it started, then runs until a signal ends it
trap 'echo TERM > "$FAKE_DIR/got"; exit 143' TERM
trap 'echo INT > "$FAKE_DIR/got"; exit 130' INT
echo $$ > "$FAKE_DIR/pid.tmp" && mv "$FAKE_DIR/pid.tmp" "$FAKE_DIR/pid"
while :; do sleep 0.1; done
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:\tZ") for line in f)  # a zombie has ended
    except (FileNotFoundError, ProcessLookupError):  # reaped between open and read
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="Linux: prctl(PR_SET_PDEATHSIG)")
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGHUP", "SIGTERM", "SIGUSR1", "SIGQUIT"])
def test_every_signal_that_ends_cachewhy_ends_buildx_first(tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    fake = tmp_path / "fake-docker"
    fake.write_text(FAKE_BUILDX)
    fake.chmod(0o755)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    env = dict(os.environ, CACHEWHY_DOCKER=str(fake), FAKE_DIR=str(tmp_path), CACHEWHY_LIVE="none",
               CACHEWHY_STORE=str(tmp_path / "store"), TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "build", str(ctx)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "pid").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.05)
        buildx = int((tmp_path / "pid").read_text())
        time.sleep(0.5)
        proc.send_signal(getattr(signal, sig))
        deadline = time.monotonic() + 15
        while not _gone(buildx) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(buildx), f"buildx still runs after {sig} to cachewhy"
        assert (tmp_path / "got").read_text().strip() == "TERM"  # asked to cancel, not left behind
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------- 6. odd logs

def _v(d: str, name: str, inputs=(), start: str = "2026-01-01T00:00:00Z", end: str = "2026-01-01T00:00:01Z") -> dict:
    return {"digest": d, "name": name, "inputs": list(inputs), "started": start, "completed": end}


def _report(capsys, tmp_path, vertices: list[dict], *extra: str) -> dict:
    log = write_log(tmp_path / "odd.log", vertices)
    code, out, err = cw(capsys, "analyze", "--no-record", "--report-json", str(tmp_path / "r.json"), *extra, str(log))
    assert code == 0 and "internal error" not in out + err, out + err
    return json.loads((tmp_path / "r.json").read_text())


def test_a_vertex_listing_itself_as_input_is_still_a_root(capsys, tmp_path):
    report = _report(capsys, tmp_path, [_v(D(1), "[1/2] FROM docker.io/library/alpine:3"),
                                        _v(D(2), "[2/2] RUN make", [D(1), D(2)])])
    assert report["summary"]["rebuilt"] == 1
    assert [m["step"]["instruction"] if "step" in m else m.get("instruction") for m in report["misses"]
            if m.get("root")] == ["RUN make"]


def test_digests_sharing_their_first_12_hex_digits_are_told_apart(capsys, tmp_path):
    P = lambda n: "sha256:abcdefabcdef" + format(n, "052x")  # noqa: E731
    report = _report(capsys, tmp_path, [_v(P(1), "[1/3] FROM docker.io/library/alpine:3"),
                                        _v(P(2), "[2/3] RUN a", [P(1)]), _v(P(3), "[3/3] RUN b", [P(2)])])
    steps = report["steps"]
    assert len({s["id"] for s in steps}) == len(steps) == 3
    roots = [m for m in report["misses"] if m.get("root")]
    assert len(roots) == 1 and len(report["misses"]) == 2


@pytest.mark.parametrize("order", ["leaf first", "ids against the chain"])
def test_a_chain_of_1100_steps_in_any_order(capsys, tmp_path, order):
    n = 1100
    ids = [D(i + 1) for i in range(n)] if order == "leaf first" else [D(n - i) for i in range(n)]
    vertices = [_v(ids[0], f"[1/{n}] FROM docker.io/library/alpine:3")]
    vertices += [_v(ids[i], f"[{i + 1}/{n}] RUN step{i}", [ids[i - 1]]) for i in range(1, n)]
    vertices.reverse()
    report = _report(capsys, tmp_path, vertices)
    roots = [m for m in report["misses"] if m.get("root")]
    assert len(roots) == 1 and len(report["misses"]) == n - 1


def test_impossible_timestamps_are_noted_and_not_used(capsys, tmp_path):
    report = _report(capsys, tmp_path, [
        _v(D(1), "[1/3] FROM docker.io/library/alpine:3"),
        _v(D(2), "[2/3] RUN a", [D(1)], start="9999-12-31T23:59:59Z", end="9999-12-31T23:59:59.5Z"),
        _v(D(3), "[3/3] RUN b", [D(2)], start="1970-01-01T00:00:00Z", end="2026-01-01T00:00:03Z")])
    assert any("impossible" in n for n in report["notes"]), report["notes"]
    assert report["build"]["duration_s"] is None or report["build"]["duration_s"] < 10
    assert all((s.get("duration_s") or 0) < 10 for s in report["steps"])
    assert not [s for s in report["steps"] if s["status"] == "running"]


def test_an_endless_line_is_one_line_of_error_in_bounded_memory(capsys, tmp_path):
    code, out, err = cw(capsys, "analyze", "--no-record", "/dev/zero")
    assert code == 2 and err.count("\n") == 1 and "is not a build log" in err, err


def test_a_long_line_is_dropped_with_a_note_and_the_rest_read(tmp_path):
    from analyzer.events import Lines

    data = b'{"a":1}\n' + b"x" * 5000 + b"\n" + b'{"b":2}\n' + b"y" * 3000
    import io as _io

    lines = Lines(_io.BytesIO(data), max_line=1024, max_dropped=1 << 20)
    assert list(lines) == ['{"a":1}\n', '{"b":2}\n']
    assert lines.dropped == 2


def test_100000_vertices(capsys, tmp_path):
    n = 100_000
    vertices = [_v(D(1), f"[1/{n}] FROM docker.io/library/alpine:3")]
    vertices += [_v(D(i), f"[internal] vertex {i}", [D(i - 1)]) for i in range(2, n - 1)]
    vertices += [_v(D(n - 1), "[2/2] RUN make", [D(n - 2)])]
    report = _report(capsys, tmp_path, vertices)
    assert report["summary"]["rebuilt"] == 1 and [m for m in report["misses"] if m.get("root")]
