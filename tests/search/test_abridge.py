"""Passages cut to a word budget around the search terms."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hiexp.search.abridge import ELLIPSIS, abridge, search_terms

TEXT = ("Alan Smith is an English drummer. He grew up in Leeds. He played in many bands. "
        "In 1990 he joined the band Rush as its drummer. He now lives in Toronto.")


def test_a_passage_within_the_budget_is_unchanged():
    assert abridge(TEXT, search_terms("drummer Rush"), 100) == TEXT
    assert abridge(TEXT, search_terms("drummer Rush"), 0) == TEXT


def test_the_first_sentence_and_the_matching_ones_are_kept_in_order():
    cut = abridge(TEXT, search_terms("which band did Alan Smith join", "Alan Smith band"), 16)
    assert cut == "Alan Smith is an English drummer. ... In 1990 he joined the band Rush as its drummer. ..."


def test_a_first_sentence_over_the_budget_is_cut_to_it():
    assert abridge(TEXT, search_terms("Rush"), 3) == "Alan Smith is " + ELLIPSIS


def test_no_matching_sentence_keeps_the_first_one_only():
    assert abridge(TEXT, search_terms("volcano"), 10) == "Alan Smith is an English drummer. ..."


sentence = st.text(alphabet="abcdefgh ", min_size=1, max_size=40).map(lambda s: s.strip().capitalize() or "A")


@settings(max_examples=200, deadline=None)
@example(["A  a a"], 2, "")  # a first sentence over the budget, with a double space
@given(st.lists(sentence, min_size=1, max_size=12), st.integers(1, 40), st.text(alphabet="abcdefgh ", max_size=30))
def test_the_cut_fits_the_budget_and_keeps_whole_sentences_in_order(sentences, budget, query):
    text = " ".join(s + "." for s in sentences)
    cut = abridge(text, search_terms(query), budget)
    if len(text.split()) <= budget:
        assert cut == text
        return
    kept = [part for part in cut.split(f" {ELLIPSIS}") if part.strip() and part.strip() != ELLIPSIS]
    assert sum(len(part.split()) for part in kept) <= budget
    # every kept piece is in the passage (spacing aside: a cut first sentence is rejoined), in order
    flat = " ".join(text.split())
    position = 0
    for part in kept:
        at = flat.find(" ".join(part.removesuffix(ELLIPSIS).split()), position)
        assert at >= position
        position = at
