"""Unit tests for analyzer.dockerfile: parsing and vertex-name mapping."""

from __future__ import annotations

import pytest

from analyzer import dockerfile as dfm
from analyzer.dockerfile import (
    DockerfileError,
    locate,
    locate_name,
    parse,
    parse_mount,
    parse_vertex_name,
)

# --------------------------------------------------------------------------
# fixtures (written for these tests; line numbers are asserted below)

MULTI = """\
# syntax=docker/dockerfile:1
ARG BASE=local/busybox:latest
ARG VERSION=1.0

FROM ${BASE} AS Chef
WORKDIR /app
ENV GREETING=hello
COPY Cargo.toml Cargo.lock ./
RUN echo "$GREETING" \\
    # a comment between continuation lines
    && cat Cargo.toml \\

    && echo done

FROM chef AS planner
COPY . .
RUN cat Cargo.toml > recipe.json

FROM chef AS builder
ARG VERSION
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=bind,source=uv.lock,target=uv.lock \\
    --mount=type=cache,target=/root/.cache,id=pip \\
    --network=none \\
    make build-$VERSION
COPY --from=local/tools:1 /bin/tool /usr/bin/tool
RUN <<EOF
set -e
echo built > /app/out
EOF
COPY <<-"CONF" /etc/app.conf
\tkey=value
\tCONF

FROM scratch AS final
COPY --from=builder --chown=1:1 --chmod=644 /app/out /out
COPY --link --exclude=*.md --parents docs/ /docs/
WORKDIR /
CMD ["/out"]
"""

SINGLE = """\
FROM local/busybox:latest
RUN echo one
LABEL a=b
"""

SINGLE_MOUNT = """\
FROM local/busybox:latest
ENV PYTHONUNBUFFERED=1
RUN --mount=type=cache,target=/root/.cache/uv \\
    uv sync
"""

BACKTICK = """\
# escape=`
FROM mcr.microsoft.com/windows/servercore AS win
RUN dir `
    && echo hi
COPY . C:\\src\\
RUN echo done
"""

WORKDIRS = """\
FROM local/busybox:latest AS a
WORKDIR /
RUN one
ENV ROOT=/
FROM a AS b
WORKDIR /tmp
WORKDIR ..
RUN two
WORKDIR $ROOT
WORKDIR sub
"""


@pytest.fixture(scope="module")
def multi():
    return parse(MULTI)


# --------------------------------------------------------------------------
# instructions and line ranges


def test_instruction_lines_and_end_lines(multi):
    got = [(i.keyword, i.line, i.end_line) for i in multi.instructions]
    assert got == [
        ("ARG", 2, 2), ("ARG", 3, 3),
        ("FROM", 5, 5), ("WORKDIR", 6, 6), ("ENV", 7, 7), ("COPY", 8, 8), ("RUN", 9, 13),
        ("FROM", 15, 15), ("COPY", 16, 16), ("RUN", 17, 17),
        ("FROM", 19, 19), ("ARG", 20, 20), ("COPY", 21, 21), ("RUN", 22, 25), ("COPY", 26, 26),
        ("RUN", 27, 30), ("COPY", 31, 33),
        ("FROM", 35, 35), ("COPY", 36, 36), ("COPY", 37, 37), ("WORKDIR", 38, 38), ("CMD", 39, 39),
    ]


def test_continuation_text_skips_comment_and_blank_lines(multi):
    run = multi.instruction_at(9)
    assert run.text == 'RUN echo "$GREETING" && cat Cargo.toml && echo done'
    assert run.original == "\n".join(MULTI.split("\n")[8:13])
    assert run.original.startswith('RUN echo "$GREETING" \\\n    # a comment')
    assert run.args == ["echo", "$GREETING", "&&", "cat", "Cargo.toml", "&&", "echo", "done"]


