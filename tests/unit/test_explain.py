"""Root misses, cascades and causes, over records made from recorded captures."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from analyzer import dockerfile as dfmod
from analyzer.buildx import RunResult, parse_args
from analyzer.events import load_file
from analyzer.explain import explain, match_steps
from analyzer.graph import build_graph
from analyzer.provenance import load_metadata
from analyzer.record import build_record, make_hasher
from analyzer.report import text
from analyzer.report.model import build_report
from analyzer.snapshot import snapshot
from analyzer.sources.run import from_run
from tests.conftest import PROJECTS, RAWJSON

HASH = make_hasher(b"test-key")


def record_of(capture: str, context=None, argv=None, snap=None, dockerfile_text=None):
    ctx = context or PROJECTS / "multistage"
    df_text = dockerfile_text or (ctx / "Dockerfile").read_text()
    df = dfmod.parse(df_text)
    events = load_file(RAWJSON / f"{capture}.jsonl")
    prov = load_metadata(RAWJSON / f"{capture}.meta.json").primary()
    graph = build_graph(events, df, prov.vertex_lines() if prov else None)
    args = parse_args([*(argv or []), str(ctx)])
    result = RunResult(returncode=0, started=1.0, ended=2.0, metadata_path=RAWJSON / f"{capture}.meta.json")
    inp = from_run(events, args, result, dockerfile_text=df_text, dockerfile_path=ctx / "Dockerfile", snapshot=snap)
    return build_record(inp, record_id=capture, graph=graph, hasher=HASH, complete=True)


@pytest.fixture
def contexts(tmp_path):
    """The multistage context before and after the one-file change of the captures."""
    before = tmp_path / "before"
    shutil.copytree(PROJECTS / "multistage", before)
    after = tmp_path / "after"
    shutil.copytree(before, after)
    with open(after / "src" / "b.txt", "a") as f:
        f.write("gamma\n")
    return before, after


def snap(ctx):
    return snapshot(ctx, excludes=[], follow=["config.txt", "src", "static"]).to_json()


def by_line(analysis):
    return {m.step["line"]: m for m in analysis.misses}


def test_one_file_change_is_one_root_with_its_file(contexts):
    before, after = contexts
    prev = record_of("multistage-warm", before, snap=snap(before))
    cur = record_of("multistage-change", after, snap=snap(after))
    # the records are of different folders: compare as the same project
    cur["project"] = prev["project"]
    analysis = explain(cur, prev)
    misses = by_line(analysis)
    assert [m.step["line"] for m in analysis.roots] == [6]
    root = misses[6]
    assert root.cause.kind == "context-changed"
    assert root.cause.files == {"added": [], "modified": ["src/b.txt"], "removed": []}
    # line 7 follows within the builder stage; 11 crosses into the final stage
    assert misses[7].caused_by == [root.step["id"]] and misses[7].cause.kind == "context-changed"
    assert misses[11].cause.kind == "stage-changed"
    assert misses[11].caused_by == [root.step["id"]]
    assert misses[13].caused_by == [root.step["id"]]
    # the root carries its cascade's time: the sleeping RUN of line 7
    assert root.time_lost_s >= 1.0
    assert set(root.followers) == {misses[n].step["id"] for n in (7, 11, 12, 13)}


def test_cold_build_without_previous_record():
    analysis = explain(record_of("multistage-cold"), None)
    assert {m.step["line"] for m in analysis.roots} == {2, 10}
    assert all(m.cause.kind == "no-previous-build" for m in analysis.roots)


def test_rebuilt_with_nothing_changed_is_evicted():
    prev = record_of("multistage-warm")
    cur = record_of("multistage-cold")  # everything rebuilt, same definition
    analysis = explain(cur, prev)
    kinds = {m.step["line"]: m.cause.kind for m in analysis.roots}
    # WORKDIR steps read no context: identical op and base image -> the cache entry is gone
    assert kinds[2] == kinds[10] == "cache-evicted"


def test_no_cache_flags():
    prev = record_of("multistage-warm")
    cur = record_of("multistage-cold", argv=["--no-cache"])
    assert {m.cause.kind for m in explain(cur, prev).roots} == {"no-cache-requested"}
    cur = record_of("multistage-cold", argv=["--no-cache-filter", "final"])
    kinds = {m.step["line"]: m.cause.kind for m in explain(cur, prev).roots}
    assert kinds == {2: "cache-evicted", 10: "no-cache-requested"}


def test_cache_from_turns_eviction_into_import_missing():
    prev = record_of("multistage-warm")
    cur = record_of("multistage-cold", argv=["--cache-from", "type=local,src=/nope"])
    assert {m.cause.kind for m in explain(cur, prev).roots} == {"cache-import-missing"}


def test_edited_instruction_shows_old_and_new_text():
    prev = record_of("multistage-warm")
    cur = record_of("multistage-cold")
    text_before = cur["dockerfile_text"]
    cur["dockerfile_text"] = text_before.replace("WORKDIR /srv", "WORKDIR /srv2")
    for s in cur["steps"]:
        if s.get("instruction") == "WORKDIR /srv":
            s["instruction"] = "WORKDIR /srv2"
    kinds = {m.step["line"]: m for m in explain(cur, prev).roots}
    assert kinds[10].cause.kind == "instruction-changed"
    assert kinds[10].cause.detail == "WORKDIR /srv \u2192 WORKDIR /srv2"


def test_env_values_are_compared_per_variable_and_never_shown():
    prev = record_of("multistage-warm")
    cur = copy.deepcopy(record_of("multistage-cold"))
    run = next(s for s in cur["steps"] if s.get("line") == 13)
    env = run["op"]["Op"]["exec"]["meta"]["env"]
    env.append("TOKEN=" + HASH("s3cret"))
    for s in cur["steps"]:
        if s.get("line") != 13:
            s["status"] = "cached"
    cur["build_args"] = {"TOKEN": HASH("s3cret")}
    roots = explain(cur, prev).roots
    assert [(m.step["line"], m.cause.kind) for m in roots] == [(13, "build-arg-changed")]
    assert "TOKEN" in roots[0].cause.detail and "s3cret" not in json.dumps(build_report(explain(cur, prev)))


def test_matching_ignores_moved_lines():
    prev = record_of("multistage-warm")["steps"]
    cur = copy.deepcopy(prev)
    for s in cur:
        if s.get("line"):
            s["line"] += 3
        s["id"] = "new-" + s["id"]
    pairs = match_steps(cur, prev)
    assert all(pairs[s["id"]]["instruction"] == s["instruction"] for s in cur if s["id"] in pairs)
    assert len(pairs) == 8


def test_report_and_terminal_agree(contexts):
    before, after = contexts
    prev = record_of("multistage-warm", before, snap=snap(before))
    cur = record_of("multistage-change", after, snap=snap(after))
    cur["project"] = prev["project"]
    report = build_report(explain(cur, prev))
    assert report["schema"] == "cachewhy.report/v1"
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["cause"]["kind"]) for m in roots] == [(6, "context-changed")]
    screen = text.root_causes(report, width=120)
    assert "Dockerfile:6" in screen and "context changed: src/b.txt modified" in screen
    assert "\u2192 5 steps rebuilt" in screen and "(lines 6-13)" in screen
    # deterministic: the same input gives the same bytes
    assert json.dumps(report, sort_keys=True) == json.dumps(build_report(explain(cur, prev)), sort_keys=True)


def test_without_ops_the_dockerfile_lines_before_a_step_are_compared():
    """A failed build has no provenance: a USER or ENV edit is still found in the text."""
    prev = record_of("multistage-warm")
    cur = copy.deepcopy(record_of("multistage-cold"))
    for rec in (prev, cur):
        for s in rec["steps"]:
            s.pop("op", None)
    cur["dockerfile_text"] = cur["dockerfile_text"].replace("WORKDIR /srv\n", "WORKDIR /srv\nUSER nobody\n", 1)
    # USER adds a line: the steps after it move down by one, their text stays
    for s in cur["steps"]:
        if s.get("line") and s["line"] > 10:
            s["line"] += 1
            s["end_line"] = s["line"]
    for s in cur["steps"]:
        s["status"] = "cached" if s.get("line") != 14 else s["status"]
    roots = explain(cur, prev).roots
    assert [(m.step["line"], m.cause.kind) for m in roots] == [(14, "instruction-changed")]
    assert roots[0].cause.detail == "(none) \u2192 USER nobody"


def test_an_edit_inside_a_multi_line_instruction_shows_the_lines_that_differ():
    from analyzer.explain import _text_change  # noqa: PLC0415

    old = ["RUN <<EOF", "echo one", "echo two > /two", "EOF"]
    new = ["RUN <<EOF", "echo one", "echo three > /two", "EOF"]
    assert _text_change(old, new, 3) == "RUN <<EOF (line 5): echo two > /two \u2192 echo three > /two"
    # a line added, a line removed
    assert _text_change(old, [*old[:2], "echo x", *old[2:]], 3) == "RUN <<EOF (line 5): (no line) \u2192 echo x"
    assert _text_change(old, [old[0], *old[2:]], 3) == "RUN <<EOF (line 4): echo one \u2192 (no line)"
    # one line each: the whole instruction, as before
    assert _text_change(["RUN echo one"], ["RUN echo two"], 3) == "RUN echo one \u2192 RUN echo two"


def test_an_older_record_that_ends_a_heredoc_at_its_first_line_is_read_whole():
    from analyzer.explain import _source_text  # noqa: PLC0415

    text = "FROM x\nRUN <<EOF\necho  one\nEOF\nRUN a \\\n   b\n"
    old_style = {"line": 2, "end_line": 2, "instruction": "RUN <<EOF"}
    assert _source_text({"dockerfile_text": text}, old_style) == "RUN <<EOF\necho  one\nEOF"
    assert _source_text({"dockerfile_text": text}, {"line": 5, "end_line": 5}) == "RUN a \\ b"


def _renamed(record: dict, old: str, new: str) -> dict:
    """The record as if its Dockerfile called stage `old` `new` (what BuildKit builds is the same)."""
    rec = copy.deepcopy(record)
    rec["dockerfile_text"] = rec["dockerfile_text"].replace(f"AS {old}", f"AS {new}").replace(
        f"--from={old}", f"--from={new}").replace(f"FROM {old} ", f"FROM {new} ")
    for s in rec["steps"]:
        if s.get("stage") == old:
            s["stage"] = new
        if s.get("instruction"):
            s["instruction"] = s["instruction"].replace(f"AS {old}", f"AS {new}").replace(f"--from={old}", f"--from={new}")
    return rec


def test_stages_pair_by_content_when_renamed(contexts):
    from analyzer.explain import match_stages  # noqa: PLC0415

    before, after = contexts
    prev = record_of("multistage-warm", before, snap=snap(before))
    cur = _renamed(_renamed(record_of("multistage-change", after, snap=snap(after)), "builder", "make"),
                   "final", "stage-2")
    cur["project"] = prev["project"]
    assert match_stages(cur["steps"], prev["steps"]) == {"base": "base", "make": "builder", "stage-2": "final"}
    roots = [m for m in explain(cur, prev).misses if m.root]
    assert [(m.step["line"], m.cause.kind, m.cause.files["modified"]) for m in roots] == \
        [(6, "context-changed", ["src/b.txt"])]
    followers = {m.step["line"]: m for m in explain(cur, prev).misses if not m.root}
    assert followers[11].cause.kind == "stage-changed" and followers[11].also == []


def test_a_stage_that_shares_nothing_pairs_with_nothing_of_its_old_number():
    from analyzer.explain import match_stages, match_steps  # noqa: PLC0415

    def step(i, stage, text):
        return {"id": f"{stage}-{i}", "digest": f"d{stage}{i}", "stage": stage, "keyword": text.split()[0],
                "instruction": text, "line": i, "status": "cached"}
    prev = [step(2, "stage-0", "RUN make"), step(4, "stage-1", "COPY app/ /app"), step(5, "stage-1", "RUN test")]
    cur = [step(2, "stage-0", "RUN make"), step(4, "stage-1", "RUN tools"),
           step(6, "stage-2", "COPY app/ /app"), step(7, "stage-2", "RUN test")]
    assert match_stages(cur, prev) == {"stage-0": "stage-0", "stage-2": "stage-1"}
    pairs = {c: p["id"] for c, p in match_steps(cur, prev).items()}
    assert pairs == {"stage-0-2": "stage-0-2", "stage-2-6": "stage-1-4", "stage-2-7": "stage-1-5"}


def test_a_named_image_context_is_compared_by_the_digests_of_provenance():
    from analyzer.explain import _material_digest  # noqa: PLC0415

    mats = {"pkg:docker/cachewhy-test/x@v1?platform=linux%2Famd64": "sha256:aaa",
            "pkg:docker/alpine@3.20?platform=linux%2Famd64": "sha256:bbb",
            "pkg:docker/ghcr.io/o/r@latest?platform=linux%2Famd64": "sha256:ccc"}
    assert _material_digest("docker-image://docker.io/cachewhy-test/x:v1", mats) == "sha256:aaa"
    assert _material_digest("docker-image://docker.io/library/alpine:3.20", mats) == "sha256:bbb"
    assert _material_digest("docker-image://ghcr.io/o/r", mats) == "sha256:ccc"
    assert _material_digest("docker-image://docker.io/cachewhy-test/x:v2", mats) is None
    # two platforms with two digests: no answer rather than a guess
    mats["pkg:docker/cachewhy-test/x@v1?platform=linux%2Farm64"] = "sha256:ddd"
    assert _material_digest("docker-image://docker.io/cachewhy-test/x:v1", mats) is None


def test_named_context_files_are_compared_and_named(tmp_path):
    from analyzer.explain import _Explainer  # noqa: PLC0415
    from analyzer.snapshot import snapshot_named  # noqa: PLC0415

    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "sub" / "e.txt").write_text("one\n")
    before, _ = snapshot_named({"extra": extra}, {"extra": ["sub"]})
    (extra / "sub" / "e.txt").write_text("two\n")
    after, _ = snapshot_named({"extra": extra}, {"extra": ["sub"]})
    step = {"id": "s", "digest": "d", "keyword": "COPY", "line": 4, "status": "rebuilt",
            "context_inputs": [{"source": "extra", "path": "/sub", "include": [], "exclude": []}]}
    prev = {"steps": [dict(step, status="rebuilt")], "named_snapshots": before}
    cur = {"steps": [step], "named_snapshots": after}
    causes = _Explainer(cur, prev)._context_causes(step)
    assert [(c.kind, c.files) for c in causes] == \
        [("context-changed", {"added": [], "modified": ["extra:sub/e.txt"], "removed": []})]
    # a record of before named snapshots (v1 as it was) compares nothing, and says so
    old = {k: v for k, v in prev.items() if k != "named_snapshots"}
    ex = _Explainer(cur, old)
    assert ex._context_causes(step) == []
    assert ex.unchanged_cause(step, old["steps"][0]).detail.endswith("; files of the build context extra")


def test_follow_paths_of_a_named_context_and_build_context_arguments():
    from analyzer.record import follow_paths  # noqa: PLC0415

    df = dfmod.parse("FROM x\nCOPY a.txt /\nCOPY --from=extra sub/ /e/\nRUN --mount=from=extra,source=lock,target=/l x\n"
                     "COPY --from=other / /o\n")
    assert follow_paths(df) == ["a.txt"]
    assert follow_paths(df, "extra") == ["lock", "sub"]
    assert follow_paths(df, "other") is None  # `/`: all of it
    args = parse_args(["--build-context", "extra=../e", "--build-context=img=docker-image://alpine", "."])
    assert args.build_contexts == {"extra": "../e", "img": "docker-image://alpine"}


def test_heredoc_continuation_and_link_captures():
    """testdata/regen.py's `features` series: a heredoc body edited on line 4."""
    ctx = PROJECTS / "features"
    cold = record_of("features-cold", ctx)
    edit_text = load_metadata(RAWJSON / "features-edit.meta.json").primary().dockerfile_text
    assert "echo three > /two" in edit_text
    edit = record_of("features-edit", ctx, dockerfile_text=edit_text)
    edit["project"] = cold["project"]
    steps = [(s["line"], s["end_line"], s["keyword"]) for s in edit["steps"] if s["line"]]
    # one step per instruction, the LINK COPY merge none of them
    assert steps == [(1, 1, "FROM"), (2, 5, "RUN"), (6, 7, "RUN"), (8, 8, "COPY"), (9, 11, "COPY"), (12, 12, "RUN")]
    assert all(not s["also_at"] for s in edit["steps"])
    report = build_report(explain(edit, cold))
    assert (report["summary"]["cached"], report["summary"]["rebuilt"]) == (1, 4)
    roots = [m for m in report["misses"] if m["root"]]
    assert [(m["line"], m["end_line"], m["cause"]["kind"]) for m in roots] == [(2, 5, "instruction-changed")]
    assert roots[0]["cause"]["detail"] == "RUN <<EOF (line 4): echo two > /two \u2192 echo three > /two"
    rows = [r.split()[0] for r in text.step_table(report).splitlines()[1:] if r.split()[0][0].isdigit()]
    assert rows == ["1", "2-5", "6-7", "8", "9-11", "12"]


