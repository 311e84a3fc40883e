"""Evaluation throughput on llama.cpp against the floor the hardware sets, in one run.

The floor of one question is the prompt tokens llama.cpp computed fresh (not served from its prompt cache)
divided by the model's prefill speed, plus the tokens it generated divided by its decode speed, both speeds
measured first on this machine with the same engine settings. Each method (``rag``, ``agent``, ``hek`` =
agent + HEK) is evaluated greedily on the same dev questions (train questions the HEK was not distilled
from) into its own fresh run directory under ``--out``, so two runs of this script (other settings, or the
old code with its ``src`` first on ``PYTHONPATH``) can be compared prediction by prediction with
``--compare OTHER_OUT``.

    python benchmarks/bench_eval_throughput.py --out runs/bench-new
    PYTHONPATH=/tmp/old/src python benchmarks/bench_eval_throughput.py --out runs/bench-old --engine default
    python benchmarks/bench_eval_throughput.py --out runs/bench-new --compare runs/bench-old

Engine options (``--parallel``, ``--flash-attn`` ...) are passed to ``LlamaCppGenerator``; ``--engine
default`` passes none, for code that predates them. The headline is the agent + HEK arm's questions per
minute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

METHODS = {"rag": ("rag", False), "agent": ("agent", False), "hek": ("agent", True)}


def count_engine_work(generator: Any) -> dict[str, float]:
    """Sum llama.cpp's per-request ``timings`` (fresh prompt tokens, cached ones, generated ones) by wrapping
    the generator's request method; works with any version of the llama.cpp backend."""
    totals = {"requests": 0, "prompt_n": 0, "cache_n": 0, "predicted_n": 0, "prompt_ms": 0.0, "predicted_ms": 0.0}
    original = generator._request

    async def counted(*args: Any, **kwargs: Any) -> Any:
        response = await original(*args, **kwargs)
        answers = response if isinstance(response, list) else [response]
        for answer in answers:
            timings = answer.get("timings") if isinstance(answer, dict) else None
            if timings:
                totals["requests"] += 1
                for key in ("prompt_n", "cache_n", "predicted_n", "prompt_ms", "predicted_ms"):
                    totals[key] += timings.get(key) or 0
        return response

    generator._request = counted
    return totals


def engine_speeds(generator: Any, prompt_tokens: int = 1024, new_tokens: int = 128) -> tuple[float, float]:
    """(prefill, decode) tokens per second of one sequence, cache off, best of two tries each."""
    import httpx

    root = generator.base_url[: -len("/v1")]
    headers = {"Authorization": f"Bearer {generator._api_key}"}
    words = ("the river of the old town runs past the mill and under seven bridges to the sea " * 200).split()
    prefill, decode = 0.0, 0.0
    with httpx.Client(timeout=600) as client:
        for attempt in range(2):
            body = {"prompt": " ".join(words[: prompt_tokens - 8 + attempt]), "n_predict": 1, "cache_prompt": False,
                    "temperature": 0}
            timings = client.post(f"{root}/completion", json=body, headers=headers).json()["timings"]
            prefill = max(prefill, timings["prompt_per_second"])
            body = {"prompt": f"Count slowly, attempt {attempt}:", "n_predict": new_tokens, "temperature": 0,
                    "ignore_eos": True, "cache_prompt": False}
            timings = client.post(f"{root}/completion", json=body, headers=headers).json()["timings"]
            decode = max(decode, timings["predicted_per_second"])
    return prefill, decode


def dev_questions(n: int, hek: str) -> list[Any]:
    """The first ``n`` train questions that ``hek`` was not distilled from (the project's dev set)."""
    from hiexp.data import load_dataset
    from hiexp.experience.hek import HEK

    seen: set[str] = set()
    for entry in HEK.load(hek).entries:
        seen.update(str(q) for q in entry.sources.get("question_ids") or [entry.sources.get("question_id")] if q)
    return [e for e in load_dataset("hotpotqa", split="train") if str(e.id) not in seen][:n]


