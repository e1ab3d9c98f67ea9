"""Unit tests for `cachewhy trends`: the model over the SQLite index, the regression
rule, and the terminal, Markdown, JSON and HTML forms (charts: matplotlib)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from analyzer import trends
from analyzer.cli import main
from analyzer.store import SCHEMA, Store

T0 = 1_790_000_000.0  # 2026-09-21
PROJ = {"context": "/src/shop", "dockerfile": "/src/shop/Dockerfile", "target": None, "platforms": []}
STEPS = [(12, "COPY package.json ./"), (13, "COPY . ."), (14, "RUN npm ci"), (15, "RUN npm run build")]


def record(i: int, missed: dict[int, str], *, created: float | None = None, project: dict = PROJ,
           dur: float = 60.0, detail: str = "src/app.js modified") -> dict:
    """Build i of PROJ; `missed` maps a line to the kind of its root miss ('' = a follower of the
    first root before it)."""
    steps, misses, roots = [], [], []
    for line, text in STEPS:
        sid = f"s{line}"
        status = "rebuilt" if line in missed else "cached"
        steps.append({"id": sid, "keyword": text.split()[0], "line": line, "instruction": text,
                      "status": status, "duration_s": dur if status == "rebuilt" else 0.0})
        if line in missed:
            if missed[line]:
                misses.append({"id": sid, "line": line, "instruction": text, "root": True, "caused_by": [],
                               "time_lost_s": dur, "cause": {"kind": missed[line], "detail": detail}})
                roots.append(sid)
            else:
                misses.append({"id": sid, "line": line, "instruction": text, "root": False, "caused_by": roots[:1],
                               "time_lost_s": dur, "cause": {"kind": "follower", "detail": "follows"}})
                if roots:
                    next(m for m in misses if m["id"] == roots[0])["time_lost_s"] += dur
    steps.insert(0, {"id": "from", "keyword": "FROM", "line": 1, "instruction": "FROM node", "status": "cached"})
    cached = sum(1 for s in steps[1:] if s["status"] == "cached")
    lost = sum(m["time_lost_s"] for m in misses if m["root"])
    return {"schema": SCHEMA, "id": f"2026{i:06d}T000000000000-{i:08x}",
            "created": created if created is not None else T0 + i * 3600, "complete": True, "exit_code": 0,
            "project": dict(project), "steps": steps,
            "report": {"summary": {"cached": cached, "rebuilt": len(STEPS) - cached,
                                   "hit_ratio": cached / len(STEPS), "time_lost_s": lost}, "misses": misses}}


def history_with_a_regression(store: Store) -> list[dict]:
    """10 builds mostly cached, then from build 10 on `RUN npm ci` rebuilds in 8 of 10 (after line 13's
    context change in build 10), and an unrelated instruction change at line 15 in build 4."""
    recs = []
    for i in range(20):
        missed: dict[int, str] = {}
        if i == 4:
            missed = {15: "instruction-changed"}
        elif i == 10:
            missed = {13: "context-changed", 14: "", 15: ""}
        elif i > 10 and i not in (13, 17):
            missed = {14: "context-changed", 15: ""}
        rec = record(i, missed, detail="node_modules/left-pad/index.js added" if i == 10 else "package-lock.json modified")
        store.save(rec, summary={"hit_ratio": rec["report"]["summary"]["hit_ratio"],
                                 "time_lost_s": rec["report"]["summary"]["time_lost_s"]})
        recs.append(rec)
    return recs


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "records", fsync=False)


def model_of(store: Store, **kw) -> dict:
    from analyzer.trends_sources import from_store  # noqa: PLC0415

    db, load, absent, problems, _ = from_store(str(store.root))
    assert problems == []
    return trends.gather(db, since=None, now=T0 + 30 * 86400, absent=absent, load=load, **kw)


# --------------------------------------------------------------------------
# the rule


@pytest.mark.parametrize("seq, onset", [
    ("CCCCMMMM", 4),
    ("CCCCMMCMMM", 4),          # a cached build inside the streak
    ("CCMCCCMMMM", 6),          # an isolated earlier miss is not the onset
    ("MMMM", None),             # never cached: no onset
    ("CCCC", None),
    ("CCCCCCCCMC", None),       # M - C from the miss on is 0: no majority
])
def test_onset(seq, onset):
    assert trends._onset([c == "M" for c in seq]) == onset


@pytest.mark.parametrize("seq, regressed", [
    ("CCCCMMMMCM", True),
    ("CCCCMM", False),          # two misses: fewer than MIN_MISSES
    ("CMMM", False),            # one build before it: fewer than MIN_BEFORE
    ("CMCMCMMMM", False),       # onsets 1, 3, 5 tie; from 5: 4 of 4 at an earlier rate of 2 in 5: chance
    ("MMCMMMM", False),         # before the onset the line mostly missed: nothing regressed
])
def test_is_regression(seq, regressed):
    got = trends._is_regression([(i, c == "M", 10.0) for i, c in enumerate(seq)])
    assert (got is not None) == regressed


# --------------------------------------------------------------------------
# the model


def test_trends_of_a_store_find_the_regression_and_its_cause(store):
    history_with_a_regression(store)
    m = model_of(store)
    assert m["builds"] == 20 and len(m["projects"]) == 1
    p = m["projects"][0]
    assert p["context"] == "/src/shop" and p["builds"] == 20 and p["per"] == "build"
    # hits: 4 steps a build; misses: 1 (build 4) + 3 (build 10) + 2 x 7 (11..19 but 13, 17)
    assert p["hit_ratio"] == round(1 - (1 + 3 + 14) / 80, 4)
    assert p["time_lost_s"] == 60.0 * 18
    assert [(k["kind"], k["time_lost_s"], k["roots"]) for k in p["lost_by_kind"]] == [
        ("context-changed", 60.0 * 17, 8), ("instruction-changed", 60.0, 1)]
    assert [(ln["line"], ln["misses"]) for ln in p["lines"]] == [(15, 9), (14, 8), (13, 1)]
    (reg,) = p["regressions"]
    assert (reg["line"], reg["instruction"]) == (14, "RUN npm ci")
    assert reg["first_build"] == record(10, {})["id"] and reg["since"] == T0 + 10 * 3600
    assert (reg["missed"], reg["of"]) == (8, 10)
    # the cause of build 10's miss of line 14: line 13's context change, read from that build's record
    assert reg["cause"]["kind"] == "context-changed" and reg["cause"]["line"] == 13
    assert reg["cause"]["detail"] == "node_modules/left-pad/index.js added" and not reg["cause"]["same_line"]
    # line 15 regressed with it, from the same root in the same build: told under line 14
    assert [a["line"] for a in reg["also"]] == [15]
    assert reg["time_lost_s"] == 60.0 * 16
    # the strip: the 20 builds x the 4 steps of the newest build, FROM left out
    assert [s["line"] for s in p["strip"]["steps"]] == [12, 13, 14, 15]
    assert p["strip"]["cells"][2] == "C" * 10 + "RRRCRRRCRR"
    assert p["strip"]["cells"][3] == "CCCCRCCCCCRRRCRRRCRR"


def test_regression_cause_unknown_when_the_record_is_gone(store):
    history_with_a_regression(store)
    store.path_for(record(10, {})["id"]).unlink()
    (reg,) = model_of(store)["projects"][0]["regressions"]
    # build 10 is out of the trends (its record is gone): the onset is build 11, whose record says
    # line 14 was a root (context-changed) itself
    assert reg["first_build"] == record(11, {})["id"] and reg["cause"]["same_line"]
    assert reg["cause"]["detail"] == "package-lock.json modified"


def test_since_limit_and_project(store):
    history_with_a_regression(store)
    other = dict(PROJ, context="/src/other", dockerfile="/src/other/Dockerfile")
    store.save(record(30, {13: "cache-evicted", 14: ""}, project=other))
    db, load, absent, _, _ = __import__("analyzer.trends_sources", fromlist=["x"]).from_store(str(store.root))
    m = trends.gather(db, since=T0 + 15 * 3600, now=T0 + 40 * 3600, load=load)
    assert sorted((p["context"], p["builds"]) for p in m["projects"]) == [("/src/other", 1), ("/src/shop", 5)]
    m = trends.gather(db, since=None, now=T0, limit=3, load=load)
    assert m["builds"] == 3
    m = trends.gather(db, since=None, now=T0, contexts=["/src/other"], load=load)
    assert [p["context"] for p in m["projects"]] == ["/src/other"]
    assert m["projects"][0]["lost_by_kind"][0]["kind"] == "cache-evicted"


def test_parse_since():
    now = 1_800_000_000.0
    assert trends.parse_since("30d", now) == now - 30 * 86400
    assert trends.parse_since("12h", now) == now - 12 * 3600
    assert trends.parse_since("2w", now) == now - 14 * 86400
    assert trends.parse_since("all", now) is None
    assert trends.parse_since("2026-11-20", now) == time.mktime(time.strptime("2026-11-20", "%Y-%m-%d"))
    with pytest.raises(ValueError, match="--since"):
        trends.parse_since("soon", now)


# --------------------------------------------------------------------------
# the command and its forms


def cw(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    got = capsys.readouterr()
    return rc, got.out, got.err


def test_terminal_form_fits_80_columns(capsys, store, monkeypatch):
    history_with_a_regression(store)
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, err = cw(capsys, "trends", "--store", str(store.root), "--since", "all")
    assert rc == 0, err
    assert max(len(line) for line in out.splitlines()) <= 80
    text = " ".join(out.split())
    assert "cachewhy trends: 20 builds of 1 project, all recorded builds" in text
    assert "/src/shop Dockerfile: 20 builds, hits 78%, 18m00s lost" in text
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(T0 + 10 * 3600))
    assert (f"`RUN npm ci` (line 14) has rebuilt in 8 of 10 builds since {when}, when line 13 `COPY . .` "
            f"missed (context-changed: node_modules/left-pad/index.js added); with it line 15: 16m00s lost since"
            ) in text
    assert "lost by cause: context-changed 17m00s · instruction-changed 1m00s" in text
    assert re.search(r"\n\s+15  RUN npm run build\s+9\s+9m00s\n", out)
    spark = next(line for line in out.splitlines() if "hits/build" in line)
    assert len(spark.split()[1]) == 20  # one point per build


def test_json_and_markdown(capsys, store):
    history_with_a_regression(store)
    rc, out, _ = cw(capsys, "trends", "--store", str(store.root), "--since", "all", "--json")
    assert rc == 0
    m = json.loads(out)
    assert m["schema"] == "cachewhy.trends/v1" and m["projects"][0]["regressions"][0]["line"] == 14
    rc, out, _ = cw(capsys, "trends", "--store", str(store.root), "--since", "all", "--markdown")
    assert rc == 0
    from markdown_it import MarkdownIt  # noqa: PLC0415

    html = MarkdownIt("commonmark").enable("table").render(out)
    assert "<table>" in html and "<code>RUN npm ci</code> (line 14) has rebuilt in 8 of 10 builds" in html
    assert "| <code>/src/shop</code> Dockerfile | 20 | 0 | 78% | 18m00s | 1 |" in out


def test_bad_options_are_one_line(capsys, store):
    for args, word in ((["--since", "soon"], "--since"), (["--limit", "0"], "--limit"), (["--per", "hour"], "--per"),
                       (["--json", "--markdown"], "choose one"), (["--bogus"], "--bogus"),
                       (["/no/such/folder"], "no such record file, bundle or folder")):
        rc, out, err = cw(capsys, "trends", "--store", str(store.root), *args)
        assert rc == 2 and word in err and len(err.strip().splitlines()) == 1 and out == "", (args, err)


def test_empty_store(capsys, tmp_path):
    rc, out, err = cw(capsys, "trends", "--store", str(tmp_path / "none"))
    assert rc == 0 and "0 builds of 0 projects" in out and "no builds in this period" in out
    assert not (tmp_path / "none").exists()  # reading makes no store


def test_a_folder_of_records(capsys, tmp_path, store):
    recs = history_with_a_regression(store)
    folder = tmp_path / "from-ci"
    folder.mkdir()
    for r in recs:
        (folder / f"{r['id']}.json").write_text(json.dumps(r))
    (folder / "junk.json").write_text("not json")
    rc, out, err = cw(capsys, "trends", "--since", "all", "--json", str(folder))
    assert rc == 0
    m = json.loads(out)
    assert "junk.json" in err and "corrupt JSON" in err
    assert m["source"] == f"20 record files in {folder}"
    stored = model_of(store)
    assert m["projects"][0]["regressions"] == stored["projects"][0]["regressions"]
    assert m["projects"][0]["lines"] == stored["projects"][0]["lines"]


def test_a_migrated_store_gets_its_step_rows(capsys, store):
    """A store indexed by an older cachewhy (index.jsonl only): trends fills the step rows."""
    from analyzer import store as st  # noqa: PLC0415

    recs = history_with_a_regression(store)
    entries = [st._entry_from_record(r, r["id"], {"hit_ratio": 0.5}) for r in recs]
    store._close()
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        (store.root / name).unlink(missing_ok=True)
    (store.root / "index.jsonl").write_bytes(b"".join(st._entry_line(e, False) for e in entries))
    (reg,) = model_of(Store(store.root))["projects"][0]["regressions"]
    assert reg["line"] == 14 and reg["missed"] == 8


def _html_of(capsys, store: Store, tmp_path: Path) -> str:
    page = tmp_path / "trends.html"
    rc, _, err = cw(capsys, "trends", "--store", str(store.root), "--since", "all", "--html", str(page))
    assert rc == 0, err
    return page.read_text()


def test_html_page_with_charts(capsys, store, tmp_path):
    pytest.importorskip("matplotlib")  # in the test extra: CI has it
    history_with_a_regression(store)
    html = _html_of(capsys, store, tmp_path)
    assert "<script" not in html.lower() and "http-equiv=\"Content-Security-Policy\"" in html
    assert "default-src 'none'; style-src 'unsafe-inline'; img-src data:" in html
    assert html.count("<svg") == 3  # hit ratio, time lost by cause, the strip
    assert "<code>RUN npm ci</code> (line 14) has rebuilt in 8 of 10 builds" in html
    assert "context-changed (17m00s)" in html  # the stacked bars' legend, as SVG text
    assert "pip install" not in html
    # nothing outside the page: no href/src to anything but fragments
    assert not re.search(r"""(?:src|href)=["'](?!#)""", re.sub(r"<a href=\"https://[^\"]*\"", "", html))


