"""analyzer/buildkit/usage.py: a step's previous result still held in the
builder's cache, read from DiskUsage records (protobuf UsageRecords)."""

from __future__ import annotations

from analyzer.buildkit import control_pb2
from analyzer.buildkit.usage import StepRun, descriptions, held_earlier

COPY = "[3/4] COPY src/ /src/"
CAT = "mount / from exec /bin/sh -c cat /src/*.txt > /all"


def rec(rid: str, desc: str, parents: list[str], created: float, used: float | None = None):
    r = control_pb2.UsageRecord(ID=rid, Description=desc, Parents=parents)
    r.CreatedAt.seconds, r.CreatedAt.nanos = int(created), int((created % 1) * 1e9)
    used = created if used is None else used
    r.LastUsedAt.seconds, r.LastUsedAt.nanos = int(used), int((used % 1) * 1e9)
    return r


def run(after=()) -> StepRun:
    return StepRun("sha256:copy", frozenset({COPY}), started=100.2, completed=100.4, after=after)


def test_descriptions_of_a_file_op_and_an_exec():
    assert descriptions(COPY, None) == {COPY}
    op = {"Op": {"exec": {"meta": {"args": ["/bin/sh", "-c", "cat /src/*.txt > /all"]}}}}
    assert descriptions("[4/4] RUN cat /src/*.txt > /all", op) == {"[4/4] RUN cat /src/*.txt > /all", CAT}


def test_an_earlier_twin_on_the_same_parent_is_held():
    usage = [rec("base", "", [], 10), rec("old", COPY, ["base"], 50.0), rec("old-cat", CAT, ["old"], 50.1),
             rec("new", COPY, ["base"], 100.3)]
    assert held_earlier(usage, [run()], build_started=100.0, previous_started=49.9) == {"sha256:copy": 50.0}
    # what the previous build made on it must still be there
    assert held_earlier(usage, [run((frozenset({CAT}),))], 100.0, 49.9) == {"sha256:copy": 50.0}
    pruned = [r for r in usage if r.ID != "old-cat"]
    assert held_earlier(pruned, [run((frozenset({CAT}),))], 100.0, 49.9) == {}


def test_no_twin_other_parents_or_long_unused_is_not_held():
    new = rec("new", COPY, ["base"], 100.3)
    assert held_earlier([new], [run()], 100.0, 49.9) == {}  # evicted
    assert held_earlier([new, rec("old", COPY, ["other"], 50.0)], [run()], 100.0, 49.9) == {}
    # made and last used long before the previous build: another project's same-looking COPY
    assert held_earlier([new, rec("old", COPY, ["base"], 5.0, used=6.0)], [run()], 100.0, 49.9) == {}
    # this build's result not found (no record made while the step ran): nothing to pair by parent
    assert held_earlier([rec("old", COPY, ["base"], 50.0)], [run()], 100.0, 49.9) == {}
