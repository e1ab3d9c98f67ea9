"""The prediction's parts that need no engine: the forecast of a record against
a changed Dockerfile / build args / context, the cache-record check, the
score, the gate on time, and how the terminal and history show them.
(tests/integration/test_predict.py predicts and builds on the real engine.)"""

from __future__ import annotations

import hashlib
import io
import math
import tarfile
import time

import pytest

from analyzer import predict as pr
from analyzer.buildx import parse_args
from analyzer.errors import UsageError
from analyzer.gates import Gates, parse_duration
from analyzer.pipeline import analyse
from analyzer.probe import presence_from_records, tar_digests
from analyzer.record import make_hasher
from analyzer.sources import Baseline, PredictionInput

HASH = make_hasher(b"k" * 32)


def forecast_report(prev: dict, now: pr.Now) -> tuple[dict, dict]:
    """The forecast record and report, through the pipeline as `cachewhy predict` makes them."""
    outcome = analyse(PredictionInput("this prediction", now, HASH), Baseline(record=prev))  # type: ignore[arg-type]
    return outcome.record, outcome.report

DOCKERFILE = """\
FROM local/busybox:latest AS base
ARG V=1
WORKDIR /app
COPY a.txt /app/
RUN cat a.txt > b.txt && echo $V
FROM base AS final
COPY --from=base /app/b.txt /c.txt
RUN wc -c /c.txt
"""
IMAGE = "docker-image://docker.io/local/busybox:latest@sha256:" + "1" * 64


def _digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def _exec(cmd: str, env: list[str]) -> dict:
    return {"Op": {"exec": {"meta": {"args": ["/bin/sh", "-c", cmd], "env": env, "cwd": "/app"},
                            "mounts": [{"dest": "/"}], "network": 2}}}


def previous_record() -> dict:
    """The record of a build of DOCKERFILE (as record.make_record shapes it)."""
    v = f"V={HASH('1')}"
    steps = [
        {"id": "from", "digest": _digest(1), "keyword": "FROM", "stage": "base", "line": 1, "index": 1,
         "instruction": "FROM local/busybox:latest AS base", "status": "source", "inputs": []},
        {"id": "ctx", "digest": _digest(9), "keyword": None, "stage": None, "line": None, "status": "source",
         "inputs": [], "name": "[internal] load build context"},
        {"id": "workdir", "digest": _digest(2), "keyword": "WORKDIR", "stage": "base", "line": 3, "index": 2,
         "instruction": "WORKDIR /app", "status": "rebuilt", "inputs": [_digest(1)], "duration_s": 0.5,
         "op": {"Op": {"file": {"actions": [{"Action": {"mkdir": {"path": "/app"}}}]}}},
         "image_inputs": [IMAGE], "context_inputs": [], "remote_inputs": []},
        {"id": "copy", "digest": _digest(3), "keyword": "COPY", "stage": "base", "line": 4, "index": 3,
         "instruction": "COPY a.txt /app/", "status": "rebuilt", "inputs": [_digest(2), _digest(9)],
         "duration_s": 1.0, "op": {"Op": {"file": {"actions": [{"Action": {"copy": {"src": "/a.txt"}}}]}}},
         "image_inputs": [], "context_inputs": [{"source": "context", "path": "/a.txt", "include": [], "exclude": []}],
         "remote_inputs": []},
        {"id": "run", "digest": _digest(4), "keyword": "RUN", "stage": "base", "line": 5, "index": 4,
         "instruction": "RUN cat a.txt > b.txt && echo $V", "status": "rebuilt", "inputs": [_digest(3)],
         "duration_s": 2.0, "op": _exec("cat a.txt > b.txt && echo $V", ["PATH=h:0", v]),
         "image_inputs": [], "context_inputs": [], "remote_inputs": []},
        {"id": "copyfrom", "digest": _digest(5), "keyword": "COPY", "stage": "final", "line": 7, "index": 1,
         "instruction": "COPY --from=base /app/b.txt /c.txt", "status": "rebuilt", "inputs": [_digest(4)],
         "duration_s": 4.0, "op": {"Op": {"file": {"actions": [{"Action": {"copy": {"src": "/app/b.txt"}}}]}}},
         "image_inputs": [], "context_inputs": [], "remote_inputs": []},
        {"id": "wc", "digest": _digest(6), "keyword": "RUN", "stage": "final", "line": 8, "index": 2,
         "instruction": "RUN wc -c /c.txt", "status": "rebuilt", "inputs": [_digest(5)], "duration_s": 8.0,
         "op": _exec("wc -c /c.txt", [v, "PATH=h:0"]), "image_inputs": [], "context_inputs": [],
         "remote_inputs": []},
    ]
    return {"schema": "cachewhy.record/v1", "id": "prev", "created": 1.0, "complete": True, "exit_code": 0,
            "project": {"context": "/c", "dockerfile": "/c/Dockerfile", "target": None, "platforms": []},
            "invocation": {}, "build_args": {}, "has_provenance": True, "hash_key_id": HASH("\0cachewhy hash key id"),
            "dockerfile_text": DOCKERFILE, "materials": [], "messages": [], "steps": steps, "snapshot": None}


