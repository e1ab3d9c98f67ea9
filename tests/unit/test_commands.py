"""analyze, diff, history, show and the CI gates, over the recorded captures (no engine)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.cli import COMMANDS, main
from analyzer.explain import KINDS
from analyzer.gates import GATE_EXIT, GATE_HELP, Gates, parse_ratio
from analyzer.store import Store
from tests.conftest import PROJECTS, RAWJSON, REPO

MULTI_DF = str(PROJECTS / "multistage" / "Dockerfile")
FAIL_DF = str(PROJECTS / "failing" / "Dockerfile")
# line -> status of the one-file change (src/b.txt, copied by line 6) after a warm build
CHANGE_STATUSES = {1: "source", 2: "cached", 3: "cached", 6: "rebuilt", 7: "rebuilt", 9: "source",
                   10: "cached", 11: "rebuilt", 12: "rebuilt", 13: "rebuilt"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ("CACHEWHY_STORE", "CACHEWHY_HASH_KEY", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "CACHEWHY_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # never the user's store
    monkeypatch.setenv("COLUMNS", "100")  # the width these tests read the reports at (the default is 80)


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "store"


def cw(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def cap(name: str) -> str:
    return str(RAWJSON / name)


def change_vs_warm(prefix: str = "") -> list[str]:
    """analyze arguments: the one-file change, compared with the warm build's log."""
    if prefix:  # old buildx: pretty-printed JSON, its metadata holds no provenance
        return ["--dockerfile", MULTI_DF, "--metadata-file", cap(f"{prefix}multistage-change.meta.json"),
                "--previous", cap(f"{prefix}multistage-warm.jsonl"),
                "--previous-metadata", cap(f"{prefix}multistage-warm.meta.json"),
                cap(f"{prefix}multistage-change.jsonl")]
    return ["--metadata-file", cap("multistage-change.meta.json"), "--previous", cap("multistage-warm.jsonl"),
            "--previous-metadata", cap("multistage-warm.meta.json"), cap("multistage-change.jsonl")]


def statuses(report: dict) -> dict[int, str]:
    out = {}
    for s in report["steps"]:
        if s.get("line"):
            out[s["line"]] = s["status"]
        for other in s.get("also_at") or []:
            out[other["line"]] = s["status"]
    return out


def roots(report: dict) -> list[dict]:
    return [m for m in report["misses"] if m["root"]]


