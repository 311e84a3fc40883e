"""Where an agent's wrong answers go wrong: searching (the gold answer never reached the passages it read)
or reading (a passage it read held the gold answer, and it answered something else).

For each run directory (or trajectory file), over the questions every run answered: wrong answers (by
cover exact match) to questions that are not yes/no (a yes/no gold is in every passage), split by whether
a passage shown to the agent held a gold answer (whole words, after answer normalisation). A form of
experience that changes searching cannot mend reading errors; the split says which one a policy makes.

    python examples/reading_errors.py runs/test32/agent runs/test32/cases runs/test32/playbook
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from hiexp.scoring.kinds import expects_yes_no
from hiexp.scoring.metrics import normalize_answer


def trajectories(where: Path) -> dict[str, dict]:
    files = sorted((where / "trajectories").glob("*.jsonl")) if where.is_dir() else [where]
    records = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                records[str(record["id"])] = record
    return records


def read_gold(record: dict) -> bool:
    """A passage the agent was shown holds a gold answer (whole words, normalised). The search results are
    its tool turns; a one-retrieval (rag) episode has none and reads its passages in the prompt."""
    tools = [turn["text"] for turn in record["turns"] if turn["role"] == "tool"]
    shown = " ".join(tools or [turn["text"] for turn in record["turns"] if turn["role"] == "prompt"])
    text = f" {normalize_answer(shown)} "
    return any(gold and re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", text)
               for gold in (normalize_answer(g) for g in record["golden_answers"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval run directories or trajectory files")
    args = parser.parse_args()
    runs = {str(path): trajectories(path) for path in args.runs}
    shared = set.intersection(*(set(r) for r in runs.values()))
    print(f"{len(shared)} questions answered in every run\n")
    print("| run | wrong (not yes/no) | gold read, answered wrong | gold never read | searches/q |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, records in runs.items():
        wrong = [records[i] for i in sorted(shared) if records[i]["rewards"].get("cem", 0) < 1
                 and not expects_yes_no(records[i]["question"])]
        read = sum(read_gold(r) for r in wrong)
        searches = sum(records[i].get("num_searches", 0) for i in shared) / max(1, len(shared))
        print(f"| {name} | {len(wrong)} | {read} | {len(wrong) - read} | {searches:.2f} |")


if __name__ == "__main__":
    main()
