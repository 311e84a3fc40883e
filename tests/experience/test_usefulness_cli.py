"""``hiexp usefulness`` loses nothing and reports nothing it did not measure (issue 33): it never replaces a
file that is not a usefulness table, refuses runs that carry no reward or never saw the HEK, counts a file
given twice once, and a table with bad values stops with a message, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hiexp.cli import app
from hiexp.errors import HiexpError
from hiexp.experience.build import BuildConfig, build_hek
from hiexp.experience.hek import HEK
from hiexp.search.embed import load_embedder
from tests.experience.experience_fixtures import make_trajectory, write_trajectories
from tests.experience.test_build_hek import e1_entries, summarizer

runner = CliRunner()


@pytest.fixture
def hek(tmp_path) -> HEK:
    return build_hek(e1_entries(), tmp_path / "hek", load_embedder("hashing-256"), summarizer(),
                     BuildConfig(thresholds=(1.2, 1.5)), show_progress=False)


def runs_seeing(path: Path, entry_id: str) -> Path:
    """Two episodes of one question, one of which saw ``entry_id``."""
    def saw(record):
        if record["sample"] == 0:
            record["turns"].insert(0, {"role": "experience", "text": "x", "meta": {"entry_ids": [entry_id]}})

    return write_trajectories(path, [make_trajectory("q1", 0, True), make_trajectory("q1", 1, False)], edit=saw)


def usefulness(*args: str):
    return runner.invoke(app, ["usefulness", *args])


def refused(result, text: str) -> bool:
    """The command stopped with hiexp's own error (one line, exit 2 from the shell) saying ``text``."""
    return isinstance(result.exception, HiexpError) and text in str(result.exception)


@pytest.mark.parametrize("name", ["notes.txt", "hek/entries.jsonl", "hek/manifest.json", "data.json"])
def test_an_out_that_is_not_a_usefulness_table_is_never_replaced(tmp_path, hek, name):
    runs = runs_seeing(tmp_path / "runs.jsonl", hek.entries[0].id)
    target = tmp_path / name
    if not target.exists():
        target.write_text('{"mine": true}\n')
    before = target.read_bytes()
    result = usefulness(str(tmp_path / "hek"), str(runs), "--out", str(target))
    # a HEK's own files are refused by the place rule (a HEK changes only whole), before their kind is read
    assert refused(result, "inside the HEK" if name.startswith("hek/") else "not a usefulness table")
    assert target.read_bytes() == before
    HEK.load(tmp_path / "hek")  # still loads


def test_a_directory_out_is_refused(tmp_path, hek):
    runs = runs_seeing(tmp_path / "runs.jsonl", hek.entries[0].id)
    result = usefulness(str(tmp_path / "hek"), str(runs), "--out", str(tmp_path))
    assert refused(result, "is a directory")


@pytest.mark.parametrize("content", ["", '{"id": "q1", "question": "?", "golden_answers": ["x"]}\n'])
def test_files_without_rewards_are_refused_and_the_old_table_stays(tmp_path, hek, content):
    good = runs_seeing(tmp_path / "runs.jsonl", hek.entries[0].id)
    assert usefulness(str(tmp_path / "hek"), str(good)).exit_code == 0
    table = tmp_path / "hek" / "usefulness.json"
    before = table.read_bytes()
    empty = tmp_path / "other.jsonl"
    empty.write_text(content)
    result = usefulness(str(tmp_path / "hek"), str(empty))
    assert refused(result, "has a 'cem' reward")
    assert table.read_bytes() == before


def test_a_bogus_reward_key_is_refused(tmp_path, hek):
    runs = runs_seeing(tmp_path / "runs.jsonl", hek.entries[0].id)
    result = usefulness(str(tmp_path / "hek"), str(runs), "--reward-key", "bogus")
    assert refused(result, "unknown --reward-key 'bogus'")


def test_runs_of_another_hek_are_refused(tmp_path, hek):
    runs = runs_seeing(tmp_path / "runs.jsonl", "E1-not-in-this-hek")
    result = usefulness(str(tmp_path / "hek"), str(runs))
    assert refused(result, "saw an entry of HEK")
    assert not (tmp_path / "hek" / "usefulness.json").exists()


def test_the_same_file_twice_counts_once(tmp_path, hek):
    runs = runs_seeing(tmp_path / "runs.jsonl", hek.entries[0].id)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(runs.read_bytes())
    result = usefulness(str(tmp_path / "hek"), str(runs), str(runs), str(copy))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "hek" / "usefulness.json").read_text())["episodes"] == 2


@pytest.mark.parametrize("field,value", [("effect", "high"), ("episodes", -1), ("episodes", 1.5),
                                         ("reward_with", None), ("effect", float("nan")), ("helpful", True)])
def test_a_table_with_a_bad_value_stops_with_a_message(tmp_path, hek, field, value):
    runs = runs_seeing(tmp_path / "runs.jsonl", hek.entries[0].id)
    assert usefulness(str(tmp_path / "hek"), str(runs)).exit_code == 0
    path = tmp_path / "hek" / "usefulness.json"
    data = json.loads(path.read_text())
    next(iter(data["entries"].values()))[field] = value
    path.write_text(json.dumps(data))
    shown = runner.invoke(app, ["show", str(tmp_path / "hek")])
    assert refused(shown, f".{field}: ")  # the field's path in the table, then what it must hold


@pytest.mark.parametrize("field,value", [("episodes", "many"), ("questions", -2), ("sources", "runs.jsonl"),
                                         ("sources", [{"path": 3}]), ("hek_version", 5), ("entries", [])])
def test_a_table_with_a_bad_top_level_field_stops_with_a_message(tmp_path, hek, field, value):
    runs = runs_seeing(tmp_path / "runs.jsonl", hek.entries[0].id)
    assert usefulness(str(tmp_path / "hek"), str(runs)).exit_code == 0
    path = tmp_path / "hek" / "usefulness.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    shown = runner.invoke(app, ["show", str(tmp_path / "hek")])
    assert isinstance(shown.exception, HiexpError) and "usefulness" in str(shown.exception)
    assert "\n" not in str(shown.exception)
