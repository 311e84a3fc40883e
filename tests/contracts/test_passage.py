"""Rendered passages read back: what distillation and the worked cases take from an observation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hiexp.contracts.passage import Passage, parse_passages, render_passages


def test_titles_with_parentheses_and_texts_over_several_lines_come_back_whole():
    passages = [Passage("1", "Jaws (film)", "Jaws is a 1975 film (directed by Spielberg).\nIt was a hit."),
                Passage("2", "Duel", "A 1971 film.")]
    observation = "\n\n<information>" + render_passages(passages) + "</information>\n\n"
    assert parse_passages(observation) == [
        ("Jaws (film)", "Jaws is a 1975 film (directed by Spielberg).\nIt was a hit."),
        ("Duel", "A 1971 film.</information>"),  # the format's tags are the caller's to strip
    ]
    assert parse_passages("no passages here") == []


words = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters=" .,'-"), min_size=1,
                max_size=30).map(str.strip).filter(bool)


@given(st.lists(st.tuples(words, words, st.booleans()), min_size=1, max_size=5))
def test_render_then_parse_is_the_identity(rows):
    passages = [Passage(str(i), f"{title} (film)" if paren else title, text)
                for i, (title, text, paren) in enumerate(rows)]
    assert parse_passages(render_passages(passages)) == [(p.title, p.text) for p in passages]
