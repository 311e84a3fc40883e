"""Curation: each candidate replayed on contested training questions with and without it; what helps is
kept, what hurts is evicted, the counts land in usefulness.json."""

from __future__ import annotations

import json

import pytest

from hiexp.agent.config import AgentConfig
from hiexp.agent.loop import SearchAgent
from hiexp.contracts.example import Example
from hiexp.contracts.passage import Passage
from hiexp.errors import HiexpError
from hiexp.experience.build import build_case_hek
from hiexp.experience.curate import (
    CurationConfig,
    case_placement,
    contested_questions,
    curate,
    plan_screen,
    screen_spread,
    without,
)
from hiexp.experience.usefulness import EntryUsefulness, Usefulness
from hiexp.search.embed import load_embedder
from tests.agent.conftest import PASSAGES, KeywordRetriever
from tests.experience.test_cases import FRANCE, JAWS, policy
from tests.fakes import ScriptedGenerator

SPAIN = Example("s", "What is the capital of Spain?", ["Madrid"], {"dataset": "toy"})
ITALY = Example("i", "What is the capital of Italy?", ["Rome"], {"dataset": "toy"})
RETRIEVER = KeywordRetriever(PASSAGES + [Passage("p5", "Spain", "Madrid is the capital of Spain."),
                                         Passage("p6", "Italy", "Rome is the capital of Italy.")])
RIGHT = {"Spain": "Madrid", "Italy": "Rome"}


def replayer(prompt, params):
    """Right on Spain, wrong on Italy without experience; the France case makes it right on both, the
    Jaws case wrong on both."""
    system, part = prompt.split("<|im_start|>user", 1)
    question = part.split("<|im_end|>", 1)[0]
    country = "Spain" if "Spain" in question else "Italy"
    if "<information>" not in part:
        return f"<think>Search.</think><search>{country} capital</search>"
    if "France capital" in system:
        return f"<answer>{RIGHT[country]}</answer>"
    if "Steven Spielberg born" in system:
        return "<answer>Lisbon</answer>"
    return f"<answer>{RIGHT[country] if country == 'Spain' else 'Milan'}</answer>"


@pytest.fixture
def hek(tmp_path):
    trajectories = SearchAgent(ScriptedGenerator(policy), KeywordRetriever(), AgentConfig()).run([JAWS, FRANCE])
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))
    return build_case_hek([path], None, load_embedder("hashing-64"))


def make_agent(hook):
    return SearchAgent(ScriptedGenerator(replayer), RETRIEVER, AgentConfig(), hook)


def test_a_case_that_helps_is_kept_and_one_that_hurts_is_evicted(hek, tmp_path):
    embedder = load_embedder("hashing-64")
    table, kept, evicted = curate(hek, embedder, make_agent, [SPAIN, ITALY], tmp_path / "work",
                                  CurationConfig(questions_per_candidate=2))
    france, jaws = (next(e.id for e in hek.entries if e.case.question == q.question) for q in (FRANCE, JAWS))
    assert kept == [france] and evicted == [jaws]
    assert table.entries[france].effect == 0.5 and table.entries[france].helpful == 1
    assert table.entries[jaws].effect == -0.5 and table.entries[jaws].harmful == 1
    assert table.entries[jaws].reward_without == 0.5 and table.questions == 2
    curated = without(hek, evicted)
    assert [e.id for e in curated.entries] == [france] and curated.manifest["curated_from"]["evicted"] == [jaws]


def test_a_rerun_replays_nothing_it_already_logged(hek, tmp_path):
    embedder = load_embedder("hashing-64")
    curate(hek, embedder, make_agent, [SPAIN, ITALY], tmp_path / "work", CurationConfig(questions_per_candidate=2))
    calls = []

    def counting(hook):
        calls.append(hook)
        return make_agent(hook)

    table, kept, evicted = curate(hek, embedder, counting, [SPAIN, ITALY], tmp_path / "work",
                                  CurationConfig(questions_per_candidate=2))
    assert calls == [] and len(kept) == 1 and len(evicted) == 1


