"""End-to-end training on the tiny model: optimizer steps, telemetry, checkpoints, resume, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from hiexp.errors import HiexpError
from hiexp.io import read_jsonl
from hiexp.train.checkpoints import STATE_FILE, latest_checkpoint
from hiexp.train.runner import run_training

from .conftest import tiny_config


class FakeHook:
    """Only its version matters here: the scripted agent injects its own experience turn."""

    def __init__(self, version):
        self.version = version

    def for_questions(self, questions):
        return []

    def for_queries(self, queries, questions=None):
        return []


def _snapshot_callback(store):
    from transformers import TrainerCallback

    class Snapshot(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            store["before"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

        def on_train_end(self, args, state, control, model=None, **kwargs):
            store["after"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    return Snapshot()


def test_two_steps_change_trainable_params_and_log_both_steps(tmp_path, tiny_parts):
    store = {}
    config = tiny_config(tmp_path, steps=2, save_steps=2, report_to="tensorboard")
    summary = run_training(config, parts=tiny_parts(callbacks=[_snapshot_callback(store)]))
    assert list((tmp_path / "run").rglob("events.out.tfevents*"))  # TRL's report_to got the metrics too
    assert summary["steps"] == 2
    before, after = store["before"], store["after"]
    assert before and all("lora" in name for name in before)  # only the adapter trains
    assert any(not torch.equal(before[n], after[n]) for n in before)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        for key in ("reward_mean", "reward_var", "adv_var", "grad_norm", "grad_norm_var", "response_length",
                    "searches_per_episode", "zero_std_frac", "kl", "clip_frac"):
            assert key in record, key
        # env tokens (passage + experience) are excluded from the response length TRL reports
        assert record["response_length"] == record["policy_tokens"]
        assert record["searches_per_episode"] == 1.5
    assert records[0]["reward_var"] == pytest.approx(0.25)
    state = json.loads((tmp_path / "run" / "checkpoint-2" / STATE_FILE).read_text())
    assert state["hek_version"] is None and state["step"] == 2
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "adapter_model.safetensors"):
        assert (tmp_path / "run" / "checkpoint-2" / name).exists(), name
    rollouts = read_jsonl(tmp_path / "run" / "rollouts.jsonl")
    assert len(rollouts) == 2 * config.completions_per_step


def _adapter(checkpoint):
    from safetensors.torch import load_file

    return load_file(str(checkpoint / "adapter_model.safetensors"))


def test_resume_continues_where_it_stopped(tmp_path, tiny_parts):
    # two questions, one per step: step 2 starts a new epoch, the case where the data order must be restored
    straight = tiny_config(tmp_path / "a", steps=2, save_steps=2, batch_size=1)
    run_training(straight, parts=tiny_parts(n_examples=2))
    first = tiny_config(tmp_path / "b", steps=1, save_steps=1, batch_size=1)
    run_training(first, parts=tiny_parts(n_examples=2))
    second = tiny_config(tmp_path / "b", steps=2, save_steps=1, batch_size=1)
    summary = run_training(second, parts=tiny_parts(n_examples=2))
    assert summary["resumed_from"].endswith("checkpoint-1") and summary["steps"] == 2
    records = read_jsonl(tmp_path / "b" / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    rollouts = read_jsonl(tmp_path / "b" / "run" / "rollouts.jsonl")
    assert [r["metadata"]["train_step"] for r in rollouts] == [0, 0, 1, 1]
    # same seed, data order, rollout sampling and optimizer state: resuming equals never stopping
    a = _adapter(tmp_path / "a" / "run" / "checkpoint-2")
    b = _adapter(tmp_path / "b" / "run" / "checkpoint-2")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)


def test_resume_with_a_different_hek_refuses_unless_forced(tmp_path, tiny_parts):
    config = tiny_config(tmp_path, steps=1, save_steps=1)
    run_training(config, parts=tiny_parts(hook=FakeHook("hek-aaaa")))
    more = tiny_config(tmp_path, steps=2, save_steps=1)
    with pytest.raises(HiexpError, match="hek-aaaa"):
        run_training(more, parts=tiny_parts(hook=FakeHook("hek-bbbb")))
    with pytest.raises(HiexpError, match="none"):
        run_training(more, parts=tiny_parts())  # vanilla resume of a HiExp run
    summary = run_training(more, force=True, parts=tiny_parts(hook=FakeHook("hek-bbbb")))
    assert summary["steps"] == 2
    state = json.loads((tmp_path / "run" / "checkpoint-2" / STATE_FILE).read_text())
    assert state["hek_version"] == "hek-bbbb"


def test_no_resume_refuses_to_mix_with_old_checkpoints(tmp_path, tiny_parts):
    config = tiny_config(tmp_path, steps=1, save_steps=1)
    run_training(config, parts=tiny_parts())
    with pytest.raises(HiexpError, match="already holds checkpoints"):
        run_training(config, resume=False, parts=tiny_parts())


def test_ctrl_c_saves_a_checkpoint_then_stops(tmp_path, tiny_parts):
    from transformers import TrainerCallback

    class PressCtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    config = tiny_config(tmp_path, steps=4, save_steps=100)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, parts=tiny_parts(callbacks=[PressCtrlC()]))
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint.name == "checkpoint-1"
    assert [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1]
    # the SIGINT handler was restored
    assert signal.getsignal(signal.SIGINT) is not None
