#!/usr/bin/env bash
# The GPU check, one command: short HiExp-GRPO and vanilla GRPO runs of Qwen2.5-1.5B-Instruct with vLLM
# rollouts in colocate mode and in server mode (a `trl vllm-serve` on the same GPU), and HiExp-GRPO with the
# transformers sampler, on the shipped HotpotQA demo set; prints seconds per step and generated tokens per
# second of step time for each.
#   bash examples/gpu/vllm_grpo_check.sh [MODEL_DIR]
# Needs one GPU with vllm, torch (CUDA) and hiexp[train] installed, and the model in MODEL_DIR (a local
# directory: the machine may reach no hub). Writes runs/gpu-check/<arm>/ and summary.txt.
set -euo pipefail
MODEL=${1:-${MODEL:-Qwen/Qwen2.5-1.5B-Instruct}}
OUT=${OUT:-runs/gpu-check}
STEPS=${STEPS:-4}
mkdir -p "$OUT"
common=(--model "$MODEL" --dataset hotpotqa --set n=32 --set steps="$STEPS" --set batch_size=4 --set group_size=8
        --set micro_batch_size=8 --set lora=false --set learning_rate=1e-6 --set save_steps=1000
        --set agent.max_new_tokens=256 --set agent.max_tokens=1536 --set agent.max_turns=3)
run() {  # name, extra options
  local name=$1; shift
  local start=$(date +%s)
  hiexp train --config cpu "${common[@]}" --output-dir "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
  local seconds=$(( $(date +%s) - start ))
  python - "$OUT/$name" "$seconds" "$name" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
from pathlib import Path
run, seconds, name = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
rollouts = [json.loads(l) for l in (run / "rollouts.jsonl").read_text().splitlines() if l.strip()]
tokens = sum(t["num_tokens"] for t in rollouts)
step_s = sum(r.get("step_time", 0.0) for r in rows) or seconds
print(f"{name:13s} steps {len(rows)}  wall {seconds:.0f} s  s/step {step_s / max(len(rows), 1):.1f}  "
      f"generated tokens {tokens}  tokens per step-second {tokens / step_s:.0f}  "
      f"reward {sum(r.get('reward_mean', 0) for r in rows) / max(len(rows), 1):.3f}")
PY
}
: > "$OUT/summary.txt"
run vllm-colocate --hek demo --set vllm_mode=colocate --set vllm_gpu_memory_utilization=0.35
run vanilla-colocate --hek none --set vllm_mode=colocate --set vllm_gpu_memory_utilization=0.35
run transformers --hek demo
PORT=${PORT:-8000}
trl vllm-serve --model "$MODEL" --gpu-memory-utilization 0.35 --port "$PORT" > "$OUT/vllm-serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -sf "http://localhost:$PORT/health" > /dev/null && break; sleep 5; done
run vllm-server --hek demo --set vllm_mode=server --set vllm_server_base_url="http://localhost:$PORT"
run vanilla-server --hek none --set vllm_mode=server --set vllm_server_base_url="http://localhost:$PORT"
cat "$OUT/summary.txt"
