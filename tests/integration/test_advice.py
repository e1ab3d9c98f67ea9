"""Advice on the real engine (issue 6): rule 1 (copy the manifest first) is
given for the miss it explains, with the install's measured time, and is gone
once the Dockerfile follows it. The "install" is a shell function that sleeps:
no network, no package manager needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import BASE_IMAGE, run_cachewhy
from tests.integration.test_causes import assert_root, http_dir, new_project  # noqa: F401 - the fixtures

pytestmark = pytest.mark.engine

INSTALL = "RUN pip() { cat requirements.txt > /installed.txt; sleep 1; }; pip install -r requirements.txt"

BEFORE = f"""\
FROM {BASE_IMAGE}
WORKDIR /app
RUN echo NONCE > /nonce
COPY . /app
{INSTALL}
RUN cat src/app.py > /app.txt
"""

AFTER = f"""\
FROM {BASE_IMAGE}
WORKDIR /app
RUN echo NONCE > /nonce
COPY requirements.txt .
{INSTALL}
COPY . /app
RUN cat src/app.py > /app.txt
"""

FILES = {"requirements.txt": "flask==3.0\n", "src/app.py": "print('v1')\n", ".dockerignore": "Dockerfile\n"}


def test_copy_manifest_first_on_a_real_build(new_project):  # noqa: F811
    p = new_project(BEFORE, FILES)
    p.build()
    p.write("src/app.py", "print('v2')\n")
    b = p.build()
    root = assert_root(b, 4, "context-changed")
    advice = root.get("advice") or []
    assert advice and advice[0]["rule"] == "copy-manifest-first", b.describe()
    a = advice[0]
    assert a["lines"] == [4, 5]
    install = b.step_at(5)
    assert install["status"] == "rebuilt" and a["saved_s"] == pytest.approx(install["duration_s"], abs=0.01)
    assert a["saved_s"] >= 1.0
    assert "copy `requirements.txt` first, install, then copy the rest" in a["message"]
    fix = [line for line in b.why() if line.strip().startswith("fix:")]
    assert fix and "COPY . /app (line 4)" in fix[0], b.describe()

    # the same edit again: `cachewhy advise` counts the recurring miss and its saving
    p.write("src/app.py", "print('v3')\n")
    b3 = p.build()
    assert b3.miss_at(4)["advice"][0]["rule"] == "copy-manifest-first"
    res = run_cachewhy("advise", "--store", str(p.store), "--json")
    assert res.returncode == 0, res.stderr.decode()
    groups = json.loads(res.stdout)
    top = groups[0]
    assert (top["line"], top["kind"], top["count"]) == (4, "context-changed", 2), groups
    assert top["advice"][0]["rule"] == "copy-manifest-first" and top["saved_s"] >= 2.0


def test_copy_manifest_first_silent_once_followed(new_project):  # noqa: F811
    p = new_project(AFTER, FILES)
    p.build()
    p.write("src/app.py", "print('v2')\n")
    b = p.build()
    root = assert_root(b, 6, "context-changed")
    assert b.step_at(5)["status"] == "cached", b.describe()
    assert not root.get("advice"), b.describe()
    assert not any(line.strip().startswith("fix:") for line in b.why()), b.describe()


# --- the rawjson, read here on its own: the engine's statuses ---------------------------

STEP_NAME = re.compile(r"^\[[^\]]*\d+/\d+\] (RUN|COPY|ADD|WORKDIR)\b")


def engine_counts(rawjson: str) -> tuple[int, int]:
    """(rebuilt, cached) Dockerfile steps of a `--progress=rawjson` stream, as the engine flagged them."""
    seen: dict[str, dict] = {}
    for line in Path(rawjson).read_text().splitlines():
        try:
            status = json.loads(line)
        except ValueError:
            continue
        for v in status.get("vertexes") or []:
            s = seen.setdefault(v["digest"], {"name": v["name"], "cached": False, "completed": False})
            s["cached"] |= bool(v.get("cached"))
            s["completed"] |= bool(v.get("completed"))
    steps = [s for s in seen.values() if STEP_NAME.match(s["name"])]
    return (sum(1 for s in steps if s["completed"] and not s["cached"]), sum(1 for s in steps if s["cached"]))


def verify(p, tmp_path, rule: str) -> list[dict]:
    keep = tmp_path / f"verify-{rule}"
    res = run_cachewhy("advise", "--store", str(p.store), "--verify", "--rule", rule, "--keep", str(keep), "--json",
                       "--", "--network=none")
    assert res.returncode == 0, res.stderr.decode()
    out = json.loads(res.stdout)
    for r in out:  # cachewhy's numbers are the engine's own
        for variant in ("original", "advised"):
            for phase in ("cold", "warm"):
                m = r[variant][phase]
                if m is not None:
                    assert (m["rebuilt"], m["cached"]) == engine_counts(m["log"]), (variant, phase, m)
    return out


def test_verify_copy_manifest_first(new_project, tmp_path):  # noqa: F811
    p = new_project(BEFORE, FILES)
    p.build()
    p.write("src/app.py", "print('v2')\n")
    p.build()
    [r] = verify(p, tmp_path, "copy-manifest-first")
    assert (r["line"], r["rule"], r["verified"]) == (4, "copy-manifest-first", True), r
    assert r["replay"].startswith("src/app.py modified")
    assert "+COPY requirements.txt /app/\n+" + INSTALL in r["change"], r["change"]
    before, after = r["original"]["warm"], r["advised"]["warm"]
    # the original rebuilds COPY . /app, the install and the last RUN; the advised one keeps the install
    assert (before["rebuilt"], before["cached"]) == (3, 2), before
    assert (after["rebuilt"], after["cached"]) == (2, 4), after
    assert after["steps"]["5"][0] == "cached" and before["steps"]["5"][0] == "rebuilt"
    for variant in ("original", "advised"):  # cold (--no-cache): every RUN and COPY ran (the engine flags
        cold = r[variant]["cold"]["steps"]   # a WORKDIR on an unchanged base cached even then)
        assert all(st == "rebuilt" for line, (st, _) in cold.items() if line != "2"), cold
    assert r["verdict"].startswith("verified: the same edit rebuilt 2 step(s) instead of 3")
    # the terminal's side-by-side table of the same numbers: tests/unit/test_advice.py (render)


# --- rule copy-artefact-only --------------------------------------------------------------

WHOLE_STAGE = f"""\
FROM {BASE_IMAGE} AS builder
WORKDIR /src
RUN echo NONCE > /nonce
COPY . .
RUN mkdir -p out && cat main.c > out/app.bin
FROM {BASE_IMAGE}
WORKDIR /app
COPY --from=builder /src /app
RUN cat /app/out/app.bin > /installed
"""

# the nonce in README.md makes what the final stage copies new to the engine (its own steps have none)
STAGE_FILES = {"main.c": "int main() { return 0; }\n", "README.md": "v1 NONCE\n", ".dockerignore": "Dockerfile\n"}


def test_copy_artefact_only_on_a_real_build(new_project, tmp_path):  # noqa: F811
    p = new_project(WHOLE_STAGE, STAGE_FILES)
    p.build()
    p.write("README.md", "v2 NONCE\n")
    b = p.build()
    root = assert_root(b, 4, "context-changed")
    assert b.miss_at(8)["cause"]["kind"] == "stage-changed" and b.step_at(9)["status"] == "rebuilt", b.describe()
    a = next(x for x in root["advice"] if x["rule"] == "copy-artefact-only")
    assert a["lines"] == [5, 8] and a["saved_s"] is None
    assert "`COPY --from=builder /src /app` (line 8) copies all of `/src` from stage `builder`" in a["message"]
    assert "rebuilt lines 8-9" in a["message"]
    assert "`COPY --from=builder /src/out/app.bin /app/out/app.bin`" in a["message"]

    [r] = verify(p, tmp_path, "copy-artefact-only")
    assert r["verified"] is True, r
    assert "+COPY --from=builder /src/out/app.bin /app/out/app.bin" in r["change"]
    before, after = r["original"]["warm"], r["advised"]["warm"]
    # README.md rebuilds the builder in both; only the original copies it on into the image
    assert (before["steps"]["8"][0], before["steps"]["9"][0]) == ("rebuilt", "rebuilt")
    assert (after["steps"]["8"][0], after["steps"]["9"][0]) == ("cached", "cached")
    assert (before["rebuilt"], after["rebuilt"]) == (4, 2)


def test_copy_artefact_only_silent_once_followed(new_project):  # noqa: F811
    p = new_project(WHOLE_STAGE.replace("COPY --from=builder /src /app",
                                        "COPY --from=builder /src/out/app.bin /app/out/app.bin"), STAGE_FILES)
    p.build()
    p.write("README.md", "v2 NONCE\n")
    b = p.build()
    root = assert_root(b, 4, "context-changed")
    assert b.step_at(8)["status"] == "cached", b.describe()
    assert not any(a["rule"] == "copy-artefact-only" for a in root.get("advice") or []), b.describe()


# --- rule add-url: a download taken from the cache ------------------------------------------

def test_add_url_for_a_cached_download(new_project, http_dir):  # noqa: F811
    served, url = http_dir
    (served / "data.txt").write_text("remote v1\n")
    # `curl` is a shell function: RUN has no network here, and the point is the cache, not the fetch
    curl = 'RUN curl() { echo "tool v1" > "$3"; }; curl -fsSL -o /opt/tool.tgz https://example.com/tool-1.2.tgz'
    p = new_project(f"FROM {BASE_IMAGE}\n"
                    "RUN echo NONCE > /nonce && mkdir -p /opt\n"
                    f"{curl}\n"
                    f"ADD {url}/data.txt /data.txt\n"
                    "RUN echo 'docs at https://example.com/docs' > /url.txt\n"
                    "COPY app.txt /app.txt\n", {"app.txt": "v1\n"})
    first = p.build()
    assert first.step_at(3)["status"] == "rebuilt" and "advice" not in first.report, first.describe()
    p.write("app.txt", "v2\n")
    b = p.build()
    assert b.step_at(3)["status"] == "cached" and b.step_at(5)["status"] == "cached", b.describe()
    [a] = b.report["advice"]  # the ADD and the RUN that only names a URL: silent
    assert a["rule"] == "add-url" and a["lines"] == [3] and a["saved_s"] is None
    assert "`ADD https://example.com/tool-1.2.tgz /opt/tool.tgz`" in a["message"]
    assert "--checksum=sha256:" in a["message"]  # not pinned yet: the advice says how
    assert not any(x["rule"] == "add-url" for m in b.misses for x in m.get("advice") or [])
    fix = [line for line in b.why() if line.startswith("  fix: ")]
    assert len(fix) == 1 and "(line 3) came from the cache" in fix[0], b.why()
    res = run_cachewhy("advise", "--store", str(p.store), "--json")
    cached = [g for g in json.loads(res.stdout) if g["kind"] == "cached"]
    assert [(g["line"], g["count"], g["advice"][0]["rule"]) for g in cached] == [(3, 1, "add-url")], cached


# --- verify: apt-get update alone, and a late ARG ---------------------------------------------

APT = 'apt-get() { echo "$*" >> /apt.log; }; '


def test_verify_apt_update_alone(new_project, tmp_path):  # noqa: F811
    p = new_project(f"FROM {BASE_IMAGE}\n"
                    "WORKDIR /w\n"
                    "RUN echo NONCE > /nonce\n"
                    f"RUN {APT}apt-get update\n"
                    "COPY packages.txt .\n"
                    f"RUN {APT}apt-get install -y $(cat packages.txt)\n", {"packages.txt": "gcc\n"})
    p.build()
    p.write("packages.txt", "gcc make\n")
    b = p.build()
    root = assert_root(b, 5, "context-changed")
    rules = [a["rule"] for a in root["advice"]]
    assert "apt-update-alone" in rules and "copy-manifest-first" not in rules, rules  # the install reads it
    [r] = verify(p, tmp_path, "apt-update-alone")
    assert r["verified"] is True, r
    assert "-RUN " + APT + "apt-get update" in r["change"]
    assert "+RUN " + APT + "apt-get update && " + APT + "apt-get install -y $(cat packages.txt)" in r["change"]
    before, after = r["original"]["warm"], r["advised"]["warm"]
    assert (before["stale_installs"], after["stale_installs"]) == (1, 0), r
    assert before["steps"]["4"][0] == "cached" and after["steps"]["5"][0] == "rebuilt"


def test_verify_arg_late(new_project, tmp_path):  # noqa: F811
    p = new_project(f"FROM {BASE_IMAGE}\n"
                    "WORKDIR /w\n"
                    "RUN echo NONCE > /nonce\n"
                    "ARG VERSION=1\n"
                    "RUN echo built > /built\n"
                    "RUN echo $VERSION > /version\n")
    p.build("--build-arg", "VERSION=1")
    b = p.build("--build-arg", "VERSION=2")
    assert_root(b, 5, "build-arg-changed")
    [r] = verify(p, tmp_path, "arg-late")
    assert r["verified"] is True and r["replay"].startswith("build arg VERSION changed"), r
    advised = (tmp_path / "verify-arg-late" / "1-arg-late" / "advised" / "ctx" / "Dockerfile").read_text()
    assert advised.splitlines()[3:] == ["RUN echo built > /built", "ARG VERSION=1",
                                        "RUN echo $VERSION > /version"], r["change"]
    before, after = r["original"]["warm"], r["advised"]["warm"]
    assert (before["rebuilt"], after["rebuilt"]) == (2, 1), r
    assert "VERSION=2" not in json.dumps(r)  # the values used are synthetic, the user's never shown
