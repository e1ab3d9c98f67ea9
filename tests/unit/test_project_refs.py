"""`^N` and `last` count the builds of the project in the current directory;
`store:^N` counts every build of the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import RAWJSON, REPO


def cachewhy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "analyzer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_caret_counts_the_project_here(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    a, b = tmp_path / "app-a", tmp_path / "app-b"
    a.mkdir()
    b.mkdir()
    ids = {}
    # A warm, B warm, A changed, B changed: interleaved, as two projects built in turn
    for name, ctx, log in (("a1", a, "multistage-warm"), ("b1", b, "multistage-warm"),
                           ("a2", a, "multistage-change"), ("b2", b, "multistage-change")):
        res = cachewhy("analyze", "--store", store, "--context", str(ctx), "--report-json", str(tmp_path / "r.json"),
                       "--metadata-file", str(RAWJSON / f"{log}.meta.json"), str(RAWJSON / f"{log}.jsonl"), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        ids[name] = json.loads((tmp_path / "r.json").read_text())["build"]["ref"]

    def shown(ref: str, cwd: Path) -> str:
        res = cachewhy("show", "--store", store, "--report-json", str(tmp_path / "s.json"), ref, cwd=cwd)
        assert res.returncode == 0, res.stderr
        return json.loads((tmp_path / "s.json").read_text())["build"]["ref"]

    # in A's folder: ^0 and ^1 are A's two builds, whatever B did in between
    assert (shown("^0", a), shown("^1", a), shown("last", a)) == (ids["a2"], ids["a1"], ids["a2"])
    assert (shown("^0", b), shown("^1", b)) == (ids["b2"], ids["b1"])
    # store-wide, explicitly
    assert [shown(f"store:^{n}", a) for n in range(4)] == [ids["b2"], ids["a2"], ids["b1"], ids["a1"]]
    assert shown("store:last", a) == ids["b2"]
    # elsewhere (no build of this folder): every build counts, as before
    assert shown("^1", tmp_path) == ids["a2"]

    # diff ^1 ^0 in A's folder pairs A's builds: the changed file is A's own change
    res = cachewhy("diff", "--store", store, "--report-json", "-", "^1", "^0", cwd=a)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["previous"]["ref"], report["build"]["ref"]) == (ids["a1"], ids["a2"])
    assert "different projects" not in res.stderr

    res = cachewhy("show", "--store", store, "^2", cwd=a)
    assert res.returncode == 2
    assert res.stderr.strip() == (f"cachewhy: no record ^2: the store holds 2 build(s) of the project in {a} "
                                  "(store:^2 counts all 4 of the store)")
    res = cachewhy("show", "--store", store, "store:abc", cwd=a)
    assert res.returncode == 2 and "store: goes with ^N or last" in res.stderr
