"""Advice (issue 6): each rule triggers on the miss it explains and stays
silent on a Dockerfile that already follows it. Reports are built by hand
(the shape of cachewhy.report/v1), plus one made from a recorded capture."""

from __future__ import annotations

import json
import textwrap

import pytest

from analyzer.advice import advise, attach, recurring
from analyzer.cli import main
from analyzer.report import html, markdown, sarif, text


def df(s: str) -> str:
    return textwrap.dedent(s).lstrip("\n")


def miss(mid, line, instruction, kind="context-changed", root=True, followers=(), files=None, detail="",
         time_lost=0.0, stage="stage-0"):
    cause = {"kind": kind, "detail": detail}
    if files is not None:
        cause["files"] = {"added": [], "modified": list(files), "removed": []}
    return {"id": mid, "line": line, "instruction": instruction, "stage": stage, "root": root,
            "caused_by": [] if root else ["r"], "followers": list(followers), "time_lost_s": time_lost,
            "cause": cause, "also": []}


def report(misses, durations, context=None, dockerfile=None):
    steps = [{"id": m["id"], "line": m["line"], "instruction": m["instruction"], "stage": m["stage"],
              "status": "rebuilt", "duration_s": durations.get(m["id"], 0.0), "inputs": []} for m in misses]
    return {"schema": "cachewhy.report/v1", "previous": {"ref": "x"},
            "build": {"ref": "b1", "context": str(context) if context else None,
                      "dockerfile": str(dockerfile) if dockerfile else (f"{context}/Dockerfile" if context else None)},
            "summary": {}, "steps": steps, "misses": misses, "notes": []}


def rules(found: dict, mid: str = "r") -> list[str]:
    return [a["rule"] for a in found.get(mid, [])]


# --- rule 1: copy the manifest first -----------------------------------------

PIP_BAD = df("""
    FROM python:3.12-slim
    WORKDIR /app
    COPY . /app
    RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt
    RUN python -m compileall src
""")

PIP_GOOD = df("""
    FROM python:3.12-slim
    WORKDIR /app
    COPY requirements.txt .
    RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt
    COPY . /app
    RUN python -m compileall src
""")


def pip_report(tmp_path, changed=("src/app.py",)):
    (tmp_path / "requirements.txt").write_text("flask\n")
    return report([miss("r", 3, "COPY . /app", followers=["i", "c"], files=changed, time_lost=31.0),
                   miss("i", 4, "RUN pip install -r requirements.txt", root=False),
                   miss("c", 5, "RUN python -m compileall src", root=False)],
                  {"r": 0.5, "i": 30.0, "c": 0.5}, context=tmp_path)


def test_copy_manifest_first_triggers_on_context_before_install(tmp_path):
    found = advise(pip_report(tmp_path), PIP_BAD, str(tmp_path))
    a = found["r"][0]
    assert a["rule"] == "copy-manifest-first"
    assert a["lines"] == [3, 4]
    assert a["saved_s"] == 30.0  # the install's own time: the compile step still rebuilds
    assert "`COPY . /app` (line 3)" in a["message"] and "`src/`" in a["message"]
    assert "copy `requirements.txt` first, install, then copy the rest" in a["message"]


def test_copy_manifest_first_silent_when_the_manifest_changed(tmp_path):
    found = advise(pip_report(tmp_path, changed=("requirements.txt",)), PIP_BAD, str(tmp_path))
    assert "copy-manifest-first" not in rules(found)


def test_copy_manifest_first_silent_when_followed(tmp_path):
    (tmp_path / "requirements.txt").write_text("flask\n")
    # the Dockerfile follows the rule: a source change rebuilds COPY . and the compile step only
    rep = report([miss("r", 5, "COPY . /app", followers=["c"], files=["src/app.py"], time_lost=1.0),
                  miss("c", 6, "RUN python -m compileall src", root=False)], {"r": 0.5, "c": 0.5}, context=tmp_path)
    assert advise(rep, PIP_GOOD, str(tmp_path)) == {}


@pytest.mark.parametrize("run, manifests", [
    ("RUN npm ci", "package.json package-lock.json"),
    ("RUN go mod download", "go.mod go.sum"),
    ("RUN cargo fetch", "Cargo.toml Cargo.lock"),
    ("RUN bundle install", "Gemfile Gemfile.lock"),
])
def test_copy_manifest_first_names_each_managers_manifests(run, manifests):
    dockerfile = f"FROM x\nCOPY . .\n{run}\n"
    rep = report([miss("r", 2, "COPY . .", followers=["i"], files=["src/main.x"]),
                  miss("i", 3, run, root=False)], {"i": 5.0})
    a = advise(rep, dockerfile)["r"][0]
    assert a["rule"] == "copy-manifest-first" and f"copy `{manifests}` first" in a["message"]