def predicted(text: str = DOCKERFILE, argv: tuple[str, ...] = (), digest: str | None = None,
              cache: dict[str, bool] | None = None) -> tuple[dict, dict]:
    prev = previous_record()
    args = parse_args([*argv, "/c"])
    images = {}
    if digest is not None:
        name = "docker.io/local/busybox:latest"
        images[name] = pr.Resolved("local/busybox:latest", name, digest, "local image store")
    now = pr.Now(args=args, dockerfile_path=None, dockerfile_text=text, snapshot=None, images=images, cache=cache)
    return forecast_report(prev, now)


def statuses(report: dict) -> dict[int, str]:
    return {s["line"]: s["status"] for s in report["steps"] if s.get("line") and s["status"] != "source"}


def roots(report: dict) -> list[tuple[int, str]]:
    return [(m["line"], m["cause"]["kind"]) for m in report["misses"] if m["root"]]


def test_nothing_changed_predicts_every_step_cached():
    _, report = predicted()
    assert set(statuses(report).values()) == {"cached"}
    assert report["misses"] == [] and report["prediction"]["baseline"] == "prev"
    assert report["prediction"]["cache"] == "assumed"


def test_an_edited_instruction_rebuilds_it_and_what_follows():
    _, report = predicted(DOCKERFILE.replace("echo $V", "echo V=$V"))
    assert statuses(report) == {3: "cached", 4: "cached", 5: "rebuilt", 7: "rebuilt", 8: "rebuilt"}
    assert roots(report) == [(5, "instruction-changed")]
    assert report["prediction"]["expected_s"] == 14.0  # the previous build's times of lines 5, 7, 8
    assert report["misses"][0]["time_lost_s"] == 14.0


def test_a_build_arg_is_compared_by_its_keyed_hash_and_named_as_the_build_would():
    _, report = predicted(argv=("--build-arg", "V=1"))
    assert report["misses"] == []  # the same value as the Dockerfile's default
    _, report = predicted(argv=("--build-arg", "V=2"))
    assert roots(report) == [(5, "build-arg-changed")]
    detail = report["misses"][0]["cause"]["detail"]
    assert detail == f"V changed (value redacted): {HASH('1')} \u2192 {HASH('2')}"
    assert "2" not in detail.replace(HASH("1"), "").replace(HASH("2"), "")


def test_a_default_edited_in_the_dockerfile_is_a_build_arg_change():
    _, report = predicted(DOCKERFILE.replace("ARG V=1", "ARG V=3"))
    assert roots(report) == [(5, "build-arg-changed")]
    assert statuses(report)[4] == "cached"


def test_a_moved_base_image_rebuilds_from_the_first_step():
    _, report = predicted(digest="sha256:" + "1" * 64)
    assert report["misses"] == []
    _, report = predicted(digest="sha256:" + "2" * 64)
    assert roots(report) == [(3, "base-image-changed")]
    assert set(statuses(report).values()) == {"rebuilt"}
    assert report["misses"][0]["cause"]["detail"] == ("docker.io/local/busybox:latest: sha256:111111111111 "
                                                      "\u2192 sha256:222222222222")


def test_an_evicted_step_is_rebuilt_only_when_needed():
    # the RUN's record is gone but the COPY --from built on it is there: BuildKit never needs the RUN
    _, report = predicted(cache={"run": False})
    assert report["misses"] == []
    # the last step's record is gone too: it is the build's result, so it and what it needs rebuild
    _, report = predicted(cache={"run": False, "wc": False, "copyfrom": False})
    assert statuses(report) == {3: "cached", 4: "cached", 5: "rebuilt", 7: "rebuilt", 8: "rebuilt"}
    assert roots(report) == [(5, "cache-evicted")]
    assert report["prediction"]["cache"] == "checked"


def test_a_new_and_a_removed_instruction():
    _, report = predicted(DOCKERFILE.replace("RUN wc -c /c.txt", "RUN wc -c /c.txt\nRUN ls /"))
    assert roots(report) == [(9, "instruction-changed")]
    assert report["prediction"]["steps_without_time"] == 1
    assert "1 new step: no time known from the last build" in report["notes"]
    _, report = predicted(DOCKERFILE.replace("COPY a.txt /app/\n", ""))
    assert roots(report)[0][1] == "instruction-changed"
    assert statuses(report)[3] == "cached"


def test_add_url_without_checksum_may_rebuild_and_so_may_what_follows():
    text = DOCKERFILE.replace("COPY a.txt /app/", "ADD https://example.com/a.txt /app/")
    # the Dockerfile changed at line 4: rebuilt. Against itself, nothing changes: may-rebuild
    record, report = predicted(text)
    assert statuses(report)[4] == "rebuilt"
    prev = previous_record()
    prev["dockerfile_text"] = text
    prev["steps"][3]["instruction"] = "ADD https://example.com/a.txt /app/"
    prev["steps"][3]["keyword"] = "ADD"
    now = pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=text, snapshot=None)
    _, report = forecast_report(prev, now)
    assert statuses(report) == {3: "cached", 4: "may-rebuild", 5: "may-rebuild", 7: "may-rebuild",
                                8: "may-rebuild"}
    reasons = [m["reason"] for m in report["prediction"]["may_rebuild"]]
    assert reasons[0].startswith("ADD https://example.com/a.txt without --checksum")
    assert reasons[1] == "built on line 4, which may rebuild"
    assert report["summary"]["cached"] == 1 and report["summary"]["may_rebuild"] == 4
    assert report["summary"]["hit_ratio"] == 0.2  # may-rebuild is no cache hit
    # with a checksum the download is pinned: cached
    pinned = text.replace("ADD ", "ADD --checksum=sha256:" + "0" * 64 + " ")
    prev["dockerfile_text"] = pinned
    prev["steps"][3]["instruction"] = pinned.splitlines()[3]
    now = pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=pinned, snapshot=None)
    assert statuses(forecast_report(prev, now)[1])[4] == "cached"


