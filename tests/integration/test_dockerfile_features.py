"""Dockerfile features that fooled the cause engine (issue 14), on the real engine.

Each test first checks BuildKit's own statuses (which steps it took from the
cache) and then what cachewhy says about the miss: the line, the cause kind,
the old and new text or the files. Projects are written inline with a nonce
in their first step, so every first build is cold without touching anybody
else's cache.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.integration.test_causes import (  # noqa: F401 - images: a fixture
    Project,
    assert_cascade,
    assert_root,
    check_terminal,
    images,
    one_file_image,
)

pytestmark = pytest.mark.engine


@pytest.fixture
def new_project(tmp_path: Path):
    count = [0]

    def make(dockerfile: str, files: dict[str, str] | None = None) -> Project:
        count[0] += 1
        return Project(tmp_path / f"p{count[0]}", dockerfile, files)
    return make


def table_rows(b) -> list[str]:
    """The terminal's step table, one string per row."""
    lines = b.err.splitlines()
    start = max(i for i, line in enumerate(lines) if line.lstrip().startswith("LINE "))
    out = []
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith("cache hits"):
            break
        out.append(line)
    return out


# ------------------------------------------------- heredocs and continuations

HEREDOC_DF = ("FROM local/busybox:latest\n"
              "RUN echo NONCE > /nonce\n"
              "RUN <<EOF\n"
              "echo one\n"
              "echo two > /two\n"
              "EOF\n"
              "RUN echo cont \\\n"
              "    && echo more > /more\n"
              "COPY <<EOF /etc/conf.txt\n"
              "hello\n"
              "EOF\n"
              "RUN cat /etc/conf.txt /two /more\n")


def test_a_multi_line_instruction_is_one_step_and_one_row(new_project):
    p = new_project(HEREDOC_DF)
    b = p.build()
    steps = {s["line"]: s for s in b.report["steps"] if s["line"]}
    assert sorted(steps) == [1, 2, 3, 7, 9, 12], b.describe()
    assert (steps[3]["end_line"], steps[7]["end_line"], steps[9]["end_line"]) == (6, 8, 11)
    assert all(not s["also_at"] for s in steps.values()), b.describe()
    rows = [r.split()[0] for r in table_rows(b) if r.split()[0][0].isdigit()]
    assert rows == ["1", "2", "3-6", "7-8", "9-11", "12"], table_rows(b)
    assert b.report["summary"]["rebuilt"] == 5


@pytest.mark.parametrize("old, new, line, root_line, shown", [
    ("echo two > /two", "echo three > /two", 5, 3, "echo two > /two \u2192 echo three > /two"),
    ("    && echo more", "    && echo MORE", 8, 7, "&& echo more > /more \u2192 && echo MORE > /more"),
    ("hello\n", "hello, edited\n", 10, 9, "hello \u2192 hello, edited"),
], ids=["run-heredoc-body", "continuation-line", "copy-heredoc-body"])
def test_editing_any_line_of_it_is_instruction_changed(new_project, old, new, line, root_line, shown):
    p = new_project(HEREDOC_DF)
    p.build()
    p.write("Dockerfile", HEREDOC_DF.replace(old, new, 1))
    b = p.build()
    # BuildKit: the edited instruction and what follows it miss, what is above it hits
    statuses = {s["line"]: s["status"] for s in b.report["steps"] if s["line"]}
    assert statuses[2] == "cached" and statuses[root_line] == "rebuilt", statuses
    root = assert_root(b, root_line, "instruction-changed")
    detail = root["cause"]["detail"]
    assert shown in detail and f"(line {line})" in detail, detail
    assert "although its Dockerfile text did not" not in detail
    assert len(b.roots) == 1
    assert_cascade(b, 12, root)


# ----------------------------------------------- stages renamed or renumbered

STAGES_DF = ("FROM local/busybox:latest AS builder\n"
             "RUN echo NONCE > /nonce\n"
             "COPY src/ /src\n"
             "RUN cat /src/* > /out.txt\n"
             "\n"
             "FROM local/busybox:latest\n"
             "RUN echo NONCE final > /nonce\n"
             "COPY app/ /app\n"
             "COPY --from=builder /out.txt /\n"
             "RUN cat /out.txt /app/*\n")
STAGES_FILES = {"src/a.txt": "alpha\n", "app/x.txt": "x\n"}