def one_line_error(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cachewhy: ") and "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------
# analyze


@pytest.mark.parametrize("prefix", ["", "old-"], ids=["rawjson-lines", "old-buildx-pretty"])
def test_analyze_names_the_root_and_every_status(capsys, store, tmp_path, prefix):
    rc, out, err = cw(capsys, "analyze", "--store", store, "--report-json", tmp_path / "r.json",
                      *change_vs_warm(prefix))
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert statuses(report) == CHANGE_STATUSES
    [root] = roots(report)
    assert root["line"] == 6 and root["instruction"] == "COPY src/ ./src/"
    # no context snapshot of a logged build: the changed file cannot be named, and
    # cachewhy says so instead of guessing
    assert root["cause"]["kind"] == "unknown"
    assert "not compared" in root["cause"]["detail"]
    if prefix:
        assert "no provenance" in root["cause"]["detail"]
    else:
        assert "LLB op" in root["cause"]["detail"] and "context files it reads (src)" in root["cause"]["detail"]
    cascades = {m["line"]: m for m in report["misses"] if not m["root"]}
    assert set(cascades) == {7, 11, 12, 13}
    assert all(m["caused_by"] == [root["id"]] for m in cascades.values())
    assert cascades[11]["cause"]["kind"] == "stage-changed"
    assert root["time_lost_s"] >= 1.0  # the cascade's sleeping RUN is counted against the root
    assert report["build"]["exit_code"] == 0
    assert report["previous"]["ref"] == f"log {cap(prefix + 'multistage-warm.jsonl')}"
    assert report["summary"]["hit_ratio"] == 0.375
    assert "Why: 1 root cause" in out and "cache hits 3/8 steps (38%)" in out
    assert err == ""  # the report goes to stdout (issue 17), nothing else was said


def test_analyze_keeps_a_record_with_its_summary(capsys, store):
    rc, _, err = cw(capsys, "analyze", "--store", store, "--context", "/work/ctx", *change_vs_warm())
    assert rc == 0, err
    entries, problems = Store(store).list_records()
    assert problems == [] and len(entries) == 1
    entry = entries[0]
    assert entry["context"] == "/work/ctx" and entry["exit_code"] == 0
    assert entry["summary"] == {"hit_ratio": 0.375, "time_lost_s": pytest.approx(entry["summary"]["time_lost_s"]),
                                "top_cause": "unknown", "top_line": 6}
    record = Store(store).load(entry["id"])
    assert record["report"]["misses"][0]["line"] == 6
    # the build's own times, not the time of the analysis
    assert 1.7e9 < record["created"] < record["completed_at"]


def test_analyze_no_record(capsys, store):
    rc, _, err = cw(capsys, "analyze", "--store", store, "--no-record", *change_vs_warm())
    assert rc == 0, err
    assert Store(store).list_records()[0] == []


def test_a_big_build_answers_in_one_screen(capsys, store, tmp_path):
    # copies of a real capture (benchmarks/gen_log.py): 58 root causes, 406 vertices
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gen_log  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    log = tmp_path / "big.jsonl"
    gen_log.generate(log, vertices=400, mb=0.5)
    assert main(["analyze", "--no-record", "--report-json", str(tmp_path / "r.json"), str(log)]) == 0
    err = capsys.readouterr().out  # the report
    report = json.loads((tmp_path / "r.json").read_text())
    roots = [m for m in report["misses"] if m["root"]]
    assert len(roots) == 58
    why = err[err.index("Why:"):err.index("\nLINE ")]
    # the ten biggest losses are shown, the rest are counted with their time
    shown = [ln for ln in why.splitlines() if "steps rebuilt" in ln or "step rebuilt" in ln]
    assert len(shown) == 10
    assert "\u2026 48 more root causes, " in why and "every one is in --report-md FILE or --report-json FILE" in why
    assert why.index("\u2026 48 more") > why.rindex("rebuilt, ")
    # the table keeps 40 rows of the steps not from the cache, and says what it left out
    table = err[err.index("\nLINE "):].splitlines()[2:]
    rows = [ln for ln in table if "  rebuilt  " in ln]
    rebuilt = [s for s in report["steps"] if s["status"] == "rebuilt"]
    assert len(rows) == 40 < len(rebuilt)
    assert f"\u2026 {len(rebuilt) - 40} more rows not shown ({len(rebuilt) - 40} quicker)" in err
    assert len(err.splitlines()) < 100


def test_analyze_compares_with_the_previous_record_of_the_same_project(capsys, store):
    common = ["--store", store, "--context", "/work/ctx"]
    assert cw(capsys, "analyze", *common, "--metadata-file", cap("multistage-warm.meta.json"),
              cap("multistage-warm.jsonl"))[0] == 0
    warm_id = Store(store).list_records()[0][0]["id"]
    rc, out, err = cw(capsys, "analyze", *common, "--metadata-file", cap("multistage-change.meta.json"),
                      "--report-json", "-", cap("multistage-change.jsonl"))
    assert rc == 0, err
    report = json.loads(out)
    assert report["previous"]["ref"] == warm_id
    assert [m["line"] for m in roots(report)] == [6]
    # another project: nothing to compare with
    rc, out, _ = cw(capsys, "analyze", "--store", store, "--context", "/work/other", "--metadata-file",
                    cap("multistage-change.meta.json"), "--report-json", "-", cap("multistage-change.jsonl"))
    report = json.loads(out)
    assert report["previous"] is None
    assert {m["cause"]["kind"] for m in roots(report)} == {"no-previous-build"}


def test_analyze_without_provenance_or_previous_still_gives_statuses(capsys, store):
    rc, out, err = cw(capsys, "analyze", "--store", store, "--no-record", "--report-json", "-",
                      cap("multistage-change.jsonl"))
    assert rc == 0, err
    report = json.loads(out)
    # no Dockerfile at all: no lines, but every step's status and the cascades
    by_text = {s["instruction"]: s["status"] for s in report["steps"] if s.get("instruction")}
    assert by_text["COPY src/ ./src/"] == "rebuilt" and by_text["COPY config.txt ./"] == "cached"
    assert any("no provenance" in n for n in report["notes"])
    assert any("no --previous" in n for n in report["notes"])


def test_analyze_failed_build(capsys, store, tmp_path):
    rc, err, _ = cw(capsys, "analyze", "--store", store, "--dockerfile", FAIL_DF, "--report-json",
                    tmp_path / "r.json", cap("failing.jsonl"))
    assert rc == 0, err  # the analysis worked; the build's own exit code is in the report
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["build"]["exit_code"] == 1
    got = statuses(report)
    assert got[7] == "failed" and got[8] in ("skipped", "canceled") and got[2] == "canceled"
    assert "| checking input" in err  # the failed step's own output
    assert "exit 1" in err
    assert Store(store).list_records()[0][0]["exit_code"] == 1


def test_analyze_from_stdin(store):
    log = (RAWJSON / "multistage-change.jsonl").read_bytes()
    res = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--store", str(store), "--metadata-file",
                          cap("multistage-change.meta.json"), "--report-json", "-", "-"],
                         input=log, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, timeout=60,
                         env=dict(os.environ, CACHEWHY_LIVE="none"))
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads(res.stdout)
    assert statuses(report) == CHANGE_STATUSES
    assert "Why:" in res.stderr.decode()