def test_copy_manifest_first_when_the_manifest_is_already_copied_earlier(tmp_path):
    (tmp_path / "package.json").write_text("{}")
    dockerfile = "FROM node\nCOPY package.json .\nCOPY . .\nRUN npm install\n"
    rep = report([miss("r", 3, "COPY . .", followers=["i"], files=["index.js"]),
                  miss("i", 4, "RUN npm install", root=False)], {"i": 5.0}, context=tmp_path)
    a = advise(rep, dockerfile, str(tmp_path))["r"][0]
    assert "is copied earlier; move the install above line 3" in a["message"]


def test_apt_install_after_copy_is_moved_above_it():
    dockerfile = "FROM debian\nCOPY . /src\nRUN apt-get update && apt-get install -y gcc\n"
    rep = report([miss("r", 2, "COPY . /src", followers=["i"], files=["main.c"]),
                  miss("i", 3, "RUN apt-get update && apt-get install -y gcc", root=False)], {"i": 20.0})
    a = advise(rep, dockerfile)["r"][0]
    assert a["rule"] == "copy-manifest-first" and "move the install above the COPY" in a["message"]


# --- rule 2: .dockerignore -----------------------------------------------------

def test_dockerignore_names_the_pattern(tmp_path):
    dockerfile = "FROM x\nCOPY . /app\nRUN make\n"
    rep = report([miss("r", 2, "COPY . /app", followers=["m"], files=[".git/index", ".git/HEAD"], time_lost=4.0),
                  miss("m", 3, "RUN make", root=False)], {"m": 3.5}, context=tmp_path)
    a = advise(rep, dockerfile, str(tmp_path))["r"][0]
    assert a["rule"] == "dockerignore" and "add `.git` to .dockerignore" in a["message"]
    assert a["saved_s"] == 4.0  # every changed file was ignorable: the whole miss


@pytest.mark.parametrize("path, pattern", [
    ("node_modules/x/index.js", "node_modules"), ("src/__pycache__/a.cpython-312.pyc", "**/__pycache__"),
    ("debug.log", "*.log"), ("logs/app.log", "*.log"), (".DS_Store", ".DS_Store"), ("dist/app.whl", "dist"),
    (".idea/workspace.xml", ".idea"),
])
def test_dockerignore_patterns(path, pattern):
    rep = report([miss("r", 2, "COPY . /app", files=[path, "src/app.py"])], {})
    a = advise(rep, "FROM x\nCOPY . /app\n")["r"][0]
    assert a["rule"] == "dockerignore" and f"`{pattern}`" in a["message"]
    assert a["saved_s"] is None and "other changed files still rebuild" in a["message"]


def test_dockerignore_the_dockerfile_itself(tmp_path):
    rep = report([miss("r", 2, "COPY . /app", files=["Dockerfile"])], {}, context=tmp_path)
    assert rules(advise(rep, "FROM x\nCOPY . /app\n", str(tmp_path))) == ["dockerignore"]


def test_dockerignore_silent_when_already_ignored_or_copied_on_purpose(tmp_path):
    (tmp_path / ".dockerignore").write_text("# vcs\n.git\n")
    rep = report([miss("r", 2, "COPY . /app", files=[".git/index"])], {}, context=tmp_path)
    assert advise(rep, "FROM x\nCOPY . /app\n", str(tmp_path)) == {}
    rep = report([miss("r", 2, "COPY build/ /app", files=["build/app.bin"])], {})
    assert advise(rep, "FROM x\nCOPY build/ /app\n") == {}
    rep = report([miss("r", 2, "COPY . /app", files=["src/app.py"])], {})
    assert advise(rep, "FROM x\nCOPY . /app\n") == {}


# --- rule 3: cache mounts ------------------------------------------------------

def test_cache_mount_for_a_rebuilt_install():
    dockerfile = "FROM python\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\n"
    rep = report([miss("r", 2, "COPY requirements.txt .", followers=["i"], files=["requirements.txt"]),
                  miss("i", 3, "RUN pip install --no-cache-dir -r requirements.txt", root=False)], {"i": 12.0})
    found = advise(rep, dockerfile)
    assert rules(found) == ["cache-mount"]
    a = found["r"][0]
    assert "--mount=type=cache,target=/root/.cache/pip" in a["message"] and "--no-cache-dir" in a["message"]
    assert a["lines"] == [3] and a["saved_s"] is None


def test_cache_mount_silent_when_present():
    dockerfile = ("FROM python\nCOPY requirements.txt .\n"
                  "RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt\n")
    rep = report([miss("r", 2, "COPY requirements.txt .", followers=["i"], files=["requirements.txt"]),
                  miss("i", 3, "RUN pip install -r requirements.txt", root=False)], {"i": 12.0})
    assert advise(rep, dockerfile) == {}


# --- rule 4: ARG declared long before its first use ------------------------------

ARG_BAD = df("""
    FROM alpine
    ARG VERSION
    RUN apk add --no-cache --virtual x make
    RUN sleep 5
    RUN echo $VERSION > /version
""")


