#!/usr/bin/env bash
# Rebuilds the HEK that ships inside hiexp (`--hek demo`, src/hiexp/data/demo/hek): the curated case HEK of
# docs/results.md ("The curated arm"), the best form measured for the 1.5B policy: the policy's own verified successes on HotpotQA demo TRAIN questions (never test) as worked
# cases, screened by `hiexp curate` on the contested train questions. No reflector, no model call until
# the screen. Inputs are the train episodes archived in docs/results/ (the greedy train rollout and the
# train-split runs of earlier evaluations), pooled into 1,118 episodes of 195 questions.
# About 1 hour on 2 CPU cores (the screen: ~290 greedy episodes); every stage resumes when re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/curated-cases}
A="$OUT/archives"
mkdir -p "$A"

for archive in experience-forms-dev-1.5b hek3-1.5b hotpotqa-dev-1.5b-native hotpotqa-test-1.5b-anchor eval-throughput-1.5b; do
  tar -xzf "docs/results/$archive.tar.gz" -C "$A"
done
[ -f "$OUT/train-pool.jsonl" ] || python examples/pool_rollouts.py --out "$OUT/train-pool.jsonl" \
  "$A"/train-greedy/trajectories.jsonl "$A"/hek3/trajectories.jsonl "$A"/dev-native/*/*/trajectories/hotpotqa.jsonl \
  "$A"/dev80-anchor/*/trajectories/hotpotqa.jsonl "$A"/bench-*/agent/trajectories/hotpotqa.jsonl \
  "$A"/bench-*/hek/trajectories/hotpotqa.jsonl
[ -f "$OUT/cases/manifest.json" ] || hiexp build "$OUT/train-pool.jsonl" --cases-only --case-placement beside \
  --out "$OUT/cases"
hiexp curate "$OUT/cases" "$OUT/train-pool.jsonl" --out "$OUT/hek"
hiexp show "$OUT/hek"
echo "to ship it: rm -rf src/hiexp/data/demo/hek && cp -r $OUT/hek src/hiexp/data/demo/hek"
