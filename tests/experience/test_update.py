"""Incremental HEK updates: add, deduplicate, evict, re-cluster, only changed clusters re-summarised, a new
version with its parent, kill -9 mid-update, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from experience_fixtures import make_trajectory, write_trajectories
from typer.testing import CliRunner

from hiexp.errors import HiexpError
from hiexp.experience.hek import HEK
from hiexp.experience.schema import Entry
from hiexp.experience.update import UpdateConfig, update_from_trajectories, update_hek
from hiexp.experience.usefulness import EntryUsefulness, Usefulness, load_usefulness
from hiexp.io import sha256_file
from tests.experience.test_build_hek import summarizer


def new_entry(title: str, question: str = "q-new") -> Entry:
    return Entry(id=f"E1-new-{abs(hash(title)) % 10**8}", level="E1", title=title, description="new advice",
                 sources={"question_id": question, "question": f"What about {question}?",
                          "trajectory_ids": [f"{question}#0", f"{question}#1"]}, model="reflector")


def parent_of(hek: HEK, entry_id: str) -> str | None:
    parent = hek.parent_of(entry_id)
    return parent.id if parent else None


def test_a_new_entry_joins_its_theme_and_only_that_branch_is_resummarised(base):
    hek, embedder = base
    generator = summarizer()
    entry = new_entry("check the publication date of the novel")
    updated, report = update_hek(hek, [entry], embedder, generator)
    updated.check_hierarchy()
    assert report.added == [entry.id] and not report.merged and not report.evicted and not report.reclustered
    date_theme = hek.parent_of("E1-00").id
    assert parent_of(updated, entry.id) != date_theme  # the cluster changed, so its entry is a new one
    new_parent = updated.parent_of(entry.id)
    assert set(new_parent.children) == set(hek.get(date_theme).children) | {entry.id}
    # every other E2 is the parent version's entry, untouched
    untouched = {e.id for e in hek.level("E2")} - {date_theme}
    assert untouched <= {e.id for e in updated.level("E2")}
    # one E2 summary and its E3 above (whose prompt may be answered from the build's reply cache)
    assert report.resummarised == {"E2": 1, "E3": 1} and 1 <= len(generator.prompts) <= 2
    assert updated.counts()["E1"] == 11 and updated.manifest["parent"] == {"hek_version": hek.version}
    assert updated.manifest["lineage"] == [hek.version]


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "through-clusters"])
def test_a_duplicate_is_merged_into_the_entry_it_repeats(base, exact, monkeypatch):
    import hiexp.experience.update as update

    if not exact:  # the large-HEK path: candidates from the nearest E2 clusters only
        monkeypatch.setattr(update, "EXACT_DEDUP_MAX", 2)
    hek, embedder = base
    duplicate = new_entry("quote the full name of the director", question="q-dup")
    updated, report = update_hek(hek, [duplicate], embedder, summarizer())
    assert report.merged == {duplicate.id: "E1-03"} and report.added == []
    assert updated.get(duplicate.id) is None
    host = updated.get("E1-03")
    assert host.sources["merged_questions"] == ["What about q-dup?"]
    assert {e.id for e in updated.level("E2")} == {e.id for e in hek.level("E2")}  # nothing re-summarised
    from hiexp.experience.retrieve import question_provenance

    assert "what about q-dup?" in question_provenance(updated.entries)["E1-03"]  # the leak guard knows


def test_harmful_entries_are_evicted(base):
    hek, embedder = base
    usefulness = Usefulness(entries={"E1-06": EntryUsefulness(episodes=5, helpful=0, harmful=4, effect=-0.6),
                                     "E1-07": EntryUsefulness(episodes=5, helpful=3, harmful=1, effect=0.3)})
    updated, report = update_hek(hek, [], embedder, summarizer(), usefulness=usefulness)
    assert report.evicted == ["E1-06"] and updated.get("E1-06") is None and updated.get("E1-07") is not None
    assert "E1-06" not in {c for e in updated.level("E2") for c in e.children}
    kept, _ = update_hek(hek, [], embedder, summarizer(), UpdateConfig(evict_harmful=False), usefulness)
    assert kept.get("E1-06") is not None


def test_an_entry_like_nothing_else_gets_its_own_branch(base):
    hek, embedder = base
    lonely = new_entry("zebra quantum saxophone tariff")
    updated, report = update_hek(hek, [lonely], embedder, summarizer())
    parent = updated.parent_of(lonely.id)
    assert parent.children == [lonely.id] and parent.meta.get("promoted")
    assert report.resummarised["E2"] == 0


def test_a_large_change_reclusters_and_keeps_summaries_of_unchanged_clusters(base):
    hek, embedder = base
    many = [new_entry(f"zebra quantum saxophone tariff {i} {'x' * i}") for i in range(5)]
    updated, report = update_hek(hek, many, embedder, summarizer(), UpdateConfig(recluster_fraction=0.3))
    assert report.reclustered
    updated.check_hierarchy()
    assert updated.counts()["E1"] == 15
    # the three themes come out with the same members, so their E2 entries are reused
    themes = {hek.parent_of(f"E1-{i:02d}").id for i in (0, 3, 6)}
    assert themes <= {e.id for e in updated.level("E2")}


def contrastive_file(path: Path, question: str) -> Path:
    return write_trajectories(path, [
        make_trajectory(question, 0, True, queries=[f"{question} exact name"]),
        make_trajectory(question, 1, False, queries=[f"{question} vague"]),
    ])


REFLECTION = json.dumps([{"title": "Search the bridge entity before the last hop", "tags": ["bridge"],
                          "description": "Find the linking entity first, then ask about it.",
                          "thinking": "The success searched the link."}])


def test_update_from_trajectories_writes_a_new_version_and_leaves_the_parent(base, tmp_path):
    hek, embedder = base
    files = {p.name: sha256_file(p) for p in (tmp_path / "hek").iterdir()}
    trajectories = contrastive_file(tmp_path / "new.jsonl", "q7")
    reflector = summarizer()
    from tests.fakes import ScriptedGenerator

    reflector = ScriptedGenerator(lambda prompt, params: REFLECTION if "Question:" in prompt else
                                  summarizer()._script(prompt, params), model_id="reflector-x")
    out, report = update_from_trajectories(tmp_path / "hek", [trajectories], reflector, embedder,
                                           out_dir=tmp_path / "hek-v2", show_progress=False)
    assert {p.name: sha256_file(p) for p in (tmp_path / "hek").iterdir()} == files  # parent untouched
    new = HEK.load(out)
    assert new.manifest["parent"]["hek_version"] == hek.version and len(report.added) == 1
    assert report.groups == {"contrastive": 1}
    assert load_usefulness(out) is not None and HEK.load(tmp_path / "hek").version == hek.version
    # the same trajectories again: the groups are already in the HEK, nothing new is distilled; the CLI's
    # path refuses to write a copy, training's closed loop (require_change=False) gets one
    with pytest.raises(HiexpError, match="nothing to add and nothing to evict"):
        update_from_trajectories(out, [trajectories], reflector, embedder, out_dir=tmp_path / "hek-v3",
                                 show_progress=False)
    assert not (tmp_path / "hek-v3" / "manifest.json").exists()
    again, report2 = update_from_trajectories(out, [trajectories], reflector, embedder, out_dir=tmp_path / "hek-v3",
                                              show_progress=False, require_change=False)
    assert report2.added == [] and HEK.load(again).counts() == new.counts()


KILLED_UPDATE = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, {root!r})
    from hiexp.experience.update import update_from_trajectories
    from hiexp.search.embed import load_embedder
    from tests.fakes import ScriptedGenerator
    reflection = {reflection!r}
    def script(prompt, params):
        if "Question:" in prompt:
            return reflection
        if os.environ.get("KILL_IN_SUMMARY"):
            os.kill(os.getpid(), signal.SIGKILL)  # the reflections are written; die before the new version
        first = prompt.split("Title: ", 1)[1].split("\\n", 1)[0]
        return json.dumps({{"title": "General: " + first, "description": "merged advice"}})
    out, report = update_from_trajectories(sys.argv[1], [sys.argv[2]], ScriptedGenerator(script, "reflector-x"),
                                           load_embedder("hashing-256"), out_dir=sys.argv[3], show_progress=False)
    print(json.dumps({{"added": report.added}}))
""")


