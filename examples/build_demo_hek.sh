#!/usr/bin/env bash
# Rebuilds the paper-form HEK that ships inside hiexp (`--hek demo-paper`, src/hiexp/data/demo/hek-paper): Qwen2.5-Coder-1.5B
# self-distils it from its own rollouts on 40 questions of the demo set's TRAIN split (never the test
# split): 4 rollouts each at temperature 1.0, contrast by cover exact match (leaking entries mended or
# refused), Ward clusters summarised into E2 and E3. About 1.5 hours on 2 CPU cores (llama.cpp): rollouts
# about 45 min, distillation about 30 min, the build a few minutes; every stage resumes when re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo-hek}
N=${N:-40}
mkdir -p "$OUT"

hiexp rollout --data hotpotqa --split train --n "$N" --k 4 --temperature 1.0 --top-p 0.95 --batch-size 8 \
  --out "$OUT/trajectories.jsonl"
hiexp distill "$OUT/trajectories.jsonl" --out "$OUT/e1.jsonl" --reward-key cem --threshold 1 --batch-size 8
hiexp build "$OUT/e1.jsonl" --out "$OUT/hek" --batch-size 8 \
  --description "self-distilled by Qwen2.5-Coder-1.5B from 4 rollouts (T=1.0, top-p 0.95) on each of $N HotpotQA demo train questions; contrast by cover exact match"
hiexp show "$OUT/hek"
echo "to ship it: rm -rf src/hiexp/data/demo/hek-paper && cp -r $OUT/hek src/hiexp/data/demo/hek-paper"