def test_html_page_without_matplotlib_says_how(capsys, store, tmp_path, monkeypatch):
    history_with_a_regression(store)
    import builtins  # noqa: PLC0415

    real = builtins.__import__

    def no_mpl(name, *a, **k):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    html = _html_of(capsys, store, tmp_path)
    assert "<svg" not in html and "pip install 'cachewhy[charts]'" in html
    assert "<code>RUN npm ci</code> (line 14) has rebuilt in 8 of 10 builds" in html


def test_hostile_text_is_escaped(capsys, store, tmp_path):
    global STEPS
    saved = STEPS
    STEPS = [(12, "COPY package.json ./"), (13, "COPY . ."), (14, "RUN echo '<script>alert(1)</script>' | x"),
             (15, "RUN npm run build")]
    try:
        history_with_a_regression(store)
    finally:
        STEPS = saved
    html = _html_of(capsys, store, tmp_path)
    assert "<script>" not in html and "&lt;script&gt;" in html
    rc, out, _ = cw(capsys, "trends", "--store", str(store.root), "--since", "all", "--markdown")
    assert "<script>" not in out


def test_regression_cause_unknown_is_said_as_it_is(store):
    """The first build's record unreadable, or its report silent about the miss: the cause is
    unknown, and the sentence says which build and why, never a guess."""
    from analyzer.report.trends_text import regression_sentence  # noqa: PLC0415

    history_with_a_regression(store)
    first = record(10, {})["id"]
    path = store.path_for(first)
    good = path.read_text()
    rec = json.loads(good)
    rec["report"]["misses"] = []
    path.write_text(json.dumps(rec))  # written behind the index's back: its rows stay
    regs = model_of(store)["projects"][0]["regressions"]
    # without the root, lines 14 and 15 cannot be told as one regression: each is its own
    assert [r["line"] for r in regs] == [14, 15]
    reg = regs[0]
    assert reg["first_build"] == first and reg["cause"] is None and reg["no_cause"] == "not in its report"
    assert f", cause unknown (the report of build {first} does not name this miss)" in regression_sentence(reg)
    path.write_text("{garbage")
    from analyzer.trends_sources import from_store  # noqa: PLC0415

    db, load, absent, _problems, _ = from_store(str(store.root))
    reg = trends.gather(db, since=None, now=T0, absent=absent, load=load)["projects"][0]["regressions"][0]
    assert reg["cause"] is None and reg["no_cause"] == "unreadable"
    assert f", cause unknown (the record of build {first} could not be read)" in regression_sentence(reg)
