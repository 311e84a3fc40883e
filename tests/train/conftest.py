"""Fixtures for the training tests: a tiny random Qwen2 policy and a scripted agent with real token ids."""

from __future__ import annotations

import pytest

from hiexp.contracts.example import Example
from hiexp.contracts.generation import SamplingParams
from hiexp.contracts.trajectory import Trajectory, Turn

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


def build_tiny_tokenizer():
    """A byte-level BPE of 400 tokens with the ChatML specials (plain function: helper scripts use it too)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        "Who wrote the novel? <search> query </search> <information> Doc 1(Title: A) text </information>",
        "<answer> Paris </answer> the capital of France is Paris. Experience: search first, then answer.",
    ] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.padding_side = "left"
    return fast


@pytest.fixture
def make_tiny_model(tiny_tokenizer):
    """A fresh tiny random Qwen2 (2 layers, hidden 64) per call, so a test that trains cannot leak."""

    def make(seed: int = 0):
        return build_tiny_model(tiny_tokenizer, seed)

    return make


def build_tiny_model(tokenizer, seed: int = 0):
    """A tiny random Qwen2 (2 layers, hidden 64), the same for the same seed."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def make_examples(n: int = 4) -> list[Example]:
    return [
        Example(id=f"q{i}", question=f"Question number {i}: who wrote it?", golden_answers=[f"answer {i}"])
        for i in range(n)
    ]


class ScriptedSearchAgent:
    """An agent double with the real ``run`` contract and real token ids.

    Each episode: prompt -> a policy turn sampled from ``generator`` (the policy being trained) -> a tool
    turn (a retrieved passage) -> an experience turn -> a final policy answer turn. ``reward(example,
    sample)`` fixes the outcome reward so tests control the advantages. ``shuffle`` returns trajectories in
    reverse order to check that the rollout restores the prompt order.
    """

    def __init__(self, generator, tokenizer, reward=None, shuffle: bool = False, new_tokens: int = 4):
        self.generator = generator
        self.tokenizer = tokenizer
        self.reward = reward or (lambda example, sample: float(sample % 2 == 0))
        self.shuffle = shuffle
        self.new_tokens = new_tokens
        self.calls: list[dict] = []

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def run(self, examples, samples=1, seed=0):
        self.calls.append({"questions": [e.question for e in examples], "samples": samples, "seed": seed})
        prompts, keys = [], []
        for example in examples:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": example.question}], tokenize=False, add_generation_prompt=True
            )
            for sample in range(samples):
                prompts.append(self._ids(text))
                keys.append((example, sample, text))
        params = SamplingParams(max_new_tokens=self.new_tokens, temperature=1.0, top_p=1.0, seed=seed)
        generations = self.generator.generate(prompts, params)
        out = []
        for (example, sample, text), gen, prompt_ids in zip(keys, generations, prompts, strict=True):
            policy_ids = list(gen.token_ids) or self._ids(" search")
            turns = [
                Turn("prompt", text, prompt_ids),
                Turn("policy", gen.text, policy_ids),
                Turn("tool", " <information> Doc 1(Title: A) text </information>",
                     self._ids(" <information> Doc 1(Title: A) text </information>")),
                Turn("experience", " Experience: search first", self._ids(" Experience: search first")),
                Turn("policy", " <answer> Paris </answer>", self._ids(" <answer> Paris </answer>")),
            ]
            reward = self.reward(example, sample)
            out.append(Trajectory(
                id=f"{example.id}#{sample}", question_id=example.id, sample=sample, format="search_r1",
                model="tiny", question=example.question, golden_answers=list(example.golden_answers),
                turns=turns, answer="Paris", rewards={"em": reward, "cem": reward, "f1": reward},
                num_searches=1 + sample % 2, finish="answer", seed=seed,
            ))
        return list(reversed(out)) if self.shuffle else out


def tiny_config(tmp_path, **overrides):
    """A TrainConfig sized for the tiny model: 2 questions x G=2 per step, LoRA, a few tokens."""
    from hiexp.train.config import make_config

    values = dict(
        model="tiny", dataset="inline", n=None, group_size=2, batch_size=2, steps=2, learning_rate=5e-3,
        lora=True, lora_r=4, lora_alpha=8, save_steps=1, output_dir=str(tmp_path / "run"), seed=0, beta=1e-3,
    )
    agent = {"max_new_tokens": 4, "max_tokens": 64, **overrides.pop("agent", {})}
    values.update(overrides)
    return make_config({**values, "agent": agent})


@pytest.fixture
def tiny_parts(tiny_tokenizer, make_tiny_model):
    """Build ``TrainComponents`` around a fresh tiny model and the scripted agent."""

    def make(reward=None, shuffle=False, n_examples=4, hook=None, callbacks=()):
        from hiexp.llm.hf import TransformersGenerator
        from hiexp.train.runner import TrainComponents

        model = make_tiny_model()
        generator = TransformersGenerator(model, tiny_tokenizer, model_id="tiny")
        agent = ScriptedSearchAgent(generator, tiny_tokenizer, reward=reward, shuffle=shuffle)
        return TrainComponents(
            model=model, tokenizer=tiny_tokenizer, examples=make_examples(n_examples), agent=agent, hook=hook,
            callbacks=list(callbacks),
        )

    return make