def predictions(run_dir: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines() if line.strip()]
    return {str(r["id"]): str(r.get("prediction")) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the methods' run directories and table.md")
    parser.add_argument("--n", type=int, default=40, help="dev questions")
    parser.add_argument("--methods", default="rag,agent,hek", help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--hek", default="demo", help="HEK of the hek method")
    parser.add_argument("--e1-threshold", type=float, default=0.40, help="E1 threshold of the hek method")
    parser.add_argument("--engine", default="", help="'default' to pass no engine options (old code)")
    parser.add_argument("--compare", default=None, help="another --out of this script: count changed predictions")
    parser.add_argument("--label", default="", help="name of this run in the table")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an agent option (AgentConfig field), e.g. --set passage_words=60; may be repeated")
    args, engine_args = parser.parse_known_args()
    options: dict[str, Any] = {}
    for item in engine_args:  # --name=value engine options, passed on as they are (numbers parsed)
        key, _, value = item.lstrip("-").partition("=")
        options[key.replace("-", "_")] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    if args.engine == "default":
        options = {}

    from hiexp.agent.config import AgentConfig
    from hiexp.components import make_experience_hook, make_generator
    from hiexp.eval.evaluate import run_eval

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = dev_questions(args.n, args.hek)
    generator = make_generator("default", **options)
    prefill, decode = engine_speeds(generator)
    totals = count_engine_work(generator)
    agent_options = {}
    for item in args.set:
        key, _, value = item.partition("=")
        agent_options[key] = int(value) if value.lstrip("-").isdigit() else value
    config = AgentConfig(temperature=0.0, seed=0, **agent_options)
    rows = []
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        method, with_hek = METHODS[name]
        hook = make_experience_hook(args.hek, threshold=args.e1_threshold) if with_hek else None
        run_dir = out / name
        shutil.rmtree(run_dir, ignore_errors=True)
        before = dict(totals)
        start = time.perf_counter()
        metrics = run_eval({"hotpotqa": examples}, generator, None, method, run_dir, hook=hook, config=config,
                           split="train", progress=False)
        seconds = time.perf_counter() - start
        used = {k: totals[k] - before[k] for k in totals}
        m = next(iter(metrics.values()))
        n = len(examples)
        floor = (used["prompt_n"] / prefill + used["predicted_n"] / decode) / n
        rows.append({"method": name, "s_per_q": seconds / n, "q_per_min": 60 * n / seconds,
                     "fresh_prompt_per_q": used["prompt_n"] / n, "cached_prompt_per_q": used["cache_n"] / n,
                     "generated_per_q": used["predicted_n"] / n, "requests_per_q": used["requests"] / n,
                     "floor_s_per_q": floor, "ratio_to_floor": seconds / n / floor if floor else float("nan"),
                     "em": m["em"], "cem": m["cem"], "f1": m["f1"]})
    if hasattr(generator, "close"):
        generator.close()

    lines = [f"{args.label or out.name}: {len(examples)} dev questions; prefill {prefill:.1f} tok/s, decode "
             f"{decode:.1f} tok/s (one sequence); engine options {options or 'none'}; agent options "
             f"{agent_options or 'defaults'}", "",
             "| method | s/q | q/min | fresh prompt tok/q | cached tok/q | generated tok/q | requests/q | floor s/q "
             "| ratio | EM | CEM | F1 |", "| --- |" + " ---: |" * 11]
    for r in rows:
        lines.append(f"| {r['method']} | {r['s_per_q']:.2f} | {r['q_per_min']:.2f} | {r['fresh_prompt_per_q']:.0f} | "
                     f"{r['cached_prompt_per_q']:.0f} | {r['generated_per_q']:.0f} | {r['requests_per_q']:.1f} | "
                     f"{r['floor_s_per_q']:.2f} | {r['ratio_to_floor']:.2f} | {100 * r['em']:.1f} | "
                     f"{100 * r['cem']:.1f} | {100 * r['f1']:.1f} |")
    if args.compare:
        lines.append("")
        for r in rows:
            other = Path(args.compare) / r["method"]
            if (other / "predictions.jsonl").is_file():
                mine, theirs = predictions(out / r["method"]), predictions(other)
                changed = sum(mine.get(k) != v for k, v in theirs.items())
                lines.append(f"{r['method']}: {changed} of {len(theirs)} predictions differ from {args.compare}")
    (out / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "rows.json").write_text(json.dumps({"prefill": prefill, "decode": decode, "options": options,
                                               "rows": rows}, indent=1), encoding="utf-8")
    print("\n".join(lines))
    headline = next((r for r in rows if r["method"] == "hek"), rows[-1])
    print(f"{headline['method']}_questions_per_minute: {headline['q_per_min']:.2f}")


if __name__ == "__main__":
    main()
