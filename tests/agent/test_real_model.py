"""End to end with the real embedded model on one shipped question (few tokens; @slow)."""

from __future__ import annotations

import pytest

from hiexp.agent import AgentConfig, SearchAgent
from tests.agent.conftest import RecordingHook


@pytest.mark.slow
def test_real_model_trajectories_are_exact(real_generator, shared_data):
    from hiexp.data import corpus_path_for, load_dataset
    from hiexp.scoring.extract import extract_answer
    from hiexp.scoring.metrics import score_answer
    from hiexp.search import load_retriever

    tok = real_generator.tokenizer
    examples = load_dataset("hotpotqa", split="test", n=1, seed=0)
    retriever = load_retriever(str(corpus_path_for("hotpotqa")))
    config = AgentConfig(top_k=1, max_turns=1, max_new_tokens=24, max_tokens=300, temperature=0.0, batch_size=1)
    trajs = SearchAgent(real_generator, retriever, config, hook=RecordingHook()).run(examples)

    injected_in_completion = 0
    for t in trajs:
        all_ids = [i for turn in t.turns for i in turn.token_ids]
        assert tok.decode(all_ids, skip_special_tokens=False) == t.text
        for turn in t.turns:
            assert tok.decode(turn.token_ids, skip_special_tokens=False) == turn.text
            if turn.role != "policy":
                assert turn.token_ids == tok.encode(turn.text, add_special_tokens=False)
        ids, mask = t.completion_ids_and_mask()
        expected = [1 if turn.role == "policy" else 0
                    for turn in t.turns[t._prompt_end():] for _ in turn.token_ids]
        assert mask == expected and len(ids) == len(mask)
        assert sum(mask) == t.num_tokens > 0
        injected_in_completion += sum(1 for turn in t.turns[t._prompt_end():] if turn.role != "policy")
        assert t.turns[1].role == "experience" and t.hek_version == "hek-test-1"
        # A forced answer continues the injected answer opening, so it is read with that opening.
        opening = "<answer>" if t.metadata.get("forced_answer") else ""
        last_policy = next(x for x in reversed(t.turns) if x.role == "policy").text
        answer = extract_answer(opening + last_policy, t.format) if t.finish == "answer" else None
        assert t.answer == answer
        assert t.rewards == {**score_answer(answer, t.golden_answers), "reward": t.rewards["em"]}
        assert t.finish in ("answer", "max_tokens", "max_turns", "invalid")
    assert injected_in_completion > 0, [t.text[-400:] for t in trajs]
