"""Advice on the real engine (issue 6): rule 1 (copy the manifest first) is
given for the miss it explains, with the install's measured time, and is gone
once the Dockerfile follows it. The "install" is a shell function that sleeps:
no network, no package manager needed."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BASE_IMAGE, run_cachewhy
from tests.integration.test_causes import assert_root, new_project  # noqa: F401 - the fixture

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