@pytest.mark.parametrize("run", [
    "RUN curl -fsSL https://x/y -o y",
    "RUN apt-get update && apt-get install -y git",
    "RUN pip install -r requirements.txt",
])
def test_a_run_that_downloads_is_no_guess(run):
    # BuildKit runs a step again for a new cache key only, whatever the command fetches
    from analyzer import dockerfile as dfmod

    ins = dfmod.parse(f"FROM scratch\n{run}\n").instruction_at(2)
    assert pr.may_rebuild_reason(ins, {}, False) is None


def test_add_of_a_url_without_checksum_is_a_guess():
    from analyzer import dockerfile as dfmod

    df = dfmod.parse("FROM scratch\nADD https://x/y.tgz /y\nADD --checksum=sha256:ab https://x/y.tgz /z\n")
    assert "without --checksum" in (pr.may_rebuild_reason(df.instruction_at(2), {}, False) or "")
    assert pr.may_rebuild_reason(df.instruction_at(3), {}, False) is None


def test_image_names_as_buildkit_names_them():
    assert pr.normalise_image("alpine") == "docker.io/library/alpine:latest"
    assert pr.normalise_image("local/busybox:latest") == "docker.io/local/busybox:latest"
    assert pr.normalise_image("127.0.0.1:5000/x") == "127.0.0.1:5000/x:latest"
    assert pr.normalise_image("ghcr.io/o/r:1@sha256:ab") == "ghcr.io/o/r:1@sha256:ab"


def test_base_image_refs_expand_global_args_and_build_args():
    from analyzer import dockerfile as dfmod

    df = dfmod.parse("ARG TAG=1\nFROM img:$TAG AS a\nFROM a\nCOPY --from=other:2 /x /x\nFROM scratch AS unused\n")
    stages = pr.built_stages(df, None)
    assert [s.name for s in stages] == ["stage-2"] or [s.name for s in stages][-1] == "unused"
    stages = pr.built_stages(df, "a")
    assert pr.stage_image_refs(df, stages, {}) == ["img:1"]
    assert pr.stage_image_refs(df, pr.built_stages(df, "stage-1"), {"TAG": "9"}) == ["img:9", "other:2"]


def test_cache_records_are_matched_by_description_and_parents():
    prev = previous_record()
    records = [
        {"ID": "w", "Description": "[base 2/4] WORKDIR /app", "Parents": ["img"]},
        {"ID": "c", "Description": "[base 3/4] COPY a.txt /app/", "Parents": ["w"]},
        {"ID": "r", "Description": "mount / from exec /bin/sh -c cat a.txt > b.txt && echo $V", "Parents": ["c"]},
        # same description, built on something else: not this build's
        {"ID": "x", "Description": "mount / from exec /bin/sh -c wc -c /c.txt", "Parents": ["elsewhere"]},
    ]
    got = presence_from_records(prev, records)
    assert got == {"workdir": True, "copy": True, "run": True, "copyfrom": False, "wc": False}
    records.append({"ID": "f", "Description": "[final 1/2] COPY --from=base /app/b.txt /c.txt", "Parents": ["r"]})
    records.append({"ID": "y", "Description": "mount / from exec /bin/sh -c wc -c /c.txt", "Parents": ["f"]})
    assert set(presence_from_records(prev, records).values()) == {True}
    # a single-stage build's names carry no stage
    assert presence_from_records(prev, [{"ID": "w", "Description": "[2/4] WORKDIR /app", "Parents": []}])["workdir"]


def test_a_record_named_by_another_build_is_unsure_not_gone():
    # the last build had the COPY cached: its record carries the name of the build that
    # made it (here: another path), so it may be this step's or another's
    prev = previous_record()
    copy = next(s for s in prev["steps"] if s["id"] == "copyfrom")
    copy["status"] = "cached"
    records = [
        {"ID": "w", "Description": "[base 2/4] WORKDIR /app", "Parents": ["img"]},
        {"ID": "c", "Description": "[base 3/4] COPY a.txt /app/", "Parents": ["w"]},
        {"ID": "r", "Description": "mount / from exec /bin/sh -c cat a.txt > b.txt && echo $V", "Parents": ["c"]},
        {"ID": "f", "Description": "[final 1/2] COPY --from=builder /app/b.txt /c.txt", "Parents": ["r"]},
        {"ID": "y", "Description": "mount / from exec /bin/sh -c wc -c /c.txt", "Parents": ["f"]},
    ]
    got = presence_from_records(prev, records)
    assert got["copyfrom"] is None and got["wc"] is True and got["copy"] is True
    # a rebuilt step's record has its own name: none with it means gone
    copy["status"] = "rebuilt"
    assert presence_from_records(prev, records)["copyfrom"] is False
    # nothing at that index and keyword: gone, whatever made it
    copy["status"] = "cached"
    assert presence_from_records(prev, records[:3])["copyfrom"] is False


