"""Seconds per training step with and without a HEK, at equal rollout lengths, in one run.

HiExp adds two costs to a training step: the experience lookups (one embedding and one matrix product per
question and per search call) and the tokens it injects, which every forward and backward pass then carries.
The second is the price of a longer prompt, not of HiExp's machinery, so the headline compares like with
like: all arms use the same scripted token generator (every episode has the same turns and policy tokens),
and the baseline arm without a HEK injects neutral filler of the same token count at the same two points
(system prompt, tool response). The ratio then isolates what the HEK lookup and bookkeeping cost. The plain
baseline (no injection at all) is measured too and its ratio printed, so the cost of the longer sequences
is visible. Every arm runs the real SearchAgent, BM25 retriever and TRL's GRPO step on a real model; the HEK
arm also runs the real ExperienceRetriever.

    python benchmarks/bench_train.py                 # tiny random Qwen2 (about a minute)
    python benchmarks/bench_train.py --model qwen2.5-coder-0.5b  # the embedded 0.5B with LoRA (tens of minutes)

Prints per-arm seconds per step and, last, ``train_step_time_ratio_hek_vs_vanilla: X`` (goal <= 1.1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ScriptedTokens:
    """Searches once, then answers; identical token counts for every episode in both arms."""

    QUERY = " capital of France"

    def __init__(self, tokenizer, policy_tokens: int):
        self.tokenizer = tokenizer
        self.model = None
        self.model_id = "scripted"
        filler = " step" * policy_tokens
        self.search = self._ids(f"{filler} <search>{self.QUERY}</search>")
        self.answer = self._ids(f"{filler} <answer> Paris </answer>")

    def _ids(self, text):
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, prompts, params):
        from hiexp.contracts.generation import Generation

        out = []
        for prompt in prompts:
            done = f"<search>{self.QUERY}</search>" in self.tokenizer.decode(prompt)
            ids = self.answer if done else self.search
            stop = "</answer>" if done else "</search>"
            out.append(Generation(self.tokenizer.decode(ids), list(ids), None, "stop", stop))
        return out


class FillerHook:
    """Injects neutral text with the token count of a given hook's experience, with no lookup."""

    version = None

    def __init__(self, tokenizer, source, questions: list[str], query: str):
        def length(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        # A unit that is one token however often it repeats, so the filler has exactly the same length.
        unit = next((u for u in (" .", " x", " the", ".", " ") if length(u * 16) == 16), " .")
        per_unit = max(1, round(length(unit * 16) / 16))

        def filler(text: str) -> str:
            return unit * (length(text) // per_unit) if text else ""

        self.for_question = {q: filler(i.text) for q, i in zip(questions, source.for_questions(questions))}
        self.for_query = filler(source.for_queries([query])[0].text)

    def for_questions(self, questions):
        from hiexp.contracts.experience import Injection

        return [Injection(self.for_question[q]) for q in questions]

    def for_queries(self, queries, questions=None):
        from hiexp.contracts.experience import Injection

        return [Injection(self.for_query) for _ in queries]


def build_hek(directory: Path, embedder, size: int) -> Path:
    """A synthetic three-level HEK of ``size`` E1 entries (one E2 per 8, one E3 per 4 E2)."""
    from hiexp.experience.hek import HEK
    from hiexp.experience.schema import Entry

    e1 = [Entry(id=f"e1-{i}", level="E1", title=f"capital lookup {i} for country {i % 17}",
                description=f"When a query names place {i}, search the full official name first.")
          for i in range(size)]
    e2 = [Entry(id=f"e2-{j}", level="E2", title=f"Search strategy {j}",
                description="Decompose multi-hop questions and verify each hop.",
                children=[e.id for e in e1[j * 8:(j + 1) * 8]]) for j in range((size + 7) // 8)]
    e3 = [Entry(id=f"e3-{k}", level="E3", title=f"General principle {k}",
                description="Prefer precise queries; answer only when the passages support it.",
                children=[e.id for e in e2[k * 4:(k + 1) * 4]]) for k in range((len(e2) + 3) // 4)]
    entries = e1 + e2 + e3
    vectors = embedder.encode_passages([e.title for e in entries])
    HEK(entries, vectors).save(directory, embedder={"model_id": embedder.model_id, "dim": int(embedder.dim)})
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random", help="generator preset for the policy weights")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per arm (after one warm-up step)")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--policy-tokens", type=int, default=24, help="filler tokens per policy turn")
    parser.add_argument("--hek-size", type=int, default=256, help="E1 entries in the synthetic HEK")
    parser.add_argument("--embedder", default="default", help="embedder for the HEK (default = MiniLM)")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from transformers import TrainerCallback

    from hiexp.contracts.example import Example
    from hiexp.contracts.passage import Passage
    from hiexp.llm import load_generator
    from hiexp.search.bm25 import BM25Retriever
    from hiexp.train.config import TrainConfig
    from hiexp.train.runner import TrainComponents, run_training
    from hiexp.train.telemetry import read_metrics

    passages = [Passage(id=f"p{i}", title=f"Place {i}", text=f"City {i} is the capital of country {i % 17}.")
                for i in range(500)]
    retriever = BM25Retriever.build(passages, show_progress=False)
    examples = [Example(id=f"q{i}", question=f"What is the capital of country {i}?", golden_answers=["Paris"])
                for i in range(16)]
    work = Path(tempfile.mkdtemp(prefix="bench_train_"))

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.start = [], None

        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.start)

    from hiexp.experience.retrieve import load_experience_hook
    from hiexp.search.embed import load_embedder

    embedder = load_embedder(args.embedder)
    hek_dir = build_hek(work / "hek", embedder, args.hek_size)
    lookup = {"seconds": 0.0}

    def timed(function, total):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                total["seconds"] += time.perf_counter() - start
        return wrapper

    # The filler arm copies the HEK arm's injection lengths, computed once (with the first model's tokenizer)
    # outside the timed steps.
    reference = load_experience_hook(hek_dir, embedder=embedder, threshold=0.5)
    filler = None

    arms = ("vanilla", "vanilla-filler", "hek")
    results: dict[str, list[float]] = {}
    tokens: dict[str, list[float]] = {}
    rewards: dict[str, list[float]] = {}
    # Interleave the arms round by round so that load on a shared machine hits all of them alike.
    rounds = 2
    for round_ in range(rounds):
        for arm in arms:
            generator = load_generator(args.model, backend="transformers")
            if filler is None:
                filler = FillerHook(generator.tokenizer, reference, [e.question for e in examples], ScriptedTokens.QUERY)
            timer = StepTimer()
            config = TrainConfig(
                model=args.model, dataset="inline", n=None, group_size=args.group_size,
                batch_size=args.batch_size, steps=1 + args.steps // rounds, save_steps=10_000, lora=True,
                lora_r=8, lora_alpha=16, hek=str(hek_dir) if arm == "hek" else "none", hek_threshold=0.5,
                output_dir=str(work / f"{arm}-{round_}"), save_rollouts=False, seed=round_,
                agent={"max_turns": 2, "max_new_tokens": 8 * args.policy_tokens + 64, "max_tokens": 2048},
            )
            hook = {"vanilla": None, "vanilla-filler": filler}.get(arm)
            if arm == "hek":
                hook = load_experience_hook(hek_dir, embedder=embedder, threshold=config.hek_threshold)
                for name in ("for_questions", "for_queries"):
                    setattr(hook, name, timed(getattr(hook, name), lookup))
            parts = TrainComponents(
                model=generator.model, tokenizer=generator.tokenizer, examples=examples, retriever=retriever,
                generator=ScriptedTokens(generator.tokenizer, args.policy_tokens), callbacks=[timer], hook=hook,
            )
            run_training(config, parts=parts)
            results.setdefault(arm, []).extend(timer.times[1:])  # drop the warm-up step
            records = read_metrics(config.output_dir)
            tokens.setdefault(arm, []).append(records[-1]["trl"]["num_tokens"] / len(records))
            rewards.setdefault(arm, []).extend(r["reward_mean"] for r in records)
            del generator, parts

    median = {arm: statistics.median(times) for arm, times in results.items()}
    mean_tokens = {arm: statistics.mean(values) for arm, values in tokens.items()}
    for arm, times in results.items():
        print(f"{arm}: {median[arm]:.3f} s/step (median of {len(times)}; min {min(times):.3f}, "
              f"max {max(times):.3f}); {mean_tokens[arm]:.0f} tokens/step (prompt + completion); "
              f"reward {statistics.mean(rewards[arm]):.2f}")
    hek_steps = rounds * (1 + args.steps // rounds)
    print(f"experience lookups (embedding + top-k): {lookup['seconds'] / hek_steps:.3f} s/step "
          f"({100 * lookup['seconds'] / hek_steps / median['hek']:.1f}% of a HEK step)")
    print(f"tokens per step: HEK / vanilla-filler {mean_tokens['hek'] / mean_tokens['vanilla-filler']:.3f}, "
          f"HEK / vanilla {mean_tokens['hek'] / mean_tokens['vanilla']:.3f}")
    print(f"step time, HEK / vanilla without any injection (longer sequences included): "
          f"{median['hek'] / median['vanilla']:.3f}")
    print(f"model: {args.model}, G={args.group_size}, questions/step={args.batch_size}, HEK E1 size={args.hek_size}")
    print(f"train_step_time_ratio_hek_vs_vanilla: {median['hek'] / median['vanilla-filler']:.3f}")

if __name__ == "__main__":
    main()