def test_instruction_at_covers_whole_range(multi):
    assert multi.instruction_at(11).line == 9
    assert multi.instruction_at(28).line == 27
    assert multi.instruction_at(32).keyword == "COPY"
    assert multi.instruction_at(1) is None  # parser directive
    assert multi.instruction_at(4) is None  # blank line
    assert multi.instruction_at(1000) is None


def test_directives_and_global_args(multi):
    assert multi.directives == {"syntax": "docker/dockerfile:1"}
    assert [a.line for a in multi.global_args] == [2, 3]
    assert all(a.stage is None for a in multi.global_args)
    assert multi.global_args[0].assignments == [("BASE", "local/busybox:latest")]
    assert multi.escape == "\\"


def test_stages_structure(multi):
    st = multi.stages
    assert [s.name for s in st] == ["chef", "planner", "builder", "final"]
    assert [s.alias for s in st] == ["Chef", "planner", "builder", "final"]
    assert [s.from_line for s in st] == [5, 15, 19, 35]
    assert st[0].base == "${BASE}" and st[0].resolved_base == "local/busybox:latest"
    assert [s.base_stage for s in st] == [None, 0, 0, None]
    assert st[3].is_scratch and not st[3].image_base
    assert [[i.line for i in s.steps] for s in st] == [[6, 8, 9], [16, 17], [21, 22, 26, 27, 31], [36, 37]]
    # M: FROM of an image base + RUN/COPY/ADD/WORKDIR (WORKDIR / included)
    assert [s.counted for s in st] == [4, 2, 5, 3]
    assert st[3].workdirs == {38: "/"}
    assert [i.stage for i in st[2].instructions] == [2] * 7
    assert st[2].instructions[0].keyword == "FROM"
    assert st[2].deps == [0, 1]
    assert st[3].deps == [2]


def test_stage_by_name(multi):
    assert multi.stage_by_name("builder").index == 2
    assert multi.stage_by_name("CHEF").index == 0
    assert multi.stage_by_name("stage-1").index == 1
    assert multi.stage_by_name("3").index == 3
    assert multi.stage_by_name("nope") is None
    assert multi.stage_by_name("stage-9") is None


def test_flags_and_args(multi):
    copy = multi.instruction_at(36)
    assert copy.flags == {"--from": ["builder"], "--chown": ["1:1"], "--chmod": ["644"]}
    assert copy.from_ref == "builder"
    assert copy.sources == ["/app/out"] and copy.destination == "/out"
    link = multi.instruction_at(37)
    assert link.flags == {"--link": [""], "--exclude": ["*.md"], "--parents": [""]}
    assert link.is_link
    assert link.args == ["docs/", "/docs/"]
    planner_copy = multi.instruction_at(21)
    assert planner_copy.text == "COPY --from=planner /app/recipe.json recipe.json"
    assert planner_copy.sources == ["/app/recipe.json"]


def test_run_mounts(multi):
    run = multi.instruction_at(22)
    assert run.flags["--network"] == ["none"]
    assert run.mounts == [
        {"type": "bind", "source": "uv.lock", "target": "uv.lock"},
        {"type": "cache", "target": "/root/.cache", "id": "pip"},
    ]
    assert run.args == ["make", "build-$VERSION"]
    assert run.text.startswith("RUN --mount=type=bind,source=uv.lock,target=uv.lock --mount=type=cache")
    assert run.text.endswith("--network=none make build-$VERSION")


def test_parse_mount_aliases():
    assert parse_mount("src=a,dst=/b,ro") == {"source": "a", "target": "/b", "readonly": "true", "type": "bind"}
    assert parse_mount("type=bind,from=builder,source=/out,destination=/in,rw")["readonly"] == "false"
    assert parse_mount("type=secret,id=tok,required")["required"] == "true"
    assert parse_mount("type=cache,target=/c,readonly=false")["readonly"] == "false"


def test_heredocs(multi):
    run = multi.instruction_at(27)
    assert run.heredocs == [("EOF", "set -e\necho built > /app/out\n")]
    assert run.text == "RUN <<EOF"
    copy = multi.instruction_at(31)
    assert copy.heredocs == [("CONF", "key=value\n")]  # <<- strips leading tabs
    assert copy.sources == [] and copy.destination == "/etc/app.conf"


