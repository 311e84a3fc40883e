"""The loop on text-only backends (ScriptedGenerator): formats, batching, budgets, malformed actions, hooks."""

from __future__ import annotations

import pytest

from hiexp.agent import AgentConfig, SearchAgent
from hiexp.agent.loop import episode_seed
from hiexp.contracts.example import Example
from hiexp.contracts.passage import Passage
from hiexp.scoring.metrics import score_answer
from tests.agent.conftest import KeywordRetriever, RecordingHook
from tests.fakes import ScriptedGenerator


def episode_part(prompt: str) -> str:
    """What follows the question (the few-shot example in the system prompt holds tags too)."""
    return prompt.split("<|im_start|>user\n", 1)[1]


def r1_policy(prompt, params):
    part = episode_part(prompt)
    if "capital of France" in part:
        return "<answer>Paris</answer>"
    infos = part.count("<information>")
    if infos == 0:
        return "<think>Who directed Jaws?</think><search>Jaws director</search>"
    if infos == 1:
        return "<think>Spielberg.</think><search>Steven Spielberg born</search>"
    return "<think>Cincinnati.</think><answer>Cincinnati</answer>"


class CountingGenerator(ScriptedGenerator):
    def __init__(self, script):
        super().__init__(script)
        self.calls: list[int] = []

    def generate(self, prompts, params):
        self.calls.append(len(prompts))
        return super().generate(prompts, params)


def test_search_r1_episode_end_to_end(examples, retriever):
    gen = CountingGenerator(r1_policy)
    agent = SearchAgent(gen, retriever, AgentConfig(max_turns=4, search_before_answer=False))
    t1, t2 = agent.run(examples)
    assert (t1.id, t2.id) == ("q1#0", "q2#0")
    assert t1.finish == "answer" and t1.answer == "Cincinnati" and t1.num_searches == 2
    assert t1.queries == ["Jaws director", "Steven Spielberg born"]
    assert t1.passage_ids[0][0] == "p1" and len(t1.passage_ids[0]) == 3
    assert [t.role for t in t1.turns] == ["prompt", "policy", "tool", "policy", "tool", "policy"]
    assert "<information>Doc 1(Title: Jaws (film))" in t1.turns[2].text
    assert t1.rewards == {**score_answer("Cincinnati", ["Cincinnati"]), "reward": 1.0}
    assert t2.finish == "answer" and t2.num_searches == 0 and t2.rewards["em"] == 1.0
    # batched: first turn both episodes, then only the one still searching; retrieval one call per turn
    assert gen.calls == [2, 1, 1]
    # the first search also carries the question's words the query left out ("born"); later ones do not
    assert retriever.calls == [["Jaws director born"], ["Steven Spielberg born"]]
    assert t1.turns[2].meta == {"query": "Jaws director", "retrieval_query": "Jaws director born"}
    assert t1.seed == episode_seed(0, "q1", 0) and t1.hek_version is None
    # the observation is appended inside the same assistant message: no new chat turn
    assert "<|im_start|>" not in "".join(t.text for t in t1.turns[1:])


def test_the_agent_scores_with_the_scorer_it_is_given_and_keeps_the_parsed_answer(examples, retriever):
    seen = []

    def scorer(answer, golden, task="qa"):
        seen.append((answer, list(golden), task))
        return {"em": 0.25, "cem": 0.5, "f1": 0.75}

    config = AgentConfig(max_turns=4, search_before_answer=False, reward_metric="f1")
    t1, _ = SearchAgent(ScriptedGenerator(r1_policy), retriever, config, scorer=scorer).run(examples)
    assert t1.answer == "Cincinnati" and t1.rewards == {"em": 0.25, "cem": 0.5, "f1": 0.75, "reward": 0.75}
    assert ("Cincinnati", ["Cincinnati"], "qa") in seen and len(seen) == 2


def test_retrieval_is_batched_across_episodes(retriever):
    exs = [Example(f"q{i}", "Where was the director of Jaws born?", ["Cincinnati"]) for i in range(5)]
    gen = CountingGenerator(r1_policy)
    SearchAgent(gen, retriever, AgentConfig(batch_size=8)).run(exs)
    assert gen.calls == [5, 5, 5]
    assert [len(c) for c in retriever.calls] == [5, 5]


