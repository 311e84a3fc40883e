"""Building and loading a HEK: hierarchy consistency, singletons, the manifest, corruption, show."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hiexp.errors import HiexpError
from hiexp.experience.build import BuildConfig, build_hek
from hiexp.experience.hek import HEK
from hiexp.experience.schema import Entry
from hiexp.experience.summarize import SummarizeConfig
from hiexp.search.embed import load_embedder
from tests.fakes import ScriptedGenerator

THEMES = {
    "date": ["check the publication date of the film", "check the release date of the film",
             "check the date the film was first shown"],
    "name": ["quote the full name of the director", "quote the full name of the author",
             "quote the full name of the actor"],
    "bridge": ["search the bridge entity before the answer", "search the bridge entity before comparing",
               "search the bridge entity before the second hop"],
}
LONER = "arithmetic on population numbers needs a calculator"


def e1_entries() -> list[Entry]:
    titles = [t for group in THEMES.values() for t in group] + [LONER]
    return [Entry(id=f"E1-{i:02d}", level="E1", title=t, description=f"advice {i}", thinking="why",
                  sources={"question_id": f"q{i}", "trajectory_ids": [f"q{i}#0", f"q{i}#1"]}, model="reflector")
            for i, t in enumerate(titles)]


def write_e1(path, entries):
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in entries))
    (path.parent / "e1.meta.json").write_text(json.dumps({"trajectory_files": [{"path": "t.jsonl", "sha256": "ab"}],
                                                          "reflector": "reflector"}))
    return path


def summarizer():
    def script(prompt, params):
        first = prompt.split("Title: ", 1)[1].split("\n", 1)[0]
        return json.dumps({"title": f"General: {first}", "tags": ["general"], "description": "merged advice",
                           "thinking": "shared"})
    return ScriptedGenerator(script, model_id="summarizer-x")


@pytest.fixture
def built(tmp_path):
    e1 = write_e1(tmp_path / "e1.jsonl", e1_entries())
    generator = summarizer()
    hek = build_hek([e1], tmp_path / "hek", load_embedder("hashing-256"), generator,
                    BuildConfig(n_clusters=(4, 2)), show_progress=False)
    return hek, tmp_path / "hek", generator


def test_hierarchy_is_consistent(built):
    hek, directory, _ = built
    loaded = HEK.load(directory)
    counts = loaded.counts()
    assert counts == {"E1": 10, "E2": 4, "E3": 2} == loaded.manifest["counts"]
    e1_ids = {e.id for e in loaded.level("E1")}
    parents = {}
    for e2 in loaded.level("E2"):
        for child in e2.children:
            assert child in e1_ids
            assert child not in parents  # at most one E2 per E1
            parents[child] = e2.id
    assert set(parents) == e1_ids  # singletons are promoted, so every E1 has a parent
    for e3 in loaded.level("E3"):
        assert all(loaded.get(c).level == "E2" for c in e3.children)
    assert loaded.embeddings.dtype == np.float32 and loaded.embeddings.shape == (16, 256)
    assert np.allclose(np.linalg.norm(loaded.embeddings, axis=1), 1.0, atol=1e-5)
    assert loaded.version == hek.version and len(loaded.version) == 16


def test_themes_cluster_and_the_loner_is_promoted(built):
    hek, _, generator = built
    groups = [sorted(hek.get(c).title for c in e2.children) for e2 in hek.level("E2")]
    assert sorted(groups) == sorted([sorted(v) for v in THEMES.values()] + [[LONER]])
    loner = next(e for e in hek.level("E2") if e.children == ["E1-09"])
    assert loner.meta["promoted"] and loner.title == LONER and loner.model is None
    summarised = [e for e in hek.level("E2") if not e.meta.get("promoted")]
    assert all(e.title.startswith("General:") and e.model == "summarizer-x" for e in summarised)
    assert sorted(summarised[0].sources["question_ids"]) == sorted(
        hek.get(c).sources["question_id"] for c in summarised[0].children)
    # 3 E2 summaries + E3 summaries of multi-member clusters; the singleton cost no call
    assert len(generator.prompts) == 3 + sum(1 for e in hek.level("E3") if len(e.children) > 1)


def test_manifest_records_provenance(built):
    hek, directory, _ = built
    manifest = json.loads((directory / "manifest.json").read_text())
    for key in ("schema_version", "hek_version", "created", "embedder", "reflector", "summarizer", "thresholds",
                "counts", "sources"):
        assert key in manifest
    assert manifest["embedder"]["model_id"] == "hashing-256" and manifest["reflector"] == "reflector"
    assert manifest["summarizer"] == "summarizer-x"
    assert manifest["thresholds"]["E2"]["n_clusters_requested"] == 4 and manifest["thresholds"]["E2"]["clusters"] == 4
    assert manifest["sources"]["trajectory_files"] == [{"path": "t.jsonl", "sha256": "ab"}]
    assert len(manifest["sources"]["e1_files"][0]["sha256"]) == 64


def test_rebuild_is_deterministic_and_uses_the_summary_cache(built, tmp_path):
    hek, _, _ = built
    again = summarizer()
    second = build_hek([tmp_path / "e1.jsonl"], tmp_path / "hek2", load_embedder("hashing-256"), again,
                       BuildConfig(n_clusters=(4, 2)), show_progress=False)
    assert second.version == hek.version and again.prompts == []


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "entries.jsonl").write_text((d / "entries.jsonl").read_text().replace("advice 3", "advise 3")),
     "entries.jsonl: content does not match"),
    (lambda d: (d / "embeddings.npy").write_bytes((d / "embeddings.npy").read_bytes()[:-40]),
     "embeddings.npy: content does not match"),
    (lambda d: (d / "entries.jsonl").unlink(), "entries.jsonl is missing"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "corrupted manifest"),
])
def test_corruption_is_detected_and_named(built, damage, message):
    _, directory, _ = built
    damage(directory)
    with pytest.raises(HiexpError, match=message):
        HEK.load(directory)


def test_inconsistent_counts_and_hierarchy_are_named(built, tmp_path):
    hek, directory, _ = built
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["counts"]["E2"] = 5
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(HiexpError, match="manifest counts"):
        HEK.load(directory)
    entries = list(hek.entries)
    e2 = [e for e in entries if e.level == "E2"]
    twice = e2[0].model_copy(update={"id": "E2-dup", "children": [e2[1].children[0]]})
    with pytest.raises(HiexpError, match="two parents"):
        HEK(entries + [twice], np.vstack([hek.embeddings, hek.embeddings[:1]])).save(tmp_path / "bad")
    orphan = e2[0].model_copy(update={"id": "E2-x", "children": ["E1-missing"]})
    with pytest.raises(HiexpError, match="not in the HEK"):
        HEK(entries + [orphan], np.vstack([hek.embeddings, hek.embeddings[:1]])).save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_failed_summary_falls_back_to_the_central_member_or_fails_when_strict(tmp_path):
    e1 = write_e1(tmp_path / "e1.jsonl", e1_entries())
    prose = ScriptedGenerator(lambda p, s: "These are all about searching well.", model_id="prose")
    hek = build_hek([e1], tmp_path / "hek", load_embedder("hashing-256"), prose,
                    BuildConfig(n_clusters=(4, 1), summarize=SummarizeConfig(max_retries=1)), show_progress=False)
    fallbacks = [e for e in hek.level("E2") if e.meta.get("fallback")]
    assert len(fallbacks) == 3 and all("no JSON" in e.meta["fallback"] for e in fallbacks)
    assert all(e.title in [hek.get(c).title for c in e.children] for e in fallbacks)
    assert any("used its central member" in w for w in hek.manifest["warnings"])
    with pytest.raises(HiexpError, match="summary of 3 entries failed after 2 attempts"):
        build_hek([e1], tmp_path / "hek3", load_embedder("hashing-256"), prose,
                  BuildConfig(n_clusters=(4, 1), summarize=SummarizeConfig(max_retries=1, strict=True, use_cache=False)),
                  show_progress=False)
    assert not (tmp_path / "hek3").exists()


def test_degenerate_threshold_warns_with_candidates(tmp_path):
    e1 = write_e1(tmp_path / "e1.jsonl", e1_entries())
    hek = build_hek([e1], None, load_embedder("hashing-256"), None, BuildConfig(thresholds=(0.01, 0.01)),
                    show_progress=False)
    warning = hek.manifest["warnings"][0]
    assert "every one of the 10 entries is its own cluster" in warning and "clusters" in warning
    assert hek.counts() == {"E1": 10, "E2": 10, "E3": 10}
    giant = build_hek([e1], None, load_embedder("hashing-256"), summarizer(), BuildConfig(thresholds=(50, 50)),
                      show_progress=False)
    assert "one cluster" in giant.manifest["warnings"][0] and giant.counts()["E2"] == 1


def test_empty_and_bad_e1_input(tmp_path):
    empty = tmp_path / "e1.jsonl"
    empty.write_text("")
    with pytest.raises(HiexpError, match="no E1 entries"):
        build_hek([empty], tmp_path / "hek", load_embedder("hashing-64"), None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "level": "E1"}\n')
    with pytest.raises(HiexpError, match=r"bad.jsonl:1: not an E1 entry \(title"):
        build_hek([bad], tmp_path / "hek", load_embedder("hashing-64"), None)
    assert not (tmp_path / "hek").exists()


def test_show_command(built):
    from hiexp.cli import app

    _, directory, _ = built
    runner = CliRunner()
    result = runner.invoke(app, ["show", str(directory)])
    assert result.exit_code == 0, result.output
    assert "2 E3, 4 E2, 10 E1" in result.output and "General:" in result.output and LONER in result.output
    tree = json.loads(runner.invoke(app, ["show", str(directory), "--json"]).output)
    assert len(tree["roots"]) == 2 and tree["counts"]["E1"] == 10
    leaves = [c for root in tree["roots"] for e2 in root["children"] for c in e2["children"]]
    assert len(leaves) == 10
    one = runner.invoke(app, ["show", str(directory), "--entry", "E1-03"])
    assert one.exit_code == 0 and "q3#0" in one.output and "parent: E2" in one.output
    data = json.loads(runner.invoke(app, ["show", str(directory), "--entry", "E1-03", "--json"]).output)
    assert data["sources"]["question_id"] == "q3"
    missing = runner.invoke(app, ["show", str(directory), "--entry", "nope"])
    assert missing.exit_code != 0 and "no entry 'nope'" in str(missing.exception)


def test_a_summary_that_retells_the_attempts_is_asked_again(tmp_path):
    e1 = write_e1(tmp_path / "e1.jsonl", e1_entries())
    seen: dict[str, int] = {}

    def script(prompt, params):
        seen[prompt] = seen.get(prompt, 0) + 1
        if "could not be used" not in prompt:  # a first answer tells a story
            return json.dumps({"title": "Searching well", "tags": [], "thinking": "",
                               "description": "The successful attempts searched twice."})
        return json.dumps({"title": "Searching well", "tags": [], "thinking": "",
                           "description": "Search twice when the first passages name a new person."})

    hek = build_hek([e1], tmp_path / "hek", load_embedder("hashing-256"), ScriptedGenerator(script),
                    BuildConfig(n_clusters=(4, 1), summarize=SummarizeConfig(use_cache=False)), show_progress=False)
    summaries = [e for e in hek.level("E2") if not e.meta.get("promoted")]
    assert summaries and all(e.description == "Search twice when the first passages name a new person."
                             for e in summaries)
    assert any("tells what some attempts did" in p for p in seen)