def test_several_heredocs_on_one_line():
    df = parse(
        "FROM x\n"
        "RUN <<A bash && <<'B' sh\n"
        "echo a\n"
        "A\n"
        "echo b\n"
        "B\n"
        "COPY <<one.txt <<two.txt /dst/\n"
        "1\n"
        "one.txt\n"
        "2\n"
        "two.txt\n"
        "RUN echo '<<NOTADOC'\n"
    )
    run, copy, plain = df.stages[0].steps
    assert (run.line, run.end_line) == (2, 6)
    assert run.heredocs == [("A", "echo a\n"), ("B", "echo b\n")]
    assert (copy.line, copy.end_line) == (7, 11)
    assert copy.heredocs == [("one.txt", "1\n"), ("two.txt", "2\n")]
    assert copy.sources == [] and copy.destination == "/dst/"
    assert (plain.line, plain.end_line, plain.heredocs) == (12, 12, [])


def test_json_form():
    df = parse('FROM x\nRUN ["echo", "a b"]\nCOPY ["a b", "c d", "/dst/"]\nENTRYPOINT ["/bin/sh", "-c"]\n')
    run, copy = df.stages[0].steps
    assert run.json_form and run.args == ["echo", "a b"]
    assert copy.json_form and copy.sources == ["a b", "c d"] and copy.destination == "/dst/"
    assert df.instructions[-1].args == ["/bin/sh", "-c"]


def test_json_form_is_not_heredoc():
    df = parse('FROM x\nRUN ["sh", "-c", "cat <<EOF"]\nRUN echo after\n')
    assert [(i.line, i.end_line) for i in df.stages[0].steps] == [(2, 2), (3, 3)]


def test_add_urls_and_git():
    df = parse(
        "FROM x\n"
        "ADD --checksum=sha256:abc https://example.com/f.tgz /tmp/\n"
        "ADD git@github.com:moby/buildkit.git#v0.10.1 /src\n"
        "ADD --keep-git-dir=true https://github.com/moby/buildkit.git /bk\n"
    )
    a1, a2, a3 = df.stages[0].steps
    assert a1.flags == {"--checksum": ["sha256:abc"]} and a1.sources == ["https://example.com/f.tgz"]
    assert a2.sources == ["git@github.com:moby/buildkit.git#v0.10.1"] and a2.destination == "/src"
    assert a3.flag("keep-git-dir") == "true"
    assert df.stages[0].counted == 4


def test_from_platform_and_as_case():
    df = parse("FROM --platform=$BUILDPLATFORM golang:1.22 as Build\nRUN go build\nFROM build AS b2\n")
    st = df.stages[0]
    assert st.platform == "$BUILDPLATFORM" and st.alias == "Build" and st.name == "build"
    assert st.base == "golang:1.22"
    assert df.stages[1].base_stage == 0 and df.stages[1].counted == 0


def test_escape_backtick():
    df = parse(BACKTICK)
    assert df.escape == "`"
    assert df.directives == {"escape": "`"}
    assert [(i.keyword, i.line, i.end_line) for i in df.instructions] == [
        ("FROM", 2, 2), ("RUN", 3, 4), ("COPY", 5, 5), ("RUN", 6, 6),
    ]
    assert df.instructions[1].text == "RUN dir && echo hi"
    # a trailing backslash is no continuation with escape=`
    assert df.instructions[2].args == [".", "C:\\src\\"]
    assert df.instructions[2].sources == ["."]


def test_directive_only_at_top():
    df = parse("# a comment\n# escape=`\nFROM x\nRUN a `\n    b\n")
    assert df.escape == "\\" and df.directives == {}
    assert [(i.line, i.end_line) for i in df.instructions] == [(3, 3), (4, 4), (5, 5)]