def test_cases_are_screened_where_the_hek_recommends_showing_them(hek, tmp_path):
    """A case HEK built to show its cases beside the fixed example is screened that way (evaluation shows them
    so); an explicit placement wins; a placement that does not exist is refused before any replay."""
    path = tmp_path / "rollouts.jsonl"
    trajectories = SearchAgent(ScriptedGenerator(policy), KeywordRetriever(), AgentConfig()).run([JAWS, FRANCE])
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))
    beside = build_case_hek([path], None, load_embedder("hashing-64"), placement="beside")
    assert case_placement(hek, CurationConfig()) == "replace"
    assert case_placement(beside, CurationConfig()) == "beside"
    assert case_placement(beside, CurationConfig(case_placement="replace")) == "replace"
    shown = []

    def recording(hook):
        if hook is not None:
            shown.extend(i.replace_example for i in hook.for_questions(["q"]))
        return make_agent(hook)

    table, _, _ = curate(beside, load_embedder("hashing-64"), recording, [SPAIN, ITALY], tmp_path / "work",
                         CurationConfig(questions_per_candidate=2))
    assert shown == [False, False] and table.sources[0]["case_placement"] == "beside"
    with pytest.raises(HiexpError, match="case placement 'above'"):
        curate(beside, load_embedder("hashing-64"), recording, [SPAIN], tmp_path / "other",
               CurationConfig(case_placement="above"))


def test_the_spread_of_alike_candidates_is_what_the_pooled_rates_predict():
    """Two candidates replayed once each, one up and one down: pooled rates 1/2 up, 1/2 down, so alike
    candidates land on -1 or +1 with equal chance, and the seen spread equals the expected one."""
    table = Usefulness(entries={"a": EntryUsefulness(paired=1, helpful=1), "b": EntryUsefulness(paired=1, harmful=1),
                                "unscreened": EntryUsefulness()})
    spread = screen_spread(table)
    assert spread.seen == {-1: 1, 1: 1} and spread.expected == pytest.approx({-1: 1.0, 0: 0.0, 1: 1.0})
    assert (spread.up, spread.down, spread.episodes) == (1, 1, 2) and spread.ratio == pytest.approx(1.0)
    assert "seen:   -1: 1  +1: 1" in spread.render()
    # one candidate that always rises and three that never move: more spread than alike candidates give
    table = Usefulness(entries={"up": EntryUsefulness(paired=4, helpful=4),
                                **{f"flat{i}": EntryUsefulness(paired=4) for i in range(3)}})
    spread = screen_spread(table)
    assert sum(spread.expected.values()) == pytest.approx(4.0) and spread.ratio > 2
    assert screen_spread(Usefulness()).ratio is None


def test_a_candidate_is_never_replayed_on_its_own_question(hek):
    plan = plan_screen(hek, load_embedder("hashing-64"), [FRANCE, SPAIN, JAWS], CurationConfig(questions_per_candidate=3))
    for candidate, questions in plan:
        assert candidate.case.question not in [q.question for q in questions] and len(questions) == 2


def test_contested_questions_are_those_with_both_outcomes():
    records = [{"question_id": "a", "question": "A?", "golden_answers": ["x"], "rewards": {"cem": 1.0}},
               {"question_id": "a", "question": "A?", "golden_answers": ["x"], "rewards": {"cem": 0.0}},
               {"question_id": "b", "question": "B?", "golden_answers": ["y"], "rewards": {"cem": 1.0}}]
    assert [e.id for e in contested_questions(records)] == ["a"]
    with pytest.raises(HiexpError, match="no contested"):
        curate(None, None, make_agent, [], "unused")


