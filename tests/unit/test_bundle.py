"""`.dockerbuild` bundles read without Docker: testdata/bundles/ holds two
builds of testdata/projects/multistage exported by `docker buildx history
export` (testdata/regen.py --only bundles), src/b.txt edited in between."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from analyzer.buildkit import bundle
from analyzer.buildkit.history import fetch_build
from analyzer.errors import InputError
from tests.conftest import REPO, TESTDATA, run_cachewhy

FIRST = TESTDATA / "bundles" / "multistage-1.dockerbuild"
SECOND = TESTDATA / "bundles" / "multistage-2.dockerbuild"


def test_a_bundle_is_read_as_a_builder_s_history_record():
    b = bundle.load([str(FIRST), str(SECOND)])
    assert [b.origin[r.Ref] for r in b.records] == [str(SECOND), str(FIRST)]  # newest first
    newest = b.records[0]
    assert newest.FrontendAttrs["build-arg:BUILDKIT_BUILD_NAME"] == "cachewhy-testdata-multistage"
    assert set(b.project(newest)) == {"local:LocalPath"}  # buildx's localState: the context folder
    fetched = fetch_build(b, newest)
    assert fetched.notes == []
    assert fetched.predicate is not None and fetched.predicate["buildConfig"]["llbDefinition"]
    names = {v.get("name") for st in fetched.statuses for v in st.get("vertexes") or []}
    assert any(n.endswith("] COPY src/ ./src/") for n in names if n), names


def test_explain_a_bundle_against_another_needs_no_docker(tmp_path):
    env = {"DOCKER_HOST": "unix:///nonexistent.sock", "PATH": "/nonexistent"}  # no Docker at all
    res = run_cachewhy("explain", str(SECOND), "--against", str(FIRST), "--report-json", "-", "--width", "80",
                       "--store", str(tmp_path / "store"), env=env, timeout=120)
    err = res.stderr.decode()
    assert res.returncode == 0, err
    report = json.loads(res.stdout)
    first_ref = bundle.load([str(FIRST)]).records[0].Ref
    assert report["previous"] == {"ref": f"bundle {first_ref}"}
    roots = [(m["line"], m["cause"]["kind"]) for m in report["misses"] if m["root"]]
    assert roots == [(6, "unknown")]  # COPY src/ ./src/: no files and no cache view in a bundle
    assert "the context files it reads (src)" in report["misses"][0]["cause"]["detail"]
    assert err.startswith("Build ") and "(cachewhy-testdata-multistage)" in err.splitlines()[0]
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))


def _tar(members: dict[str, bytes], compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


@pytest.mark.parametrize("content, says", [
    (b"", "not a build record bundle"),
    (b"\x1f\x8bxx", "gzip data is damaged"),
    (_tar({"oci-layout": b"{}"}), "holds no OCI index.json"),
    (_tar({"index.json": b"{\"manifests\": []}"}, compress=False), "holds no build record"),
    (_tar({"index.json": b"not json"}), "its OCI index or a manifest is unreadable"),
])
def test_what_is_not_a_bundle_is_said_in_one_line(tmp_path, content, says):
    path = tmp_path / "x.dockerbuild"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        bundle.load([str(path)])
    assert says in str(err.value)
    res = run_cachewhy("explain", str(path), cwd=REPO, timeout=60)
    out = res.stderr.decode().strip()
    assert res.returncode == 2 and len(out.splitlines()) == 1 and says in out, out


def test_bundle_options_that_do_not_apply_are_usage_errors(tmp_path):
    for args, says in ((["--list"], "--list takes no REF"), (["--against", "^1"], "compared with another bundle")):
        res = run_cachewhy("explain", str(SECOND), *args, timeout=60)
        assert res.returncode == 2, res.stderr.decode()
        assert says in res.stderr.decode()
    res = run_cachewhy("explain", str(TESTDATA / "bundles"), "--report-md", str(tmp_path / "r.md"), timeout=60)
    assert res.returncode == 2 and "a paragraph per build and --report-json" in res.stderr.decode()