def test_env_and_arg_assignments():
    df = parse('FROM x\nENV A=1 B="two words"\nENV LEGACY value with spaces\nARG V\nARG W=3 X\nLABEL k=v\n')
    env1, env2, arg1, arg2, label = df.instructions[1:]
    assert env1.assignments == [("A", "1"), ("B", "two words")]
    assert env2.assignments == [("LEGACY", "value with spaces")]
    assert arg1.assignments == [("V", None)]
    assert arg2.assignments == [("W", "3"), ("X", None)]
    assert label.assignments == [("k", "v")]
    assert df.instructions[0].assignments == []


def test_workdir_resolution_and_counting():
    df = parse(WORKDIRS)
    a, b = df.stages
    assert [i.line for i in a.steps] == [3]
    assert a.counted == 3  # FROM + WORKDIR / + RUN
    assert a.workdirs == {2: "/"}
    assert b.workdirs == {6: "/tmp", 7: "/", 9: "/", 10: "/sub"}
    assert [i.line for i in b.steps] == [6, 8, 10]
    assert b.counted == 5


def test_workdir_unresolved_variable_is_a_step():
    df = parse("FROM x\nWORKDIR $HOME\nRUN a\n")
    assert df.stages[0].workdirs == {2: None}
    assert [i.line for i in df.stages[0].steps] == [2, 3]


def test_onbuild_trigger():
    df = parse("FROM x AS base\nONBUILD RUN echo hi\nFROM base AS child\nRUN x\n")
    base, child = df.stages
    ob = df.instructions[1]
    assert ob.keyword == "ONBUILD" and ob.trigger.keyword == "RUN" and ob.effective_keyword == "RUN"
    assert base.counted == 1 and child.counted == 2
    assert locate_name(df, "[child 1/2] ONBUILD RUN echo hi") is ob
    assert locate_name(df, "[child 2/2] RUN x").line == 4


def test_crlf_and_bom():
    df = parse("\ufeffFROM x\r\nRUN a \\\r\n    b\r\nRUN c\r\n")
    assert [(i.line, i.end_line, i.text) for i in df.instructions] == [
        (1, 1, "FROM x"), (2, 3, "RUN a b"), (4, 4, "RUN c"),
    ]
    assert "\r" not in df.instructions[1].original


@pytest.mark.parametrize("text", [
    "",
    "\n\n# only a comment\n",
    "RUN before from\nFROM x\n",
    "FROM x\nFOO bar baz\nRUN a \\",
    "FROM x\nRUN <<EOF\nnever terminated\n",
    "FROM\nCOPY\nWORKDIR\nRUN --mount=type=bind,source=\"a,b\n",
    "FROM x\nRUN [\"unterminated\nCOPY --from= a b\n",
    "FROM x AS\nFROM y AS y AS z\nWORKDIR ${A:-/}\nWORKDIR ${B\n",
])
def test_never_raises_on_odd_input(text):
    df = parse(text)
    for ins in df.instructions:
        assert ins.line <= ins.end_line
        ins.sources, ins.mounts, ins.assignments  # noqa: B018 - must not raise


def test_odd_input_details():
    df = parse("RUN before from\nFROM x\nFOO bar baz\nRUN a \\")
    assert [(i.keyword, i.stage) for i in df.instructions] == [("RUN", None), ("FROM", 0), ("FOO", 0), ("RUN", 0)]
    assert df.global_args == []
    assert df.instructions[-1].text == "RUN a"
    unterminated = parse("FROM x\nRUN <<EOF\nbody\n")
    assert unterminated.instructions[1].end_line == 3


def test_rejects_non_str():
    with pytest.raises(DockerfileError):
        parse(b"FROM x\n")
    assert issubclass(DockerfileError, ValueError)