def test_the_score_counts_statuses_and_roots_and_keeps_may_rebuild_apart():
    def rep(st: dict[int, str], rts: list[tuple[int, str]], prediction: bool = False) -> dict:
        out = {"steps": [{"line": ln, "status": s} for ln, s in st.items()],
               "misses": [{"line": ln, "root": True, "cause": {"kind": k}} for ln, k in rts],
               "summary": {"rebuilt_time_s": 3.0}}
        if prediction:
            out["prediction"] = {"baseline": "b", "expected_s": 2.0}
        return out

    p = rep({3: "cached", 4: "rebuilt", 5: "cached", 6: "may-rebuild"}, [(4, "context-changed")], True)
    b = rep({3: "cached", 4: "rebuilt", 5: "rebuilt", 6: "rebuilt"}, [(4, "context-changed")])
    sc = pr.score(p, b)
    assert (sc["steps_right"], sc["steps"]) == (2, 3)
    assert sc["wrongly_cached"] == [5] and sc["may_rebuild"] == [6] and sc["may_rebuild_rebuilt"] == [6]
    assert sc["roots_right"] == 1 and sc["predicted_rebuilt"] == [4] and sc["rebuilt"] == [4, 5, 6]
    lines = pr.score_lines(sc, 80)
    assert lines[0] == "Prediction scored: 2/3 step statuses, 1/1 root causes"
    assert "  predicted cached       5 (rebuilt)" in lines
    assert all(len(x) <= 80 for x in lines)


@pytest.mark.parametrize("text, seconds", [("300", 300.0), ("90s", 90.0), ("5m", 300.0), ("1.5h", 5400.0)])
def test_time_budget(text, seconds):
    assert parse_duration(text) == seconds
    gates = Gates.from_options({"fail_above_time": text})
    report = {"summary": {"rebuilt_time_s": seconds + 1}, "misses": []}
    assert gates.check(report) == [f"the rebuilt steps took {seconds + 1:.1f}s, above the budget of {seconds:g}s"]
    report["prediction"] = {}
    assert "will take" in gates.check(report)[0]
    report["summary"]["rebuilt_time_s"] = seconds
    assert gates.check(report) == []


@pytest.mark.parametrize("text", ["soon", "-1", "5x", "", "inf", "nan"])
def test_time_budget_refuses_what_is_no_duration(text):
    with pytest.raises(UsageError, match="--fail-above-time takes a duration"):
        parse_duration(text)


def test_terminal_report_of_a_prediction_fits_80_columns():
    from analyzer.report.text import render

    _, report = predicted(DOCKERFILE.replace("echo $V", "echo V=$V"))
    report["prediction"]["may_rebuild"] = [{"id": "x", "line": 8, "instruction": "RUN wc -c /c.txt",
                                            "reason": "mounts from stage base, which will rebuild (line 5): it rebuilds only if the files it reads changed"}]
    text = render(report, width=80)
    lines = text.splitlines()
    assert lines[1] == "Prediction: 1 root cause, about 14.0s to rebuild (compared with build prev)"
    assert "3 steps will rebuild, 14.0s (lines 5-8)" in text
    assert ("may rebuild: Dockerfile:8 RUN wc -c /c.txt: mounts from stage base, which will rebuild (line 5): it "
            "rebuilds only if the files it reads changed") in " ".join(text.split())
    assert lines[-1] == "predicted hits 2/5 steps \u00b7 3 will rebuild, about 14.0s \u00b7 cache assumed"
    assert all(len(x) <= 80 for x in lines), text


def test_history_shows_the_score_only_when_a_build_was_predicted():
    from analyzer.commands.history import render

    entry = {"id": "20261203T000000000000-aaaaaaaa", "created": 0.0, "context": "/c", "exit_code": 0,
             "complete": True, "summary": {"hit_ratio": 0.5, "time_lost_s": 1.0, "top_cause": None}}
    plain = render([entry])
    assert "PRED" not in plain
    scored = render([dict(entry, summary=dict(entry["summary"], predicted=[4, 5])), entry])
    head, first, second = scored.splitlines()[:3]
    assert head.split()[6] == "PRED" and first.split()[7] == "4/5" and second.split()[7] == "-"


def test_markdown_and_annotations_of_a_prediction():
    from analyzer.report import annotations, markdown

    _, report = predicted(DOCKERFILE.replace("echo $V", "echo V=$V"))
    report["prediction"]["may_rebuild"] = [{"id": "x", "line": 8, "instruction": "RUN wc -c /c.txt",
                                            "reason": "built on line 5, which may rebuild"}]
    md = markdown.render(report)
    assert md.startswith("### cachewhy prediction: 3 steps will rebuild, about 14.0s\n")
    assert "**1 root cause**, about 14.0s to rebuild:" in md and "| steps to rebuild | time |" in md
    assert "- **may rebuild** Dockerfile:8 <code>RUN wc -c /c.txt</code>: built on line 5, which may rebuild" in md
    notes = annotations.render(report)
    assert notes.startswith("::warning title=cachewhy prediction%3A instruction-changed::Dockerfile:5 ")
    assert notes.rstrip().endswith("(3 steps will rebuild, about 14.0s)")
    _, quiet = predicted()
    assert "Nothing will be rebuilt." in markdown.render(quiet) and annotations.render(quiet) == ""


