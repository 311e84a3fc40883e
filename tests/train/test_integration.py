"""The whole path with hiexp's own parts: SearchAgent, BM25, a HEK through ExperienceRetriever, TRL.

The policy is the tiny random model; a scripted token generator makes its turns well-formed (search, then
answer) so that every episode has passages and E1 experience to mask. The tokens it returns are real ids of
the model's vocabulary, and the loss is computed on them by TRL like on any sampled tokens.
"""

from __future__ import annotations

import pytest

from hiexp.contracts.generation import Generation
from hiexp.contracts.trajectory import Trajectory
from hiexp.io import read_jsonl

from .conftest import make_examples, tiny_config


class ScriptedTokenGenerator:
    """Token-in/token-out double: first turn searches, second answers; ``.model`` is set by the trainer."""

    QUERY = " capital of France zz"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model_id = "scripted-tokens"
        self.model = None

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            searched = self.QUERY in self.tokenizer.decode(prompt)
            text = " <answer> Paris </answer>" if searched else f" <search>{self.QUERY}</search>"
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            stop = "</answer>" if searched else "</search>"
            out.append(Generation(text=text, token_ids=ids, logprobs=None, finish_reason="stop", stop=stop))
        return out


@pytest.fixture
def tiny_hek(tmp_path):
    """A three-level HEK embedded with the hashing embedder (recorded in its manifest)."""
    from hiexp.experience.hek import HEK
    from hiexp.experience.schema import Entry
    from hiexp.search.embed import load_embedder

    entries = [
        Entry(id="e1-0", level="E1", title="capital of France", description="Name the country in the query."),
        Entry(id="e2-0", level="E2", title="Search before answering", description="Look facts up first.",
              children=["e1-0"]),
        Entry(id="e3-0", level="E3", title="Verify answers", description="Check the passage supports it.",
              children=["e2-0"]),
    ]
    embedder = load_embedder("hashing-64", cache=False)
    vectors = embedder.encode_passages([e.title for e in entries])
    directory = tmp_path / "hek"
    HEK(entries, vectors).save(directory, embedder="hashing-64")
    return directory


def test_hiexp_grpo_step_with_agent_bm25_and_hek(tmp_path, tiny_tokenizer, make_tiny_model, tiny_hek):
    from hiexp.contracts.passage import Passage
    from hiexp.search.bm25 import BM25Retriever
    from hiexp.train.runner import TrainComponents, run_training

    passages = [
        Passage(id="p1", title="France", text="Paris is the capital of France."),
        Passage(id="p2", title="Spain", text="Madrid is the capital of Spain."),
        Passage(id="p3", title="Italy", text="Rome is the capital of Italy."),
    ]
    retriever = BM25Retriever.build(passages, show_progress=False)
    examples = make_examples(2)
    for example in examples:
        example.golden_answers = ["Paris"] if example.id == "q0" else ["Rome"]
    model = make_tiny_model()
    config = tiny_config(tmp_path, steps=1, save_steps=1, hek=str(tiny_hek), hek_threshold=0.0,
                         agent={"top_k": 2, "max_turns": 2, "max_new_tokens": 16, "max_tokens": 400})
    # the trainer builds the real SearchAgent + ExperienceRetriever; only the sampling is scripted
    parts = TrainComponents(model=model, tokenizer=tiny_tokenizer, examples=examples, retriever=retriever,
                            generator=ScriptedTokenGenerator(tiny_tokenizer))
    summary = run_training(config, parts=parts)
    assert summary["steps"] == 1 and summary["hek_version"]
    trajectories = [Trajectory.from_dict(r) for r in read_jsonl(tmp_path / "run" / "rollouts.jsonl")]
    assert len(trajectories) == 4
    for traj in trajectories:
        assert traj.hek_version == summary["hek_version"]
        roles = [turn.role for turn in traj.turns]
        first_policy = roles.index("policy")
        assert "experience" in roles[:first_policy], roles  # E2/E3 in the system prompt
        after = traj.turns[first_policy:]
        assert {"tool", "experience"} <= {t.role for t in after}, roles  # passages, then E1 in the response
        ids, mask = traj.completion_ids_and_mask()
        injected = sum(len(t.token_ids) for t in after if t.role in ("tool", "experience"))
        assert len(mask) - sum(mask) == injected > 0
        assert sum(mask) == sum(len(t.token_ids) for t in after if t.role == "policy")
        assert traj.prompt_ids() + ids == [i for t in traj.turns for i in t.token_ids]  # order kept
        assert traj.rewards["em"] == (1.0 if traj.question_id == "q0" else 0.0)
    record = read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]
    assert record["hek_version"] == summary["hek_version"]
    assert record["searches_per_episode"] == 1.0
    assert record["reward_mean"] == 0.5 and record["zero_std_frac"] == 1.0  # each question: equal rewards
    assert record["experience_tokens"] > 0


class ScriptedSolutionGenerator:
    """Token-in/token-out double for the math format: a right solution for the even samples, a wrong one for
    the odd, so every group of two has one success and one failure (a non-zero advantage)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model_id = "scripted-math"
        self.model = None
        self.calls = 0

    def generate(self, prompts, params):
        out = []
        for _ in prompts:
            text = " 3 + 4 = 7 \\boxed{7}" if self.calls % 2 == 0 else " 3 + 4 = 8 \\boxed{8}"
            self.calls += 1
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            out.append(Generation(text=text, token_ids=ids, logprobs=None, finish_reason="stop", stop=None))
        return out


def test_a_grpo_step_on_math_problems_uses_no_retriever_and_grades_by_equivalence(tmp_path, tiny_tokenizer,
                                                                                   make_tiny_model):
    from hiexp.contracts.example import Example
    from hiexp.train.config import load_config, resolve_config_path
    from hiexp.train.runner import TrainComponents, run_training

    shipped = load_config(resolve_config_path("math-cpu"))
    assert shipped.dataset == "gsm8k-demo" and shipped.agent.format == "math"
    examples = [Example(id=f"m{i}", question=f"Add 3 and 4 ({i}).", golden_answers=["7"], metadata={"task": "math"})
                for i in range(2)]
    config = tiny_config(tmp_path, steps=1, agent={"format": "math", "max_new_tokens": 64, "max_tokens": 128,
                                                   "reward_metric": "em"})
    parts = TrainComponents(model=make_tiny_model(), tokenizer=tiny_tokenizer, examples=examples,
                            generator=ScriptedSolutionGenerator(tiny_tokenizer))
    summary = run_training(config, parts=parts)
    assert summary["steps"] == 1
    trajectories = [Trajectory.from_dict(r) for r in read_jsonl(tmp_path / "run" / "rollouts.jsonl")]
    assert len(trajectories) == 4 and {t.format for t in trajectories} == {"math"}
    assert sorted(t.rewards["em"] for t in trajectories) == [0.0, 0.0, 1.0, 1.0]
    assert all(t.num_searches == 0 and not t.passage_ids for t in trajectories)
    record = read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]
    assert record["reward_mean"] == 0.5 and record["zero_std_frac"] == 0.0  # each group: one right, one wrong
