"""`cachewhy predict` on builds of kinds it has not seen: one change at a time to a
small real Dockerfile, predicted, then built, on the real engine.

Each row of SCENARIOS is one project: a first build, one change (a file, the
Dockerfile, the build's arguments), a prediction, and the build that judges it.
`rebuilt` and `roots` are what BuildKit did (checked on the engine first); the
prediction must say the same, except for the steps it marks may-rebuild, which
may go either way but are never predicted cached. Projects carry a fresh nonce
in their first step, so every first build is cold without any prune.
"""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from tests.integration.test_predict import Project, confirmed, docker, rebuilt, roots

pytestmark = pytest.mark.engine

BB = "FROM local/busybox:latest"


def _tar(p: Project, name: str, files: dict[str, str]) -> None:
    """A tar archive in the context, with fixed mtimes: equal contents give equal bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for fname, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(fname)
            info.size, info.mtime = len(data), 1_700_000_000
            t.addfile(info, io.BytesIO(data))
    (p.ctx / name).write_bytes(buf.getvalue())


def _touch(p: Project, *names: str) -> None:
    for n in names:
        st = (p.ctx / n).stat()
        os.utime(p.ctx / n, ns=(st.st_atime_ns + 10**10, st.st_mtime_ns + 10**10))


def _relink(p: Project, name: str, target: str) -> None:
    (p.ctx / name).unlink()
    (p.ctx / name).symlink_to(target)


def _edit(p: Project, name: str, old: str, new: str) -> None:
    path = p.ctx / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new))


@dataclass
class Scenario:
    name: str
    dockerfile: str
    files: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Project], None] | None = None
    change: Callable[[Project], None] | None = None
    first: tuple[str, ...] = ()  # the first build's arguments ({root}: the project's folder)
    # earlier builds before `change`: a change built with `first`, or other arguments
    before: tuple[Callable[[Project], None] | tuple[str, ...], ...] = ()
    then: tuple[str, ...] | None = None  # the second build's (None: the same)
    rebuilt: list[int] = field(default_factory=list)  # what BuildKit rebuilt (checked on the engine)
    roots: list[tuple[int, str]] = field(default_factory=list)
    maybe: list[int] = field(default_factory=list)  # lines predict must mark may-rebuild
    files_of_root: dict | None = None  # the root's files, for a context change
    says: str = ""  # words the prediction prints


SCENARIOS = [
    Scenario(
        "heredoc-body-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN <<EOF\necho one > f\necho more >> f\nEOF\nRUN cat f\n",
        change=lambda p: _edit(p, "Dockerfile", "echo one", "echo two"),
        rebuilt=[3, 7], roots=[(3, "instruction-changed")]),
    Scenario(
        "run-continuation-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo a > f && \\\n    echo b >> f\nRUN cat f\n",
        change=lambda p: _edit(p, "Dockerfile", "echo b", "echo c"),
        rebuilt=[3, 5], roots=[(3, "instruction-changed")]),
    Scenario(
        "comment-and-blank-lines-shift-everything",
        f"{BB} AS a\nWORKDIR /w-NONCE\nCOPY a.txt .\nRUN cat a.txt > b\n{BB}\nCOPY --from=a /w-NONCE/b .\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _edit(p, "Dockerfile", "COPY a.txt", "# a comment\n\n# another\nCOPY a.txt"),
        rebuilt=[], roots=[]),
    Scenario(
        "stage-renamed",
        f"{BB} AS a\nWORKDIR /w-NONCE\nRUN echo NONCE-a > f\n{BB}\nCOPY --from=a /w-NONCE/f /f\nRUN cat /f\n",
        change=lambda p: (_edit(p, "Dockerfile", "AS a", "AS b"), _edit(p, "Dockerfile", "--from=a", "--from=b")),
        rebuilt=[], roots=[]),
    Scenario(
        "target-switch",
        f"{BB} AS base\nWORKDIR /w-NONCE\nRUN echo NONCE-a > f\nFROM base AS test\nRUN cat f > g\n"
        f"FROM base AS release\nRUN cp f h\n",
        first=("--target", "test"), then=("--target", "release"),
        rebuilt=[7], roots=[(7, "no-previous-build")],
        says="note: no earlier build of this target: the cache statuses come from build"),
    Scenario(
        "global-arg-in-from-new-image",
        "ARG IMG=local/busybox:latest\nFROM $IMG\nWORKDIR /w-NONCE\nRUN ls / > f\n",
        setup=lambda p: docker("tag", "local/busybox:i386", f"local/cw-{p.nonce}:other"),
        then=("--build-arg", "IMG=local/cw-NONCE:other"),
        rebuilt=[3, 4], roots=[(3, "build-arg-changed")]),
    Scenario(
        "global-arg-in-from-same-digest",
        "ARG IMG=local/busybox:latest\nFROM $IMG\nWORKDIR /w-NONCE\nRUN ls / > f\n",
        setup=lambda p: docker("tag", "local/busybox:latest", f"local/cw-{p.nonce}:alias"),
        then=("--build-arg", "IMG=local/cw-NONCE:alias"),
        rebuilt=[], roots=[]),
    Scenario(
        "global-arg-not-redeclared-is-not-in-run",
        f"ARG V=1\n{BB}\nWORKDIR /w-NONCE\nRUN echo $V > f\n",
        first=("--build-arg", "V=one"), then=("--build-arg", "V=two"),
        rebuilt=[], roots=[]),
    Scenario(
        "build-arg-given-but-undeclared",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo hi > f\n",
        first=("--build-arg", "NOPE=one"), then=("--build-arg", "NOPE=two"),
        rebuilt=[], roots=[]),
    Scenario(
        "build-arg-declared-unused-in-command",
        f"{BB}\nWORKDIR /w-NONCE\nARG V\nRUN echo hi > f\n",
        first=("--build-arg", "V=one"), then=("--build-arg", "V=two"),
        rebuilt=[4], roots=[(4, "build-arg-changed")]),
    Scenario(
        "build-arg-used-only-in-a-later-stage",
        f"{BB} AS one\nWORKDIR /w-NONCE\nRUN echo one > f\n{BB} AS two\nARG V\nWORKDIR /w2-NONCE\n"
        "RUN echo $V > g\nCOPY --from=one /w-NONCE/f .\n",
        first=("--build-arg", "V=one"), then=("--build-arg", "V=two"),
        rebuilt=[7, 8], roots=[(7, "build-arg-changed")]),
    Scenario(
        "env-in-base-stage-used-by-child",
        f"{BB} AS base\nENV MODE=a\nWORKDIR /w-NONCE\nFROM base AS child\nRUN echo $MODE > f\n",
        change=lambda p: _edit(p, "Dockerfile", "MODE=a", "MODE=b"),
        rebuilt=[5], roots=[(5, "env-changed")]),
    Scenario(
        "dockerignore-lets-a-file-in",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls > list\n",
        {"a.txt": "a NONCE\n", "notes.txt": "n NONCE\n", ".dockerignore": "notes.txt\n"},
        change=lambda p: p.write(".dockerignore", "# nothing ignored\n"),
        rebuilt=[3, 4], roots=[(3, "context-changed")],
        files_of_root={"added": ["notes.txt"], "modified": [".dockerignore"], "removed": []}),
    Scenario(
        "file-deleted",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls > list\n",
        {"a.txt": "a NONCE\n", "b.txt": "b NONCE\n"},
        change=lambda p: (p.ctx / "b.txt").unlink(),
        rebuilt=[3, 4], roots=[(3, "context-changed")],
        files_of_root={"added": [], "modified": [], "removed": ["b.txt"]}),
    Scenario(
        "empty-folder-added",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls > list\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: (p.ctx / "empty").mkdir(),
        rebuilt=[3, 4], roots=[(3, "context-changed")],
        files_of_root={"added": ["empty/"], "modified": [], "removed": []}),
    Scenario(
        "symlink-retargeted",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls -l > list\n",
        {"a.txt": "a NONCE\n", "b.txt": "b NONCE\n"},
        setup=lambda p: (p.ctx / "link").symlink_to("a.txt"),
        change=lambda p: _relink(p, "link", "b.txt"),
        rebuilt=[3, 4], roots=[(3, "context-changed")],
        files_of_root={"added": [], "modified": ["link"], "removed": []}),
    Scenario(
        "mtime-only-touch",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls > list\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _touch(p, "a.txt", "Dockerfile"),
        rebuilt=[], roots=[]),
    Scenario(
        "copy-chmod-edit",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY --chmod=644 a.txt .\nRUN ls -l > list\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _edit(p, "Dockerfile", "--chmod=644", "--chmod=755"),
        rebuilt=[3, 4], roots=[(3, "instruction-changed")]),
    Scenario(
        "copy-chown-edit",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY --chown=1:1 a.txt .\nRUN ls -ln > list\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _edit(p, "Dockerfile", "--chown=1:1", "--chown=2:2"),
        rebuilt=[3, 4], roots=[(3, "instruction-changed")]),
    Scenario(
        "copy-link-after-an-edited-run",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo one > f\nCOPY --link a.txt /linked/\nRUN cat f /linked/a.txt\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _edit(p, "Dockerfile", "echo one", "echo two"),
        rebuilt=[3, 5], roots=[(3, "instruction-changed")]),
    Scenario(
        "copy-link-file-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo one > f\nCOPY --link a.txt /linked/\nRUN cat f /linked/a.txt\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: p.write("a.txt", "b NONCE\n"),
        rebuilt=[4, 5], roots=[(4, "context-changed")]),
    Scenario(
        "no-cache-filter-a-stage",
        f"{BB} AS one\nWORKDIR /w-NONCE\nCOPY a.txt .\nRUN cat a.txt > f\n{BB} AS two\nWORKDIR /w2-NONCE\n"
        "RUN echo two > g\nCOPY --from=one /w-NONCE/f .\n",
        {"a.txt": "a NONCE\n"},
        then=("--no-cache-filter", "one"),
        rebuilt=[3, 4], roots=[(3, "no-cache-requested")], maybe=[8]),
    Scenario(
        "named-context-mounted-by-run",
        f"{BB}\nWORKDIR /w-NONCE\nRUN --mount=type=bind,from=extra,target=/x cat /x/e.txt > f\nRUN cat f\n",
        setup=lambda p: ((p.ctx.parent / "extra").mkdir(), (p.ctx.parent / "extra" / "e.txt").write_text(f"1 {p.nonce}\n")),
        change=lambda p: (p.ctx.parent / "extra" / "e.txt").write_text(f"2 {p.nonce}\n"),
        first=("--build-context", "extra={root}/extra"),
        rebuilt=[3, 4], roots=[(3, "context-changed")]),
    Scenario(
        "bind-mount-source-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN --mount=type=bind,source=conf,target=/conf cat /conf/c.txt > f\n"
        "COPY a.txt .\nRUN cat f a.txt\n",
        {"a.txt": "a NONCE\n"},
        setup=lambda p: ((p.ctx / "conf").mkdir(), (p.ctx / "conf" / "c.txt").write_text(f"1 {p.nonce}\n")),
        change=lambda p: (p.ctx / "conf" / "c.txt").write_text(f"2 {p.nonce}\n"),
        rebuilt=[3, 4, 5], roots=[(3, "context-changed")],
        files_of_root={"added": [], "modified": ["conf/c.txt"], "removed": []}),
    Scenario(
        "bind-mount-other-file-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN --mount=type=bind,source=conf,target=/conf cat /conf/c.txt > f\n"
        "COPY a.txt .\nRUN cat f a.txt\n",
        {"a.txt": "a NONCE\n"},
        setup=lambda p: ((p.ctx / "conf").mkdir(), (p.ctx / "conf" / "c.txt").write_text(f"1 {p.nonce}\n")),
        change=lambda p: p.write("a.txt", "b NONCE\n"),
        rebuilt=[4, 5], roots=[(4, "context-changed")]),
    Scenario(
        "secret-content-changed",
        f"{BB}\nWORKDIR /w-NONCE\nRUN --mount=type=secret,id=tok wc -c /run/secrets/tok > f\nRUN cat f\n",
        setup=lambda p: (p.ctx.parent / "tok").write_text("one\n"),
        change=lambda p: (p.ctx.parent / "tok").write_text("two-two\n"),
        first=("--secret", "id=tok,src={root}/tok"),
        rebuilt=[], roots=[]),
    Scenario(
        "add-local-tar",
        f"{BB}\nWORKDIR /w-NONCE\nADD a.tar /x/\nRUN ls /x > f\n",
        setup=lambda p: _tar(p, "a.tar", {"one.txt": f"1 {p.nonce}\n"}),
        change=lambda p: _tar(p, "a.tar", {"one.txt": f"1 {p.nonce}\n", "two.txt": "2\n"}),
        rebuilt=[3, 4], roots=[(3, "context-changed")],
        files_of_root={"added": [], "modified": ["a.tar"], "removed": []}),
    Scenario(
        "workdir-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo NONCE-a > f\nWORKDIR sub\nRUN pwd > g\n",
        change=lambda p: _edit(p, "Dockerfile", "WORKDIR sub", "WORKDIR other"),
        rebuilt=[4, 5], roots=[(4, "instruction-changed")]),
    Scenario(
        "user-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo NONCE-a > f\nUSER 1000\nRUN id > /tmp/g\n",
        change=lambda p: _edit(p, "Dockerfile", "USER 1000", "USER 1001"),
        rebuilt=[5], roots=[(5, "instruction-changed")]),
    Scenario(
        "independent-stages-reordered",
        f"{BB} AS a\nWORKDIR /w-NONCE\nRUN echo NONCE-a > f\n{BB} AS b\nWORKDIR /w-NONCE\nRUN echo NONCE-b > g\n"
        f"{BB}\nCOPY --from=a /w-NONCE/f .\nCOPY --from=b /w-NONCE/g .\n",
        change=lambda p: p.write("Dockerfile", f"{BB} AS b\nWORKDIR /w-NONCE\nRUN echo NONCE-b > g\n"
                                 f"{BB} AS a\nWORKDIR /w-NONCE\nRUN echo NONCE-a > f\n"
                                 f"{BB}\nCOPY --from=a /w-NONCE/f .\nCOPY --from=b /w-NONCE/g .\n"),
        rebuilt=[], roots=[]),
    Scenario(
        "unchanged-download-with-the-network-on",
        f"{BB}\nWORKDIR /w-NONCE\nRUN (wget --help || true) > f\nCOPY a.txt .\nRUN cat f a.txt\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: p.write("a.txt", "b NONCE\n"),
        first=("--network=default",),  # the last --network wins, as for buildx
        rebuilt=[4, 5], roots=[(4, "context-changed")]),
    Scenario(
        "user-in-the-base-stage-edit",
        f"{BB} AS base\nWORKDIR /w-NONCE\nUSER 1000\nFROM base AS app\nRUN id -u > /tmp/u\n",
        change=lambda p: _edit(p, "Dockerfile", "USER 1000", "USER 1001"),
        rebuilt=[5], roots=[(5, "instruction-changed")]),
    Scenario(
        "an-edit-reverted",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY a.txt .\nRUN cat a.txt > b\n",
        {"a.txt": "a NONCE\n"},
        before=(lambda p: p.write("a.txt", "b NONCE\n"),),
        change=lambda p: p.write("a.txt", "a NONCE\n"),
        rebuilt=[], roots=[], says="note: lines 3, 4 are as in build"),
    Scenario(
        "comment-edit-with-the-dockerfile-copied",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls > list\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _edit(p, "Dockerfile", "COPY . .", "# copy it all\nCOPY . ."),
        rebuilt=[4, 5], roots=[(4, "context-changed")],
        files_of_root={"added": [], "modified": ["Dockerfile"], "removed": []}),
    Scenario(
        "build-arg-in-a-copy-source",
        f"{BB}\nWORKDIR /w-NONCE\nARG APP=one\nCOPY ${{APP}}.txt ./app.txt\nRUN cat app.txt\n",
        {"one.txt": "1 NONCE\n", "two.txt": "2 NONCE\n"},
        then=("--build-arg", "APP=two"),
        rebuilt=[4, 5], roots=[(4, "build-arg-changed")]),
    Scenario(
        "build-arg-in-workdir",
        f"{BB}\nARG DIR=/w-NONCE\nWORKDIR $DIR\nRUN pwd > /tmp/p\n",
        then=("--build-arg", "DIR=/v-NONCE"),
        rebuilt=[3, 4], roots=[(3, "build-arg-changed")]),
    Scenario(
        "env-in-a-copy-destination",
        f"{BB}\nWORKDIR /w-NONCE\nENV DEST=one\nCOPY a.txt $DEST/\nRUN ls\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _edit(p, "Dockerfile", "DEST=one", "DEST=two"),
        rebuilt=[4, 5], roots=[(4, "env-changed")]),
    Scenario(
        "env-line-inserted-above-a-copy-and-a-run",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo NONCE > f\nCOPY a.txt .\nRUN cat f a.txt > g\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: _edit(p, "Dockerfile", "COPY a.txt", "ENV MODE=prod\nCOPY a.txt"),
        rebuilt=[6], roots=[(6, "env-changed")]),
    Scenario(
        "a-build-arg-set-back",
        f"{BB}\nWORKDIR /w-NONCE\nARG V\nRUN echo $V > f\nRUN cat f\n",
        first=("--build-arg", "V=one"), before=(("--build-arg", "V=two"),),
        rebuilt=[], roots=[], says="note: lines 4, 5 are as in build"),
    Scenario(
        "dockerignore-leaves-a-file-out",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls > list\n",
        {"a.txt": "a NONCE\n", "notes.txt": "n NONCE\n", ".dockerignore": "# none\n"},
        change=lambda p: p.write(".dockerignore", "notes.txt\n"),
        rebuilt=[3, 4], roots=[(3, "context-changed")],
        files_of_root={"added": [], "modified": [".dockerignore"], "removed": ["notes.txt"]}),
    Scenario(
        "label-cmd-expose-edits-make-no-step",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo NONCE > f\nLABEL v=1\nEXPOSE 80\nCMD [\"cat\", \"f\"]\n",
        change=lambda p: (_edit(p, "Dockerfile", "v=1", "v=2"), _edit(p, "Dockerfile", "80", "81"),
                          _edit(p, "Dockerfile", '"f"]', '"g"]')),
        rebuilt=[], roots=[]),
    Scenario(
        "arg-default-edited-in-the-dockerfile",
        f"{BB}\nWORKDIR /w-NONCE\nARG V=1\nRUN echo $V > f\nRUN cat f\n",
        change=lambda p: _edit(p, "Dockerfile", "V=1", "V=2"),
        rebuilt=[4, 5], roots=[(4, "build-arg-changed")]),
    Scenario(
        "build-arg-given-equal-to-its-default",
        f"{BB}\nWORKDIR /w-NONCE\nARG V=1\nRUN echo $V > f\n",
        then=("--build-arg", "V=1"),
        rebuilt=[], roots=[]),
    Scenario(
        "global-arg-redeclared-in-the-stage",
        f"ARG V=1\n{BB}\nARG V\nWORKDIR /w-NONCE\nRUN echo $V > f\n",
        then=("--build-arg", "V=2"),
        rebuilt=[5], roots=[(5, "build-arg-changed")]),
    Scenario(
        "arg-after-the-last-run",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo NONCE > f\nARG V\nLABEL v=$V\n",
        first=("--build-arg", "V=one"), then=("--build-arg", "V=two"),
        rebuilt=[], roots=[]),
    Scenario(
        "env-referring-to-an-env",
        f"{BB}\nWORKDIR /w-NONCE\nENV A=1\nENV B=${{A}}-x\nRUN echo $B > f\n",
        change=lambda p: _edit(p, "Dockerfile", "A=1", "A=2"),
        rebuilt=[5], roots=[(5, "env-changed")]),
    Scenario(
        "shell-edit",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo NONCE > f\nSHELL [\"/bin/sh\", \"-c\"]\nRUN cat f > g\n",
        change=lambda p: _edit(p, "Dockerfile", '"-c"]', '"-ec"]'),
        rebuilt=[5], roots=[(5, "instruction-changed")]),
    Scenario(
        "copy-heredoc-body-edit",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY <<EOF conf.txt\nmode=one\nEOF\nRUN cat conf.txt > f\n",
        change=lambda p: _edit(p, "Dockerfile", "mode=one", "mode=two"),
        rebuilt=[3, 6], roots=[(3, "instruction-changed")]),
    Scenario(
        "wildcard-copy-gets-a-new-file",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY *.txt ./\nRUN ls > list\n",
        {"a.txt": "a NONCE\n", "b.md": "b NONCE\n"},
        change=lambda p: (p.write("c.txt", "c NONCE\n"), p.write("d.md", "d\n")),
        rebuilt=[3, 4], roots=[(3, "context-changed")],
        files_of_root={"added": ["c.txt"], "modified": [], "removed": []}),
    Scenario(
        "dockerignore-exception-keeps-others-out",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY . .\nRUN ls > list\n",
        {"a.txt": "a NONCE\n", "README.md": "r NONCE\n", ".dockerignore": "*.md\n!README.md\n"},
        change=lambda p: p.write("NOTES.md", "n\n"),
        rebuilt=[], roots=[]),
    Scenario(
        "file-outside-what-is-copied",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY src/ src/\nRUN ls src > list\n",
        setup=lambda p: ((p.ctx / "src").mkdir(), p.write("src/a.txt", "a NONCE\n"), (p.ctx / "docs").mkdir(),
                         p.write("docs/d.txt", "d\n")),
        change=lambda p: p.write("docs/d.txt", "d2\n"),
        rebuilt=[], roots=[]),
    Scenario(
        "two-copies-swapped",
        f"{BB}\nWORKDIR /w-NONCE\nCOPY a.txt .\nCOPY b.txt .\nRUN cat a.txt b.txt\n",
        {"a.txt": "a NONCE\n", "b.txt": "b NONCE\n"},
        change=lambda p: p.write("Dockerfile", f"{BB}\nWORKDIR /w-NONCE\nCOPY b.txt .\nCOPY a.txt .\n"
                                 "RUN cat a.txt b.txt\n"),
        rebuilt=[3, 4, 5], roots=[(3, "instruction-changed")]),
    Scenario(
        "a-run-removed-from-the-middle",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo one > f\nRUN echo two >> f\nRUN cat f > g\n",
        change=lambda p: _edit(p, "Dockerfile", "RUN echo two >> f\n", ""),
        rebuilt=[4], roots=[(4, "instruction-changed")]),
    Scenario(
        "a-run-inserted-in-the-middle",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo one > f\nRUN cat f > g\n",
        change=lambda p: _edit(p, "Dockerfile", "RUN cat", "RUN echo two >> f\nRUN cat"),
        rebuilt=[4, 5], roots=[(4, "instruction-changed")]),
    Scenario(
        "base-stage-renamed-in-from",
        f"{BB} AS base\nWORKDIR /w-NONCE\nRUN echo NONCE > f\nFROM base AS app\nRUN cat f > g\n",
        change=lambda p: (_edit(p, "Dockerfile", "AS base", "AS core"), _edit(p, "Dockerfile", "FROM base", "FROM core")),
        rebuilt=[], roots=[]),
    Scenario(
        "unnamed-stage-inserted-above",
        f"{BB}\nWORKDIR /w-NONCE\nRUN echo NONCE > f\n{BB}\nCOPY --from=0 /w-NONCE/f /f\nRUN cat /f\n",
        change=lambda p: p.write("Dockerfile", f"{BB} AS extra\nRUN echo NONCE-extra > /e\n{BB}\nWORKDIR /w-NONCE\n"
                                 f"RUN echo NONCE > f\n{BB}\nCOPY --from=1 /w-NONCE/f /f\nRUN cat /f\n"),
        rebuilt=[], roots=[]),
    Scenario(
        "copy-from-a-rebuilt-stage-same-bytes",
        f"{BB} AS build\nWORKDIR /w-NONCE\nCOPY a.txt .\nRUN echo fixed-NONCE > out\n{BB}\nWORKDIR /app-NONCE\n"
        "COPY --from=build /w-NONCE/out .\nRUN cat out\n",
        {"a.txt": "a NONCE\n"},
        change=lambda p: p.write("a.txt", "b NONCE\n"),
        rebuilt=[3, 4], roots=[(3, "context-changed")], maybe=[7, 8]),
]


def _args(args: tuple[str, ...], p: Project) -> list[str]:
    return [a.replace("{root}", str(p.ctx.parent)).replace("NONCE", p.nonce) for a in args]


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(sc: Scenario, tmp_path: Path) -> None:
    p = Project(tmp_path / "p", sc.dockerfile, sc.files)
    if sc.setup:
        sc.setup(p)
    p.build(*_args(sc.first, p))
    for earlier in sc.before:
        if callable(earlier):
            earlier(p)
        p.build(*_args(earlier if isinstance(earlier, tuple) else sc.first, p))
    if sc.change:
        sc.change(p)
    then = _args(sc.then if sc.then is not None else sc.first, p)
    err, predicted = p.predict(*then)
    assert sc.says in " ".join(err.split()), err
    _, built = p.build(*then)
    status = {s["line"]: s["status"] for s in predicted["steps"] if s.get("line")}
    got = {s["line"]: s["status"] for s in built["steps"] if s.get("line")}
    print("SCEN", sc.name, "predicted", sorted(status.items()), roots(predicted),
          "built", sorted(got.items()), roots(built))
    # BuildKit's own statuses first: the scenario says what the engine does
    assert rebuilt(built) == sc.rebuilt, built["steps"]
    assert roots(built) == sc.roots, built["misses"]
    maybe = sorted(line for line, st in status.items() if st == "may-rebuild")
    assert maybe == sc.maybe, predicted["prediction"]["may_rebuild"]
    # never predicted cached when BuildKit rebuilt, unless marked may-rebuild
    wrongly_cached = [ln for ln in rebuilt(built) if status.get(ln) == "cached"]
    assert wrongly_cached == [], (predicted["steps"], built["steps"])
    if not sc.maybe:
        confirmed(predicted, built)
    else:
        assert set(rebuilt(predicted)) <= set(rebuilt(built))
        assert [r for r in roots(predicted)] == [r for r in roots(built) if r[0] not in sc.maybe]
    if sc.files_of_root is not None:
        assert [m["cause"].get("files") for m in built["misses"] if m["root"]] == [sc.files_of_root]