def test_kill_9_during_an_update_leaves_the_old_version_and_a_rerun_completes_it(base, tmp_path):
    hek, _ = base
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "update.py"
    script.write_text(KILLED_UPDATE.format(root=root, reflection=REFLECTION))
    trajectories = write_trajectories(tmp_path / "new.jsonl", [
        make_trajectory("q7", 0, True, queries=["check the publication date of the novel"]),
        make_trajectory("q7", 1, False, queries=["vague"]),
    ])
    # a reflection that joins a theme, so that the update has a cluster to re-summarise
    reflection = [{"title": "check the publication date of the novel", "description": "Check the date first."}]
    script.write_text(KILLED_UPDATE.format(root=root, reflection=json.dumps(reflection)))
    before = {p.name: sha256_file(p) for p in (tmp_path / "hek").iterdir()}
    args = [sys.executable, str(script), str(tmp_path / "hek"), str(trajectories), str(tmp_path / "hek-v2")]
    env = {**os.environ, "KILL_IN_SUMMARY": "1"}
    killed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert {p.name: sha256_file(p) for p in (tmp_path / "hek").iterdir()} == before
    assert not (tmp_path / "hek-v2" / "manifest.json").exists()
    env.pop("KILL_IN_SUMMARY")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    new = HEK.load(tmp_path / "hek-v2")
    assert new.manifest["parent"]["hek_version"] == hek.version and new.counts()["E1"] == 11