@pytest.mark.parametrize("content, expect", [
    (b"", "is empty"),
    (bytes(range(256)) * 40, "binary"),
    (b"#1 [internal] load build definition from Dockerfile\n#1 DONE 0.0s\n", "--progress=plain"),
    (b"hello\nworld\n", "no build events"),
    (b'{"buildx.build.ref": "x"}\n', "no build step"),
    (b'{\n  "vertexes": [\n', "no build events"),
])
def test_analyze_bad_input_is_one_line_and_exit_2(capsys, store, tmp_path, content, expect):
    log = tmp_path / "bad.log"
    log.write_bytes(content)
    rc, out, err = cw(capsys, "analyze", "--store", store, log)
    assert rc == 2
    assert expect in one_line_error(err)
    assert out == ""


@pytest.mark.parametrize("args, expect", [
    (["/nonexistent/build.log"], "No such file"),
    (["--metadata-file", "/nonexistent.json", cap("multistage-change.jsonl")], "no such file"),
    (["--previous", "nope", cap("multistage-change.jsonl")], "no record matching"),
    ([], "one LOG"),
    (["a.log", "b.log"], "one LOG"),
    (["--bogus", cap("multistage-change.jsonl")], "unknown option '--bogus'"),
    (["--width", "x", cap("multistage-change.jsonl")], "--width"),
])
def test_analyze_bad_arguments(capsys, store, tmp_path, args, expect):
    rc, _, err = cw(capsys, "analyze", "--store", store, *args)
    assert rc == 2
    assert expect in one_line_error(err)


def test_analyze_bad_stdin_is_one_line(store):
    for data in (b"", os.urandom(50000)):
        res = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--store", str(store), "-"], input=data,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, timeout=60)
        assert res.returncode == 2
        assert one_line_error(res.stderr.decode()).startswith("cachewhy: stdin ")


def test_report_file_is_not_a_previous_record(capsys, store, tmp_path):
    cw(capsys, "analyze", "--store", store, "--report-json", tmp_path / "r.json", *change_vs_warm())
    rc, _, err = cw(capsys, "analyze", "--store", store, "--previous", tmp_path / "r.json",
                    cap("multistage-change.jsonl"))
    assert rc == 2 and "JSON report, not a record" in one_line_error(err)


# --------------------------------------------------------------------------
# history


def _record(rid: str, created: float, context: str, code: int = 0, target: str | None = None,
            complete: bool = True) -> dict:
    return {"schema": "cachewhy.record/v1", "id": rid, "created": created, "complete": complete,
            "exit_code": code, "steps": [],
            "project": {"context": context, "dockerfile": f"{context}/Dockerfile", "target": target,
                        "platforms": []}}