def test_uses_extra_state():
    assert not parse(SINGLE).uses_extra_state()
    assert parse(SINGLE_MOUNT).uses_extra_state()
    assert parse("FROM x\nRUN --mount=type=bind,source=a,target=/a make\n").uses_extra_state()
    assert parse("FROM x\nRUN --mount=type=secret,id=t cat /run/secrets/t\n").uses_extra_state()
    assert parse("FROM x\nCOPY --from=other/image:1 /a /a\n").uses_extra_state()
    stage_refs = "FROM x AS a\nRUN a\nFROM y\nRUN --mount=from=a,target=/a ls\nCOPY --from=0 / /\n"
    assert not parse(stage_refs).uses_extra_state()
    assert parse("FROM x AS a\nFROM y\nRUN --mount=from=A,target=/a,source=/ ls\n").uses_extra_state() is False
    # multi-stage files always carry stage names; single-stage ones only with an extra state
    assert parse(MULTI).names_carry_stage()
    assert not parse(SINGLE).names_carry_stage()
    assert parse(SINGLE_MOUNT).names_carry_stage()


def test_shared_from(multi):
    df = parse("FROM busybox AS a\nRUN a\nFROM busybox AS b\nRUN b\nFROM alpine AS c\n")
    a, b, c = df.stages
    assert df.shared_from(b) == [a, b]
    assert df.shared_from(c) == [c]


def test_vertex_instructions(multi):
    assert [i.line for i in multi.vertex_instructions()] == [5, 6, 8, 9, 16, 17, 21, 22, 26, 27, 31, 36, 37]


# --------------------------------------------------------------------------
# vertex names


def test_parse_vertex_name_basic():
    v = parse_vertex_name("[builder 2/5] RUN make")
    assert (v.platform, v.stage, v.index, v.total, v.keyword, v.target) == (None, "builder", 2, 5, "RUN", None)
    assert v.text == "RUN make" and not v.is_link_merge and not v.onbuild


def test_parse_vertex_name_padded_and_no_stage():
    v = parse_vertex_name("[base  3/12] COPY a.txt ./")
    assert (v.stage, v.index, v.total, v.keyword) == ("base", 3, 12, "COPY")
    v = parse_vertex_name("[ 9/15] RUN x")
    assert (v.stage, v.index, v.total) == (None, 9, 15)
    v = parse_vertex_name("[1/2] RUN echo one")
    assert (v.stage, v.index, v.total, v.text) == (None, 1, 2, "RUN echo one")


def test_parse_vertex_name_platforms_and_bake():
    v = parse_vertex_name("[linux/amd64 b 1/2] FROM docker.io/local/busybox:latest@sha256:abc")
    assert (v.platform, v.stage, v.index, v.keyword) == ("linux/amd64", "b", 1, "FROM")
    v = parse_vertex_name("[linux/amd64->arm64 b 2/2] RUN go build")
    assert (v.platform, v.stage, v.index, v.total) == ("linux/amd64->arm64", "b", 2, 2)
    v = parse_vertex_name("[linux/arm/v7 3/4] RUN x")
    assert (v.platform, v.stage) == ("linux/arm/v7", None)
    v = parse_vertex_name("[tgt base 1/4] FROM docker.io/library/alpine")
    assert (v.target, v.stage, v.platform) == ("tgt", "base", None)
    v = parse_vertex_name("[tgt linux/amd64 base 1/4] FROM x")
    assert (v.target, v.platform, v.stage) == ("tgt", "linux/amd64", "base")


def test_parse_vertex_name_link_and_onbuild():
    v = parse_vertex_name("[base 4/7] LINK COPY --link src/x.txt /linked/x.txt")
    assert v.is_link_merge and v.keyword == "COPY" and v.index == 4
    v = parse_vertex_name("[base 4/7] COPY --link src/x.txt /linked/x.txt")
    assert not v.is_link_merge and v.keyword == "COPY"
    v = parse_vertex_name("[child 1/2] ONBUILD RUN echo hi")
    assert v.onbuild and v.keyword == "RUN"