def test_copy_from_a_stage_that_rebuilds_may_rebuild_and_a_later_change_is_its_own_root():
    text = DOCKERFILE.replace("FROM base AS final", "FROM local/busybox:latest AS final")
    prev = previous_record()
    prev["dockerfile_text"] = text
    prev["steps"][5]["inputs"] = [_digest(1), _digest(4)]  # the final stage starts from the image
    now = pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=text.replace("echo $V", "echo $V!"),
                 snapshot=None)
    _, report = forecast_report(prev, now)
    assert statuses(report) == {3: "cached", 4: "cached", 5: "rebuilt", 7: "may-rebuild", 8: "may-rebuild"}
    why = report["prediction"]["may_rebuild"][0]["reason"]
    assert why == ("copies from stage base, which will rebuild (line 5): it rebuilds only if the files it reads "
                   "changed")
    # an edit after it is a root of its own, not a cascade of line 5
    now.dockerfile_text = now.dockerfile_text.replace("RUN wc -c /c.txt", "RUN wc -l /c.txt")
    _, report = forecast_report(prev, now)
    assert roots(report) == [(5, "instruction-changed"), (8, "instruction-changed")] or \
        sorted(roots(report)) == [(5, "instruction-changed"), (8, "instruction-changed")]


def test_no_cache_filter_leaves_workdir_to_the_cache():
    _, report = predicted(argv=("--no-cache-filter", "base"))
    assert statuses(report)[3] == "cached" and statuses(report)[4] == "rebuilt"
    assert roots(report) == [(4, "no-cache-requested")]
    _, report = predicted(argv=("--no-cache",))
    assert statuses(report)[3] == "rebuilt" and roots(report) == [(3, "no-cache-requested")]


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent-predict-ctx"], "cachewhy: cannot read the Dockerfile /nonexistent-predict-ctx/Dockerfile: "),
    ([], "cachewhy: no build context given (PATH, as for `docker buildx build`)"),
    (["--fail-above-time", "soon", "."], "cachewhy: --fail-above-time takes a duration such as 300, 90s, 5m or 1h"),
    (["--fail-on", "nothing", "."], "cachewhy: --fail-on: unknown cause 'nothing'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path):
    from tests.conftest import run_cachewhy

    res = run_cachewhy("predict", "--store", str(tmp_path / "store"), *argv, cwd=tmp_path)
    err = res.stderr.decode()
    assert res.returncode == 2 and err.startswith(message) and len(err.splitlines()) == 1, err
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").glob("*.json"))


@pytest.mark.parametrize("driver", [None, "docker-container", "remote", "buildkitd"])
def test_a_cache_mount_gone_means_a_prune_ran_and_nothing_is_predicted_cached(driver):
    from analyzer.probe import gone_cache_mounts

    prev = previous_record()
    run = prev["steps"][4]
    run["op"]["Op"]["exec"]["mounts"].append({"input": -1, "dest": "/root/.cache/x", "output": -1, "mountType": 3,
                                              "cacheOpt": {"ID": "//root/.cache/x"}})
    held = [{"ID": "m", "Description": 'cached mount /root/.cache/x from exec /bin/sh -c true with id "//root/.cache/x"',
             "Parents": []}]
    assert gone_cache_mounts(prev, held) == []
    assert gone_cache_mounts(prev, []) == ["/root/.cache/x (line 5)"]
    now = pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=DOCKERFILE, snapshot=None,
                 cache={}, mounts_gone=["/root/.cache/x (line 5)"], driver=driver)
    _, report = forecast_report(prev, now)
    # a standalone BuildKit (or one not known) keeps the other records' keys: nothing is claimed
    assert set(statuses(report).values()) == {"may-rebuild"} and report["misses"] == []
    assert ("the cache mount /root/.cache/x (line 5) is gone: the builder was pruned or garbage-collected since the "
            "last build") in report["prediction"]["may_rebuild"][0]["reason"]


def _pruned(text: str = DOCKERFILE, **kw) -> tuple[dict, pr.Now]:
    """The previous build (a minute ago, its RUN at line 5 used the cache mount /root/.cache/x,
    gone now) and what is there now, on dockerd's BuildKit with the default GC policy."""
    prev = previous_record()
    prev["created"] = time.time() - 60
    fields = dict(cache={"workdir": True, "copy": True, "run": True, "copyfrom": True, "wc": True},
                  mounts_gone=["/root/.cache/x (line 5)"], driver="docker", gc_keep_s=48 * 3600.0)
    fields.update(kw)
    return prev, pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=text, snapshot=None, **fields)


def test_a_prune_on_dockerds_buildkit_rebuilds_every_step_as_cache_evicted():
    # dockerd's BuildKit (the buildx `docker` driver) drops every cache key on any prune, though
    # DiskUsage still lists the step records (checked on dockerd 28.5): the build reports
    # every step rebuilt, the first one cache-evicted, and so must the prediction
    prev, now = _pruned()
    _, report = forecast_report(prev, now)
    assert statuses(report) == {3: "rebuilt", 4: "rebuilt", 5: "rebuilt", 7: "rebuilt", 8: "rebuilt"}
    assert roots(report) == [(3, "cache-evicted")]
    assert report["misses"][0]["cause"]["detail"] == (
        "the step and its inputs are identical to the previous build, where it was built; "
        "its cache entry is gone (pruned or garbage-collected)")
    assert report["prediction"]["may_rebuild"] == [] and report["summary"]["may_rebuild"] == 0
    assert report["prediction"]["expected_s"] == 15.5  # every step's time in the last build
    assert ("the cache mount /root/.cache/x (line 5) is gone: something pruned the builder since the last "
            "build; dockerd's BuildKit drops every cache key on any prune") in report["notes"]
    # an edit is still explained: the steps before it are evicted, so the root is the first step
    prev, now = _pruned(DOCKERFILE.replace("echo $V", "echo V=$V"))
    _, report = forecast_report(prev, now)
    assert roots(report) == [(3, "cache-evicted")] and set(statuses(report).values()) == {"rebuilt"}
    # a RUN that downloads has no key left either: rebuilt, not may-rebuild
    prev, now = _pruned(DOCKERFILE.replace("RUN wc -c /c.txt", "RUN wget -q http://x/ && wc -c /c.txt"))
    _, report = forecast_report(prev, now)
    assert statuses(report)[8] == "rebuilt" and report["prediction"]["may_rebuild"] == []


