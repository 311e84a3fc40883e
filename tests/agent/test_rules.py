"""The agent's rules as plain functions and as a table: which answer is sent back, and with what."""

from __future__ import annotations

import pytest

from hiexp.agent import AgentConfig
from hiexp.agent.rules import (
    ANSWER_RULES,
    AnswerCase,
    anchored_query,
    names_an_option,
    repeats_question,
    rule_to_apply,
)
from hiexp.scoring.kinds import offered_options


@pytest.mark.parametrize("question, options", [
    ("Who was born first, Lecrae Moore or Gawvi?", ("Lecrae Moore", "Gawvi")),
    ("Which film came out first, What Will You Do When You Catch Me? or School On Fire?",
     ("What Will You Do When You Catch Me", "School On Fire")),
    ("Which aired first, The Clash of Triton or To SquarePants or Not to SquarePants?",
     ("The Clash of Triton", "To SquarePants or Not to SquarePants")),
    ("Where was the director of Jaws born?", None),
    ("Are Tom and Jerry both cats or mice?", None),
])
def test_offered_options(question, options):
    assert offered_options(question) == options


def test_names_an_option_matches_whole_words_after_normalisation():
    assert names_an_option("Berlioz", ("Hector Berlioz", "Donizetti"))
    assert names_an_option("the film Gang Bullets.", ("Solange", "Gang Bullets"))
    assert not names_an_option("Yes", ("Yesterday", "Today"))
    assert not names_an_option("Steven Spielberg", ("Jaws", "Duel"))
    assert not names_an_option(None, ("Jaws", "Duel"))


@pytest.mark.parametrize("answer, question, echoed", [
    ("Jack", "What is the first name of Jack Benny Binion's father?", True),
    ("Binion's father", "What is the first name of Jack Benny Binion's father?", True),
    ("the Dog behaviorist.", "Daddy was integral to the work of what Mexican-American dog behaviorist?", True),
    ("Lester", "What is the first name of Jack Benny Binion's father?", False),
    ("Jack Lester", "What is the first name of Jack Benny Binion's father?", False),
    ("Yes", "Is Jaws a film?", False),
    ("Jaws", "Was Jaws or Duel made first?", False),  # a choice inside the question
    ("the", "What is the name?", False),
    (None, "What is the name?", False),
])
def test_repeats_question(answer, question, echoed):
    assert repeats_question(answer, question) is echoed


def test_anchored_query_adds_the_question_words_the_query_left_out():
    question = 'Which Canadian rock band released a song called "Counterparts" and had a drummer in the Hall of Fame?'
    assert (anchored_query("Canadian rock band drummer Hall of Fame", question)
            == "Canadian rock band drummer Hall of Fame released song called Counterparts")
    assert anchored_query("  Jaws director ", "Who directed Jaws?") == "Jaws director directed"
    assert anchored_query(question, question) == question  # a verbatim query is left as it is
    assert anchored_query("Jaws", "Is it Jaws?") == "Jaws"
    assert anchored_query("St. John's", "Who founded St. John's College, Jaws' home?") == "St. John's founded College Jaws home"


def case(question="Where was the director of Jaws born?", answer="Amity", searches=1, **kw):
    kw = {"has_retriever": True, "format_searches": True, "format_checks_options": True, **kw}
    return AnswerCase(question=question, answer=answer, searches=searches, **kw)


def test_every_rule_names_a_config_switch_and_a_distinct_correction():
    config = AgentConfig()
    assert all(hasattr(config, rule.switch) for rule in ANSWER_RULES)
    assert len({rule.error for rule in ANSWER_RULES}) == len(ANSWER_RULES)


def test_rules_fire_in_table_order_once_each_and_only_when_switched_on():
    config = AgentConfig(search_before_answer=True, answer_from_options=True, answer_beyond_question=True)
    early = case(question="Who was born first, Lecrae Moore or Gawvi?", answer="Spielberg", searches=0)
    assert rule_to_apply(config, early, set()).error == "answer_without_search"
    assert rule_to_apply(config, early, {"answer_without_search"}).error == "not_an_option"
    assert rule_to_apply(config, early, {"answer_without_search", "not_an_option"}) is None
    off = AgentConfig(search_before_answer=False, answer_from_options=False, answer_beyond_question=False)
    assert rule_to_apply(off, early, set()) is None
    echo = case(question="What is the first name of Jack Benny Binion's father?", answer="Jack")
    assert rule_to_apply(config, echo, set()).error == "echoed_question"
    assert rule_to_apply(config, case(), set()) is None  # a searched, new answer to an open question


def test_without_a_retriever_no_rule_asks_for_a_search_or_a_new_answer():
    config = AgentConfig(search_before_answer=True, answer_beyond_question=True)
    echo = case(question="What is the first name of Jack Benny Binion's father?", answer="Jack", searches=0,
                has_retriever=False)
    assert rule_to_apply(config, echo, set()) is None
