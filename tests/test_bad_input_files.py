"""Bad input files (issue 12, classes 5 and 7): every command answers in one line, never a traceback.

Each kind of broken file is fed to every command that reads one; the command must raise ``HiexpError``
(``hiexp`` prints it as one ``error:`` line and exits 2) before loading any model, and must not write
anything. A UTF-8 BOM is not an error.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hiexp.cli import app, error_line
from hiexp.errors import HiexpError
from hiexp.io import MAX_LINE_BYTES

BROKEN = {
    "binary": b"\x00\x01\x02\xff\xfe\x00" * 50,
    "invalid-utf8": b'{"question": "caf\xe9", "answer": "x"}\n',
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "not-an-object": b"[1, 2, 3]\n",
    "truncated": b'{"id": "a", "question": "Who',
    "empty-lines-only": b"\n\n\n",
}


def commands(path: Path, out: Path) -> dict[str, list[str]]:
    """Every command that reads a data-like file, pointed at ``path``; outputs go under ``out``."""
    return {
        "score": ["score", str(path), "--data", "hotpotqa"],
        "distill": ["distill", str(path), "--out", str(out / "e1.jsonl")],
        "build": ["build", str(path), "--out", str(out / "hek"), "--embedder", "hashing-64"],
        "index": ["index", str(path), "--out", str(out / "index")],
        "eval": ["eval", "--data", str(path), "--method", "closed-book", "--out", str(out / "eval"),
                 "--model", "tiny-random"],
        "rollout": ["rollout", "--data", str(path), "--out", str(out / "t.jsonl"), "--model", "tiny-random"],
    }


@pytest.fixture(autouse=True)
def no_models(monkeypatch):
    """A command that gets as far as loading a model has already failed this test."""
    import hiexp.llm
    import hiexp.search.embed

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(hiexp.llm, "load_generator", refuse)
    monkeypatch.setattr(hiexp.search.embed, "load_embedder", refuse)


def check(args: list[str], out: Path) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0, f"{args[0]} accepted a broken file: {result.output}"
    assert isinstance(result.exception, HiexpError), f"{args[0]}: {type(result.exception).__name__}: {result.exception}"
    line = error_line(result.exception, args)
    assert "\n" not in line
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert written == [], f"{args[0]} wrote {written}"
    return line


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("command", ["score", "distill", "build", "index", "eval", "rollout"])
def test_broken_files_get_one_line(tmp_path, kind, command):
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(BROKEN[kind])
    line = check(commands(path, tmp_path / "out")[command], tmp_path / "out")
    assert str(path) in line


@pytest.mark.parametrize("command", ["score", "distill", "build", "index", "eval", "rollout"])
def test_a_gz_that_is_not_gzip_and_a_damaged_gzip(tmp_path, command):
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_bytes(b'{"id": "1"}\n')
    assert "not a gzip file" in check(commands(fake, tmp_path / "out")[command], tmp_path / "out")
    damaged = tmp_path / "damaged.jsonl.gz"
    lines = "".join(json.dumps({"id": str(i), "question": f"q{i * 7919 % 10007}", "answer": "a"}) + "\n"
                    for i in range(3000))
    packed = gzip.compress(lines.encode())
    damaged.write_bytes(packed[: len(packed) // 2])  # a download cut in the middle
    assert "gzip" in check(commands(damaged, tmp_path / "out")[command], tmp_path / "out")


@pytest.mark.parametrize("command", ["score", "distill", "build", "index", "eval", "rollout"])
def test_a_directory_where_a_file_is_expected(tmp_path, command):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "directory" in check(commands(folder, tmp_path / "out")[command], tmp_path / "out")


@pytest.mark.parametrize("command", ["score", "index", "eval"])
def test_a_line_too_long_to_be_a_record_is_refused_before_it_is_parsed(tmp_path, command):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"id": "1", "question": "')
        handle.write(b"x" * (MAX_LINE_BYTES + 10))
        handle.write(b'", "answer": "a"}\n')
    assert "longer than" in check(commands(path, tmp_path / "out")[command], tmp_path / "out")


def test_skip_bad_is_suggested_only_by_commands_that_have_it(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "1"}\nnot json\n')
    from hiexp.io import InputError, read_jsonl

    with pytest.raises(InputError) as info:
        read_jsonl(path)
    assert "--skip-bad" in error_line(info.value, ["index", str(path), "--out", "x"])
    assert "--skip-bad" not in error_line(info.value, ["eval", "--data", str(path)])
    assert "--skip-bad" in error_line(info.value, ["--http-timeout", "5", "score", str(path)])


def test_a_utf8_bom_is_read_like_any_file(tmp_path):
    from hiexp.data import load_dataset
    from hiexp.data.corpus import load_corpus
    from hiexp.io import read_json, read_jsonl

    record = {"id": "1", "question": "Who?", "answer": "Ann"}
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps(record).encode() + b"\n")
    assert read_jsonl(jsonl) == [record]
    assert load_dataset(jsonl)[0].question == "Who?"
    whole = tmp_path / "bom.json"
    whole.write_bytes(b"\xef\xbb\xbf" + json.dumps([record]).encode())
    assert read_json(whole) == [record]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "p", "title": "T", "text": "x"}).encode() + b"\n")
    assert load_corpus(corpus)[0].title == "T"


def test_a_question_too_long_to_be_one_is_refused_in_one_line(tmp_path):
    """A 1 MB "question" (well under the line limit) stops at reading, not deep inside tokenisation."""
    from hiexp.data import load_dataset

    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"id": "1", "question": "why " * 250_000, "answer": "a"}) + "\n")
    with pytest.raises(HiexpError, match=r"long\.jsonl:1: a question of 999,999 characters"):  # stripped
        load_dataset(path)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=400),
                         st.lists(st.text(max_size=40), max_size=8).map(lambda lines: "\n".join(lines).encode()),
                         st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                                      lambda inner: st.lists(inner, max_size=3)
                                      | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                                      max_leaves=12).map(lambda v: (json.dumps(v) + "\n").encode())))
def test_any_bytes_give_records_or_one_input_error(tmp_path, content):
    """Whatever a file holds, the reader yields JSON objects or raises ``InputError``: never anything else."""
    from hiexp.data import load_dataset
    from hiexp.io import InputError, read_jsonl

    path = tmp_path / "any.jsonl"
    path.write_bytes(content)
    try:
        assert all(isinstance(record, dict) for record in read_jsonl(path))
    except InputError as exc:
        assert "\n" not in str(exc)
    try:
        load_dataset(path)
    except HiexpError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("rewards", ['"high"', "[1, 0]", '{"cem": "yes"}', "null"])
def test_a_trajectory_whose_rewards_are_not_numbers_is_named(tmp_path, rewards):
    from tests.experience.experience_fixtures import make_trajectory, write_trajectories

    path = write_trajectories(tmp_path / "t.jsonl", [make_trajectory("q1", 0, True)],
                              edit=lambda record: record.update(rewards=json.loads(rewards)))
    out = tmp_path / "out"
    line = check(["distill", str(path), "--out", str(out / "e1.jsonl")], out)
    assert ("no 'cem' reward" in line or "rewards must map names to finite numbers" in line) and "t.jsonl:1" in line


def test_a_key_with_a_line_break_stays_on_one_line_of_the_error(tmp_path):
    """Found by the property above: a record whose only key is a newline named it raw, on two lines."""
    from hiexp.data import load_dataset
    from hiexp.io import InputError

    path = tmp_path / "odd.jsonl"
    path.write_bytes(b'{"\\n": null}\n')
    with pytest.raises(InputError) as info:
        load_dataset(path)
    assert "\n" not in str(info.value) and "'\\n'" in str(info.value)


@pytest.mark.parametrize("edit,why", [
    ({"turns": "text"}, "turns must be a list"), ({"turns": [{"role": 1, "text": "x"}]}, "role and a text"),
    ({"rewards": {"cem": "1"}}, "rewards must map"), ({"rewards": {"cem": float("nan")}}, "rewards must map"),
    ({"sample": "0"}, "sample must be"), ({"queries": [1]}, "queries must be"), ({"num_searches": 1.5}, "num_searches"),
])
def test_trajectory_fields_of_the_wrong_kind_are_named(edit, why):
    from hiexp.contracts.trajectory import Trajectory
    from tests.experience.experience_fixtures import make_trajectory

    record = {**make_trajectory("q1", 0, True).to_dict(), **edit}
    with pytest.raises(HiexpError, match=why):
        Trajectory.from_dict(record)
