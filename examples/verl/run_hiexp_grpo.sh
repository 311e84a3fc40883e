#!/usr/bin/env bash
# HiExp-GRPO on verl with a Ray cluster: Qwen2.5-7B-Instruct, vLLM rollouts through verl's agent loop running
# hiexp's episode (examples/verl/agent_loop.yaml), GRPO with KL 1e-3, outcome reward only. Run on the Ray head
# node after `ray start --head` (and `ray start --address HEAD:6379` on the others), with a retriever served
# by `hiexp serve-retriever INDEX --host 0.0.0.0` and the data as verl parquet (train.parquet / test.parquet in
# Search-R1's layout: `prompt`, `reward_model.ground_truth.target`, `extra_info.index`, plus a column
# `agent_name` = hiexp_agent).
# Needs GPUs; nothing here runs on the CPU machines hiexp is developed on.
set -euo pipefail
DATA=${DATA:-/shared/data}
MODEL=${MODEL:-Qwen/Qwen2.5-7B-Instruct}
NODES=${NODES:-1}
GPUS=${GPUS:-8}

python3 -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  algorithm.use_kl_in_reward=False \
  data.train_files="$DATA/train.parquet" data.val_files="$DATA/test.parquet" \
  data.train_batch_size=256 data.max_prompt_length=2048 data.max_response_length=4096 \
  data.return_raw_chat=True \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.actor.use_kl_loss=True actor_rollout_ref.actor.kl_loss_coef=0.001 \
  actor_rollout_ref.actor.ppo_mini_batch_size=64 actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.mode=async \
  actor_rollout_ref.rollout.n=5 actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
  actor_rollout_ref.rollout.multi_turn.enable=True \
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$(dirname "$0")/agent_loop.yaml" \
  actor_rollout_ref.rollout.calculate_log_probs=True \
  trainer.nnodes="$NODES" trainer.n_gpus_per_node="$GPUS" \
  trainer.project_name=hiexp trainer.experiment_name=hiexp-grpo-qwen2.5-7b \
  trainer.total_epochs=1 trainer.save_freq=50 trainer.test_freq=25 "$@"
