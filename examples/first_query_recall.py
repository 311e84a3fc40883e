"""How often the first search reaches a passage holding the answer, for the query the policy wrote, for the
question itself and for the policy's query anchored to the question (``AgentConfig.anchor_first_query``).

No model runs: the first queries come from archived 1.5B trajectories on the HotpotQA ``train`` split (the
dev runs and the third HEK's rollouts in ``docs/results``), each distinct (question, query) pair once, and
every variant is sent to the same BM25 index over the shipped closed-world corpus. A hit is a top-``k``
passage whose title and text hold a gold answer as whole words, after answer normalisation (the check
distillation uses for "the answer was in a passage it read"); yes/no questions are left out, since any
passage may say "no".

    python examples/first_query_recall.py            # a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import tarfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
ARCHIVES = (ROOT / "docs/results/hotpotqa-dev-1.5b-native.tar.gz", ROOT / "docs/results/hek3-1.5b.tar.gz")


def first_queries(archives=ARCHIVES) -> list[tuple[str, str, list[str]]]:
    """(question, first query, gold answers) for each distinct pair in the archives' trajectories."""
    from hiexp.scoring.metrics import normalize_answer

    seen: set[tuple[str, str]] = set()
    rows = []
    for archive in archives:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if not (member.isfile() and member.name.endswith(".jsonl") and "trajector" in member.name):
                    continue
                for line in tar.extractfile(member):
                    record = json.loads(line)
                    golds = list(record["golden_answers"])
                    if (record.get("format") != "search_r1" or not record.get("queries")
                            or not any(normalize_answer(g) not in ("", "yes", "no") for g in golds)):
                        continue
                    key = (record["question"], record["queries"][0])
                    if key not in seen:
                        seen.add(key)
                        rows.append((*key, golds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=3, help="passages per search (the agent's top_k)")
    args = parser.parse_args()

    from hiexp.agent.rules import anchored_query
    from hiexp.components import make_retriever
    from hiexp.experience.contrast import has_words

    rows = first_queries()
    retriever = make_retriever(dataset="hotpotqa")
    variants = {
        "policy's query": [query for _, query, _ in rows],
        "question": [question for question, _, _ in rows],
        "anchored query": [anchored_query(query, question) for question, query, _ in rows],
    }
    hits = {}
    for name, queries in variants.items():
        results = retriever.search(queries, args.k)
        hits[name] = sum(any(has_words(f"{p.title} {p.text}", g) for p in passages for g in answers)
                         for passages, (_, _, answers) in zip(results, rows))
    verbatim = sum(query.strip() == question.strip() for question, query, _ in rows)
    print(f"{len(rows)} first queries ({verbatim} are the question verbatim); answer in the top {args.k}:")
    for name, count in hits.items():
        print(f"  {name:15s} {100 * count / len(rows):5.1f}%")
    gain = 100 * (hits["anchored query"] - hits["policy's query"]) / len(rows)
    print(f"anchored_minus_policy_recall_points: {gain:+.1f}")


if __name__ == "__main__":
    main()
