#!/usr/bin/env bash
# Rebuilds a HEK like the math one that ships inside hiexp (`--hek demo-math`, src/hiexp/data/demo/hek-math):
# Qwen2.5-Coder-1.5B self-distils it from its own solutions of GSM8K demo TRAIN problems (never the test
# split): 4 solutions each at temperature 1.0, contrast by answer equivalence (math-verify), the step where a
# wrong solution parts ways marked for the reflector, Ward clusters summarised into E2 and E3.
# The shipped HEK used the first LIMIT=71 trajectories of this rollout (18 problems; the run was stopped there
# for time): 9 contrastive groups, 18 E1. Every stage resumes when re-run. About 10 s per solution on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/math-hek}
N=${N:-48}
LIMIT=${LIMIT:-}
mkdir -p "$OUT"

hiexp rollout --data gsm8k-demo --split train --n "$N" --k 4 --temperature 1.0 --top-p 0.95 --batch-size 8 \
  --out "$OUT/trajectories.jsonl"
if [ -n "$LIMIT" ]; then head -n "$LIMIT" "$OUT/trajectories.jsonl" > "$OUT/used.jsonl"; else cp "$OUT/trajectories.jsonl" "$OUT/used.jsonl"; fi
hiexp distill "$OUT/used.jsonl" --out "$OUT/e1.jsonl" --reward-key em --threshold 1 --batch-size 8
hiexp build "$OUT/e1.jsonl" --out "$OUT/hek" --batch-size 8 \
  --description "self-distilled by Qwen2.5-Coder-1.5B from 4 solutions (T=1.0, top-p 0.95) of each of $N GSM8K demo train problems; contrast by answer equivalence"
hiexp show "$OUT/hek"
echo "to ship it: rm -rf src/hiexp/data/demo/hek-math && cp -r $OUT/hek src/hiexp/data/demo/hek-math"
