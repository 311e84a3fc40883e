"""One HiExp-GRPO step with ``vllm_mode: server`` in each process ``accelerate launch`` starts, against the
HTTP double of ``trl vllm-serve`` whose URL is the second argument (a helper of ``test_multiprocess.py``,
not a test). vLLM is not installed here: TRL's check for it is answered yes and its weight push (NCCL, which
needs vLLM and a GPU) is skipped; everything else, TRL's ``VLLMGeneration`` and ``VLLMClient`` included, is
the real code. Every rank writes what sampled its episodes to ``OUT/rank{N}.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.train.conftest import build_tiny_model, build_tiny_tokenizer, make_examples  # noqa: E402


def vllm_over_http_only() -> None:
    import trl.generation.vllm_client as client
    import trl.generation.vllm_generation as generation
    import trl.import_utils as import_utils
    import trl.trainer.grpo_trainer as grpo_trainer

    for module in (import_utils, client, generation, grpo_trainer):
        if hasattr(module, "is_vllm_available"):
            module.is_vllm_available = lambda *args, **kwargs: True
    client.VLLMClient.init_communicator = lambda self, device=0: None
    generation.VLLMGeneration.sync_weights = lambda self: None


def main() -> None:
    out, url = Path(sys.argv[1]), sys.argv[2]
    vllm_over_http_only()
    from accelerate import PartialState

    from hiexp.agent import AgentConfig, SearchAgent
    from hiexp.llm.hf import TransformersGenerator
    from hiexp.train.config import make_config
    from hiexp.train.runner import TrainComponents, build_trainer, end_distributed

    state = PartialState()
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)
    agent = SearchAgent(TransformersGenerator(model, tokenizer, model_id="tiny"), None,
                        AgentConfig(format="math", max_new_tokens=4, max_tokens=16, temperature=1.0))
    config = make_config({
        "model": "tiny", "dataset": "inline", "n": None, "group_size": 2, "batch_size": 2, "micro_batch_size": 1,
        "steps": 1, "learning_rate": 5e-2, "lora": True, "lora_r": 4, "lora_alpha": 8, "save_steps": 1,
        "output_dir": str(out / "run"), "seed": 0, "beta": 1e-3, "vllm_mode": "server",
        "vllm_server_base_url": url, "agent": {"format": "math", "max_new_tokens": 4, "max_tokens": 16},
    })
    trainer = build_trainer(config, TrainComponents(model=model, tokenizer=tokenizer, examples=make_examples(4),
                                                     agent=agent))
    trainer.train()
    record = {"rank": state.process_index, "world": state.num_processes, "step": int(trainer.state.global_step),
              "sampler": type(agent.generator).__name__}
    (out / f"rank{state.process_index}.json").write_text(json.dumps(record))
    end_distributed()


if __name__ == "__main__":
    main()