def test_a_renamed_stage_with_a_file_edit_is_the_file(new_project):
    p = new_project(STAGES_DF, STAGES_FILES)
    p.build()
    p.write("Dockerfile", STAGES_DF.replace("AS builder", "AS build").replace("--from=builder", "--from=build"))
    p.write("src/a.txt", "alpha, edited\n")
    b = p.build()
    statuses = {s["line"]: s["status"] for s in b.report["steps"] if s["line"]}
    assert (statuses[2], statuses[3], statuses[7], statuses[8]) == ("cached", "rebuilt", "cached", "cached"), statuses
    root = assert_root(b, 3, "context-changed")
    assert root["cause"]["files"]["modified"] == ["src/a.txt"], b.describe()
    assert len(b.roots) == 1
    copy_from = assert_cascade(b, 9, root, "stage-changed")
    # the --from text follows the rename: no edit of its own
    assert copy_from["also"] == [], b.describe()
    assert_cascade(b, 10, root)


def test_an_unnamed_stage_inserted_above_renumbers_without_losing_the_pairs(new_project):
    p = new_project(STAGES_DF, STAGES_FILES)
    p.build()
    # the final stage was stage-1 and is now stage-2; the inserted stage is not built (nothing reads it)
    p.write("Dockerfile", STAGES_DF.replace("\nFROM local/busybox:latest\n",
                                            "\nFROM local/busybox:latest\nRUN echo NONCE tools > /tools\n\n"
                                            "FROM local/busybox:latest\n"))
    p.write("app/x.txt", "x, edited\n")
    b = p.build()
    statuses = {s["line"]: (s["stage"], s["status"]) for s in b.report["steps"] if s["line"]}
    assert 7 not in statuses, statuses
    assert statuses[10] == ("stage-2", "cached") and statuses[11] == ("stage-2", "rebuilt"), statuses
    root = assert_root(b, 11, "context-changed")
    assert root["cause"]["files"]["modified"] == ["app/x.txt"], b.describe()
    assert len(b.roots) == 1
    assert_cascade(b, 13, root)
    # and with nothing changed again, nothing is rebuilt
    again = p.build()
    assert again.misses == [], again.describe()
    check_terminal(again)


# --------------------------------------------------------- named build contexts

NAMED_DF = ("FROM local/busybox:latest\n"
            "RUN echo NONCE > /nonce\n"
            "COPY m.txt /m.txt\n"
            "COPY --from=extra sub/ /extra/\n"
            "RUN cat /extra/*\n")


def test_a_file_edited_in_a_named_context_is_named(new_project):
    p = new_project(NAMED_DF, {"m.txt": "main\n"})
    extra = p.root / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "sub" / "e.txt").write_text("one\n")
    (extra / "sub" / "other.txt").write_text("other\n")
    (extra / "unread.txt").write_text("not copied\n")
    ctx = ("--build-context", f"extra={extra}")
    first = p.build(*ctx)
    assert first.report["summary"]["rebuilt"] == 4
    (extra / "sub" / "e.txt").write_text("two\n")
    (extra / "unread.txt").write_text("still not copied, changed\n")
    b = p.build(*ctx)
    statuses = {s["line"]: s["status"] for s in b.report["steps"] if s["line"]}
    assert (statuses[2], statuses[3], statuses[4]) == ("cached", "cached", "rebuilt"), statuses
    root = assert_root(b, 4, "context-changed")
    assert root["cause"]["files"] == {"added": [], "modified": ["extra:sub/e.txt"], "removed": []}, b.describe()
    assert "extra:sub/e.txt modified" in root["cause"]["detail"]
    assert_cascade(b, 5, root)
    assert len(b.roots) == 1
    # the record keeps the named context's snapshot, of the paths the Dockerfile reads from it
    record = next(f for f in p.store.glob("*.json") if b.report["build"]["ref"] in f.name)
    import json  # noqa: PLC0415

    named = json.loads(record.read_text())["named_snapshots"]
    assert set(named) == {"extra"} and named["extra"]["follow"] == ["sub"], named
    # nothing changed: nothing rebuilt, and what was compared is said when the cache is gone
    assert p.build(*ctx).misses == []


def test_a_named_image_context_moved_is_base_image_changed(new_project, images, tmp_path):
    tag = f"cachewhy-test/named:{uuid.uuid4().hex[:10]}"
    old = one_file_image(images, tmp_path, tag, "first\n")
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    "COPY --from=extra /f.txt /f.txt\n"
                    "RUN cat /f.txt\n")
    ctx = ("--build-context", f"extra=docker-image://{tag}")
    p.build(*ctx)
    new = one_file_image(images, tmp_path, tag, "second\n")
    assert new != old
    b = p.build(*ctx)
    statuses = {s["line"]: s["status"] for s in b.report["steps"] if s["line"]}
    assert (statuses[2], statuses[3]) == ("cached", "rebuilt"), statuses
    root = assert_root(b, 3, "base-image-changed")
    detail = root["cause"]["detail"]
    assert tag in detail and "--build-context extra" in detail and "\u2192" in detail, detail
    # the digests are provenance's (its materials), old before new
    before, after = re.findall(r"sha256:[0-9a-f]{12}", detail)
    assert before != after, detail
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1
    # the fix names the COPY --from, not the FROM of line 1
    advice = root.get("advice") or []
    assert [a["lines"] for a in advice if a["rule"] == "pin-base-image"] == [[3]], root


