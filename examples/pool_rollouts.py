"""Pool the policy's episodes on training questions from several runs into one rollout file.

Every evaluation or rollout run on the ``train`` split holds real episodes of the policy; pooled, they give
more questions with a verified success (cases) and more questions with both a right and a wrong answer
(contested groups for checked lessons and for curation) than any one run. Only agent episodes of the
given split's questions are kept (never a test question), and each id gets its run's tag so that ids stay
unique.

    python examples/pool_rollouts.py --out runs/train-pool/trajectories.jsonl runs/train-greedy/trajectories.jsonl \\
        runs/dev-native/demo/agent/trajectories/hotpotqa.jsonl ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hiexp.data import load_dataset
from hiexp.io import iter_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="trajectory JSONL files (rollouts, eval trajectories)")
    parser.add_argument("--out", required=True, type=Path, help="the pooled rollout file to write (must not exist)")
    parser.add_argument("--data", default="hotpotqa", help="dataset whose split is kept")
    parser.add_argument("--split", default="train", help="split whose questions are kept")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; give a new file")
    keep = {e.id for e in load_dataset(args.data, split=args.split)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = 0
    with args.out.open("w", encoding="utf-8") as handle:
        for number, path in enumerate(args.files):
            tag = f"r{number}"
            for record in iter_jsonl(path):
                method = (record.get("metadata") or {}).get("method", "agent")
                if str(record.get("question_id")) not in keep or method != "agent":
                    continue
                record["id"] = f"{tag}/{record['id']}"
                record.setdefault("metadata", {})["pooled_from"] = str(path)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                kept += 1
    print(f"{kept} episodes of {len(keep)} {args.split} questions -> {args.out}")


if __name__ == "__main__":
    main()
