"""``accelerate launch`` with two processes on CPU (gloo): the ranks split the step's questions, step
together and end with equal parameters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("two_process_step.py")


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="the accelerate launcher is not installed")
def test_two_processes_step_together_and_end_with_equal_parameters(tmp_path):
    # --multi_gpu with no GPU visible: accelerate starts torch.distributed workers on the CPU with gloo
    command = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
               "--main_process_port", "0", str(HELPER), str(tmp_path)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [1, 1]
    assert ranks[0]["before"] == ranks[1]["before"]
    assert ranks[0]["after"] == ranks[1]["after"] != ranks[0]["before"]  # one step, applied alike on both
    # batch_size 2 questions per step in all: one on each rank, never the same one twice
    assert [len(r["questions"]) for r in ranks] == [1, 1]
    assert set(ranks[0]["questions"]).isdisjoint(ranks[1]["questions"])
    assert [r["accumulation"] for r in ranks] == [2, 2]


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="the accelerate launcher is not installed")
def test_two_processes_sample_through_a_vllm_server(tmp_path):
    """vllm_mode: server with two training processes: TRL makes its server client on the main process only,
    so every other rank must make its own (before the fix, rank 1 raised AttributeError)."""
    from hiexp.llm.hf import TransformersGenerator
    from tests.llm.test_vllm_server_double import VLLMServeDouble
    from tests.train.conftest import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    sampler = TransformersGenerator(build_tiny_model(tokenizer, seed=0), tokenizer, model_id="tiny")
    helper = Path(__file__).with_name("two_process_vllm_server.py")
    with VLLMServeDouble(sampler) as server:
        command = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                   "--main_process_port", "0", str(helper), str(tmp_path), server.url]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [r["step"] for r in ranks] == [1, 1] and [r["sampler"] for r in ranks] == ["VLLMGenerator"] * 2
    # each rank's turn is one request carrying its episodes' prompts (2 per rank: one question, 2 samples)
    assert len(server.requests) >= 2 and all(len(r["prompt"]) == 2 for r in server.requests)
