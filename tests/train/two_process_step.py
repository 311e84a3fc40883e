"""One HiExp-GRPO step in each of the processes ``accelerate launch`` starts (a helper of
``test_multiprocess.py``, not a test). Every rank writes the rollout question ids it ran and a hash of its
trainable parameters before and after the step to ``OUT/rank{N}.json``."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.train.conftest import ScriptedSearchAgent, build_tiny_model, build_tiny_tokenizer, make_examples  # noqa: E402


def parameter_digest(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.named_parameters()):
        if tensor.requires_grad:
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    out = Path(sys.argv[1])
    from accelerate import PartialState

    from hiexp.llm.hf import TransformersGenerator
    from hiexp.train.config import make_config
    from hiexp.train.runner import TrainComponents, build_trainer, end_distributed

    state = PartialState()
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=0)  # the same weights on every rank
    agent = ScriptedSearchAgent(TransformersGenerator(model, tokenizer, model_id="tiny"), tokenizer)
    config = make_config({
        "model": "tiny", "dataset": "inline", "n": None, "group_size": 2, "batch_size": 2, "micro_batch_size": 1,
        "steps": 1, "learning_rate": 5e-2, "lora": True, "lora_r": 4, "lora_alpha": 8, "save_steps": 1,
        "output_dir": str(out / "run"), "seed": 0, "beta": 1e-3, "agent": {"max_new_tokens": 4, "max_tokens": 64},
    })
    parts = TrainComponents(model=model, tokenizer=tokenizer, examples=make_examples(4), agent=agent)
    trainer = build_trainer(config, parts)
    before = parameter_digest(trainer.model)
    trainer.train()
    after = parameter_digest(trainer.model)
    questions = [q for call in agent.calls for q in call["questions"]]
    record = {"rank": state.process_index, "world": state.num_processes, "before": before, "after": after,
              "accumulation": trainer.args.gradient_accumulation_steps, "calls": agent.calls,
              "questions": questions, "step": int(trainer.state.global_step)}
    (out / f"rank{state.process_index}.json").write_text(json.dumps(record))
    end_distributed()


if __name__ == "__main__":
    main()