def arg_report():
    return report([miss("r", 3, "RUN apk add --no-cache --virtual x make", kind="build-arg-changed",
                        detail="VERSION changed (value redacted): ab12 \u2192 cd34", followers=["s", "v"]),
                   miss("s", 4, "RUN sleep 5", root=False), miss("v", 5, "RUN echo $VERSION > /version", root=False)],
                  {"r": 2.0, "s": 5.0, "v": 0.1})


def test_arg_late_moves_the_arg_down():
    a = next(x for x in advise(arg_report(), ARG_BAD)["r"] if x["rule"] == "arg-late")
    assert "move the ARG down to just before line 5" in a["message"]
    assert a["lines"] == [2, 5] and a["saved_s"] == 7.0


def test_arg_late_silent_when_the_step_uses_it():
    dockerfile = ARG_BAD.replace("ARG VERSION\n", "").replace("RUN echo", "ARG VERSION\nRUN echo")
    rep = report([miss("r", 5, "RUN echo $VERSION > /version", kind="build-arg-changed",
                       detail="VERSION changed (value redacted): ab12 \u2192 cd34")], {"r": 0.1})
    assert advise(rep, dockerfile) == {}


# --- rule 6: pin the base image ---------------------------------------------------

@pytest.mark.parametrize("base", ["python", "python:latest", "registry.local:5000/team/py"])
def test_pin_base_image_on_a_moving_tag(base):
    rep = report([miss("r", 2, "RUN make", kind="base-image-changed", detail="python: sha256:aa \u2192 sha256:bb",
                       time_lost=9.0)], {"r": 9.0})
    a = advise(rep, f"FROM {base}\nRUN make\n")["r"][0]
    assert a["rule"] == "pin-base-image" and "pin a digest" in a["message"] and a["saved_s"] == 9.0


@pytest.mark.parametrize("base", ["python:3.12-slim", "python@sha256:" + "a" * 64, "scratch"])
def test_pin_base_image_silent_on_a_pinned_or_versioned_tag(base):
    rep = report([miss("r", 2, "RUN make", kind="base-image-changed", detail="d")], {})
    assert advise(rep, f"FROM {base}\nRUN make\n") == {}


# --- into the report, the terminal and Markdown --------------------------------------

def esc_free(message: str) -> str:
    """An advice message as plain text: one line, no backticks."""
    return " ".join(message.split()).replace("`", "")


def test_attach_and_render(tmp_path):
    rep = attach(pip_report(tmp_path), PIP_BAD, str(tmp_path))
    root = rep["misses"][0]
    assert root["advice"][0]["rule"] == "copy-manifest-first"
    assert "advice" not in rep["misses"][1]  # cascades carry none
    json.dumps(rep)
    why = text.root_causes(rep, width=100)
    fix = [line for line in why.splitlines() if line.strip().startswith("fix:")]
    assert len(fix) == 1 and fix[0].startswith(" " * 17 + "fix: COPY . /app (line 3)")
    assert "would have saved 30.0s" in why
    md = markdown.render(rep)
    assert "- **fix** " in md and "<code>COPY . /app</code>" in md and "docs/advice/copy-manifest-first.md" in md
    # the HTML page lists the same fix, with the root's place, the time and the rule's page
    page = html.render(rep)
    fixes = page[page.index('<ul class="fixes">'):page.index("</ul>", page.index('<ul class="fixes">'))]
    assert fixes.count("<li>") == 1
    assert '<span class="where">Dockerfile:3</span>: ' in fixes and "<code>COPY . /app</code>" in fixes
    assert "would have saved 30.0s" in fixes and "docs/advice/copy-manifest-first.md" in fixes
    # SARIF carries the fix in the root's result (code scanning shows the message)
    result = sarif.sarif_log(rep)["runs"][0]["results"][0]
    assert result["message"]["text"].endswith("Fix: " + esc_free(rep["misses"][0]["advice"][0]["message"])
                                              + " (would have saved 30.0s).")
    assert result["properties"]["fix"]["rule"] == "copy-manifest-first"
    # advice tied to no miss is listed too, and text from the build is escaped
    rep["advice"] = [{"rule": "add-url", "message": "Use `ADD <script>x</script>` instead of `RUN curl`"}]
    page = html.render(rep)
    assert "<li>Use <code>ADD &lt;script&gt;x&lt;/script&gt;</code> instead of <code>RUN curl</code>" in page
    assert "<script>x" not in page


def test_attach_never_raises():
    rep = report([miss("r", 2, "COPY . /app", files=["a"])], {})
    assert attach(rep, "FROM x\nRUN <<EOF\n", None) is rep  # an unparsable Dockerfile: no advice