def test_continuous_batching_refills(retriever):
    exs = [Example(f"q{i}", "What is the capital of France?" if i % 2 else "Where was the director of Jaws born?",
                   ["x"]) for i in range(6)]
    gen = CountingGenerator(r1_policy)
    trajs = SearchAgent(gen, retriever, AgentConfig(batch_size=3)).run(exs, samples=2)
    assert [t.id for t in trajs] == [f"q{i}#{s}" for i in range(6) for s in range(2)]
    assert max(gen.calls) <= 3 and sum(gen.calls) == sum(len(t.turns) // 2 for t in trajs)


def test_no_more_episodes_in_flight_than_the_backend_has_cache_slots(retriever):
    """A llama.cpp backend with 2 slots: 2 episodes at a time, so each next turn finds its history cached."""
    exs = [Example(f"q{i}", "Where was the director of Jaws born?", ["Cincinnati"]) for i in range(5)]
    gen = CountingGenerator(r1_policy)
    gen.slots = 2
    trajs = SearchAgent(gen, retriever, AgentConfig(batch_size=16)).run(exs)
    assert max(gen.calls) == 2 and len(trajs) == 5
    serial = CountingGenerator(r1_policy)
    serial.slots, serial.serial_greedy = 8, True  # greedy requests decoded one at a time: one episode in flight
    greedy = SearchAgent(serial, retriever, AgentConfig(batch_size=16, temperature=0.0)).run(exs)
    assert max(serial.calls) == 1 and [t.answer for t in greedy] == [t.answer for t in trajs]


def test_tool_call_episode(examples, retriever):
    def policy(prompt, params):
        part = episode_part(prompt)
        if part.count("<tool_response>") == 0:
            return 'Let me search.\n<tool_call>\n{"name": "search", "arguments": {"query": "Jaws director"}}\n</tool_call>'
        return "It is \\boxed{Cincinnati}"

    agent = SearchAgent(ScriptedGenerator(policy), retriever, AgentConfig(format="tool_call"))
    t = agent.run(examples[:1])[0]
    assert t.finish == "answer" and t.answer == "Cincinnati" and t.queries == ["Jaws director"]
    tool = t.turns[2]
    assert tool.role == "tool"
    assert tool.text.startswith("<|im_end|>\n<|im_start|>user\n<tool_response>\n")
    assert tool.text.endswith("</tool_response><|im_end|>\n<|im_start|>assistant\n")


def test_hook_injects_masked_experience_and_records_it(examples, retriever):
    hook = RecordingHook()
    agent = SearchAgent(ScriptedGenerator(r1_policy), retriever, AgentConfig(), hook=hook)
    t1, t2 = agent.run(examples)
    assert hook.question_calls == [[e.question for e in examples]]
    assert hook.query_calls == [["Jaws director"], ["Steven Spielberg born"]]
    assert hook.query_questions == [[examples[0].question]] * 2  # each query comes with its episode's question
    roles = [t.role for t in t1.turns]
    assert roles[:3] == ["prompt", "experience", "prompt"]
    exp = [t for t in t1.turns if t.role == "experience"]
    assert exp[0].meta == {"entries": ["E3-1"], "scores": [0.9], "where": "system"}
    assert exp[1].meta["where"] == "tool" and exp[1].meta["query"] == "Jaws director"
    assert all(not t.trainable for t in exp)
    assert t1.hek_version == "hek-test-1"
    # the experience sits inside the <information> block, and the rest equals the no-hook observation
    plain = SearchAgent(ScriptedGenerator(r1_policy), KeywordRetriever(), AgentConfig()).run(examples)[0]
    assert t1.text.replace(exp[0].text, "").replace(exp[1].text, "").replace(exp[2].text, "") == plain.text


def test_no_hook_prompts_are_byte_identical_to_empty_hook(examples, retriever):
    class EmptyHook(RecordingHook):
        def __init__(self):
            super().__init__(start="", query="")

    a, b = ScriptedGenerator(r1_policy), ScriptedGenerator(r1_policy)
    SearchAgent(a, retriever, AgentConfig()).run(examples)
    trajs = SearchAgent(b, KeywordRetriever(), AgentConfig(), hook=EmptyHook()).run(examples)
    assert a.prompts == b.prompts
    assert all(t.role != "experience" for tr in trajs for t in tr.turns)


def run_one(replies, **config):
    """One episode on the Jaws question; the answer-without-search rule is off unless a test turns it on."""
    config.setdefault("search_before_answer", False)
    retriever = KeywordRetriever()
    gen = ScriptedGenerator(list(replies))
    t = SearchAgent(gen, retriever, AgentConfig(**config)).run([Example("q", "Where was the director of Jaws born?", ["Cincinnati"])])[0]
    return t, gen


@pytest.mark.parametrize(
    "bad, error",
    [
        ("Cincinnati, I believe.", "no_tag"),
        ("<search>  </search>", "empty_query"),
        ("<search>" + "very long query " * 20 + "</search>", "long_query"),
        ("<search>Jaws director", "unclosed_tag"),
        ("<answer></answer>", "empty_answer"),
    ],
)
def test_malformed_search_r1_gets_a_correction_then_recovers(bad, error):
    t, gen = run_one([bad, "<answer>Cincinnati</answer>"])
    assert t.finish == "answer" and t.rewards["em"] == 1.0
    assert [x.role for x in t.turns] == ["prompt", "policy", "tool", "policy"]
    assert t.turns[2].meta == {"correction": error}
    assert t.metadata["corrections"][0]["error"] == error
    assert t.turns[2].text.startswith("\n\n<information>")


@pytest.mark.parametrize(
    "bad, error",
    [
        ('<tool_call>{"name": "search", "arguments": {"query": </tool_call>', "bad_json"),
        ('<tool_call>{"name": "calc", "arguments": {"x": 1}}</tool_call>', "bad_tool"),
        ('{"name": "search", "arguments": {"query": "Jaws"}}', "no_tag"),
        ("\\boxed{}", "empty_answer"),
    ],
)
def test_malformed_tool_call_gets_a_correction(bad, error):
    t, _ = run_one([bad, "\\boxed{Cincinnati}"], format="tool_call")
    assert t.finish == "answer" and t.answer == "Cincinnati"
    assert t.turns[2].meta == {"correction": error} and "<tool_response>" in t.turns[2].text


def test_an_answer_before_any_search_is_sent_back_once():
    t, _ = run_one(["<answer>Paris</answer>", "<search>Jaws director</search>", "<answer>Cincinnati</answer>"],
                   search_before_answer=True)
    assert [x.role for x in t.turns] == ["prompt", "policy", "tool", "policy", "tool", "policy"]
    assert t.turns[2].meta == {"correction": "answer_without_search"}
    assert "Search before you answer" in t.turns[2].text
    assert t.metadata["corrections"][0]["error"] == "answer_without_search"
    assert t.num_searches == 1 and t.answer == "Cincinnati" and t.finish == "answer"


def test_a_second_answer_without_search_is_accepted():
    t, _ = run_one(["<answer>Paris</answer>", "<answer>Cincinnati</answer>"], search_before_answer=True)
    assert t.finish == "answer" and t.answer == "Cincinnati" and t.num_searches == 0
    assert [c["error"] for c in t.metadata["corrections"]] == ["answer_without_search"]


def test_an_answer_after_a_search_is_taken_at_once():
    t, _ = run_one(["<search>Jaws director</search>", "<answer>Cincinnati</answer>"], search_before_answer=True)
    assert t.finish == "answer" and t.metadata["corrections"] == []


def test_the_rule_needs_a_retriever():
    gen = ScriptedGenerator(["<answer>Cincinnati</answer>"])
    config = AgentConfig(search_before_answer=True)
    t = SearchAgent(gen, None, config).run([Example("q", "Where was the director of Jaws born?", ["Cincinnati"])])[0]
    assert t.finish == "answer" and t.answer == "Cincinnati"


def test_the_rule_in_the_tool_call_format():
    t, _ = run_one(["\\boxed{Paris}", '<tool_call>{"name": "search", "arguments": {"query": "Jaws"}}</tool_call>',
                    "\\boxed{Cincinnati}"], format="tool_call", search_before_answer=True)
    assert t.turns[2].meta == {"correction": "answer_without_search"} and "<tool_response>" in t.turns[2].text
    assert t.answer == "Cincinnati" and t.num_searches == 1


CHOICE = Example("c", "Which film has the director who died later, Jaws or Duel?", ["Jaws"])


def run_choice(replies, fmt="search_r1", **config):
    config.setdefault("search_before_answer", False)
    gen = ScriptedGenerator(list(replies))
    return SearchAgent(gen, KeywordRetriever(), AgentConfig(format=fmt, **config)).run([CHOICE])[0]


def test_an_answer_naming_neither_option_is_sent_back_once():
    t = run_choice(["<search>Jaws director</search>", "<answer>Steven Spielberg</answer>", "<answer>Jaws</answer>"])
    assert t.answer == "Jaws" and t.finish == "answer"
    assert [c["error"] for c in t.metadata["corrections"]] == ["not_an_option"]
    assert '"Steven Spielberg" is neither' in t.turns[-2].text and t.turns[-2].meta == {"correction": "not_an_option"}
    assert "<answer> Jaws </answer> or with <answer> Duel </answer>" in t.turns[-2].text


def test_a_second_answer_naming_neither_option_is_accepted():
    t = run_choice(["<search>Jaws</search>", "<answer>Spielberg</answer>", "<answer>Spielberg again</answer>"])
    assert t.answer == "Spielberg again" and [c["error"] for c in t.metadata["corrections"]] == ["not_an_option"]


def test_an_answer_naming_an_option_is_taken_at_once():
    t = run_choice(["<search>Jaws</search>", "<answer>Duel</answer>"])
    assert t.answer == "Duel" and t.metadata["corrections"] == []


def test_the_option_rule_can_be_turned_off():
    t = run_choice(["<search>Jaws</search>", "<answer>Spielberg</answer>"], answer_from_options=False)
    assert t.answer == "Spielberg" and t.metadata["corrections"] == []


def test_the_option_rule_in_the_tool_call_format():
    t = run_choice(['<tool_call>{"name": "search", "arguments": {"query": "Jaws"}}</tool_call>',
                    "\\boxed{Spielberg}", "\\boxed{Jaws}"], fmt="tool_call")
    assert t.answer == "Jaws" and [c["error"] for c in t.metadata["corrections"]] == ["not_an_option"]
    assert "\\boxed{Jaws} or with \\boxed{Duel}" in t.turns[-2].text


def test_the_option_rule_follows_the_search_rule():
    t = run_choice(["<answer>Spielberg</answer>", "<search>Jaws</search>", "<answer>Spielberg</answer>",
                    "<answer>Jaws</answer>"], search_before_answer=True)
    assert [c["error"] for c in t.metadata["corrections"]] == ["answer_without_search", "not_an_option"]
    assert t.answer == "Jaws"


ECHO = Example("e", "What is the first name of Jack Benny Binion's father?", ["Lester"])


def run_echo(replies, fmt="search_r1", example=ECHO, **config):
    config.setdefault("search_before_answer", False)
    gen = ScriptedGenerator(list(replies))
    return SearchAgent(gen, KeywordRetriever(), AgentConfig(format=fmt, **config)).run([example])[0]


def test_an_answer_repeating_the_question_is_sent_back_once():
    t = run_echo(["<search>Binion father</search>", "<answer>Jack</answer>", "<answer>Lester</answer>"])
    assert t.answer == "Lester" and [c["error"] for c in t.metadata["corrections"]] == ["echoed_question"]
    assert '"Jack" only repeats words of the question' in t.turns[-2].text
    assert t.turns[-2].meta == {"correction": "echoed_question"}


def test_a_second_answer_repeating_the_question_is_accepted():
    t = run_echo(["<search>Binion father</search>", "<answer>Jack</answer>", "<answer>Jack Benny</answer>"])
    assert t.answer == "Jack Benny" and [c["error"] for c in t.metadata["corrections"]] == ["echoed_question"]


def test_the_echo_rule_can_be_turned_off_and_leaves_choices_to_the_option_rule():
    t = run_echo(["<search>Binion father</search>", "<answer>Jack</answer>"], answer_beyond_question=False)
    assert t.answer == "Jack" and t.metadata["corrections"] == []
    t = run_choice(["<search>Jaws</search>", "<answer>Duel</answer>"])
    assert t.answer == "Duel" and t.metadata["corrections"] == []


def test_the_echo_rule_in_the_tool_call_format():
    t = run_echo(['<tool_call>{"name": "search", "arguments": {"query": "Binion"}}</tool_call>',
                  "\\boxed{Jack}", "\\boxed{Lester}"], fmt="tool_call")
    assert t.answer == "Lester" and [c["error"] for c in t.metadata["corrections"]] == ["echoed_question"]


def test_too_many_malformed_actions_end_invalid():
    t, _ = run_one(["nothing", "still nothing", "nope"], max_invalid=2, force_answer=False)
    assert t.finish == "invalid" and t.answer is None and t.rewards["em"] == 0.0
    assert [c["error"] for c in t.metadata["corrections"]] == ["no_tag"] * 3


def test_search_after_the_budget_is_refused_then_ends_max_turns():
    t, _ = run_one(["<search>Jaws</search>", "<search>again</search>", "<search>and again</search>"], max_turns=1,
                   force_answer=False)
    assert t.finish == "max_turns" and t.num_searches == 1
    assert t.turns[4].meta == {"correction": "search_budget"}
    t, _ = run_one(["<search>Jaws</search>", "<search>again</search>", "<answer>Cincinnati</answer>"], max_turns=1)
    assert t.finish == "answer" and t.num_searches == 1


def test_an_episode_out_of_retries_gets_one_turn_that_opens_the_answer():
    t, gen = run_one(["nothing", "still nothing", "nope", "Cincinnati</answer>"], max_invalid=2)
    assert t.finish == "answer" and t.answer == "Cincinnati" and t.rewards["em"] == 1.0
    assert t.metadata["forced_answer"] is True
    assert [c["error"] for c in t.metadata["corrections"]] == ["no_tag"] * 3 + ["final_answer"]
    assert t.turns[-2].meta == {"correction": "final_answer"} and t.turns[-2].text.endswith("<answer>")
    assert gen.prompts[-1].endswith("</information>\n\n<answer>")


def test_an_episode_out_of_searches_gets_one_turn_that_opens_the_answer():
    t, _ = run_one(["<search>Jaws</search>", "<search>again</search>", "<search>and again</search>",
                    "Cincinnati</answer>"], max_turns=1)
    assert t.finish == "answer" and t.answer == "Cincinnati" and t.num_searches == 1


def test_a_forced_turn_without_an_answer_keeps_the_first_finish_reason():
    t, _ = run_one(["nothing", "still nothing", "nope", ""], max_invalid=2)
    assert t.finish == "invalid" and t.answer is None


def test_a_forced_answer_in_the_tool_call_format():
    t, _ = run_one(["nothing", "still nothing", "nope", "Cincinnati}."], max_invalid=2, format="tool_call")
    assert t.finish == "answer" and t.answer == "Cincinnati"
    assert t.turns[-2].text.endswith("The answer is \\boxed{")


def test_the_first_search_can_be_the_question_itself():
    retriever = KeywordRetriever()
    gen = ScriptedGenerator(["<think>Spielberg was born in Cincinnati.</think><answer>Cincinnati</answer>"])
    config = AgentConfig(first_search="question", search_before_answer=True)
    question = "Where was the director of Jaws born?"
    t = SearchAgent(gen, retriever, config).run([Example("q", question, ["Cincinnati"])])[0]
    assert retriever.calls == [[question]]
    assert t.queries == [question] and t.num_searches == 1 and t.answer == "Cincinnati"
    assert [x.role for x in t.turns] == ["prompt", "tool", "tool", "policy"]
    assert t.turns[1].text == f"<search>{question}</search>" and t.turns[1].meta == {"opening_search": True}
    assert gen.prompts[0].endswith(f"<search>{question}</search>" + t.turns[2].text)
    ids, mask = t.completion_ids_and_mask()
    assert t.metadata["corrections"] == []  # the opening search counts: the answer is taken at once


def test_the_anchor_can_be_turned_off(examples, retriever):
    config = AgentConfig(max_turns=4, search_before_answer=False, anchor_first_query=False)
    t1, _ = SearchAgent(ScriptedGenerator(r1_policy), retriever, config).run(examples)
    assert retriever.calls == [["Jaws director"], ["Steven Spielberg born"]]
    assert t1.turns[2].meta == {"query": "Jaws director"}


def test_max_tokens_ends_the_episode():
    t, _ = run_one(["<think>" + "x" * 400 + "</think><search>Jaws</search>"], max_tokens=50, max_new_tokens=40)
    assert t.finish == "max_tokens"
    assert t.turns[1].meta["finish_reason"] == "length" and len(t.turns[1].text) <= 40 * 4


def test_text_only_trajectories_have_empty_ids_and_roundtrip(examples, retriever):
    from hiexp.contracts.trajectory import Trajectory

    t = SearchAgent(ScriptedGenerator(r1_policy), retriever, AgentConfig()).run(examples)[0]
    assert all(turn.token_ids == [] for turn in t.turns)
    assert t.num_tokens > 0
    assert Trajectory.from_dict(t.to_dict()) == t


def test_a_generator_exception_is_a_bug_not_swallowed(examples, retriever):
    def boom(prompt, params):
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError):
        SearchAgent(ScriptedGenerator(boom), retriever, AgentConfig()).run(examples)


