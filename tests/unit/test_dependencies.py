"""Every runtime dependency is explained in docs/dependencies.md, and
python-on-whales stays off the build's path."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import RAWJSON, REPO


def _runtime_dependencies() -> list[str]:
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.M | re.S)
    assert block is not None
    return [re.split(r"[<>=!~ \[]", d.strip().strip('",'))[0] for d in block.group(1).splitlines()
            if d.strip().startswith('"')]


def test_every_dependency_is_explained() -> None:
    deps = _runtime_dependencies()
    assert "python-on-whales" in deps
    doc = (REPO / "docs" / "dependencies.md").read_text()
    table = {row.split("|")[1].strip().strip("`") for row in doc.splitlines() if row.startswith("| `")}
    named = {n.strip().strip("`") for cell in table for n in cell.split(",")}
    assert set(deps) <= named, set(deps) - named
    assert "## Why python-on-whales stays" in doc


_IMPORTS = ("import sys; from analyzer.cli import main; rc = main(sys.argv[1:]); "
            "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)))")


def _modules(*argv: str, env: dict | None = None) -> set[str]:
    res = subprocess.run([sys.executable, "-c", _IMPORTS, *argv], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=120, env=env)
    err = res.stderr.decode()
    assert "\nMODULES " in err, err[-2000:]
    return set(err.rsplit("\nMODULES ", 1)[1].split())


def test_analyze_does_not_import_python_on_whales(tmp_path) -> None:
    got = _modules("analyze", "--store", str(tmp_path / "store"), str(RAWJSON / "multistage-warm.jsonl"))
    assert "analyzer.explain" in got and "networkx" in got  # the analysis ran
    assert not any(m.startswith("python_on_whales") for m in got)


def test_build_does_not_import_python_on_whales(tmp_path) -> None:
    # a docker that replays a recorded build's events, as buildx writes them
    fake = tmp_path / "docker.py"
    fake.write_text("import sys\nsys.stderr.write(open(sys.argv[1]).read())\n")
    import os  # noqa: PLC0415

    env = dict(os.environ, CACHEWHY_DOCKER=f"{sys.executable} {fake} {RAWJSON / 'multistage-warm.jsonl'}",
               CACHEWHY_LIVE="none")
    got = _modules("build", "--store", str(tmp_path / "store"), str(tmp_path), env=env)
    assert "analyzer.explain" in got  # the build was analysed
    assert not any(m.startswith("python_on_whales") for m in got)