@pytest.mark.parametrize("name", [
    "[internal] load build definition from Dockerfile",
    "[internal] load .dockerignore",
    "[internal] load metadata for docker.io/local/busybox:latest",
    "[internal] load build context",
    "[internal] setting cache mount permissions",
    "[linux/amd64 internal] load metadata for docker.io/local/busybox:latest",
    "[tgt internal] load build context",
    "exporting to image",
    "exporting cache to client directory",
    "resolving provenance for metadata file",
    "importing cache manifest from local:123",
    "[auth] library/busybox:pull token for registry-1.docker.io",
    "[tgt] exporting to image",
    "preparing inline document",
    "",
])
def test_internal_names(name):
    assert parse_vertex_name(name) is None
    assert dfm.is_internal_name(name)


def test_step_names_are_not_internal():
    assert not dfm.is_internal_name("[builder 2/5] RUN make")
    assert not dfm.is_internal_name("[1/2] FROM docker.io/x")


# --------------------------------------------------------------------------
# locate


@pytest.mark.parametrize("name,line", [
    ("[chef 1/4] FROM docker.io/local/busybox:latest@sha256:b701", 5),
    ("[chef 2/4] WORKDIR /app", 6),
    ("[chef 3/4] COPY Cargo.toml Cargo.lock ./", 8),
    ('[chef 4/4] RUN echo "hello" && cat Cargo.toml && echo done', 9),
    ("[planner 1/2] COPY . .", 16),
    ("[planner 2/2] RUN cat Cargo.toml > recipe.json", 17),
    ("[builder 1/5] COPY --from=planner /app/recipe.json recipe.json", 21),
    (
        (
            "[builder 2/5] RUN --mount=type=bind,source=uv.lock,target=uv.lock --mount=type=cache,"
            "target=/root/.cache,id=pip --network=none make build-1.0"
        ),
        22,
    ),
    ("[builder 3/5] COPY --from=local/tools:1 /bin/tool /usr/bin/tool", 26),
    ("[builder 4/5] RUN <<EOF (set -e...)", 27),
    ('[builder 5/5] COPY <<-"CONF" /etc/app.conf', 31),
    ("[final 1/3] COPY --from=builder --chown=1:1 --chmod=644 /app/out /out", 36),
    ("[final 2/3] COPY --link --exclude=*.md --parents docs/ /docs/", 37),
    ("[final 2/3] LINK COPY --link --exclude=*.md --parents docs/ /docs/", 37),
])
def test_locate_multi(multi, name, line):
    ins = locate(multi, parse_vertex_name(name))
    assert ins is not None and ins.line == line


def test_locate_single_stage_without_stage_name():
    df = parse(SINGLE)
    assert locate_name(df, "[1/2] FROM docker.io/local/busybox:latest@sha256:abc").line == 1
    assert locate_name(df, "[2/2] RUN echo one").line == 2


def test_locate_single_stage_with_mount_carries_stage_0():
    df = parse(SINGLE_MOUNT)
    ins = locate_name(df, "[stage-0 2/2] RUN --mount=type=cache,target=/root/.cache/uv uv sync")
    assert (ins.line, ins.end_line) == (3, 4)
    assert locate_name(df, "[stage-0 1/2] FROM docker.io/local/busybox:latest").line == 1


def test_locate_multi_platform():
    df = parse(
        "FROM --platform=$BUILDPLATFORM local/busybox:latest AS b\n"
        "RUN go build\n"
        "FROM scratch\n"
        "COPY --from=b /out /\n"
    )
    assert locate_name(df, "[linux/amd64 b 1/2] FROM docker.io/local/busybox:latest@sha256:1").line == 1
    assert locate_name(df, "[linux/amd64->arm64 b 2/2] RUN go build").line == 2
    assert locate_name(df, "[linux/arm64 stage-1 1/1] COPY --from=b /out /").line == 4