@pytest.mark.parametrize("why, fields, age_s", [
    ("a standalone BuildKit keeps the other records' keys", {"driver": "docker-container"}, 60),
    ("the driver is not known", {"driver": None}, 60),
    ("the GC policy is not known (docker://)", {"gc_keep_s": None}, 60),
    ("the GC may have collected it by age: the last build ran 49 h ago", {}, 49 * 3600),
    ("the GC may have collected it by age: the last build did not run the RUN that mounts it",
     {"mounts_gone": ["/root/.cache/x (line 4)"]}, 60),
])
def test_a_gone_cache_mount_that_the_gc_may_have_collected_is_not_taken_for_a_prune(why, fields, age_s):
    # dockerd's garbage collection removes cache mounts but keeps every cache key (checked on
    # dockerd 28.5): then the build is all cached, so nothing may be predicted rebuilt
    prev, now = _pruned(**fields)
    prev["created"] = time.time() - age_s
    if fields.get("mounts_gone"):
        prev["steps"][3]["status"] = "cached"  # line 4, cached in the last build
    _, report = forecast_report(prev, now)
    assert set(statuses(report).values()) == {"may-rebuild"} and report["misses"] == [], why
    assert not any("something pruned" in n for n in report["notes"]), why
    assert pr.keys_dropped(now, prev) is None


def test_no_gone_mount_says_nothing_of_the_builder():
    prev, now = _pruned(mounts_gone=[])
    _, report = forecast_report(prev, now)
    assert set(statuses(report).values()) == {"cached"}
    assert not any("pruned" in n for n in report["notes"])


def test_the_builder_driver_and_gc_policy_are_read_from_buildx_inspect():
    from analyzer.probe import BuilderFacts, builder_facts, facts_of_inspect

    inspect = """\
Name:          default
Driver:        docker
Last Activity: 2026-12-04 02:00:04 +0000 UTC

Nodes:
Name:             default
Endpoint:         default
Status:           running
BuildKit version: v0.0.0+unknown
GC Policy rule#0:
 All:            false
 Filters:        type==source.local,type==exec.cachemount,type==source.git.checkout
 Keep Duration:  48h0m0s
 Max Used Space: 3.346GiB
GC Policy rule#1:
 All:            false
 Keep Duration:  1440h0m0s
 Reserved Space: 24.21GiB
GC Policy rule#2:
 All:            true
 Reserved Space: 24.21GiB
"""
    got = facts_of_inspect(inspect)
    assert (got.driver, got.gc_keep_s) == ("docker", 48 * 3600.0)
    got = facts_of_inspect(inspect.replace("docker\n", "docker-container\n", 1).replace("48h0m0s", "1h30m0.5s"))
    assert (got.driver, got.gc_keep_s) == ("docker-container", 5400.5)
    # no rule collects by age; no GC policy printed: not known
    assert facts_of_inspect(inspect.replace(" Keep Duration:", " Kept:")).gc_keep_s == math.inf
    assert facts_of_inspect(inspect.split("GC Policy")[0]).gc_keep_s is None
    assert facts_of_inspect("").driver is None
    # the docker engine's socket is dockerd's BuildKit (its GC policy unknown); a buildkitd
    # address is a standalone BuildKit
    assert builder_facts("docker://unix:///var/run/docker.sock") == BuilderFacts("docker", None)
    assert builder_facts("unix:///run/buildkit/buildkitd.sock").driver == "buildkitd"
    assert builder_facts("tcp://buildkitd:1234").driver == "buildkitd"
    assert builder_facts("bad://x").driver is None


# ------------------------------------------------------------------ an image that moved behind COPY --from

TOOLS_DOCKERFILE = """\
FROM local/busybox:latest AS app
WORKDIR /app
COPY --from=tools/uv:1 /uv /uvx /bin/
RUN uv --version
"""
TOOLS_OLD = "docker-image://docker.io/tools/uv:1@sha256:" + "a" * 64


