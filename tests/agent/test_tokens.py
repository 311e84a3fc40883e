"""Token-in, token-out bookkeeping with a real tokenizer (the tiny random model's)."""

from __future__ import annotations

import pytest

from hiexp.agent import AgentConfig, SearchAgent
from hiexp.contracts.example import Example
from hiexp.contracts.generation import Generation
from tests.agent.conftest import KeywordRetriever, RecordingHook


class TokenScripted:
    """Replies from a script, returned as token ids of a real tokenizer (cut at the first stop string),
    and records every prompt (as ids) it was given."""

    def __init__(self, tokenizer, policy):
        self.tokenizer, self.policy, self.model_id = tokenizer, policy, "token-scripted"
        self.prompts: list[list[int]] = []
        self.outputs: list[list[int]] = []

    def generate(self, prompts, params):
        out = []
        for ids in prompts:
            assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
            self.prompts.append(list(ids))
            text = self.policy(self.tokenizer.decode(ids), params)
            for stop in params.stop:
                if stop in text:
                    text = text[: text.index(stop) + len(stop)]
            gen_ids = self.tokenizer.encode(text, add_special_tokens=False)[: params.max_new_tokens]
            self.outputs.append(gen_ids)
            out.append(Generation(self.tokenizer.decode(gen_ids), gen_ids, [-0.5] * len(gen_ids), "stop", None))
        return out


def policy(prompt, params):
    part = prompt.split("<|im_start|>user\n", 1)[1]
    n = part.count("<information>")
    if n == 0:
        return "<think>director</think><search>Jaws director</search>"
    if n == 1:
        return "oops no tag"
    return "<answer>Cincinnati</answer>"


def check_bookkeeping(traj, gen, tokenizer):
    all_ids = [i for turn in traj.turns for i in turn.token_ids]
    # every prompt the model saw is a prefix of the final context, and grows only by appending
    seen = [p for p in gen.prompts if all_ids[: len(p)] == p]
    assert seen, "no prompt of this episode was a prefix of its ids"
    for a, b in zip(seen, seen[1:]):
        assert b[: len(a)] == a
    prompt_len = len(traj.prompt_ids())
    ids, mask = traj.completion_ids_and_mask()
    assert traj.prompt_ids() + ids == all_ids
    cursor = 0
    for turn in traj.turns[traj._prompt_end():]:
        n = len(turn.token_ids)
        assert mask[cursor:cursor + n] == [1 if turn.role == "policy" else 0] * n
        cursor += n
        if turn.role != "policy":  # injected text is tokenised once, on its own
            assert turn.token_ids == tokenizer.encode(turn.text, add_special_tokens=False)
        assert tokenizer.decode(turn.token_ids) == turn.text
    assert prompt_len > 0 and sum(mask) == traj.num_tokens
    assert traj.metadata["completion_tokens"] == len(ids)


@pytest.mark.parametrize("fmt", ["search_r1", "tool_call"])
def test_token_bookkeeping_with_hook(tiny_generator, fmt):
    tok = tiny_generator.tokenizer

    def pol(prompt, params):
        if fmt == "search_r1":
            return policy(prompt, params)
        part = prompt.split("<|im_start|>user\n", 1)[1]
        n = part.count("<tool_response>")
        if n == 0:
            return '<tool_call>\n{"name": "search", "arguments": {"query": "Jaws director"}}\n</tool_call>'
        if n == 1:
            return "oops no tag"
        return "\\boxed{Cincinnati}"

    gen = TokenScripted(tok, pol)
    exs = [Example("q1", "Where was the director of Jaws born?", ["Cincinnati"]),
           Example("q2", "Who directed Jaws?", ["Spielberg"])]
    trajs = SearchAgent(gen, KeywordRetriever(), AgentConfig(format=fmt), hook=RecordingHook()).run(exs)
    for t in trajs:
        assert t.finish == "answer"
        assert [x.role for x in t.turns][:3] == ["prompt", "experience", "prompt"]
        assert any(x.role == "experience" for x in t.turns[3:])
        assert any(x.meta.get("correction") == "no_tag" for x in t.turns)
        check_bookkeeping(t, gen, tok)
        # policy ids are exactly what the generator returned, logprobs kept
        policy_turns = [x for x in t.turns if x.role == "policy"]
        assert all(x.token_ids in gen.outputs and x.logprobs == [-0.5] * len(x.token_ids) for x in policy_turns)


def test_real_tiny_model_random_output_keeps_invariants(tiny_generator):
    """Random text from a real model: whatever it emits, the batch finishes and the ids stay exact."""
    prompts: list[list[int]] = []
    original = tiny_generator.generate

    class Spy:
        model_id = tiny_generator.model_id
        tokenizer = tiny_generator.tokenizer

        def generate(self, batch, params, seeds=None):
            prompts.extend(list(p) for p in batch)
            return original(batch, params, seeds=seeds)

    spy = Spy()
    exs = [Example(f"q{i}", f"Question number {i}?", ["x"]) for i in range(3)]
    cfg = AgentConfig(max_new_tokens=12, max_tokens=60, max_invalid=1, temperature=1.0, seed=3)
    trajs = SearchAgent(spy, KeywordRetriever(), cfg).run(exs)
    assert len(trajs) == 3
    spy.prompts = prompts
    for t in trajs:
        assert t.finish in ("invalid", "max_tokens", "max_turns", "answer")
        all_ids = [i for turn in t.turns for i in turn.token_ids]
        mine = [p for p in prompts if all_ids[: len(p)] == p]
        assert mine and len(mine) == t.metadata["policy_turns"]
        ids, mask = t.completion_ids_and_mask()
        assert sum(mask) == t.num_tokens == sum(len(x.token_ids) for x in t.turns if x.role == "policy")
        assert len(ids) <= cfg.max_tokens
    # reproducible under the same seed
    again = SearchAgent(tiny_generator, KeywordRetriever(), cfg).run(exs)
    assert [x.turns[1].token_ids for x in again] == [x.turns[1].token_ids for x in trajs]


def test_episodes_do_not_depend_on_their_batch_mates(tiny_generator):
    """Per-episode seeds reach the backend: an episode samples the same alone as in a batch."""
    exs = [Example(f"q{i}", f"Question number {i}?", ["x"]) for i in range(3)]
    cfg = dict(max_new_tokens=8, max_tokens=30, max_invalid=0, temperature=1.0, seed=5)
    together = SearchAgent(tiny_generator, KeywordRetriever(), AgentConfig(batch_size=3, **cfg)).run(exs)
    alone = SearchAgent(tiny_generator, KeywordRetriever(), AgentConfig(batch_size=1, **cfg)).run(exs[2:])
    assert alone[0].turns[1].token_ids == together[2].turns[1].token_ids
