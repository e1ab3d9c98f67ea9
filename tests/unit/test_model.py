"""The typed shapes of analyzer/model.py are the JSON cachewhy writes: a
record kept by `analyze` and its report have exactly the typed keys (the
required ones always, the optional ones only where they belong), and
docs/record-json.md names every field of the record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analyzer import model
from analyzer.cli import main
from tests.conftest import PROJECTS, RAWJSON, REPO


def _keys(td: type) -> tuple[frozenset[str], frozenset[str]]:
    return td.__required_keys__, td.__optional_keys__  # type: ignore[attr-defined]


def _fits(obj: dict, td: type, where: str) -> None:
    required, optional = _keys(td)
    assert required <= obj.keys(), f"{where}: missing {sorted(required - obj.keys())}"
    assert obj.keys() <= required | optional, f"{where}: not in {td.__name__}: {sorted(obj.keys() - required - optional)}"


@pytest.fixture
def records(tmp_path, monkeypatch) -> list[dict]:
    monkeypatch.delenv("CACHEWHY_STORE", raising=False)
    store = tmp_path / "store"
    for name in ("multistage-cold", "multistage-change"):
        assert main(["analyze", "--store", str(store), "--context", str(PROJECTS / "multistage"),
                     "--metadata-file", str(RAWJSON / f"{name}.meta.json"), str(RAWJSON / f"{name}.jsonl")]) == 0
    assert main(["analyze", "--store", str(store), "--context", str(PROJECTS / "failing"),
                 str(RAWJSON / "failing.jsonl")]) == 0
    return [json.loads(p.read_text()) for p in sorted(store.glob("2*.json"))]


def test_records_and_reports_have_the_typed_keys(records):
    assert len(records) == 3
    seen_optional: set[str] = set()
    for rec in records:
        _fits(rec, model.Record, "record")
        _fits(rec["project"], model.Project, "project")
        _fits(rec["invocation"], model.Invocation, "invocation")
        for st in rec["steps"]:
            _fits(st, model.RecordStep, "record step")
            seen_optional |= st.keys() & _keys(model.RecordStep)[1]
            for other in st["also_at"]:
                _fits(other, model.AlsoAt, "also_at")
            for ci in st.get("context_inputs") or []:
                _fits(ci, model.ContextInput, "context input")
        report = rec["report"]
        _fits(report, model.Report, "report")
        _fits(report["build"], model.ReportBuild, "report build")
        _fits(report["summary"], model.Summary, "summary")
        if report["previous"] is not None:
            _fits(report["previous"], model.PreviousRef, "previous")
        for st in report["steps"]:
            _fits(st, model.ReportStep, "report step")
        for m in report["misses"]:
            _fits(m, model.ReportMiss, "miss")
            for c in [m["cause"], *m["also"]]:
                _fits(c, model.CauseDict, "cause")
                if "files" in c:
                    _fits(c["files"], model.FileChanges, "files")
            for a in m.get("advice") or []:
                _fits(a, model.Advice, "advice")
    # the provenance's keys were written (the typed optional half is not dead)
    assert {"op", "op_hash", "context_inputs"} <= seen_optional


def test_record_doc_names_every_field():
    doc = (REPO / "docs" / "record-json.md").read_text(encoding="utf-8")
    cells = re.findall(r"^\| ([^|]+) \|", doc, flags=re.MULTILINE)  # each table row's first cell
    named = {name for cell in cells for name in re.findall(r"`([a-z_]+)`", cell)}
    for td in (model.Record, model.RecordStep, model.Project, model.Invocation, model.AlsoAt, model.ContextInput):
        required, optional = _keys(td)
        missing = (required | optional) - named
        assert not missing, f"docs/record-json.md does not describe {td.__name__}'s {sorted(missing)}"
