"""The build graph over recorded captures of real builds (testdata/rawjson, made by testdata/regen.py)."""

from __future__ import annotations

import pytest

from analyzer import dockerfile as dfmod
from analyzer.events import load_file
from analyzer.graph import Status, build_graph, find_cycle
from analyzer.provenance import load_metadata
from tests.conftest import PROJECTS, RAWJSON

MULTISTAGE = dfmod.parse((PROJECTS / "multistage" / "Dockerfile").read_text())
FAILING = dfmod.parse((PROJECTS / "failing" / "Dockerfile").read_text())
FEATURES = dfmod.parse((PROJECTS / "features" / "Dockerfile").read_text())


def graph_of(name: str, df: dfmod.Dockerfile, with_provenance: bool = False):
    events = load_file(RAWJSON / f"{name}.jsonl")
    locations = None
    if with_provenance:
        prov = load_metadata(RAWJSON / f"{name}.meta.json").primary()
        assert prov is not None
        locations = prov.vertex_lines()
    return build_graph(events, df, locations)


def by_line(graph) -> dict[int, Status]:
    out = {}
    for s in graph.steps.values():
        if s.line is not None:
            out[s.line] = s.status
            for line, *_ in s.other_locations:
                out[line] = s.status
    return out


@pytest.mark.parametrize("prefix", ["multistage", "old-multistage"])
def test_cold_build_rebuilds_every_step(prefix):
    got = by_line(graph_of(f"{prefix}-cold", MULTISTAGE))
    assert {line for line, s in got.items() if s is Status.REBUILT} == {2, 3, 6, 7, 10, 11, 12, 13}
    assert got[1] is Status.SOURCE


@pytest.mark.parametrize("prefix", ["multistage", "old-multistage"])
def test_warm_build_is_all_cached(prefix):
    graph = graph_of(f"{prefix}-warm", MULTISTAGE)
    got = by_line(graph)
    assert {line for line, s in got.items() if s is Status.CACHED} == {2, 3, 6, 7, 10, 11, 12, 13}
    summ = graph.summary()
    assert (summ.cached, summ.rebuilt, summ.hit_ratio) == (8, 0, 1.0)


@pytest.mark.parametrize("prefix", ["multistage", "old-multistage"])
def test_one_file_change_rebuilds_from_its_copy(prefix):
    graph = graph_of(f"{prefix}-change", MULTISTAGE)
    got = by_line(graph)
    assert got[2] is got[3] is got[10] is Status.CACHED
    assert got[6] is got[7] is got[11] is got[13] is Status.REBUILT
    # the RUN at line 7 sleeps a second: it is where the time went
    run7 = next(s for s in graph.steps.values() if s.line == 7)
    assert run7.duration_s >= 1.0
    assert graph.summary().rebuilt_time_s >= 1.0


def test_both_buildx_shapes_give_the_same_steps():
    new = graph_of("multistage-change", MULTISTAGE)
    old = graph_of("old-multistage-change", MULTISTAGE)
    assert by_line(new) == by_line(old)


def test_provenance_lines_agree_with_name_mapping():
    by_names = graph_of("multistage-cold", MULTISTAGE)
    by_prov = graph_of("multistage-cold", MULTISTAGE, with_provenance=True)
    assert by_line(by_names) == by_line(by_prov)
    shared_from = next(s for s in by_prov.steps.values() if s.line == 1)
    # one FROM vertex serves the stages at lines 1 and 9
    assert [loc[0] for loc in shared_from.other_locations] == [9]


def test_failing_build():
    graph = graph_of("failing", FAILING)
    got = by_line(graph)
    failed = next(s for s in graph.steps.values() if s.line == 7)
    assert failed.status is Status.FAILED
    assert "did not complete successfully: exit code: 1" in failed.error
    assert "checking input" in failed.log_tail
    assert got[2] is Status.CANCELED  # the parallel stage was stopped by the failure
    assert got[8] is Status.SKIPPED  # never reached
    assert got[5] is got[6] is Status.REBUILT


def test_nearest_steps_look_through_sources():
    graph = graph_of("multistage-change", MULTISTAGE, with_provenance=True)
    step = {s.line: s for s in graph.steps.values() if s.line}
    # COPY --from=builder (line 11) reads the builder's RUN (7) and sits on WORKDIR /srv (10)
    assert {graph.steps[d].line for d in graph.nearest_steps(step[11].digest)} == {7, 10}
    # WORKDIR /app (line 2) has only the base image before it
    assert graph.nearest_steps(step[2].digest) == set()