def test_report_from_a_capture_is_advised_without_error():
    from analyzer.explain import explain  # noqa: PLC0415
    from analyzer.report.model import build_report  # noqa: PLC0415
    from tests.unit.test_explain import record_of  # noqa: PLC0415

    rep = build_report(explain(record_of("multistage-change"), record_of("multistage-warm")))
    assert all(set(a) == {"rule", "message", "lines", "saved_s"} for m in rep["misses"] for a in m.get("advice", []))


# --- over the history ----------------------------------------------------------------

def _record(rid, created, rep, dockerfile_text=PIP_BAD):
    return {"id": rid, "created": created, "project": {"context": rep["build"]["context"], "target": None},
            "dockerfile_text": dockerfile_text, "report": rep}


def test_recurring_groups_by_line_and_kind(tmp_path):
    recs = [_record(f"b{i}", i, attach(pip_report(tmp_path), PIP_BAD, str(tmp_path))) for i in range(3)]
    old = pip_report(tmp_path)  # an older report without advice: advised from its record's Dockerfile
    recs.append(_record("b9", 9, old))
    groups = recurring(recs)
    assert len(groups) == 1
    g = groups[0]
    assert g["count"] == 4 and g["line"] == 3 and g["kind"] == "context-changed"
    assert g["time_lost_s"] == 124.0 and g["saved_s"] == 120.0
    assert g["advice"][0]["rule"] == "copy-manifest-first"


