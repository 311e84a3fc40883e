"""The closed loop: a HEK refreshed from the training rollouts, swapped in between steps, one snapshot per
group, version history in checkpoints, the exact version restored on resume, telemetry per refresh."""

from __future__ import annotations

import json

import pytest

from hiexp.contracts.generation import Generation
from hiexp.contracts.trajectory import Trajectory
from hiexp.errors import HiexpError
from hiexp.experience.hek import HEK
from hiexp.io import read_jsonl
from hiexp.train.checkpoints import latest_checkpoint, read_checkpoint_state
from hiexp.train.rollout import AgentRollout

from .conftest import make_examples, tiny_config
from .test_integration import tiny_hek  # noqa: F401  (a fixture, used by name)


class _Hook:
    def __init__(self, version):
        self.version = version


class SwappingAgent:
    """Starts its episodes one at a time, asking for a HEK swap after the first, as a refresh running at
    the wrong moment would; each episode records the hook it started with."""

    def __init__(self, rollout_ref):
        self.hook = _Hook("v1")
        self.rollout_ref = rollout_ref

    def run(self, examples, samples=1, seed=0):
        out = []
        for example in examples:
            for sample in range(samples):
                out.append(Trajectory(id=f"{example.id}#{sample}", question_id=example.id, sample=sample,
                                      format="search_r1", model="m", hek_version=self.hook.version,
                                      rewards={"em": 0.0}))
                if len(out) == 1:
                    self.rollout_ref[0].set_hook(_Hook("v2"))
        return out


def test_a_swap_asked_for_during_a_rollout_waits_until_the_group_is_done():
    ref = []
    agent = SwappingAgent(ref)
    examples = make_examples(2)
    rollout = AgentRollout(agent, {e.question: e for e in examples}, reward="em")
    ref.append(rollout)
    prompts = [examples[0].question] * 3 + [examples[1].question] * 3
    with pytest.raises(HiexpError, match="no prompt token ids"):  # no token ids in these trajectories: the call fails after the agent ran
        rollout(prompts)
    assert agent.hook.version == "v2"  # the swap happened once the call ended
    agent.hook = _Hook("v1")
    trajectories = agent.run(examples, samples=3)
    assert {t.hek_version for t in trajectories} == {"v1", "v2"}  # the agent alone would mix versions
    rollout.set_hook(_Hook("v3"))  # outside a call the swap is immediate
    assert agent.hook.version == "v3"


class LearningScriptedGenerator:
    """Token-in/token-out double for the policy: searches, then answers Paris and Lyon in turn (so each
    group has a success and a failure); as the reflector it writes one lesson, as the summariser one summary."""

    QUERY = " capital of France zz"
    LESSON = json.dumps([{"title": "Search the bridge entity before the last hop", "tags": ["bridge"],
                          "description": "Find the linking entity first, then ask about it.",
                          "thinking": "The success searched the link."}])

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model_id = "scripted-tokens"
        self.model = None
        self.answers = 0

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            text_in = self.tokenizer.decode(prompt) if not isinstance(prompt, str) else prompt
            stop = None
            if "attempts by a search agent" in text_in:
                text = self.LESSON
            elif "pieces of experience" in text_in:
                text = json.dumps({"title": "Find the link first", "description": "Search the linking entity."})
            elif self.QUERY in text_in:
                text = " <answer> Paris </answer>" if self.answers % 2 == 0 else " <answer> Lyon </answer>"
                self.answers += 1
                stop = "</answer>"
            else:
                text, stop = f" <search>{self.QUERY}</search>", "</search>"
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            out.append(Generation(text=text, token_ids=ids, logprobs=None, finish_reason="stop", stop=stop))
        return out


def _parts(tiny_tokenizer, make_tiny_model):
    from hiexp.contracts.passage import Passage
    from hiexp.search.bm25 import BM25Retriever
    from hiexp.train.runner import TrainComponents

    passages = [Passage(id="p1", title="France", text="Paris is the capital of France."),
                Passage(id="p2", title="Spain", text="Madrid is the capital of Spain.")]
    examples = make_examples(2)
    for example in examples:
        example.golden_answers = ["Paris"]
    return TrainComponents(model=make_tiny_model(), tokenizer=tiny_tokenizer, examples=examples,
                           retriever=BM25Retriever.build(passages, show_progress=False),
                           generator=LearningScriptedGenerator(tiny_tokenizer))


def test_closed_loop_training_refreshes_records_and_resumes(tmp_path, tiny_tokenizer, make_tiny_model,
                                                           tiny_hek, monkeypatch):  # noqa: F811
    from hiexp.train.runner import run_training

    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
    config = tiny_config(tmp_path, steps=2, save_steps=1, hek=str(tiny_hek), hek_threshold=0.0,
                         hek_refresh_every=1, hek_success_key="em",
                         agent={"top_k": 1, "max_turns": 2, "max_new_tokens": 16, "max_tokens": 400})
    summary = run_training(config, parts=_parts(tiny_tokenizer, make_tiny_model))
    run = tmp_path / "run"
    assert summary["steps"] == 2 and summary["hek_versions"] == 2
    first = HEK.load(tiny_hek)
    v1 = HEK.load(run / "hek" / "step-1")
    assert v1.manifest["parent"]["hek_version"] == first.version
    assert v1.counts()["E1"] == first.counts()["E1"] + 1  # the lesson of the contrastive group
    new_entry = next(e for e in v1.level("E1") if e.id not in {x.id for x in first.entries})
    assert new_entry.sources["question"]  # its question, for the leak guard

    trajectories = [Trajectory.from_dict(r) for r in read_jsonl(run / "rollouts.jsonl")]
    by_step = {}
    for traj in trajectories:
        by_step.setdefault(traj.metadata["train_step"], set()).add(traj.hek_version)
    assert by_step[0] == {first.version}  # step 1 rolled out with the HEK it started with
    assert by_step[1] == {v1.version}  # step 2: one snapshot, the first refresh
    state = read_checkpoint_state(latest_checkpoint(run))
    assert [h["step"] for h in state["hek_history"]] == [1, 2]
    assert state["hek_path"].endswith("step-2") and state["hek_version"] == HEK.load(state["hek_path"]).version
    metrics = read_jsonl(run / "metrics.jsonl")
    assert metrics[0]["hek_e1"] == first.counts()["E1"] and metrics[1]["hek_e1"] == v1.counts()["E1"]
    assert metrics[0]["hek_added"] == 1 and "hek_refresh_s" in metrics[0]
    assert metrics[1]["hek_version"] == state["hek_version"]

    # resume for one more step: the run continues with the version the checkpoint recorded
    config3 = tiny_config(tmp_path, steps=3, save_steps=1, hek=str(tiny_hek), hek_threshold=0.0,
                          hek_refresh_every=2, hek_success_key="em",
                          agent={"top_k": 1, "max_turns": 2, "max_new_tokens": 16, "max_tokens": 400})
    summary3 = run_training(config3, parts=_parts(tiny_tokenizer, make_tiny_model))
    assert summary3["resumed_from"].endswith("checkpoint-2") and summary3["hek_version"] == state["hek_version"]
    step3 = {Trajectory.from_dict(r).hek_version for r in read_jsonl(run / "rollouts.jsonl")
             if r["metadata"]["train_step"] == 2}
    assert step3 == {state["hek_version"]}
