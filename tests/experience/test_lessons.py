"""Checked lessons: every field the reflector fills is checked against the attempts, and the entry is
composed from the checked fields."""

from __future__ import annotations

import json

import pytest

from hiexp.agent.config import AgentConfig
from hiexp.agent.loop import SearchAgent
from hiexp.contracts.example import Example
from hiexp.experience.build import BuildConfig, build_hek
from hiexp.experience.distill import DistillConfig, distill, group_trajectories
from hiexp.experience.lessons import check_fields, compose, pick_pair, trap_of
from hiexp.experience.schema import Entry, ReplyParseError
from hiexp.search.embed import load_embedder
from tests.agent.conftest import KeywordRetriever
from tests.fakes import ScriptedGenerator

JAWS = Example("q1", "Where was the director of Jaws born?", ["Cincinnati"], {"dataset": "toy"})


def policy(prompt, params, careless=False):
    """Searches twice and answers right; ``careless``: answers wrong after one search."""
    part = prompt.rsplit("<|im_start|>user", 1)[1]
    infos = part.count("<information>")
    if infos == 0:
        return "<think>Who directed Jaws?</think><search>Jaws director</search>"
    if infos == 1 and not careless:
        return "<think>Spielberg.</think><search>Steven Spielberg born</search>"
    return "<think>Done.</think><answer>" + ("Paris" if careless else "Cincinnati") + "</answer>"


@pytest.fixture
def group():
    careful = SearchAgent(ScriptedGenerator(policy), KeywordRetriever(), AgentConfig())
    careless = SearchAgent(ScriptedGenerator(lambda p, s: policy(p, s, careless=True)), KeywordRetriever(),
                           AgentConfig())
    trajectories = careful.run_episodes([(JAWS, 0)]) + careless.run_episodes([(JAWS, 1)])
    assert [t.rewards["cem"] for t in trajectories] == [1.0, 0.0]
    (found,) = group_trajectories(trajectories, DistillConfig())
    return found


GOOD = {"type": "bridge", "bridge_entity": "Steven Spielberg", "trap": "stopped early"}


def test_a_form_that_matches_the_attempts_is_accepted(group):
    success, failure = pick_pair(group)
    fields = check_fields(dict(GOOD), group, success, failure)
    assert fields.type == "bridge" and fields.bridge_entity == "Steven Spielberg" and fields.trap == "stopped early"
    assert (fields.first_query, fields.second_query) == ("Jaws director", "Steven Spielberg born")  # from the record
    assert "stopped early" in trap_of(failure, success, group)


@pytest.mark.parametrize(("change", "message"), [
    ({"bridge_entity": "Martin Scorsese"}, "in no passage the successful attempt read"),
    ({"bridge_entity": "Jaws"}, "not the question's"),
    ({"bridge_entity": "Cincinnati"}, "not the question's or the answer"),
    ({"bridge_entity": ""}, "needs the name"),
    ({"type": "yes/no"}, '"bridge" or "other"'),
    ({"type": "comparison"}, '"bridge" or "other"'),
    ({"type": "puzzle"}, "must be one of"),
    ({"trap": "no answer"}, "does not match the failed attempt"),
    ({"trap": "guessing"}, "must be one of"),
])
def test_a_field_that_does_not_match_is_refused_with_the_reason(group, change, message):
    success, failure = pick_pair(group)
    with pytest.raises(ReplyParseError, match=message):
        check_fields({**GOOD, **change}, group, success, failure)


def test_the_question_wording_decides_yes_no_and_comparison():
    from hiexp.experience.lessons import rule_type

    assert rule_type("Are both X and Y films?") == "yes/no"
    assert rule_type("Who was born first, Ann Smith or Bob Jones?") == "comparison"
    assert rule_type("Where was the director of Jaws born?") == "open"


def test_the_entry_is_composed_from_the_checked_fields_without_the_questions_facts(group):
    success, failure = pick_pair(group)
    title, description = compose(check_fields(dict(GOOD), group, success, failure), group, success)
    text = f"{title} {description}"
    assert "Cincinnati" not in text and "Jaws" not in text and "Spielberg" not in text
    assert "X director" in text and "Z born" in text  # the queries, with placeholders
    assert "Do not answer after the first search" in description  # the checked trap's advice


def test_distill_checked_writes_composed_entries_and_build_makes_type_plans(group, tmp_path):
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in group.successes + group.failures))
    wrong_first = json.dumps({**GOOD, "bridge_entity": "Martin Scorsese"})
    reflector = ScriptedGenerator([wrong_first, json.dumps(GOOD)], model_id="reflector")
    out = tmp_path / "e1.jsonl"
    summary = distill([rollouts], out, reflector, DistillConfig(form="checked", use_cache=False), show_progress=False)
    assert summary.groups_ok == 1 and summary.entries_written == 1
    assert "in no passage" in reflector.prompts[1]  # the retry showed the failed check
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    entry = Entry.from_dict(record)
    assert entry.meta["form"] == "checked" and entry.meta["fields"]["bridge_entity"] == "Steven Spielberg"
    assert entry.case is not None and entry.case.answer == "Cincinnati"
    hek = build_hek([out], None, load_embedder("hashing-64"), None, BuildConfig(), show_progress=False)
    (plan,) = hek.level("E2")
    assert plan.title == "Search plan for bridge questions" and plan.children == [entry.id]
    assert "1 of 1 training questions" in plan.description
    (top,) = hek.level("E3")
    assert top.children == [plan.id]
    hek.check_hierarchy()