def test_the_curate_command_writes_a_curated_hek_with_its_counts_and_resumes(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import hiexp.llm
    from hiexp.cli import app
    from hiexp.experience.hek import HEK
    from hiexp.experience.usefulness import load_usefulness

    trajectories = SearchAgent(ScriptedGenerator(policy), KeywordRetriever(), AgentConfig()).run([JAWS, FRANCE])
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))
    runner = CliRunner()
    built = runner.invoke(app, ["build", str(rollouts), "--cases-only", "--out", str(tmp_path / "cases"),
                                "--embedder", "hashing-64"])
    assert built.exit_code == 0, built.output
    shown = runner.invoke(app, ["show", str(tmp_path / "cases")])
    assert shown.exit_code == 0 and "2 cases" in shown.output and "case: 1 searches -> Paris" in shown.output
    contested = tmp_path / "contested.jsonl"
    rows = [{"id": f"{e.id}#{k}", "question_id": e.id, "sample": k, "format": "search_r1", "model": "m",
             "question": e.question, "golden_answers": e.golden_answers, "rewards": {"cem": float(k)},
             "metadata": {"dataset": "toy"}} for e in (SPAIN, ITALY) for k in (0, 1)]
    contested.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": p.id, "title": p.title, "contents": p.text}) + "\n"
                              for p in RETRIEVER.passages))
    monkeypatch.setattr(hiexp.llm, "load_generator", lambda *a, **k: ScriptedGenerator(replayer))
    command = ["curate", str(tmp_path / "cases"), str(contested), "--out", str(tmp_path / "curated"),
               "--index", str(corpus), "--questions-per-candidate", "2"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "kept 1, evicted 1" in result.output and "spread ratio 1.00" in result.output
    curated = HEK.load(tmp_path / "curated")
    (kept,) = curated.entries
    assert kept.case.question == FRANCE.question
    table = load_usefulness(tmp_path / "curated")
    assert {u.effect for u in table.entries.values()} == {0.5, -0.5}
    monkeypatch.setattr(hiexp.llm, "load_generator", lambda *a, **k: ScriptedGenerator([]))  # nothing to replay
    again = runner.invoke(app, command)
    assert again.exit_code == 0 and "kept 1, evicted 1" in again.output


def test_eval_shows_the_cases_a_hek_holds_as_told_on_the_command_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import hiexp.llm
    from hiexp.cli import app

    trajectories = SearchAgent(ScriptedGenerator(policy), KeywordRetriever(), AgentConfig()).run([JAWS, FRANCE])
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))
    runner = CliRunner()
    assert runner.invoke(app, ["build", str(rollouts), "--cases-only", "--out", str(tmp_path / "cases"),
                               "--embedder", "hashing-64"]).exit_code == 0
    data = tmp_path / "questions.jsonl"
    data.write_text(json.dumps({"id": "s", "question": SPAIN.question, "golden_answers": ["Madrid"]}) + "\n")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": p.id, "title": p.title, "contents": p.text}) + "\n"
                              for p in RETRIEVER.passages))
    monkeypatch.setattr(hiexp.llm, "load_generator", lambda *a, **k: ScriptedGenerator(replayer))
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--data", str(data), "--split", "all", "--index", str(corpus), "--hek",
                                 str(tmp_path / "cases"), "--cases", "1", "--case-placement", "beside",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    (line,) = (out / "trajectories" / "questions.jsonl").read_text().splitlines()
    shown = [t for t in json.loads(line)["turns"] if t["role"] == "experience"]
    assert len(shown) == 1 and shown[0]["meta"]["where"] == "example" and len(shown[0]["meta"]["entry_ids"]) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experience"]["cases"] == 1 and manifest["experience"]["case_placement"] == "beside"
    bad = runner.invoke(app, ["eval", "--data", str(data), "--split", "all", "--index", str(corpus), "--hek",
                              str(tmp_path / "cases"), "--case-placement", "nowhere", "--out", str(tmp_path / "r2")])
    assert bad.exit_code != 0 and "case placement 'nowhere'" in str(bad.exception)