@pytest.fixture
def listed_store(store) -> Store:
    st = Store(store, fsync=False)
    st.save(_record("20260101T000000000000-aaaaaaaa", 1_767_225_600.0, "/src/app"),
            summary={"hit_ratio": 1.0, "time_lost_s": 0.0, "top_cause": None, "top_line": None})
    st.save(_record("20260103T000000000000-cccccccc", 1_767_398_400.0, "/src/app", code=1, target="test"),
            summary={"hit_ratio": 0.4, "time_lost_s": 75.5, "top_cause": "context-changed", "top_line": 7})
    # saved last but built first: listed by build time
    st.save(_record("20260102T000000000000-bbbbbbbb", 1_767_312_000.0, "/a/very/long/path/to/some/deep/project/dir",
                    complete=False),
            summary={"hit_ratio": 0.6, "time_lost_s": 1.25, "top_cause": "instruction-changed", "top_line": 3})
    return st


def test_history_newest_first_one_line_each(capsys, listed_store):
    rc, out, err = cw(capsys, "history", "--store", listed_store.root, "--width", "200")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "WHEN", "CONTEXT", "TARGET", "EXIT", "HITS", "LOST", "TOP", "CAUSE"]
    rows = lines[1:4]
    assert [r.split()[0] for r in rows] == ["20260103T000000000000-cccccccc", "20260102T000000000000-bbbbbbbb",
                                            "20260101T000000000000-aaaaaaaa"]
    newest = rows[0].split()
    assert newest[3:5] == ["/src/app", "test"] and newest[5] == "1"
    assert newest[6:9] == ["40%", "1m15.5s", "context-changed"] and rows[0].endswith("at Dockerfile:7")
    assert "\u2026" in rows[1] and "0*" in rows[1]  # shortened context; an interrupted build
    assert rows[2].split()[6:] == ["100%", "-", "-"]
    assert lines[4].startswith("* ")
    import time
    assert rows[0].split()[1:3] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_767_398_400.0)).split()


def test_history_limit_and_json(capsys, listed_store):
    rc, out, err = cw(capsys, "history", "--store", listed_store.root, "--limit", "2", "--width", "200")
    assert rc == 0 and len(out.splitlines()) == 4  # header, 2 rows, the footnote of the interrupted one
    assert "(2 of 3 builds" in err
    rc, out, _ = cw(capsys, "history", "--store", listed_store.root, "--json", "--limit", "all")
    entries = json.loads(out)
    assert [e["id"][-8:] for e in entries] == ["cccccccc", "bbbbbbbb", "aaaaaaaa"]
    assert entries[0]["summary"]["top_cause"] == "context-changed"
    assert entries == listed_store.list_records()[0]
    for bad in ("0", "x", "-1"):
        rc, _, err = cw(capsys, "history", "--store", listed_store.root, "--limit", bad)
        assert rc == 2 and "--limit" in one_line_error(err)


def test_history_matches_the_store_when_the_index_is_damaged(capsys, listed_store):
    st = listed_store
    # a record saved again (its newer line wins), a torn line, a record file the index lacks
    st.save(_record("20260101T000000000000-aaaaaaaa", 1_767_225_600.0, "/src/app"),
            summary={"hit_ratio": 0.5, "time_lost_s": 2.0, "top_cause": "cache-evicted", "top_line": 2})
    with open(st.index_path, "ab") as f:
        f.write(b'{"id":"20260109T0000')
    (st.root / "20260104T000000000000-dddddddd.json").write_text(
        json.dumps(_record("20260104T000000000000-dddddddd", 1_767_484_800.0, "/src/app")))
    rc, out, _ = cw(capsys, "history", "--store", st.root, "--json", "--limit", "all")
    assert rc == 0
    got = json.loads(out)
    assert got == st.list_records()[0]
    assert [e["id"][-8:] for e in got] == ["dddddddd", "cccccccc", "bbbbbbbb", "aaaaaaaa"]
    assert got[3]["summary"]["top_cause"] == "cache-evicted"
    rc, out, _ = cw(capsys, "history", "--store", st.root, "--width", "200")
    assert out.splitlines()[1].split()[-3:] == ["?", "?", "?"]  # no summary for a record the index lacked


def test_history_of_an_empty_store(capsys, store):
    rc, out, err = cw(capsys, "history", "--store", store)
    assert rc == 0 and out == "" and "no builds recorded" in err
    rc, out, _ = cw(capsys, "history", "--store", store, "--json")
    assert json.loads(out) == []