def tools_record() -> dict:
    """A build of TOOLS_DOCKERFILE: the COPY reads tools/uv:1 (its source input 1) by content."""
    copy_op = {"Op": {"file": {"actions": [
        {"input": 0, "secondaryInput": 1, "output": -1, "Action": {"copy": {"src": "/uv", "dest": "/bin/"}}},
        {"input": 2, "secondaryInput": 1, "output": 0, "Action": {"copy": {"src": "/uvx", "dest": "/bin/"}}}]}}}
    steps = [
        {"id": "from", "digest": _digest(1), "keyword": "FROM", "stage": "app", "line": 1, "index": 1,
         "instruction": "FROM local/busybox:latest AS app", "status": "source", "inputs": []},
        {"id": "uvimg", "digest": _digest(10), "keyword": None, "stage": None, "line": 3, "status": "internal",
         "inputs": [], "op": {"Op": {"source": {"identifier": TOOLS_OLD}}}},
        {"id": "workdir", "digest": _digest(2), "keyword": "WORKDIR", "stage": "app", "line": 2, "index": 2,
         "instruction": "WORKDIR /app", "status": "rebuilt", "inputs": [_digest(1)], "duration_s": 0.5,
         "op": {"Op": {"file": {"actions": [{"Action": {"mkdir": {"path": "/app"}}}]}}},
         "image_inputs": [IMAGE], "context_inputs": [], "remote_inputs": []},
        {"id": "copy", "digest": _digest(3), "keyword": "COPY", "stage": "app", "line": 3, "index": 3,
         "instruction": "COPY --from=tools/uv:1 /uv /uvx /bin/", "status": "rebuilt",
         "inputs": [_digest(2), _digest(10)], "duration_s": 1.0, "op": copy_op, "image_inputs": [TOOLS_OLD],
         "context_inputs": [], "remote_inputs": []},
        {"id": "run", "digest": _digest(4), "keyword": "RUN", "stage": "app", "line": 4, "index": 4,
         "instruction": "RUN uv --version", "status": "rebuilt", "inputs": [_digest(3)], "duration_s": 2.0,
         "op": _exec("uv --version", ["PATH=h:0"]), "image_inputs": [], "context_inputs": [], "remote_inputs": []},
    ]
    rec = previous_record()
    rec.update(dockerfile_text=TOOLS_DOCKERFILE, steps=steps)
    return rec


def tools_predicted(answer: "pr.FilesCompared | None", new_digest: str = "sha256:" + "b" * 64):
    """(statuses, report, calls) of a prediction where tools/uv:1 now has `new_digest` and the
    comparison of the files in the two images answers `answer`."""
    calls: list[tuple] = []

    def compare(old: str, new: str, paths: list[str], platform: str | None) -> "pr.FilesCompared":
        calls.append((old, new, paths, platform))
        assert answer is not None, "compared although nothing moved"
        return answer
    prev = tools_record()
    name = "docker.io/tools/uv:1"
    images = {name: pr.Resolved("tools/uv:1", name, new_digest, "local image store")}
    now = pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=TOOLS_DOCKERFILE, snapshot=None,
                 images=images, compare_images=compare)
    _, report = forecast_report(prev, now)
    return statuses(report), report, calls


def _notes(report: dict) -> list[str]:
    return [" ".join((n["text"] if isinstance(n, dict) else n).split()) for n in report["notes"]]


def test_moved_image_with_the_same_files_is_cached():
    got, report, calls = tools_predicted(pr.FilesCompared(True, []))
    assert calls == [(TOOLS_OLD, "docker-image://docker.io/tools/uv:1@sha256:" + "b" * 64, ["/uv", "/uvx"], None)]
    assert got == {2: "cached", 3: "cached", 4: "cached"} and report["misses"] == []
    assert report["prediction"]["may_rebuild"] == []
    assert ("Dockerfile:3: tools/uv:1 moved to a new digest, but the files it copies (/uv, /uvx) are the same: "
            "BuildKit keeps the step") in _notes(report)


def test_a_copy_from_a_moved_image_right_after_from_is_compared():
    """The COPY's destination is the stage's base image (unchanged): only the copied image decides."""
    prev = tools_record()
    text = TOOLS_DOCKERFILE.replace("WORKDIR /app\n", "")
    prev["dockerfile_text"] = text
    del prev["steps"][2]  # no WORKDIR: the COPY is built on the FROM image itself
    prev["steps"][2].update(line=2, index=2, inputs=[_digest(1), _digest(10)], image_inputs=[IMAGE, TOOLS_OLD])
    prev["steps"][3].update(line=3, index=3)
    prev["steps"][0]["op"] = {"Op": {"source": {"identifier": IMAGE}}}
    name = "docker.io/tools/uv:1"
    images = {name: pr.Resolved("tools/uv:1", name, "sha256:" + "b" * 64, "local image store")}
    calls = []

    def compare(old, new, paths, platform):
        calls.append(paths)
        return pr.FilesCompared(True, [])
    now = pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=text, snapshot=None,
                 images=images, compare_images=compare)
    fc = pr.forecast(prev, now, HASH)
    assert calls == [["/uv", "/uvx"]]
    assert {s["line"]: s["status"] for s in fc.record["steps"] if s.get("keyword") in ("COPY", "RUN")} == {
        2: "cached", 3: "cached"}


def test_moved_image_with_other_files_is_the_root_with_the_builds_words():
    got, report, _ = tools_predicted(pr.FilesCompared(False, ["/uv"]))
    assert got == {2: "cached", 3: "rebuilt", 4: "rebuilt"}
    assert roots(report) == [(3, "base-image-changed")]
    assert report["misses"][0]["cause"]["detail"] == "docker.io/tools/uv:1: sha256:aaaaaaaaaaaa \u2192 sha256:bbbbbbbbbbbb"
    assert "Dockerfile:3: tools/uv:1 moved to a new digest, and /uv differs in it" in _notes(report)


def test_moved_image_not_compared_may_rebuild_and_says_why():
    why = "the image it read last time (tools/uv:1@sha256:aaaaaaaaaaaa…) is not in the local image store"
    got, report, _ = tools_predicted(pr.FilesCompared(None, [], why))
    assert got == {2: "cached", 3: "may-rebuild", 4: "may-rebuild"} and report["misses"] == []
    reasons = {m["line"]: m["reason"] for m in report["prediction"]["may_rebuild"]}
    assert reasons == {3: f"copies /uv, /uvx from tools/uv:1, which moved to a new digest; the files were not "
                          f"compared: {why}. It rebuilds only if they changed",
                       4: "built on line 3, which may rebuild"}