def test_locate_padded_twelve_step_stage():
    lines = ["FROM local/busybox:latest AS base", "WORKDIR /app"] + [
        f"COPY f{k}.txt ./" for k in range(10)
    ] + ["FROM base AS other", "RUN true"]
    df = parse("\n".join(lines) + "\n")
    assert df.stages[0].counted == 12
    assert locate_name(df, "[base  3/12] COPY f0.txt ./").line == 3
    assert locate_name(df, "[base 12/12] COPY f9.txt ./").line == 12
    assert locate_name(df, "[base  1/12] FROM docker.io/local/busybox:latest").line == 1


def test_locate_link_merge_same_instruction():
    df = parse(
        "FROM local/busybox:latest AS base\n"
        "WORKDIR /app\n"
        "COPY a.txt ./\n"
        "COPY --link src/x.txt /linked/x.txt\n"
        "RUN a\nRUN b\nRUN c\n"
        "FROM base AS other\n"
    )
    assert df.stages[0].counted == 7
    copy = locate_name(df, "[base 4/7] COPY --link src/x.txt /linked/x.txt")
    merge = locate_name(df, "[base 4/7] LINK COPY --link src/x.txt /linked/x.txt")
    assert copy is merge and copy.line == 4


def test_locate_bake_target_prefix(multi):
    assert locate_name(multi, "[tgt chef 3/4] COPY Cargo.toml Cargo.lock ./").line == 8
    # a lone word that is no stage: a bake target on a single-state build
    df = parse(SINGLE)
    assert locate_name(df, "[tgt 2/2] RUN echo one").line == 2


def test_locate_workdir_root_does_not_take_a_position():
    df = parse(WORKDIRS)
    # stage a: FROM(1) WORKDIR /(no vertex) RUN -> i=2 of M=3
    assert locate_name(df, "[a 1/3] FROM docker.io/local/busybox:latest").line == 1
    assert locate_name(df, "[a 2/3] RUN one").line == 3
    # stage b (FROM a): WORKDIR /tmp, WORKDIR .. (no vertex), RUN, WORKDIR $ROOT (no vertex), WORKDIR sub
    assert locate_name(df, "[b 1/5] WORKDIR /tmp").line == 6
    assert locate_name(df, "[b 2/5] RUN two").line == 8
    assert locate_name(df, "[b 3/5] WORKDIR sub").line == 10


def test_locate_without_stage_in_multi_stage_file_uses_total():
    df = parse("FROM x AS a\nRUN a1\nRUN a2\nFROM y AS b\nRUN b1\n")
    assert locate_name(df, "[2/3] RUN a1").line == 2
    assert locate_name(df, "[2/2] RUN b1").line == 5
    assert locate_name(df, "[9/9] RUN zz") is None


def test_locate_keyword_mismatch_tries_other_stages_or_gives_up():
    df = parse("FROM x AS a\nCOPY f .\nFROM y AS b\nRUN b1\n")
    # the name says stage a, but a's step 2 is a COPY; b has the same M and a RUN there
    assert locate_name(df, "[a 2/2] RUN b1").line == 4
    assert locate_name(df, "[a 2/2] WORKDIR /x") is None
    assert locate_name(df, "[a 3/2] COPY f .") is None
    assert locate_name(df, "[zzz 2/2] COPY f .").line == 2


def test_locate_empty_image_without_from_vertex():
    # an image with no layers behaves like scratch: no FROM vertex, i starts at the first step
    df = parse("FROM local/empty AS e\nRUN a\nRUN b\nFROM x\n")
    assert locate_name(df, "[e 1/3] RUN a").line == 2
    assert locate_name(df, "[e 2/3] RUN b").line == 3


def test_locate_rejects_none_and_internal(multi):
    assert locate(multi, None) is None
    assert locate_name(multi, "[internal] load build context") is None
    assert locate(parse(""), parse_vertex_name("[1/1] RUN x")) is None


def test_all_exported_names_exist():
    for name in dfm.__all__:
        assert hasattr(dfm, name), name
    for name in ("Instruction", "Stage", "Dockerfile", "VertexName", "parse", "parse_vertex_name",
                 "is_internal_name", "locate", "DockerfileError"):
        assert name in dfm.__all__
