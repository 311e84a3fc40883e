"""``hiexp index`` / ``hiexp search`` through the real entry point (errors become one line, exit 2)."""

from __future__ import annotations

import json
import sys

import pytest

from hiexp.cli import main


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["hiexp", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def test_index_then_search(tmp_path, corpus_file, monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "index", corpus_file, "--out", tmp_path / "idx")
    assert code == 0 and out.startswith("indexed 6 passages in ")
    code, out, _ = run(monkeypatch, capsys, "search", tmp_path / "idx", "queen of Lotharingia", "--k", "2")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "Doc 1(Title: Teutberga) Teutberga was a queen of Lotharingia by marriage to Lothair II."
    assert lines[1].startswith("Doc 2(Title: Lothair II) ")


def test_search_json_and_no_results(index_dir, monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "search", index_dir, "spices", "the of", "--k", "1", "--json")
    assert code == 0
    first, second = (json.loads(line) for line in out.strip().splitlines())
    assert first["query"] == "spices" and first["passages"][0]["id"] == "p6"
    assert second["passages"] == []
    code, out, _ = run(monkeypatch, capsys, "search", index_dir, "the and of")
    assert code == 0 and out.strip().startswith("no results")


def test_search_a_corpus_file_directly(corpus_file, monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "search", corpus_file, "lobbyist", "--k", "1")
    assert code == 0 and out.startswith("Doc 1(Title: Evan Morris)")


def test_errors_are_one_line(tmp_path, write_jsonl, monkeypatch, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "1", "contents": "alpha"}, "{broken"])
    code, _, err = run(monkeypatch, capsys, "index", bad, "--out", tmp_path / "idx")
    assert code == 2 and "bad.jsonl:2: malformed JSON" in err and "Traceback" not in err
    assert not (tmp_path / "idx").exists()
    with pytest.warns(UserWarning, match="bad.jsonl:2"):
        code, out, _ = run(monkeypatch, capsys, "index", bad, "--out", tmp_path / "idx", "--skip-bad")
    assert code == 0 and out.startswith("indexed 1 passages")

    (tmp_path / "empty.jsonl").write_text("\n")
    code, _, err = run(monkeypatch, capsys, "index", tmp_path / "empty.jsonl", "--out", tmp_path / "e")
    assert code == 2 and "corpus is empty" in err and not (tmp_path / "e").exists()

    code, _, err = run(monkeypatch, capsys, "search", tmp_path / "missing-index", "query")
    assert code == 2 and "hiexp index CORPUS --out DIR" in err
