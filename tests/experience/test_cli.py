"""The distill and build commands end to end, with a scripted model in place of the real one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hiexp.cli import app
from hiexp.errors import HiexpError
from tests.fakes import ScriptedGenerator


@pytest.fixture
def scripted_models(monkeypatch):
    def fake_load_generator(spec="default", backend="auto", **options):
        def reply(prompt, params):
            if "Merge them" in prompt:
                return '{"title": "Search names exactly", "tags": ["names"], "description": "merged", "thinking": "w"}'
            return ('```json\n[{"title": "Quote the exact name", "tags": ["query"], '
                    '"description": "Put the full name in quotes.", "thinking": "the failed query was vague"}]\n```')
        return ScriptedGenerator(reply, model_id=f"scripted:{spec}")

    import hiexp.llm

    monkeypatch.setattr(hiexp.llm, "load_generator", fake_load_generator)


def test_distill_build_show(trajectory_file, tmp_path, scripted_models):
    runner = CliRunner()
    out = tmp_path / "run" / "e1.jsonl"
    result = runner.invoke(app, ["distill", str(trajectory_file), "--out", str(out), "--reflector", "teacher"])
    assert result.exit_code == 0, result.output
    assert "3 ok, 0 failed; 3 new entries" in result.output
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(entries) == 3 and entries[0]["model"] == "scripted:teacher"

    again = runner.invoke(app, ["distill", str(trajectory_file), "--out", str(out)])
    assert "3 done before" in again.output and "0 ok" in again.output

    hek_dir = tmp_path / "hek"
    result = runner.invoke(app, ["build", str(out), "--out", str(hek_dir), "--embedder", "hashing-64",
                                 "--clusters", "1,1"])
    assert result.exit_code == 0, result.output
    assert "3 E1, 1 E2, 1 E3" in result.output
    manifest = json.loads((hek_dir / "manifest.json").read_text())
    assert manifest["reflector"] == "scripted:teacher" and manifest["summarizer"] == "scripted:default"
    assert manifest["sources"]["trajectory_files"][0]["path"] == str(trajectory_file)
    shown = runner.invoke(app, ["show", str(hek_dir)])
    assert "Search names exactly" in shown.output
    assert "(1 child, 3 E1)" in shown.output and "(3 children, 3 E1)" in shown.output


def test_bad_options_are_clear_errors(trajectory_file, tmp_path, scripted_models):
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(trajectory_file), "--out", str(tmp_path / "h"), "--thresholds", "a,b"])
    assert isinstance(result.exception, HiexpError) and "--thresholds" in str(result.exception)
    result = runner.invoke(app, ["show", str(tmp_path / "missing")])
    assert isinstance(result.exception, HiexpError) and "no such HEK directory" in str(result.exception)