def test_every_capture_parses_into_a_dag():
    import networkx as nx

    for path in sorted(RAWJSON.glob("*.jsonl")):
        # each capture with the Dockerfile of its project (testdata/regen.py)
        df = {"failing": FAILING, "features": FEATURES}.get(path.stem.split("-")[0], MULTISTAGE)
        graph = graph_of(path.stem, df)
        assert isinstance(graph.dag, nx.DiGraph) and nx.is_directed_acyclic_graph(graph.dag), path.name
        assert find_cycle(graph.dag) is None, path.name
        # an edge from each input to the vertex that reads it, and nothing else
        vertices = load_file(path).vertices.values()
        assert sorted(graph.dag.edges()) == sorted({(i, v.digest) for v in vertices for i in v.inputs
                                                    if i != v.digest}), path.name
        assert set(graph.dag.nodes) == {v.digest for v in vertices}, path.name
        assert not graph.missing_inputs, path.name
        steps = [s for s in graph.steps.values() if s.is_step]
        assert steps and all(s.line is not None for s in steps), path.name


def test_a_cycle_is_found_and_named():
    from analyzer.events import BuildEvents

    ev = BuildEvents()
    ev.apply({"vertexes": [{"digest": "sha256:a", "inputs": ["sha256:c"], "name": "a"},
                           {"digest": "sha256:b", "inputs": ["sha256:a"], "name": "b"},
                           {"digest": "sha256:c", "inputs": ["sha256:b", "sha256:b"], "name": "c"},
                           {"digest": "sha256:d", "inputs": ["sha256:c", "sha256:d"], "name": "d"}]})
    graph = build_graph(ev)
    assert list(graph.dag.predecessors("sha256:c")) == ["sha256:b"]  # once each, no self-loop
    assert list(graph.dag.predecessors("sha256:d")) == ["sha256:c"]
    cycle = find_cycle(graph.dag)
    assert sorted(cycle) == [("sha256:a", "sha256:b"), ("sha256:b", "sha256:c"), ("sha256:c", "sha256:a")]


def test_the_collector_is_paused_only_while_the_work_runs():
    import gc

    import pytest

    from analyzer.collector import paused

    seen = []

    @paused
    def work(fail: bool = False) -> str:
        seen.append(gc.isenabled())
        if fail:
            raise ValueError("boom")
        return "done"

    assert gc.isenabled()
    assert work() == "done" and seen == [False] and gc.isenabled()
    with pytest.raises(ValueError):
        work(fail=True)
    assert gc.isenabled()  # back on after an error too
    gc.disable()
    try:
        work()
        assert not gc.isenabled()  # off before, off after: a caller's own pause is kept
    finally:
        gc.enable()


def test_provenance_ranges_of_one_instruction_are_one_location():
    """BuildKit gives each line of a heredoc or continuation a range of its own."""
    from analyzer.graph import _instruction_ranges  # noqa: PLC0415

    df = dfmod.parse("FROM x AS a\nFROM x AS b\nRUN <<EOF\necho 1\nEOF\nRUN a \\\n  b\n")
    assert _instruction_ranges([(3, 3), (4, 4), (5, 5)], df) == [(3, 5)]
    assert _instruction_ranges([(6, 6), (7, 7)], df) == [(6, 7)]
    # one image under two FROM lines stays two places
    assert _instruction_ranges([(1, 1), (2, 2)], df) == [(1, 1), (2, 2)]
    assert _instruction_ranges([(3, 3), (4, 4)], None) == [(3, 3), (4, 4)]


def test_one_nearest_steps_walk_for_the_graph_and_the_records():
    """build_graph's DAG and a record's steps give the same nearest steps, in the
    same order: explain (build, analyze, explain, diff) walks graph.nearest_steps."""
    from analyzer.explain import _Explainer
    from tests.unit.test_explain import record_of

    graph = graph_of("multistage-change", MULTISTAGE, with_provenance=True)
    record = record_of("multistage-change")
    ex = _Explainer(record, None)
    by_id = {s["id"]: s for s in record["steps"]}
    for step in record["steps"]:
        walked = [s["digest"] for s in ex.nearest(step["digest"])]
        assert set(walked) == graph.nearest_steps(step["digest"]), step["name"]
        assert all(by_id[s["id"]] is s for s in ex.nearest(step["digest"]))
    copy_ = next(s for s in record["steps"] if s.get("line") == 11)  # COPY --from=builder
    assert [s.get("line") for s in ex.nearest(copy_["digest"])] == [7, 10]


def test_nearest_steps_are_found_depth_first_from_the_last_input():
    from analyzer.graph import inputs_dag, nearest_steps

    # d reads a, b, then a again (its last place counts); a sits on a source s over step x
    dag = inputs_dag([("x", []), ("s", ["x"]), ("a", ["s"]), ("b", []), ("d", ["a", "b", "a", "gone", "d"])])
    assert sorted(dag.edges()) == [("a", "d"), ("b", "d"), ("s", "a"), ("x", "s")]
    steps = {"x", "a", "b", "d"}
    assert nearest_steps(dag, "d", steps.__contains__) == ["a", "b"]
    assert nearest_steps(dag, "a", steps.__contains__) == ["x"]  # through the source
    assert nearest_steps(dag, "x", steps.__contains__) == []