def test_history_imports_nothing_heavy(listed_store):
    code = ("import sys; from analyzer.cli import main; rc = main(['history', '--store', sys.argv[1]]); "
            "sys.stderr.write(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code, str(listed_store.root)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=REPO, timeout=60)
    assert res.returncode == 0
    imported = set(res.stderr.decode().split())
    assert "analyzer.commands.history" in imported and "analyzer.store" in imported
    for heavy in ("networkx", "python_on_whales", "analyzer.graph", "analyzer.explain", "analyzer.snapshot",
                  "analyzer.dockerfile", "analyzer.events", "analyzer.pipeline", "analyzer.report.text"):
        assert heavy not in imported, heavy


# --------------------------------------------------------------------------
# show


def test_show_replays_the_stored_report(capsys, store, tmp_path):
    rc, first, _ = cw(capsys, "analyze", "--store", store, "--context", "/work/ctx",
                      "--report-json", tmp_path / "a.json", *change_vs_warm())
    assert rc == 0
    rc, err, _ = cw(capsys, "show", "--store", store, "--report-json", tmp_path / "s.json")
    assert rc == 0, err
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads((tmp_path / "a.json").read_text())
    assert err.splitlines()[0].startswith("Build ") and "/work/ctx" in err.splitlines()[0]
    assert err.split("\n", 1)[1] == first  # the very report the analysis showed
    rid = Store(store).list_records()[0][0]["id"]
    for ref in (rid, rid[:18], "^0", "last", str(Store(store).path_for(rid))):
        assert cw(capsys, "show", "--store", store, ref)[0] == 0


def test_show_an_old_record_without_its_report(capsys, store):
    common = ["--store", store, "--context", "/work/ctx"]
    cw(capsys, "analyze", *common, "--metadata-file", cap("multistage-warm.meta.json"), cap("multistage-warm.jsonl"))
    cw(capsys, "analyze", *common, "--metadata-file", cap("multistage-change.meta.json"),
       cap("multistage-change.jsonl"))
    st = Store(store)
    entries = st.list_records()[0]
    for e in entries:  # as an older cachewhy kept them
        rec = st.load(e["id"])
        rec.pop("report")
        st.save(rec, summary=e["summary"])
    rc, out, err = cw(capsys, "show", "--store", store, "--report-json", "-", "^0")
    assert rc == 0, err
    report = json.loads(out)
    assert report["previous"]["ref"] == entries[1]["id"]
    assert [m["line"] for m in roots(report)] == [6]
    assert "explained again against" in err
    rc, out, err = cw(capsys, "show", "--store", store, "--report-json", "-", "^1")
    report = json.loads(out)
    assert report["previous"] is None
    assert any("causes are not known" in n for n in report["notes"])


def test_show_unknown_ref(capsys, store, listed_store):
    rc, _, err = cw(capsys, "show", "--store", store, "zzz")
    assert rc == 2 and "no record matching" in one_line_error(err)
    rc, _, err = cw(capsys, "show", "--store", store, "^9")
    assert rc == 2 and "holds 3 record(s)" in one_line_error(err)


# --------------------------------------------------------------------------
# diff


def diff_table(err: str) -> dict[str, list[str]]:
    lines = err.splitlines()
    start = next(i for i, x in enumerate(lines) if x.lstrip().startswith("LINE  INSTRUCTION"))
    head = lines[start]
    cols = [head.index(c) for c in ("INSTRUCTION", "A ", "B ", "WHAT CHANGED")]
    rows = {}
    for row in lines[start + 1:]:
        if not row.strip() or row.startswith(("A: ", "B: ")):
            break
        rows[row[:cols[0]].strip()] = [row[cols[0]:cols[1]].strip(), row[cols[1]:cols[2]].strip(),
                                       row[cols[2]:cols[3]].strip(), row[cols[3]:].strip()]
    return rows


def test_diff_of_two_logs(capsys, store, tmp_path):
    rc, out, err = cw(capsys, "diff", "--store", store, "--width", "160", "--metadata-a",
                      cap("multistage-warm.meta.json"), "--metadata-b", cap("multistage-change.meta.json"),
                      "--report-json", tmp_path / "d.json", cap("multistage-warm.jsonl"), cap("multistage-change.jsonl"))
    assert rc == 0, err
    assert err == ""
    err = out  # the comparison is on stdout
    assert "Why: 1 root cause" in err
    rows = diff_table(err)
    assert rows["2"][1:] == ["cached", "cached", "-"]
    assert rows["6"][0] == "COPY src/ ./src/"
    assert rows["6"][1:3] == ["cached", "rebuilt"] and rows["6"][3].startswith("unknown: ")
    assert rows["7"][1:] == ["cached", "rebuilt", "follows line 6 (unknown)"]
    assert rows["11"][3] == "stage-changed: follows line 6 (unknown)"
    assert set(rows) == {str(n) for n in CHANGE_STATUSES}
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["previous"]["ref"] == f"log {cap('multistage-warm.jsonl')}"
    assert [m["line"] for m in roots(report)] == [6]
    assert "A: cache hits 8/8 (100%)" in err and "B: cache hits 3/8 (38%)" in err
    # nothing was written to the store
    assert not store.exists()


def test_diff_cold_to_warm_old_buildx(capsys, store):
    rc, out, err = cw(capsys, "diff", "--store", store, "--width", "160", "--dockerfile-a", MULTI_DF,
                      "--dockerfile-b", MULTI_DF, "--report-json", "-", cap("old-multistage-cold.jsonl"),
                      cap("old-multistage-warm.jsonl"))
    assert rc == 0, err
    rows = diff_table(err)
    assert rows["7"][1:] == ["rebuilt", "cached", "cached now"]
    assert "Why: nothing was rebuilt" in err
    notes = json.loads(out)["notes"]
    assert sum(n.startswith(("A (", "B (")) and "no provenance" in n for n in notes) == 2


def test_diff_of_stored_records(capsys, store):
    common = ["--store", store, "--context", "/work/ctx"]
    cw(capsys, "analyze", *common, "--metadata-file", cap("multistage-warm.meta.json"), cap("multistage-warm.jsonl"))
    cw(capsys, "analyze", *common, "--metadata-file", cap("multistage-change.meta.json"),
       cap("multistage-change.jsonl"))
    rc, out, err = cw(capsys, "diff", "--store", store, "--width", "160", "--report-json", "-", "^1", "^0")
    assert rc == 0, err
    ids = [e["id"] for e in Store(store).list_records()[0]]
    report = json.loads(out)
    assert report["build"]["ref"] == ids[0] and report["previous"]["ref"] == ids[1]
    assert diff_table(err)["6"][1:3] == ["cached", "rebuilt"]
    # the other way round: B (the warm build) rebuilt nothing
    rc, out, _ = cw(capsys, "diff", "--store", store, "^0", "^1")  # on stdout: no report goes there
    assert "Why: nothing was rebuilt" in out and diff_table(out)["6"][1:3] == ["rebuilt", "cached"]


def test_diff_arguments(capsys, store):
    rc, _, err = cw(capsys, "diff", "--store", store, cap("multistage-warm.jsonl"))
    assert rc == 2 and "two builds" in one_line_error(err)
    rc, _, err = cw(capsys, "diff", "--store", store, "-", "-")
    assert rc == 2 and "stdin" in one_line_error(err)


# --------------------------------------------------------------------------
# gates


def test_gate_hit_ratio(capsys, store):
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-below-hit-ratio", "80%", *change_vs_warm())
    assert rc == GATE_EXIT == 4
    assert "cachewhy: gate: hit ratio 38% below 80%" in err.splitlines()
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-below-hit-ratio", "0.3", *change_vs_warm())
    assert rc == 0 and "gate" not in err
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-below-hit-ratio", "0.375", *change_vs_warm())
    assert rc == 0  # equal is not below


def test_gate_fail_on(capsys, store):
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-on", "context-changed,unknown", *change_vs_warm())
    assert rc == 4
    assert [x for x in err.splitlines() if "gate" in x] == ["cachewhy: gate: root cause unknown at Dockerfile:6"]
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-on", "context-changed", "--fail-on",
                    "cache-evicted", *change_vs_warm())
    assert rc == 0 and "gate" not in err
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-on", "stage-changed", *change_vs_warm())
    assert rc == 4 and "cachewhy: gate: cause stage-changed at Dockerfile:11" in err
    # both gates: one line each
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-on", "unknown", "--fail-below-hit-ratio", "1",
                    *change_vs_warm())
    assert rc == 4 and len([x for x in err.splitlines() if x.startswith("cachewhy: gate:")]) == 2