def test_a_repeated_query_gets_a_correction_not_the_same_passages():
    t, _ = run_one(["<search>Jaws director</search>", "<search>  jaws   DIRECTOR</search>",
                    "<search>Jaws birthplace</search>", "<answer>Cincinnati</answer>"], max_turns=3)
    assert t.finish == "answer"
    assert t.queries == ["Jaws director", "Jaws birthplace"] and t.num_searches == 2
    assert [c["error"] for c in t.metadata["corrections"]] == ["repeated_query"]
    assert any(turn.meta.get("correction") == "repeated_query" and not turn.trainable for turn in t.turns)


def test_repeated_queries_are_searched_again_when_the_check_is_off():
    t, _ = run_one(["<search>Jaws</search>", "<search>Jaws</search>", "<answer>x</answer>"],
                   max_turns=3, reject_repeated_queries=False)
    assert t.queries == ["Jaws", "Jaws"] and not t.metadata["corrections"]


def test_passages_that_do_not_fit_leave_room_for_a_forced_answer():
    # the passages (about 63 tokens here) do not fit in 66, the final message (about 38) and an answer do
    t, _ = run_one(["<search>Jaws director</search>", "Cincinnati</answer>"], max_tokens=66, max_new_tokens=40)
    assert t.finish == "answer" and t.answer == "Cincinnati" and t.metadata["forced_answer"] is True
    assert t.turns[2].meta == {"correction": "final_answer"} and "Doc 1" not in t.turns[2].text
    t, _ = run_one(["<search>Jaws director</search>"], max_tokens=40, max_new_tokens=40)
    assert t.finish == "max_tokens"  # not even room for the forced turn