def test_advise_command(tmp_path, capsys, monkeypatch):
    from analyzer.store import Store  # noqa: PLC0415

    monkeypatch.setenv("COLUMNS", "200")  # one line per fix, as the assertions read it (the default is 80)

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    store = Store(tmp_path / "store", fsync=False)
    saved = []
    for i in range(2):
        rep = attach(pip_report(ctx), PIP_BAD, str(ctx))
        saved.append(rep)
        rec = _minimal_record(f"20261128T05000{i}000000-0000000{i}", 1795839510.0 + i, ctx, rep)
        store.save(rec)
    assert main(["advise", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "Dockerfile:3" in out and "context-changed: 2 builds, 1m02.0s lost in total" in out
    assert "fix [copy-manifest-first]" in out and "would have saved 1m00.0s" in out
    assert main(["advise", "--store", str(store.root), "--json", "--project", str(tmp_path / "other")]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["advise", "--store", str(store.root), "--limit", "x"]) == 2


def _minimal_record(rid, created, ctx, rep):
    from analyzer.store import SCHEMA  # noqa: PLC0415

    return {"schema": SCHEMA, "id": rid, "created": created, "complete": True, "exit_code": 0,
            "project": {"context": str(ctx), "dockerfile": f"{ctx}/Dockerfile", "target": None, "platforms": []},
            "steps": [], "dockerfile_text": PIP_BAD, "report": rep}


# --- rule 5: apt-get update alone ---------------------------------------------------

def test_apt_update_alone():
    dockerfile = "FROM debian\nRUN apt-get update\nRUN apt-get install -y gcc\n"
    rep = report([miss("r", 3, "RUN apt-get install -y gcc", kind="instruction-changed", detail="edited")],
                 {"r": 20.0})
    found = advise(rep, dockerfile)
    a = next(x for x in found["r"] if x["rule"] == "apt-update-alone")
    assert a["lines"] == [2, 3] and "run them in one step" in a["message"]


def test_apt_update_alone_silent_when_combined():
    dockerfile = "FROM debian\nRUN apt-get update && apt-get install -y gcc\n"
    rep = report([miss("r", 2, "RUN apt-get update && apt-get install -y gcc", kind="instruction-changed",
                       detail="edited")], {"r": 20.0})
    assert "apt-update-alone" not in rules(advise(rep, dockerfile))


def test_every_rule_has_its_page():
    from analyzer.advice import RULES  # noqa: PLC0415
    from tests.conftest import REPO  # noqa: PLC0415

    index = (REPO / "docs" / "advice" / "README.md").read_text()
    for rule in RULES:
        page = (REPO / "docs" / "advice" / f"{rule}.md").read_text()
        assert "```dockerfile" in page and "## Before" in page and "## After" in page, rule
        assert f"({rule}.md)" in index, rule


def test_cache_mount_silent_on_a_first_build():
    dockerfile = "FROM python\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
    rep = report([miss("r", 2, "COPY requirements.txt .", kind="no-previous-build", followers=["i"]),
                  miss("i", 3, "RUN pip install -r requirements.txt", root=False)], {"i": 12.0})
    assert advise(rep, dockerfile) == {}


def test_copy_manifest_first_names_the_requirement_file_pip_reads():
    dockerfile = "FROM python\nCOPY . .\nRUN pip install -r requirements/prod.txt\n"
    rep = report([miss("r", 2, "COPY . .", followers=["i"], files=["app.py"]),
                  miss("i", 3, "RUN pip install -r requirements/prod.txt", root=False)], {"i": 5.0})
    assert "copy `requirements/prod.txt` first" in advise(rep, dockerfile)["r"][0]["message"]


# --- rule copy-artefact-only ------------------------------------------------------------

WHOLE = df("""
    FROM golang AS builder
    WORKDIR /src
    COPY . .
    RUN go build -o bin/app ./cmd/app
    FROM alpine
    COPY --from=builder /src /app
    RUN /app/bin/app --selftest
""")


def artefact_report(kind="context-changed"):
    return report([miss("r", 3, "COPY . .", kind=kind, followers=["b", "c", "t"], files=["README.md"],
                        stage="builder"),
                   miss("b", 4, "RUN go build -o bin/app ./cmd/app", root=False, stage="builder"),
                   miss("c", 6, "COPY --from=builder /src /app", root=False, stage="stage-1"),
                   miss("t", 7, "RUN /app/bin/app --selftest", root=False, stage="stage-1")],
                  {"r": 0.1, "b": 20.0, "c": 0.5, "t": 4.0})


def test_copy_artefact_only_names_the_artefact():
    a = next(x for x in advise(artefact_report(), WHOLE)["r"] if x["rule"] == "copy-artefact-only")
    assert a["lines"] == [4, 6] and a["saved_s"] is None
    assert "copies all of `/src` from stage `builder`" in a["message"] and "rebuilt lines 6-7 (4.5s)" in a["message"]
    assert "`COPY --from=builder /src/bin/app /app/bin/app`" in a["message"]


@pytest.mark.parametrize("copy, wholesale", [
    ("COPY --from=builder / /rootfs", True), ("COPY --from=builder /src/ /app", True),
    ("COPY --from=0 /src /app", True), ("COPY --from=builder /src/bin/app /app/bin/app", False),
])
def test_copy_artefact_only_fires_on_wholesale_copies_only(copy, wholesale):
    dockerfile = WHOLE.replace("COPY --from=builder /src /app", copy)
    rep = artefact_report()
    rep["misses"][2]["instruction"] = copy
    assert ("copy-artefact-only" in rules(advise(rep, dockerfile))) is wholesale


def test_copy_artefact_only_without_a_named_artefact_and_not_on_a_cold_build():
    dockerfile = WHOLE.replace("RUN go build -o bin/app ./cmd/app", "RUN make")
    a = next(x for x in advise(artefact_report(), dockerfile)["r"] if x["rule"] == "copy-artefact-only")
    assert "(`COPY --from=builder /src/<artefact> …`)" in a["message"] and a["lines"] == [6]
    assert "copy-artefact-only" not in rules(advise(artefact_report("no-previous-build"), WHOLE))
    assert "copy-artefact-only" not in rules(advise(artefact_report("cache-evicted"), WHOLE))


# --- rule add-url: advice tied to no miss ------------------------------------------------------

def steps_report(statuses: dict[int, str]) -> dict:
    rep = report([], {})
    rep["steps"] = [{"id": f"s{ln}", "line": ln, "instruction": "", "stage": "stage-0", "status": st,
                     "duration_s": 0.1, "inputs": []} for ln, st in statuses.items()]
    return rep


SHA = "ab" * 32


@pytest.mark.parametrize("run, add", [
    ("RUN curl -fsSLo /opt/tool.tgz https://example.com/tool.tgz", "ADD https://example.com/tool.tgz /opt/tool.tgz"),
    ("RUN wget -q https://example.com/a/tool-1.2.tar.gz && tar xzf tool-1.2.tar.gz",
     "ADD https://example.com/a/tool-1.2.tar.gz ./tool-1.2.tar.gz"),
    ("RUN curl -fsSL https://get.example.com/install.sh | sh", "ADD https://get.example.com/install.sh ./install.sh"),
    (f"RUN curl -o /t.tgz https://example.com/t-1.0.tgz && echo '{SHA}  /t.tgz' | sha256sum -c",
     f"ADD --checksum=sha256:{SHA} https://example.com/t-1.0.tgz /t.tgz"),
])
def test_add_url_for_a_cached_download(run, add):
    found = advise_stale(f"FROM x\n{run}\n", {2: "cached"})
    assert [a["rule"] for a in found] == ["add-url"] and found[0]["lines"] == [2]
    assert f"`{add}`" in found[0]["message"] and "(line 2) came from the cache" in found[0]["message"]
    assert ("--checksum=sha256:…" in found[0]["message"]) is (SHA not in run)


def advise_stale(dockerfile, statuses):
    from analyzer.advice import stale_downloads  # noqa: PLC0415

    return stale_downloads(steps_report(statuses), dockerfile)


@pytest.mark.parametrize("dockerfile, statuses", [
    ("FROM x\nRUN curl -fsSLo /t https://example.com/t\n", {2: "rebuilt"}),  # fetched in this very build
    ("FROM x\nADD https://example.com/t /t\n", {2: "cached"}),
    ("FROM x\nRUN echo 'see https://example.com' > /url\n", {2: "cached"}),
    ("FROM x\nRUN curl --version\n", {2: "cached"}),
])
def test_add_url_silent(dockerfile, statuses):
    assert advise_stale(dockerfile, statuses) == []


def test_add_url_in_the_report_and_the_terminal():
    dockerfile = "FROM x\nRUN curl -fsSLo /t https://example.com/t\n"
    rep = attach(steps_report({2: "cached"}), dockerfile)
    assert [a["rule"] for a in rep["advice"]] == ["add-url"]
    why = text.root_causes(rep, width=100).splitlines()
    assert why[0].startswith("Why: nothing was rebuilt") and why[1].startswith("  fix: RUN curl -fsSLo /t")
    assert "[add-url](https://github.com/cachewhy/cachewhy/blob/main/docs/advice/add-url.md)" in markdown.render(rep)
    assert "advice" not in attach(steps_report({2: "rebuilt"}), dockerfile)


# --- the advised change made concrete (rewrite) ---------------------------------------------------

def rewritten(rep, dockerfile, rule, context=None, mid="r"):
    from analyzer.advice import rewrite  # noqa: PLC0415

    out = rewrite(rep, mid, rule, dockerfile, str(context) if context else None)
    return out and out["dockerfile"]


def test_rewrite_copy_manifest_first(tmp_path):
    assert rewritten(pip_report(tmp_path), PIP_BAD, "copy-manifest-first", tmp_path) == df("""
        FROM python:3.12-slim
        WORKDIR /app
        COPY requirements.txt /app/
        RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt
        COPY . /app
        RUN python -m compileall src
    """)


def test_rewrite_copy_manifest_first_nested_manifest_flags_and_relative_destination():
    dockerfile = df("""
        FROM python
        WORKDIR /srv
        COPY --chown=app:app . .
        RUN pip install \\
            -r requirements/prod.txt
        CMD ["python"]
    """)
    rep = report([miss("r", 3, "COPY --chown=app:app . .", followers=["i"], files=["app.py"]),
                  miss("i", 4, "RUN pip install -r requirements/prod.txt", root=False)], {"i": 5.0})
    assert rewritten(rep, dockerfile, "copy-manifest-first").splitlines()[2:6] == [
        "COPY --chown=app:app requirements/prod.txt ./requirements/prod.txt",
        "RUN pip install \\", "    -r requirements/prod.txt", "COPY --chown=app:app . ."]


def test_rewrite_copy_manifest_first_moves_an_apt_install_up():
    dockerfile = "FROM debian\nCOPY . /src\nRUN apt-get update && apt-get install -y gcc\nRUN make\n"
    rep = report([miss("r", 2, "COPY . /src", followers=["i"], files=["main.c"]),
                  miss("i", 3, "RUN apt-get update && apt-get install -y gcc", root=False)], {"i": 20.0})
    assert rewritten(rep, dockerfile, "copy-manifest-first") == (
        "FROM debian\nRUN apt-get update && apt-get install -y gcc\nCOPY . /src\nRUN make\n")


def test_rewrite_apt_update_alone():
    dockerfile = ("FROM debian\nRUN --mount=type=cache,target=/var/lib/apt/lists apt-get update\n"
                  "COPY pkgs .\nRUN apt-get install -y \\\n    gcc\n")
    rep = report([miss("r", 3, "COPY pkgs .", followers=["i"], files=["pkgs"]),
                  miss("i", 4, "RUN apt-get install -y gcc", root=False)], {"i": 20.0})
    assert rewritten(rep, dockerfile, "apt-update-alone") == (
        "FROM debian\nCOPY pkgs .\n"
        "RUN --mount=type=cache,target=/var/lib/apt/lists apt-get update && apt-get install -y     gcc\n")


def test_rewrite_arg_late():
    assert rewritten(arg_report(), ARG_BAD, "arg-late") == df("""
        FROM alpine
        RUN apk add --no-cache --virtual x make
        RUN sleep 5
        ARG VERSION
        RUN echo $VERSION > /version
    """)
    # one of several names, with a default; never used again: removed
    dockerfile = "FROM alpine\nARG OTHER=1 VERSION=2.0\nRUN make\n"
    rep = report([miss("r", 3, "RUN make", kind="build-arg-changed", detail="VERSION changed (value redacted)")],
                 {"r": 1.0})
    assert rewritten(rep, dockerfile, "arg-late") == "FROM alpine\nARG OTHER=1\nRUN make\n"


def test_rewrite_cache_mount():
    dockerfile = "FROM python\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\n"
    rep = report([miss("r", 2, "COPY requirements.txt .", followers=["i"], files=["requirements.txt"]),
                  miss("i", 3, "RUN pip install --no-cache-dir -r requirements.txt", root=False)], {"i": 12.0})
    assert rewritten(rep, dockerfile, "cache-mount").splitlines()[2] == (
        "RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt")
    dockerfile = "FROM debian\nCOPY pkgs .\nRUN apt-get update && apt-get install -y gcc\n"
    rep = report([miss("r", 2, "COPY pkgs .", followers=["i"], files=["pkgs"]),
                  miss("i", 3, "RUN apt-get update && apt-get install -y gcc", root=False)], {"i": 12.0})
    assert rewritten(rep, dockerfile, "cache-mount").splitlines()[2] == (
        "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked rm -f /etc/apt/apt.conf.d/docker-clean; "
        "apt-get update && apt-get install -y gcc")


def test_rewrite_copy_artefact_only_and_dockerignore(tmp_path):
    assert rewritten(artefact_report(), WHOLE, "copy-artefact-only").splitlines()[5] == (
        "COPY --from=builder /src/bin/app /app/bin/app")
    from analyzer.advice import rewrite  # noqa: PLC0415

    rep = report([miss("r", 2, "COPY . /app", files=[".git/index"])], {}, context=tmp_path)
    assert rewrite(rep, "r", "dockerignore", "FROM x\nCOPY . /app\n", str(tmp_path)) == {
        "dockerfile": "FROM x\nCOPY . /app\n", "dockerignore": [".git"]}


def test_rewrite_none_where_not_mechanical_or_not_applying(tmp_path):
    rep = report([miss("r", 2, "RUN make", kind="base-image-changed", detail="d")], {})
    assert rewritten(rep, "FROM python\nRUN make\n", "pin-base-image") is None
    (tmp_path / "requirements.txt").write_text("flask\n")
    followed = report([miss("r", 5, "COPY . /app", followers=["c"], files=["src/app.py"]),
                       miss("c", 6, "RUN python -m compileall src", root=False)], {"c": 0.5}, context=tmp_path)
    assert rewritten(followed, PIP_GOOD, "copy-manifest-first", tmp_path) is None
    assert rewritten(pip_report(tmp_path), PIP_BAD, "copy-manifest-first", tmp_path, mid="nope") is None
    assert rewritten(pip_report(tmp_path), None, "copy-manifest-first", tmp_path) is None


# --- --verify: what it replays, its verdicts, its table --------------------------------------------

def test_replay_of_a_miss():
    from analyzer.verify import Replay, replay_of  # noqa: PLC0415

    r = replay_of(miss("r", 2, "COPY . .", files=["src/a.py"]))
    assert isinstance(r, Replay) and r.modified == ["src/a.py"] and r.describe().startswith("src/a.py modified")
    r = replay_of(miss("r", 2, "RUN x", kind="build-arg-changed", detail="V changed (value redacted): a → b"))
    assert r.build_arg == "V" and r.build_args("n", "a") == ["--build-arg", "V=cachewhy-verify-n-a"]
    assert "cannot be replayed" in replay_of(miss("r", 2, "RUN x", kind="cache-evicted"))


def test_replay_changes_the_copy(tmp_path):
    from analyzer.verify import Replay  # noqa: PLC0415

    src, ctx = tmp_path / "src", tmp_path / "ctx"
    for d in (src, ctx):
        (d / "sub").mkdir(parents=True)
        (d / "mod.txt").write_text("m\n")
        (d / "sub" / "new.txt").write_text("n\n")
    r = Replay(added=["sub/new.txt"], modified=["mod.txt"], removed=["gone.txt"])
    r.before(ctx, "0badcafe")
    assert not (ctx / "sub" / "new.txt").exists() and (ctx / "gone.txt").is_file()
    r.after(ctx, src, "0badcafe")
    assert not (ctx / "gone.txt").exists()
    for name in ("mod.txt", "sub/new.txt"):  # the same content plus one blank line unique to the run
        text = (ctx / name).read_text()
        assert text.startswith((src / name).read_text()) and text != (src / name).read_text()
        assert not text[len((src / name).read_text()):].strip()


def _measure(rebuilt, cached, steps=None, stale=0, exit_code=0):
    from analyzer.verify import Measure  # noqa: PLC0415

    return Measure(exit_code=exit_code, rebuilt=rebuilt, cached=cached, rebuilt_s=rebuilt * 1.0, wall_s=2.0,
                   log="x.rawjson", error="ERROR: boom" if exit_code else None, stale_installs=stale,
                   steps=steps or {})


@pytest.mark.parametrize("rule, before, after, verified, words", [
    ("copy-manifest-first", _measure(3, 2), _measure(2, 4), True, "rebuilt 2 step(s) instead of 3"),
    ("copy-manifest-first", _measure(2, 2), _measure(2, 4), False, "with the advice and 2 without"),
    ("copy-manifest-first", _measure(3, 2), _measure(0, 0, exit_code=1), False, "advised Dockerfile failed"),
    ("cache-mount", _measure(2, 2, {5: ["rebuilt", 9.0]}), _measure(2, 2, {5: ["rebuilt", 2.0]}), True,
     "took 2.0s instead of 9.0s"),
    ("cache-mount", _measure(2, 2, {5: ["rebuilt", 1.2]}), _measure(2, 2, {5: ["rebuilt", 0.9]}), False,
     "pays off when the package manager downloads"),
    ("apt-update-alone", _measure(1, 3, stale=1), _measure(1, 2), True, "fresh package lists"),
])
def test_verdicts(rule, before, after, verified, words):
    from analyzer.verify import Variant, _verdict  # noqa: PLC0415

    ok, verdict = _verdict(rule, Variant(_measure(4, 0), before), Variant(_measure(4, 0), after), [5])
    assert ok is verified and words in verdict and verdict.startswith("verified" if verified else "not verified")


def test_verify_table():
    from analyzer.verify import Result, Variant, render  # noqa: PLC0415

    r = Result(context="/p", dockerfile="/p/Dockerfile", line=4, instruction="COPY . /app", kind="context-changed",
               rule="copy-manifest-first", message="copy `requirements.txt` first", verified=True,
               verdict="verified: the same edit rebuilt 2 step(s) instead of 3", replay="src/app.py modified",
               change="--- Dockerfile (original)\n+++ Dockerfile (advised)",
               original=Variant(_measure(5, 0), _measure(3, 2)), advised=Variant(_measure(5, 0), _measure(2, 4)))
    out = render([r])
    assert out.splitlines()[0] == "/p  Dockerfile:4  COPY . /app"
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("original ", "advised "))]
    assert [(row[0], row[2], row[3]) for row in rows] == [("original", "3", "2"), ("advised", "2", "4")]
    assert "      +++ Dockerfile (advised)" in out and out.rstrip().endswith("instead of 3")