def test_gates_on_show_and_diff(capsys, store):
    cw(capsys, "analyze", "--store", store, *change_vs_warm())
    assert cw(capsys, "show", "--store", store, "--fail-on", "unknown")[0] == 4
    assert cw(capsys, "show", "--store", store, "--fail-below-hit-ratio", "30%")[0] == 0
    args = ["--metadata-a", cap("multistage-warm.meta.json"), "--metadata-b", cap("multistage-change.meta.json"),
            cap("multistage-warm.jsonl"), cap("multistage-change.jsonl")]
    assert cw(capsys, "diff", "--store", store, "--fail-below-hit-ratio", "50%", *args)[0] == 4
    assert cw(capsys, "diff", "--store", store, "--fail-on", "cache-evicted", *args)[0] == 0


def test_gate_usage_errors(capsys, store):
    rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-on", "context-change", cap("failing.jsonl"))
    line = one_line_error(err)
    assert rc == 2 and "unknown cause 'context-change'" in line and all(k in line for k in KINDS)
    for bad in ("1.5", "120%", "-0.1", "abc", "nan"):
        rc, _, err = cw(capsys, "analyze", "--store", store, "--fail-below-hit-ratio", bad, cap("failing.jsonl"))
        assert rc == 2 and "--fail-below-hit-ratio" in one_line_error(err)
    rc, _, err = cw(capsys, "build", "--fail-on", "bogus", ".")
    assert rc == 2 and "unknown cause 'bogus'" in one_line_error(err)


