"""``hiexp.components``: the one place names become a generator, a retriever and an experience hook."""

from __future__ import annotations

import pytest

from hiexp.components import make_experience_hook, make_generator, make_retriever
from hiexp.errors import HiexpError


def test_a_dataset_names_its_own_corpus_and_the_retriever_is_shared():
    first = make_retriever(dataset="hotpotqa")
    assert make_retriever(dataset="hotpotqa") is first
    assert first.search(["Who directed Jaws?"], k=2)[0]


def test_an_index_wins_over_the_dataset(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "p1", "title": "Jaws", "contents": "Jaws is a film by Steven Spielberg."}\n')
    retriever = make_retriever(corpus, dataset="hotpotqa")
    assert [p.id for p in retriever.search(["Jaws"], k=3)[0]] == ["p1"]
    with pytest.raises(HiexpError, match="give an index"):
        make_retriever()


def test_no_hek_is_no_hook_and_a_shipped_name_is_one():
    assert make_experience_hook(None) is None and make_experience_hook("none") is None
    hook = make_experience_hook("demo")  # the embedder named in its manifest; worked cases, no lessons
    assert hook.version and hook.for_questions(["Who is older, X or Y?"])[0].cases
    paper = make_experience_hook("demo-paper")
    assert paper.version and paper.for_questions(["Who is older, X or Y?"])[0].text


def test_auto_means_transformers_for_a_model_directory_and_llama_cpp_for_a_gguf_file(tmp_path):
    assert type(make_generator("tiny-random")).__name__ == "TransformersGenerator"
    with pytest.raises(HiexpError, match="no such GGUF file"):
        make_generator(str(tmp_path / "model.gguf"))