def test_cli_update_and_usefulness(base, tmp_path, monkeypatch):
    import hiexp.cli.experience as cli_experience
    from hiexp.cli import app
    from tests.fakes import ScriptedGenerator

    hek, _ = base
    trajectories = contrastive_file(tmp_path / "new.jsonl", "q7")
    runner = CliRunner()
    bad = runner.invoke(app, ["update", str(tmp_path / "hek"), str(tmp_path / "missing.jsonl"),
                              "--out", str(tmp_path / "v2")])
    assert "missing.jsonl: no such file" in str(bad.exception) and not (tmp_path / "v2").exists()
    reflector = ScriptedGenerator(lambda prompt, params: REFLECTION if "Question:" in prompt else
                                  summarizer()._script(prompt, params), model_id="reflector-x")
    monkeypatch.setattr(cli_experience, "_load_model", lambda spec, what, backend="auto": reflector)
    result = runner.invoke(app, ["update", str(tmp_path / "hek"), str(trajectories), "--out", str(tmp_path / "v2")])
    assert result.exit_code == 0, result.output
    assert "added 1 E1" in result.output and f"(parent {hek.version})" in result.output
    shown = runner.invoke(app, ["show", str(tmp_path / "v2"), "--json"])
    assert shown.exit_code == 0 and '"usefulness"' in shown.output  # the update's table is shown
    # runs that never saw an entry of v2 say nothing about it: refused, nothing written
    table = runner.invoke(app, ["usefulness", str(tmp_path / "v2"), str(trajectories), "--out",
                                str(tmp_path / "u.json")])
    assert "saw an entry" in str(table.exception) and not (tmp_path / "u.json").exists()
    seen_id = HEK.load(tmp_path / "v2").entries[0].id
    runs = write_trajectories(tmp_path / "runs.jsonl", [
        make_trajectory("q7", 0, True, queries=["a"]), make_trajectory("q7", 1, False, queries=["b"])],
        edit=lambda record: record["turns"].insert(0, {"role": "experience", "text": "x",
                                                        "meta": {"entry_ids": [seen_id]}}) or record)
    table = runner.invoke(app, ["usefulness", str(tmp_path / "v2"), str(runs), "--out", str(tmp_path / "u.json")])
    assert table.exit_code == 0 and "2 episodes of 1 questions" in table.output, table.output
    assert json.loads((tmp_path / "u.json").read_text())["schema"] == 1