def test_parse_ratio():
    assert parse_ratio("80%") == pytest.approx(0.8)
    assert parse_ratio(".8") == pytest.approx(0.8)
    assert parse_ratio("0") == 0.0 and parse_ratio("1") == 1.0 and parse_ratio("100%") == 1.0
    assert parse_ratio("62.5%") == pytest.approx(0.625)


REPORT = {
    "build": {"dockerfile": "/p/Dockerfile"},
    "summary": {"hit_ratio": 0.7996, "cached": 4, "rebuilt": 1},
    "misses": [
        {"id": "a", "line": 7, "root": True, "cause": {"kind": "context-changed"},
         "also": [{"kind": "build-arg-changed"}]},
        {"id": "b", "line": 9, "root": False, "cause": {"kind": "context-changed"},
         "also": [{"kind": "instruction-changed"}]},
    ],
}


def test_gate_lines_and_the_build_failure_wins():
    gates = Gates.from_options({"fail_below_hit_ratio": "80%", "fail_on": ["context-changed,instruction-changed",
                                                                            "build-arg-changed"]})
    assert gates.check(REPORT) == [
        "hit ratio 79.96% below 80.00%",  # as many decimals as it takes to tell them apart
        "root cause context-changed at Dockerfile:7",
        "root cause build-arg-changed at Dockerfile:7 (besides context-changed)",
        "cause instruction-changed at Dockerfile:9 (a cascade step)",
    ]
    err = io.StringIO()
    assert gates.apply(REPORT, 0, stream=err) == 4
    assert err.getvalue().count("cachewhy: gate: ") == 4
    err = io.StringIO()
    assert gates.apply(REPORT, 1, stream=err) == 1  # a failed build keeps its exit code
    assert gates.apply(REPORT, 125, stream=io.StringIO()) == 125
    assert "cachewhy: gate: hit ratio" in err.getvalue()  # the tripped gates are still shown
    assert Gates().apply(REPORT, 0) == 0  # no gates, no change
    # a report that could not be made fails the gate instead of passing unseen
    err = io.StringIO()
    assert gates.apply(None, 0, stream=err) == 4 and "not checked" in err.getvalue()
    # nothing ran: no hit ratio to be below
    assert Gates(min_hit_ratio=0.9).check({"summary": {"hit_ratio": None}, "misses": []}) == []


def test_gate_help_names_every_kind():
    text = " ".join(GATE_HELP.split())
    assert all(k in text for k in KINDS)


# --------------------------------------------------------------------------
# the command table


def test_top_level_help_lists_every_command(capsys):
    rc, out, _ = cw(capsys, "--help")
    assert rc == 0
    for name in COMMANDS:
        assert f"\n  {name} " in out
        rc, text, _ = cw(capsys, name, "--help")
        assert rc == 0 and text.startswith(f"usage: cachewhy {name}")