def test_a_continuation_line_edit_names_its_line():
    from analyzer.explain import _text_change  # noqa: PLC0415

    assert _text_change(["RUN a \\", "&& b"], ["RUN a \\", "&& c"], 7) == "RUN a (line 8): && b \u2192 && c"


def test_every_format_shows_a_multi_line_instruction_as_one_row_with_its_lines():
    from analyzer.report import html, markdown  # noqa: PLC0415

    ctx = PROJECTS / "features"
    report = build_report(explain(record_of("features-cold", ctx), None))
    md = markdown.render(report)
    assert "| 2-5 |" in md and "| 9-11 |" in md and "| 3 |" not in md
    page = html.render(report)
    assert '<td class="num">2-5</td>' in page and '<td class="num">6-7</td>' in page


def test_diff_pairs_the_from_line_of_a_renamed_stage():
    from analyzer.report.diff import step_rows  # noqa: PLC0415

    a = record_of("multistage-warm")
    b = _renamed(record_of("multistage-change"), "base", "setup")
    rows = {r[0]: r for r in step_rows(a, b, build_report(explain(b, a)))}
    assert rows["1"][1:4] == ("FROM local/busybox:latest AS setup", "source", "source"), rows["1"]


def test_sarif_region_spans_a_multi_line_instruction():
    from analyzer.report import sarif  # noqa: PLC0415

    cold = record_of("features-cold", PROJECTS / "features")
    edit_text = load_metadata(RAWJSON / "features-edit.meta.json").primary().dockerfile_text
    edit = record_of("features-edit", PROJECTS / "features", dockerfile_text=edit_text)
    edit["project"] = cold["project"]
    doc = json.loads(sarif.render(build_report(explain(edit, cold))))
    regions = [r["locations"][0]["physicalLocation"]["region"] for r in doc["runs"][0]["results"]]
    assert [(x["startLine"], x["endLine"]) for x in regions] == [(2, 5)]


def test_heredoc_runs_pair_by_their_bodies():
    """A `RUN <<EOF` inserted above another is the new one, not an edit of the old."""
    old_df = "FROM x\nRUN <<EOF\necho a\nEOF\n"
    new_df = "FROM x\nRUN <<EOF\necho new\nEOF\nRUN <<EOF\necho a\nEOF\n"

    def step(i, line):
        return {"id": f"s{i}", "digest": f"d{i}", "stage": "stage-0", "keyword": "RUN", "instruction": "RUN <<EOF",
                "line": line, "end_line": line + 2, "status": "rebuilt"}
    prev, cur = [step(1, 2)], [step(2, 2), step(3, 5)]
    pairs = {c: p["id"] for c, p in match_steps(cur, prev, new_df, old_df).items()}
    assert pairs == {"s3": "s1"}
    analysis = explain({"steps": cur, "dockerfile_text": new_df}, {"steps": prev, "dockerfile_text": old_df})
    roots = [(m.step["line"], m.cause.detail) for m in analysis.misses if m.root]
    assert roots[0] == (2, "new instruction: RUN <<EOF"), roots
