"""``hiexp update`` never replaces what it reads and never reports success for nothing (issue 33)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from hiexp.errors import HiexpError
from hiexp.experience.hek import HEK
from hiexp.experience.update import UpdateConfig, update_from_trajectories
from hiexp.io import exclusive_output, sha256_file
from tests.experience.test_build_hek import summarizer
from tests.experience.test_update import REFLECTION, contrastive_file
from tests.fakes import ScriptedGenerator


def reflector(reply: str = REFLECTION, model_id: str = "reflector-x") -> ScriptedGenerator:
    return ScriptedGenerator(lambda prompt, params: reply if "Question:" in prompt else
                             summarizer()._script(prompt, params), model_id=model_id)


def files_of(directory):
    return {p.name: sha256_file(p) for p in directory.iterdir() if p.is_file()}


def test_an_out_holding_an_earlier_version_or_inside_the_hek_is_refused(base, tmp_path):
    hek, embedder = base
    child, _ = update_from_trajectories(tmp_path / "hek", [contrastive_file(tmp_path / "a.jsonl", "q7")],
                                        reflector(), embedder, out_dir=tmp_path / "hek-v2", show_progress=False)
    parent_files = files_of(tmp_path / "hek")
    new = contrastive_file(tmp_path / "b.jsonl", "q8")
    for out, why in [(tmp_path / "hek", "earlier version"), (tmp_path, "it holds"),
                     (child / "v3", "inside the HEK being updated"), (child, "holds the HEK being updated")]:
        with pytest.raises(HiexpError, match=why):
            update_from_trajectories(child, [new], reflector(), embedder, out_dir=out, show_progress=False)
    assert files_of(tmp_path / "hek") == parent_files and HEK.load(child).version


def test_a_second_update_into_the_same_out_stops_at_once(base, tmp_path):
    _, embedder = base
    with exclusive_output(tmp_path / "v2", "first"):
        with pytest.raises(HiexpError, match="another hiexp command is writing it"):
            update_from_trajectories(tmp_path / "hek", [contrastive_file(tmp_path / "a.jsonl", "q7")], reflector(),
                                     embedder, out_dir=tmp_path / "v2", show_progress=False)
    assert not (tmp_path / "v2").exists()


def test_every_reflection_failing_writes_nothing(base, tmp_path):
    _, embedder = base
    with pytest.raises(HiexpError, match="reflections failed, nothing was written"):
        update_from_trajectories(tmp_path / "hek", [contrastive_file(tmp_path / "a.jsonl", "q7")],
                                 reflector("I cannot help with that."), embedder, out_dir=tmp_path / "v2",
                                 show_progress=False)
    assert not (tmp_path / "v2" / "manifest.json").exists()


def test_another_reflector_does_not_reuse_the_first_ones_work(base, tmp_path):
    _, embedder = base
    trajectories = contrastive_file(tmp_path / "a.jsonl", "q7")
    first, _ = update_from_trajectories(tmp_path / "hek", [trajectories], reflector(model_id="model-a"), embedder,
                                        out_dir=tmp_path / "v-a", show_progress=False)
    other = json.dumps([{"title": "Compare both dates before answering", "tags": ["comparison"],
                         "description": "Look up each date.", "thinking": "t"}])
    second, _ = update_from_trajectories(tmp_path / "hek", [trajectories], reflector(other, "model-b"), embedder,
                                         out_dir=tmp_path / "v-b", show_progress=False)
    titles_a = {e.title for e in HEK.load(first).entries}
    titles_b = {e.title for e in HEK.load(second).entries}
    assert any("Compare both dates" in t for t in titles_b) and not any("Compare both dates" in t for t in titles_a)
    # each version names the model that wrote its new entries
    assert HEK.load(first).manifest["update"]["models"]["reflector"] == "model-a"
    assert HEK.load(second).manifest["update"]["models"]["reflector"] == "model-b"


@pytest.mark.parametrize("option,value", [("dedup_threshold", 5.0), ("dedup_threshold", math.nan),
                                          ("recluster_fraction", -1.0), ("recluster_fraction", math.nan),
                                          ("margin", math.inf), ("min_episodes", 0)])
def test_settings_out_of_range_are_refused(option, value):
    with pytest.raises(HiexpError, match=option.replace("_", "-")):
        UpdateConfig(**{option: value})


def test_cli_refuses_nan_threshold_empty_trajectories_and_another_embedder(base, tmp_path, monkeypatch):
    import hiexp.cli.experience as cli_experience
    from hiexp.cli import app

    monkeypatch.setattr(cli_experience, "_load_model", lambda *a, **k: pytest.fail("no model may load"))
    runner = CliRunner()
    trajectories = contrastive_file(tmp_path / "a.jsonl", "q7")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases = [([], empty, "nothing to update with"),
             (["--embedder", "hashing-384"], trajectories, "not the embedder this HEK was built with"),
             (["--dedup-threshold", "nan"], trajectories, "--dedup-threshold must be")]
    for extra, trajs, why in cases:
        result = runner.invoke(app, ["update", str(tmp_path / "hek"), str(trajs), "--out", str(tmp_path / "v2"), *extra])
        assert isinstance(result.exception, HiexpError) and why in str(result.exception), (extra, result.output)
    result = runner.invoke(app, ["update", str(tmp_path / "hek"), str(trajectories), "--threshold", "nan"])
    assert result.exit_code == 2 and "a finite number, got nan" in result.output  # refused while parsing
    assert not (tmp_path / "v2").exists()