def test_advise_verify_usage_errors(tmp_path, capsys):
    store = str(tmp_path / "store")
    assert main(["advise", "--store", store, "--rule", "copy-manifest-first"]) == 2
    assert main(["advise", "--store", store, "--verify", "--rule", "no-such-rule"]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["advise", "--store", store, "--verify", "--keep", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err
    assert "go with --verify" in err and "no such rule no-such-rule" in err and "new or empty folder" in err
    assert "Traceback" not in err
    assert main(["advise", "--store", store, "--verify"]) == 0  # an empty store: nothing to verify
    assert capsys.readouterr().out == "No advice to verify.\n"


def test_one_registry_of_rules():
    """advice.TABLE is the one list: detection, advice, rewrite and verification read it."""
    from analyzer import advice  # noqa: PLC0415
    from tests.conftest import REPO  # noqa: PLC0415

    assert advice.RULES == tuple(r.name for r in advice.TABLE)
    assert len(set(advice.RULES)) == len(advice.RULES)
    for r in advice.TABLE:
        assert (REPO / r.doc_page).is_file(), r.doc_page
        assert r.scope in ("root", "cached")
        # a rule cachewhy can apply says how the rebuild verifies it, and only such a rule
        assert (r.rewrite is not None) == (r.verified_by in ("steps", "time", "fresh-lists")), r.name
    assert set(advice.REWRITABLE) == {r.name for r in advice.TABLE if r.rewrite is not None}
    # a rule without a rewrite gives no change to verify
    rep = report([miss("r", 2, "RUN make", kind="base-image-changed", detail="d", time_lost=3.0)], {"r": 3.0})
    assert rules(advice.advise(rep, "FROM x:latest\nRUN make\n")) == ["pin-base-image"]
    assert advice.rewrite(rep, "r", "pin-base-image", "FROM x:latest\nRUN make\n") is None


@pytest.mark.parametrize("ref", ["extra", "registry.local:5000/team/tools", "tools:latest"])
def test_pin_base_image_names_the_copy_from_image_that_moved(ref):
    """The image that moved is the one COPY --from reads, not the stage's FROM."""
    rep = report([miss("r", 3, f"COPY --from={ref} /f /f", kind="base-image-changed", detail="d",
                       time_lost=2.0)], {"r": 2.0})
    a = advise(rep, f"FROM python\nRUN make\nCOPY --from={ref} /f /f\n")["r"][0]
    assert a["rule"] == "pin-base-image" and a["lines"] == [3], a
    assert f"`COPY --from={ref}` (line 3)" in a["message"] and "FROM python" not in a["message"], a
    name = ref.rsplit(":", 1)[0] if ref.endswith(":latest") else ref
    assert f"--from={name}@sha256:" in a["message"], a


def test_arg_late_silent_when_an_env_before_the_step_uses_it():
    """`ENV X=$VERSION` carries the value into every later RUN: the ARG is neither unused nor late."""
    dockerfile = ARG_BAD.replace("ARG VERSION\n", "ARG VERSION\nENV X=$VERSION\n")
    rep = report([miss("r", 4, "RUN apk add --no-cache --virtual x make", kind="build-arg-changed",
                       detail="VERSION changed (value redacted): ab12 \u2192 cd34")], {"r": 2.0})
    assert [a for a in advise(rep, dockerfile).get("r", []) if a["rule"] == "arg-late"] == []
