"""Worked cases: cut from verified successes, kept in a HEK, shown in the agent's own format, never the
episode's own question's."""

from __future__ import annotations

import json

import pytest

from hiexp.agent.config import AgentConfig
from hiexp.agent.formats import FORMAT_CLASSES
from hiexp.agent.loop import SearchAgent
from hiexp.contracts.example import Example
from hiexp.errors import HiexpError
from hiexp.experience.build import build_case_hek
from hiexp.experience.cases import CaseConfig, best_case, case_from_trajectory, cases_from_trajectories
from hiexp.experience.hek import HEK
from hiexp.experience.retrieve import ExperienceRetriever, load_experience_hook
from hiexp.experience.usefulness import injected_entry_ids
from hiexp.search.embed import load_embedder
from tests.agent.conftest import KeywordRetriever
from tests.fakes import ScriptedGenerator


def policy(prompt, params):
    """Two searches for the Jaws question, one for anything else, right answers."""
    part = prompt.rsplit("<|im_start|>user", 1)[1]
    if "France" in part:
        if "<information>" not in part:
            return "<think>Capital of France.</think><search>France capital</search>"
        return "<think>Paris is the capital.</think><answer>Paris</answer>"
    infos = part.count("<information>")
    if infos == 0:
        return "<think>Who directed Jaws?</think><search>Jaws director</search>"
    if infos == 1:
        return "<think>Spielberg directed it.</think><search>Steven Spielberg born</search>"
    return "<think>He was born in Cincinnati.</think><answer>Cincinnati</answer>"


JAWS = Example("q1", "Where was the director of Jaws born?", ["Cincinnati"], {"dataset": "toy"})
FRANCE = Example("q2", "What is the capital of France?", ["Paris"], {"dataset": "toy"})
WRONG = Example("q3", "What is the capital of Spain?", ["Madrid"], {"dataset": "toy"})


@pytest.fixture
def rollouts(tmp_path):
    agent = SearchAgent(ScriptedGenerator(policy), KeywordRetriever(), AgentConfig())
    trajectories = agent.run([JAWS, FRANCE, WRONG])
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))
    return path, trajectories


@pytest.fixture
def embedder():
    return load_embedder("hashing-64")


def test_a_verified_success_becomes_a_case_of_its_searches(rollouts):
    _, (jaws, france, wrong) = rollouts
    case = case_from_trajectory(jaws)
    assert case is not None and case.answer == "Cincinnati" and case.trajectory_id == jaws.id
    assert [s.query for s in case.steps] == ["Jaws director", "Steven Spielberg born"]
    assert case.steps[0].thought == "Who directed Jaws?"
    assert case.steps[0].docs[0].title == "Jaws (film)"
    assert len(case.steps[0].docs) <= CaseConfig().docs_per_search
    assert case.final_thought == "He was born in Cincinnati."
    assert case_from_trajectory(wrong) is None  # a failure is no case
    assert case_from_trajectory(jaws, CaseConfig(reward_key="no-such-reward")) is None


def test_the_best_case_of_a_question_is_a_multi_search_success(rollouts):
    _, (jaws, france, _) = rollouts
    one_search = france.to_dict() | {"question_id": jaws.question_id, "id": "other"}
    assert best_case([one_search, jaws]).trajectory_id == jaws.id


def test_a_case_hek_is_built_from_rollouts_without_a_model(rollouts, embedder, tmp_path):
    path, _ = rollouts
    hek = build_case_hek([path], tmp_path / "hek", embedder, per_episode=1)
    loaded = HEK.load(tmp_path / "hek")
    assert loaded.version == hek.version
    assert [e.title for e in loaded.entries] == [JAWS.question, FRANCE.question]  # the failure left no case
    assert all(e.is_case_only and e.case is not None for e in loaded.entries)
    assert loaded.manifest["cases"]["per_episode"] == 1 and loaded.manifest["cases"]["cases"] == 2
    with pytest.raises(HiexpError, match="no verified success"):
        build_case_hek([path], tmp_path / "none", embedder, CaseConfig(reward_key="missing"))


def test_an_episode_never_sees_the_case_of_its_own_question(rollouts, embedder, tmp_path):
    path, _ = rollouts
    build_case_hek([path], tmp_path / "hek", embedder)
    hook = load_experience_hook(tmp_path / "hek", embedder=embedder, cases=2)
    shouted = "  WHERE was the director of JAWS born?  "  # the same question, spelt differently
    for question, other in ((JAWS.question, FRANCE.question), (shouted, FRANCE.question),
                            (FRANCE.question, JAWS.question)):
        (injection,) = hook.for_questions([question])
        assert [c["question"] for c in injection.cases] == [other]
    (injection,) = hook.for_questions([WRONG.question])
    assert len(injection.cases) == 2
    assert injection.cases_meta["stage"] == "cases" and len(injection.cases_meta["entry_ids"]) == 2


def test_cases_are_preferred_when_they_searched_more_than_once(rollouts, embedder, tmp_path):
    path, _ = rollouts
    hek = build_case_hek([path], None, embedder)
    one = ExperienceRetriever(hek, embedder, cases=1, prefer_multi_search=True)
    (injection,) = one.for_questions(["What is the capital of Spain?"])
    assert injection.cases[0]["question"] == JAWS.question  # two searches, though France is the closer question
    plain = ExperienceRetriever(hek, embedder, cases=1, prefer_multi_search=False)
    (injection,) = plain.for_questions(["What is the capital of Spain?"])
    assert injection.cases[0]["question"] == FRANCE.question