def test_a_passage_shown_before_comes_back_as_its_title_when_asked(examples, retriever):
    config = AgentConfig(max_turns=4, search_before_answer=False, passages_seen="title")
    t1, _ = SearchAgent(ScriptedGenerator(r1_policy), retriever, config).run(examples)
    first, second = t1.turns[2].text, t1.turns[4].text
    assert "(Title: Steven Spielberg) Spielberg was born" in first
    assert "(Title: Steven Spielberg) (shown above)" in second  # the second search finds it again
    assert "Spielberg was born" not in second
    assert "p2" in t1.passage_ids[0] and "p2" in t1.passage_ids[1]  # the record keeps every id it retrieved


def test_passages_are_shown_whole_again_by_default(examples, retriever):
    t1, _ = SearchAgent(ScriptedGenerator(r1_policy), retriever,
                        AgentConfig(max_turns=4, search_before_answer=False)).run(examples)
    assert "(Title: Steven Spielberg) Spielberg was born" in t1.turns[4].text


def test_long_passages_are_cut_to_the_word_budget_around_the_search_terms():
    from tests.agent.conftest import KeywordRetriever

    filler = " ".join(f"Sentence {i} is about nothing in particular at all." for i in range(20))
    long = Passage("long", "Jaws (film)", "Jaws is a 1975 film. " + filler + " Its director was Steven Spielberg.")
    retriever = KeywordRetriever([long])
    script = ["<think>x</think><search>Jaws director</search>", "<answer>Steven Spielberg</answer>"]
    exs = [Example("q", "Who was the director of Jaws?", ["Steven Spielberg"])]
    config = AgentConfig(search_before_answer=False, passage_words=20, top_k=1)
    (t,) = SearchAgent(ScriptedGenerator(script), retriever, config).run(exs)
    shown = t.turns[2].text
    assert "Jaws is a 1975 film. ... Its director was Steven Spielberg." in shown
    assert "Sentence 3" not in shown and t.passage_ids == [["long"]]
    # the rag baseline reads the same cut passages
    (r,) = SearchAgent(ScriptedGenerator(["<answer>Steven Spielberg</answer>"]), retriever, config).run_baseline(exs, "rag")
    assert "Jaws is a 1975 film. ... Its director was Steven Spielberg." in r.turns[0].text


def test_the_passage_options_change_the_template_hash_only_when_on():
    from hiexp.agent.formats import make_format

    base = make_format(AgentConfig()).template_hash("agent")
    assert make_format(AgentConfig(passage_words=0, passages_seen="full")).template_hash("agent") == base
    assert make_format(AgentConfig(passage_words=60)).template_hash("agent") != base
    assert make_format(AgentConfig(passages_seen="title")).template_hash("agent") != base
    assert make_format(AgentConfig(passages_seen="title")).template_hash("rag") == make_format(AgentConfig()).template_hash("rag")


@pytest.mark.parametrize("option", [{"passages_seen": "none"}, {"passage_words": -1}])
def test_bad_passage_options_are_refused(option):
    from hiexp.errors import HiexpError

    with pytest.raises(HiexpError, match=next(iter(option))):
        AgentConfig(**option)
