"""With vs without experience, beside the baselines, on a test split: the closing-note table of issue 10.

Every arm (closed-book, rag, agent, agent + HEK, the ablations) is evaluated by ``hiexp.eval.run_eval`` on
the same questions with the same greedy settings, in growing prefixes of the split (``--step`` questions at a
time, every arm in turn). Each arm's run directory is an ordinary resumable ``hiexp eval`` run, so stopping
at any point leaves every arm on the same questions, ``hiexp compare`` works on any two of them, and a
re-run continues where it stopped.

    python examples/compare_on_test.py --out runs/test-1.5b --hek demo
    python examples/compare_on_test.py --out runs/test-1.5b-2wiki --data 2wiki --split all --hek demo
    python examples/compare_on_test.py --out runs/dev --split train --exclude-sources-of demo --n 40 --hek demo
    python examples/compare_on_test.py --out runs/math --data gsm8k-demo --arms agent,hek,other-hek \
        --hek demo-math --other-hek demo

``agent-no-options`` is the agent without the rule that sends back an answer naming neither of the two
choices a question offers (``AgentConfig.answer_from_options``); ``agent-no-anchor`` is the agent whose first
search retrieves for its own query alone (``AgentConfig.anchor_first_query``); ``agent-no-echo`` is the agent that
accepts an answer made only of the question's words (``AgentConfig.answer_beyond_question``);
``--choice-questions`` keeps only the questions that offer two choices, where the option rule can act.

A math dataset is solved in the ``math`` format (no search tool, 768 tokens) and scored by one accuracy,
Pass@1. ``other-hek`` is an arm with a second HEK (``--other-hek``), e.g. one built on another task.

Writes ``table.md`` (scores, searches, tokens and seconds per question for each arm, then the deltas with
paired bootstrap 95% intervals) into ``--out`` after every prefix, and prints it at the end.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

ARMS = ("closed-book", "rag", "agent-no-options", "agent-no-anchor", "agent-no-echo", "agent",
        "hek", "hek-no-e1", "hek-no-e2e3", "other-hek", "cases", "lessons", "curated", "playbook")
# the arms of the experience forms (issue "Experience a 1.5B policy can use"): arm -> option naming its HEK
_FORM_ARMS = {"cases": "cases_hek", "lessons": "lessons_hek", "curated": "curated_hek", "playbook": "playbook_hek"}
# arm -> (method, ablation or None)
_ARM_METHOD = {"closed-book": ("closed-book", None), "rag": ("rag", None), "agent": ("agent", None),
               "agent-no-options": ("agent", None), "agent-no-anchor": ("agent", None),
               "agent-no-echo": ("agent", None),
               "hek": ("agent", "full"), "hek-no-e1": ("agent", "no-e1"), "hek-no-e2e3": ("agent", "no-e2e3"),
               "other-hek": ("agent", "full"), "cases": ("agent", "full"), "lessons": ("agent", "full"),
               "curated": ("agent", "full"), "playbook": ("agent", "full")}
# arm -> agent options that differ from the default
_ARM_OPTIONS = {"agent-no-options": {"answer_from_options": False},
                "agent-no-anchor": {"anchor_first_query": False},
                "agent-no-echo": {"answer_beyond_question": False}}
# (baseline arm, arm) pairs whose difference is reported
_DELTAS = (("agent-no-options", "agent"), ("agent-no-anchor", "agent"), ("agent-no-echo", "agent"),
           ("agent", "hek"), ("agent", "hek-no-e1"), ("agent", "hek-no-e2e3"), ("agent", "other-hek"),
           ("agent", "cases"), ("agent", "lessons"), ("agent", "curated"), ("agent", "playbook"),
           ("rag", "agent"), ("rag", "hek"), ("rag", "cases"), ("rag", "lessons"), ("rag", "curated"),
           ("rag", "playbook"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory of the arms' run directories and table.md")
    parser.add_argument("--data", default="hotpotqa", help="dataset name (its own closed-world corpus is searched)")
    parser.add_argument("--split", default="test", help="split ('all' for every record)")
    parser.add_argument("--n", type=int, default=None, help="questions (a prefix of the split); all if not given")
    parser.add_argument("--step", type=int, default=25, help="questions added to every arm per round")
    parser.add_argument("--arms", default="closed-book,rag,agent,hek", help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--hek", default="demo", help="HEK of the hek arms: a directory or a shipped name")
    parser.add_argument("--other-hek", default=None, help="HEK of the other-hek arm (e.g. one built on another task)")
    for arm, option in _FORM_ARMS.items():
        parser.add_argument(f"--{option.replace('_', '-')}", default=None, help=f"HEK of the {arm} arm")
    parser.add_argument("--cases", type=int, default=None,
                        help="worked cases per episode in the experience arms (default: what each HEK recommends)")
    parser.add_argument("--e1-threshold", type=float, default=None,
                        help="least cosine of a search query to an E1 title for the entry to join the passages "
                             "(default: the threshold calibrated in the HEK manifest, else 0.8)")
    parser.add_argument("--top-k", type=int, default=5, help="E2/E3 entries in the system prompt")
    parser.add_argument("--model", default="default", help="policy: preset, directory, .gguf file or URL")
    parser.add_argument("--exclude-sources-of", action="append", default=[], metavar="HEK",
                        help="leave out the questions this HEK was distilled from (for a dev set carved from train); "
                             "may be repeated")
    parser.add_argument("--choice-questions", action="store_true",
                        help="keep only the questions that offer two choices ('..., X or Y?')")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from hiexp.agent.config import AgentConfig
    from hiexp.components import make_experience_hook, make_generator
    from hiexp.data import load_dataset
    from hiexp.eval.evaluate import run_eval

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = load_dataset(args.data, split=None if args.split == "all" else args.split)
    if args.exclude_sources_of:
        from hiexp.experience.hek import HEK

        seen = set()
        for entry in (e for hek in args.exclude_sources_of for e in HEK.load(hek).entries):
            seen.update(str(q) for q in entry.sources.get("question_ids") or [entry.sources.get("question_id")] if q)
        examples = [e for e in examples if str(e.id) not in seen]
    if args.choice_questions:
        from hiexp.agent.loop import offered_options

        examples = [e for e in examples if offered_options(e.question) is not None]
    if args.n is not None:
        examples = examples[: args.n]
    if "other-hek" in arms and not args.other_hek:
        parser.error("the other-hek arm needs --other-hek HEK")
    for arm, option in _FORM_ARMS.items():
        if arm in arms and not getattr(args, option):
            parser.error(f"the {arm} arm needs --{option.replace('_', '-')} HEK")
    from hiexp.cli.agent import task_format, turn_budget

    fmt = task_format(None, examples)
    config = AgentConfig(temperature=0.0, seed=args.seed, format=fmt,
                         **({"max_new_tokens": turn_budget(fmt, None)} if fmt == "math" else {}))
    generator = make_generator(args.model)
    hooks: dict = {}
    for arm in arms:
        ablation = _ARM_METHOD[arm][1]
        if ablation is not None:  # the embedder is loaded once and shared by the ablations
            shared = next(iter(hooks.values())).embedder if hooks else None
            hek = getattr(args, _FORM_ARMS[arm]) if arm in _FORM_ARMS else (
                args.other_hek if arm == "other-hek" else args.hek)
            # an entry never meets its own question (on a dev part of train, HEKs come from the same split)
            hooks[arm] = make_experience_hook(hek, top_k=args.top_k, threshold=args.e1_threshold, embedder=shared,
                                              ablation=ablation, cases=args.cases, exclude_own_question=True)
    timing_path = out / "seconds.json"
    seconds: dict[str, float] = json.loads(timing_path.read_text()) if timing_path.exists() else {}

    for end in range(min(args.step, len(examples)), len(examples) + args.step, args.step):
        prefix = examples[: min(end, len(examples))]
        for arm in arms:
            method, _ = _ARM_METHOD[arm]
            start = time.perf_counter()
            arm_config = replace(config, **_ARM_OPTIONS[arm]) if arm in _ARM_OPTIONS else config
            run_eval({args.data: prefix}, generator, None, method, out / arm, hook=hooks.get(arm),
                     config=arm_config, split=args.split, seed=args.seed, progress=False)
            seconds[arm] = seconds.get(arm, 0.0) + time.perf_counter() - start
            timing_path.write_text(json.dumps(seconds, indent=1))
        table = render(out, arms, len(prefix), seconds)
        (out / "table.md").write_text(table, encoding="utf-8")
        print(f"{len(prefix)} questions done", flush=True)
        if end >= len(examples):
            break
    print(table)


def render(out: Path, arms: list[str], n: int, seconds: dict[str, float]) -> str:
    """The arms' scores, then the paired deltas (points out of 100, 95% bootstrap intervals); a math dataset
    has one score, Pass@1."""
    from hiexp.eval.compare import compare_runs

    first = next(iter(json.loads((out / arms[0] / "metrics.json").read_text()).values()))
    math = first.get("task") == "math"
    scores = ("accuracy",) if math else ("em", "cem", "f1")
    names = ["Pass@1"] if math else ["EM", "CEM", "F1"]
    lines = [f"{n} questions", "", "| arm | " + " | ".join(names) + " | searches/q | tokens/q | s/q (total, this machine) |",
             "| --- |" + " ---: |" * (len(names) + 3)]
    for arm in arms:
        metrics = json.loads((out / arm / "metrics.json").read_text())
        m = next(iter(metrics.values()))
        per_q = seconds.get(arm, 0.0) / max(m["n"], 1)
        cells = [f"{100 * m['em']:.1f}"] if math else [f"{100 * m[k]:.1f}" for k in ("em", "cem", "f1")]
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {m['searches']:.2f} | {m['tokens']:.0f} | {per_q:.1f} |")
    shown = (*scores, "tokens") if math else (*scores, "searches", "tokens")
    lines += ["", "| B - A | " + " | ".join(names) + (" | tokens/q |" if math else " | searches/q | tokens/q |"),
              "| --- |" + " --- |" * len(shown)]
    for a, b in _DELTAS:
        if a not in arms or b not in arms:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comparison = compare_runs(out / a, out / b)
        dc = next(iter(comparison.datasets.values()))
        cells = []
        for metric in shown:
            d = dc.deltas[metric]
            scale = 100 if metric in ("em", "cem", "f1", "accuracy") else 1
            digits = 1 if scale == 100 else 2
            mark = "" if d.low <= 0 <= d.high else " *"
            cells.append(f"{scale * d.delta:+.{digits}f} [{scale * d.low:+.{digits}f}, {scale * d.high:+.{digits}f}]{mark}")
        lines.append(f"| {b} - {a} | " + " | ".join(cells) + " |")
    lines += ["", "`*`: the 95% interval excludes 0; every other interval includes 0."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
