#!/usr/bin/env bash
# HiExp-GRPO against vanilla GRPO on this CPU machine: the shipped config, the same seed, steps and
# questions in every run; only the HEK differs. Three runs side by side (one thread each on 2 cores):
#   vanilla-grpo      no experience
#   hiexp-grpo        the hand-written seed HEK (examples/seed_hek.py), a stand-in for a teacher's
#   hiexp-grpo-self   the HEK `hiexp demo` self-distils with the 0.5B policy from the same 8 questions
# About an hour at STEPS=8. Re-running resumes each run from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-8}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

python examples/seed_hek.py runs/seed-hek
[ -f runs/demo/hek/manifest.json ] || hiexp demo --out runs/demo

hiexp train --config cpu --model qwen2.5-coder-0.5b --steps "$STEPS" --hek none -o runs/vanilla-grpo > runs/vanilla-grpo.log 2>&1 &
hiexp train --config cpu --model qwen2.5-coder-0.5b --steps "$STEPS" --hek runs/seed-hek -o runs/hiexp-grpo > runs/hiexp-grpo.log 2>&1 &
hiexp train --config cpu --model qwen2.5-coder-0.5b --steps "$STEPS" --hek runs/demo/hek -o runs/hiexp-grpo-self > runs/hiexp-grpo-self.log 2>&1 &
wait
hiexp plot runs/vanilla-grpo runs/hiexp-grpo runs/hiexp-grpo-self --out runs/grpo_stability.png \
  --title "GRPO on 8 HotpotQA questions, Qwen2.5-Coder-0.5B + LoRA (CPU)"