# ----------------------------------------------------------- smaller defects

def test_copy_link_is_one_step(new_project):
    df = ("FROM local/busybox:latest\n"
          "RUN echo NONCE > /nonce\n"
          "COPY --link a.txt /a.txt\n"
          "RUN cat /a.txt\n")
    p = new_project(df, {"a.txt": "a NONCE\n"})  # a layer of its own: never cached before
    first = p.build()
    assert first.report["summary"]["rebuilt"] == 3, first.describe()
    p.write("Dockerfile", df.replace("NONCE >", "NONCE edited >"))
    b = p.build()
    # BuildKit: the linked copy is cached (its layer does not depend on the base),
    # only its merge onto the new base ran
    rows = [r for r in table_rows(b) if r.split()[0] == "3"]
    assert len(rows) == 1 and "cached" in rows[0], table_rows(b)
    assert (b.report["summary"]["cached"], b.report["summary"]["rebuilt"]) == (1, 2), b.describe()
    assert "cache hits 1/3 steps" in b.err
    root = assert_root(b, 2, "instruction-changed")
    assert_cascade(b, 4, root)
    assert len(b.roots) == 1


def test_a_build_arg_with_a_dockerfile_default_was_the_default_not_unset(new_project):
    p = new_project("ARG BASE=local/busybox:latest\n"
                    "FROM $BASE\n"
                    "RUN echo NONCE > /nonce\n")
    p.build()
    b = p.build("--build-arg", "BASE=local/busybox:i386")
    causes = [b.only_root()["cause"], *b.only_root()["also"]]
    arg = next(c for c in causes if c["kind"] == "build-arg-changed")
    assert "BASE changed (value redacted): (Dockerfile default) \u2192 h:" in arg["detail"], arg
    assert "(unset)" not in arg["detail"]


def test_a_bind_mount_from_a_named_context_names_its_file(new_project):
    p = new_project("FROM local/busybox:latest\n"
                    "RUN echo NONCE > /nonce\n"
                    "RUN --mount=from=extra,source=lock.txt,target=/lock.txt cat /lock.txt\n")
    extra = p.root / "extra"
    extra.mkdir()
    (extra / "lock.txt").write_text("v1\n")
    (extra / "other.txt").write_text("not mounted\n")
    ctx = ("--build-context", f"extra={extra}")
    p.build(*ctx)
    (extra / "lock.txt").write_text("v2\n")
    (extra / "other.txt").write_text("not mounted, changed\n")
    b = p.build(*ctx)
    root = assert_root(b, 3, "context-changed")
    assert root["cause"]["files"] == {"added": [], "modified": ["extra:lock.txt"], "removed": []}, b.describe()
    assert b.step_at(2)["status"] == "cached"


def test_arg_late_advice_is_silent_when_an_env_uses_the_arg(new_project):
    p = new_project("FROM local/busybox:latest\n"
                    "ARG VERSION\n"
                    "ENV X=$VERSION\n"
                    "RUN echo NONCE > /nonce\n"
                    "RUN echo $X > /x\n")
    p.build("--build-arg", "VERSION=1")
    b = p.build("--build-arg", "VERSION=2")
    # BuildKit: the ARG and the ENV it sets are in every RUN's environment, so the first RUN misses
    root = assert_root(b, 4, "build-arg-changed")
    assert [a["rule"] for a in root.get("advice") or []] == [], root


def test_a_heredoc_run_inserted_above_another_is_new(new_project):
    p = new_project(HEREDOC_DF)
    p.build()
    p.write("Dockerfile", HEREDOC_DF.replace("RUN <<EOF\necho one", "RUN <<EOF\necho inserted\nEOF\nRUN <<EOF\necho one", 1))
    b = p.build()
    statuses = {s["line"]: s["status"] for s in b.report["steps"] if s["line"]}
    assert statuses[2] == "cached" and statuses[3] == "rebuilt" and statuses[6] == "rebuilt", statuses
    root = assert_root(b, 3, "instruction-changed")
    assert root["cause"]["detail"] == "new instruction: RUN <<EOF", b.describe()
    assert len(b.roots) == 1