@pytest.mark.parametrize("fmt", ["search_r1", "tool_call"])
def test_cases_stand_in_the_prompt_as_worked_examples_of_the_format(rollouts, fmt):
    _, (jaws, _, _) = rollouts
    case = case_from_trajectory(jaws).model_dump()
    form = FORMAT_CLASSES[fmt](AgentConfig(format=fmt))
    plain = "".join(s.text for s in form.prompt_spans("Q?"))
    spans = form.prompt_spans("Q?", cases=[case], cases_meta={"entry_ids": ["C-1"]})
    text = "".join(s.text for s in spans)
    (shown,) = [s for s in spans if s.role == "experience"]
    assert shown.meta == {"entry_ids": ["C-1"], "where": "example"}
    assert "Jaws director" in shown.text and "Cincinnati" in shown.text
    assert ("<search>Jaws director</search>" if fmt == "search_r1" else '"query": "Jaws director"') in shown.text
    fixed = form.templates["example"]
    assert fixed in plain and fixed not in text  # in place of the fixed example
    beside = "".join(s.text for s in form.prompt_spans("Q?", cases=[case], replace_example=False))
    assert fixed in beside and beside.index(fixed) < beside.index("Jaws director")
    assert text.replace(shown.text, "") == plain.replace(fixed, "")  # nothing else moved


def test_the_agent_shows_cases_and_records_them_for_usefulness(rollouts, embedder, tmp_path):
    path, _ = rollouts
    build_case_hek([path], tmp_path / "hek", embedder)
    hook = load_experience_hook(tmp_path / "hek", embedder=embedder)  # per_episode from the manifest
    generator = ScriptedGenerator(policy)
    (traj,) = SearchAgent(generator, KeywordRetriever(), AgentConfig(), hook=hook).run([JAWS])
    shown = [t for t in traj.turns if t.role == "experience"]
    assert len(shown) == 1 and shown[0].meta["where"] == "example"
    assert "What is the capital of France?" in shown[0].text and "Jaws director" not in shown[0].text
    assert injected_entry_ids(traj) == shown[0].meta["entry_ids"]
    assert traj.answer == "Cincinnati" and traj.hek_version == hook.version


def test_cases_only_entries_inject_nothing_at_search_time(rollouts, embedder):
    path, trajectories = rollouts
    entries, counts = cases_from_trajectories(trajectories)
    assert counts == {"episodes": 3, "questions": 3, "cases": 2}
    hek = build_case_hek([path], None, embedder)
    retriever = ExperienceRetriever(hek, embedder, threshold=-1.0, cases=2)
    assert all(not i.text for i in retriever.for_queries(["Jaws director"], questions=["x"]))


def test_cases_are_shown_only_to_questions_asking_for_the_same_kind_of_answer(embedder):
    from hiexp.experience.cases import case_entry
    from hiexp.experience.hek import HEK
    from hiexp.experience.schema import Case, CaseDoc, CaseStep

    def case(question, answer):
        step = CaseStep(thought="t", query=question, docs=[CaseDoc(title="T", text="x")])
        return Case(question_id=question, question=question, steps=[step], answer=answer)

    questions = {"yes/no": "Are the Alps and the Andes both mountain ranges?",
                 "choice": "Which is older, the Alps or the Andes?",
                 "open": "Where are the Alps?"}
    entries = [case_entry(case(q, "yes" if kind == "yes/no" else "x"), f"C-{kind}") for kind, q in questions.items()]
    hek = HEK(entries, embedder.encode_passages([e.title for e in entries]))
    retriever = ExperienceRetriever(hek, embedder, cases=2)
    asked = ["Is Paris in France?", "Who is taller, Ann or Bob?", "Who wrote Hamlet?"]
    shown = [[c["question"] for c in i.cases] for i in retriever.for_questions(asked)]
    assert shown == [[questions["yes/no"]], [questions["choice"]], [questions["open"]]]
    mixed = ExperienceRetriever(hek, embedder, cases=3, match_answer_kind=False)
    assert all(len(i.cases) == 3 for i in mixed.for_questions(asked))


def test_in_rank_mode_a_case_that_helped_is_shown_before_an_equally_similar_one(embedder):
    from hiexp.experience.cases import case_entry
    from hiexp.experience.schema import Case, CaseDoc, CaseStep
    from hiexp.experience.usefulness import compute_usefulness
    from tests.experience.test_usefulness import episode

    def case(qid):
        step = CaseStep(thought="t", query="q", docs=[CaseDoc(title="T", text="x")])
        return Case(question_id=qid, question="Where was the director of Jaws born?", steps=[step], answer="x")

    entries = [case_entry(case("a"), "C-plain"), case_entry(case("b"), "C-helped")]  # the same question: a tie
    hek = HEK(entries, embedder.encode_passages([e.title for e in entries]))
    table = compute_usefulness([episode("r", 0, 1.0, [["C-helped"]]), episode("r", 1, 0.0, [])], "cem")
    asked = ["Where was the director of Duel born?"]
    plain = ExperienceRetriever(hek, embedder, cases=1, prefer_multi_search=False)
    assert [c["question_id"] for c in plain.for_questions(asked)[0].cases] == ["a"]  # the tie: the first row
    ranked = ExperienceRetriever(hek, embedder, cases=1, prefer_multi_search=False, usefulness=table,
                                 usefulness_mode="rank")
    assert [c["question_id"] for c in ranked.for_questions(asked)[0].cases] == ["b"]