def test_nothing_moved_compares_nothing():
    got, _, calls = tools_predicted(None, new_digest="sha256:" + "a" * 64)
    assert calls == [] and got == {2: "cached", 3: "cached", 4: "cached"}


def test_an_image_that_is_the_root_filesystem_is_not_compared():
    """The first step of `FROM tools/uv:1` reads the image as its root: by key, so it rebuilds."""
    prev = tools_record()
    text = "FROM tools/uv:1 AS app\nWORKDIR /app\nCOPY --from=tools/uv:1 /uv /uvx /bin/\nRUN uv --version\n"
    prev["dockerfile_text"] = text
    prev["steps"][0]["instruction"] = "FROM tools/uv:1 AS app"
    prev["steps"][2].update(image_inputs=[TOOLS_OLD], inputs=[_digest(10)])
    prev["steps"][3]["inputs"] = [_digest(2), _digest(10)]
    name = "docker.io/tools/uv:1"
    images = {name: pr.Resolved("tools/uv:1", name, "sha256:" + "b" * 64, "local image store")}

    def compare(*_a):
        raise AssertionError("the root filesystem is read by key, not compared")
    now = pr.Now(args=parse_args(["/c"]), dockerfile_path=None, dockerfile_text=text, snapshot=None,
                 images=images, compare_images=compare)
    fc = pr.forecast(prev, now, HASH)
    assert {s["line"]: s["status"] for s in fc.record["steps"] if s.get("line") and s["status"] != "source"
            and s.get("keyword")} == {2: "rebuilt", 3: "rebuilt", 4: "rebuilt"}


# ------------------------------------------------------------------ the files of an image, as BuildKit hashes them

def _tar(*members: tuple) -> "io.BytesIO":
    """A tar stream of (name, data or None for a directory, {TarInfo attributes})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, attrs in members:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime, ti.uname = 0o755, 1000, "root"
            if data is None:
                ti.type = tarfile.DIRTYPE
            for k, v in attrs.items():
                setattr(ti, k, v)
            if data is not None and ti.type == tarfile.REGTYPE:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    buf.seek(0)
    return buf


def _digests(*members: tuple, base: str = "/", pattern: str | None = None) -> dict[str, str]:
    return tar_digests(_tar(*members), base, pattern)[0]


def test_an_entry_digest_ignores_mtime_and_owner_names():
    one = _digests(("uv", b"x", {}))
    assert one == _digests(("uv", b"x", {"mtime": 99999, "uname": "someone", "gname": "staff"}))
    assert list(one) == ["/uv"]


@pytest.mark.parametrize("attrs, data", [
    ({}, b"y"),                                              # content
    ({"mode": 0o700}, b"x"),                                 # mode
    ({"uid": 1234}, b"x"),                                   # owner (image files keep theirs)
    ({"gid": 55}, b"x"),                                     # group
    ({"pax_headers": {"SCHILY.xattr.security.capability": "c"}}, b"x"),  # a capability
    ({"pax_headers": {"SCHILY.xattr.user.note": "n"}}, b"x"),            # a user xattr
])
def test_an_entry_digest_sees_what_buildkit_sees(attrs, data):
    assert _digests(("uv", b"x", {})) != _digests(("uv", data, attrs))


def test_an_entry_digest_leaves_out_selinux_and_system_xattrs():
    plain = _digests(("uv", b"x", {}))
    assert plain == _digests(("uv", b"x", {"pax_headers": {"SCHILY.xattr.security.selinux": "s",
                                                            "SCHILY.xattr.system.posix_acl_access": "a"}}))


def test_symlink_targets_and_types_count():
    link = _digests(("d", None, {}), ("d/l", b"", {"type": tarfile.SYMTYPE, "linkname": "f"}))
    assert link != _digests(("d", None, {}), ("d/l", b"", {"type": tarfile.SYMTYPE, "linkname": "g"}))
    assert set(link) == {"/d", "/d/l"}
    assert _digests(("x", b"", {})) != _digests(("x", None, {}))  # an empty file is no directory


def test_names_are_absolute_under_the_copied_directory_and_patterns_select():
    members = (("bin", None, {}), ("bin/uv", b"u", {}), ("bin/uvx", b"v", {}), ("bin/ls", b"l", {}))
    assert set(_digests(*members, base="/usr")) == {"/usr/bin", "/usr/bin/uv", "/usr/bin/uvx", "/usr/bin/ls"}
    assert set(_digests(*members, base="/usr", pattern="/usr/bin/uv*")) == {"/usr/bin/uv", "/usr/bin/uvx"}
    # `docker cp C:/ -` names members from the root, with the root itself first
    assert set(_digests(("/", None, {}), ("/etc", None, {}), ("/etc/os", b"o", {}))) == {"/etc", "/etc/os"}


def test_what_a_container_makes_itself_is_listed_apart():
    got, hidden = tar_digests(_tar(("etc", None, {}), ("etc/hosts", b"", {}), ("etc/os", b"o", {}),
                                   (".dockerenv", b"", {}), ("dev", None, {}), ("dev/pts", None, {})), "/")
    assert set(got) == {"/etc", "/etc/os", "/dev"}
    assert hidden == ["/etc/hosts", "/.dockerenv", "/dev/pts"]
