"""``TrainConfig``: every option of ``hiexp train``, loaded from YAML, with a few CLI overrides.

One dataclass holds the whole run so that a checkpoint can record it and a HiExp run and its vanilla
baseline differ in exactly one field (``hek``). Values are validated here, before any model is loaded, so
that a typo fails in a second with a message naming the key rather than minutes into a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hiexp.errors import HiexpError

ALGORITHMS = ("grpo", "gspo")
REWARD_METRICS = ("em", "cem", "f1")
REPORT_TO = ("none", "tensorboard", "wandb")
FORMATS = ("search_r1", "tool_call")

# Clip ranges when the config leaves them unset. GRPO clips per-token ratios (0.2 as in PPO/DeepSeekMath);
# GSPO clips one length-normalised sequence ratio, which moves far less, so the GSPO paper uses 3e-4 / 4e-4.
DEFAULT_EPSILON = {"grpo": (0.2, 0.2), "gspo": (3e-4, 4e-4)}


@dataclass
class TrainConfig:
    """Options of experience-aligned RL (``hiexp train --config FILE``).

    Model and data
      model: generator preset (``qwen2.5-coder-0.5b``, the fast one on CPU; ``default`` = the 1.5B; ``tiny-random``), a local
        model directory or a hub id; loaded with the transformers backend because the policy is trained.
      dataset: dataset name for ``hiexp.data.load_dataset`` (e.g. ``hotpotqa``) or a JSONL path.
      split: split of ``dataset`` to train on (``train`` keeps the test split clean).
      n: number of questions taken from the split (None = all). Each step draws ``batch_size`` of them.
      index: retriever spec for ``hiexp.search.load_retriever`` (index dir, corpus JSONL or ``http(s)://``
        URL); None uses the dataset's closed-world corpus (``hiexp.data.corpus_path_for``).
      format: action format of the agent, ``search_r1`` (``<search>``/``<answer>`` tags) or ``tool_call``.
      top_k: passages returned per search call.

    Rollouts
      group_size: rollouts per question (G). Advantages are normalised within each question's group, so G >= 2.
      batch_size: questions per optimizer step; a step trains on ``batch_size * group_size`` trajectories.
      micro_batch_size: trajectories per forward/backward pass (gradient accumulation covers the rest);
        None = ``group_size``. Must divide ``batch_size * group_size``.
      temperature, top_p: sampling of the policy during rollouts (1.0 and 0.95 as in the paper).
      max_turns: most policy turns per episode (each search + its results is one turn).
      max_response_tokens: most tokens after the prompt in one episode (policy + injected), the budget
        the agent enforces.
      max_turn_tokens: most new tokens the policy may sample in one turn.

    Algorithm
      algorithm: ``grpo`` (token-level importance ratio) or ``gspo`` (sequence-level ratio: the length-
        normalised log ratio of the whole response). Everything else is shared.
      epsilon_low, epsilon_high: clip range of the ratio, ``[1 - low, 1 + high]``; None takes the
        algorithm's default (GRPO 0.2/0.2, GSPO 3e-4/4e-4).
      beta: weight of the KL penalty to the reference policy (the base model with the adapter switched off
        under LoRA). 0 switches the reference off and saves a forward pass.
      num_iterations: optimisation passes over each batch of rollouts (mu). With 1 the ratio is exactly 1
        at every update and clipping never fires; >1 reuses rollouts and exercises the clip.
      scale_rewards: ``group`` (divide by the group's reward std, GRPO), ``batch`` or ``none`` (Dr. GRPO).
      reward: outcome reward of an episode: exact match (``em``), cover exact match (``cem``) or token F1.

    Optimisation
      learning_rate, lr_scheduler, warmup_steps, weight_decay, max_grad_norm: AdamW and its schedule.
      steps: optimizer steps of the run.
      lora: train a LoRA adapter instead of every weight (needed for the 0.5B model on a CPU machine).
      lora_r, lora_alpha, lora_dropout, lora_targets: the adapter's rank, scale, dropout and the module names
        it wraps.
      gradient_checkpointing: trade compute for activation memory on long multi-turn episodes.

    Experience
      hek: HEK directory whose experience conditions every rollout (E2/E3 in the system prompt, E1 in tool
        responses, exactly as in guided search), or ``none`` for the vanilla baseline with nothing else changed.
      hek_top_k, hek_threshold: start-of-episode entries and the E1 cosine threshold (as in guided search).
      hek_exclude_own_question: never show a rollout the entries distilled from its own training question.
        The reflector saw that question's gold answer, so its entries can quote it; excluding them keeps the
        reward honest when the HEK was built from the training questions. False = the paper's plain lookup.
      embedder: embedder for HEK lookups; None uses the one named in the HEK manifest.

    Run
      seed: seeds data order, rollout sampling and initialisation of the adapter.
      output_dir: where checkpoints, ``metrics.jsonl``, ``rollouts.jsonl`` and ``config.yaml`` go.
      save_steps: checkpoint every this many steps (and at the end, and on Ctrl-C).
      save_total_limit: checkpoints kept (None = all).
      save_rollouts: append every trajectory to ``rollouts.jsonl`` (they can feed ``hiexp build``).
      report_to: also send metrics to ``tensorboard`` or ``wandb`` through TRL (``none`` = JSONL only).
      grad_norm_window: steps over which the gradient-norm variance is computed.
    """

    # model and data
    model: str = "qwen2.5-coder-0.5b"
    dataset: str = "hotpotqa"
    split: str = "train"
    n: int | None = 64
    index: str | None = None
    format: str = "search_r1"
    top_k: int = 3
    # rollouts
    group_size: int = 4
    batch_size: int = 2
    micro_batch_size: int | None = None
    temperature: float = 1.0
    top_p: float = 0.95
    max_turns: int = 4
    max_response_tokens: int = 1024
    max_turn_tokens: int = 256
    # algorithm
    algorithm: str = "grpo"
    epsilon_low: float | None = None
    epsilon_high: float | None = None
    beta: float = 1e-3
    num_iterations: int = 1
    scale_rewards: str = "group"
    reward: str = "em"
    # optimisation
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    steps: int = 100
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    gradient_checkpointing: bool = False
    # experience
    hek: str = "none"
    hek_top_k: int = 5
    hek_threshold: float = 0.8
    hek_exclude_own_question: bool = True
    embedder: str | None = None
    # run
    seed: int = 0
    output_dir: str = "runs/train"
    save_steps: int = 50
    save_total_limit: int | None = None
    save_rollouts: bool = True
    report_to: str = "none"
    grad_norm_window: int = 10

    # --- derived values -------------------------------------------------------------------------------
    @property
    def use_hek(self) -> bool:
        return str(self.hek).lower() not in ("none", "", "null")

    @property
    def clip_range(self) -> tuple[float, float]:
        low, high = DEFAULT_EPSILON[self.algorithm]
        low = low if self.epsilon_low is None else self.epsilon_low
        high = high if self.epsilon_high is None else self.epsilon_high
        return low, high

    @property
    def completions_per_step(self) -> int:
        return self.batch_size * self.group_size

    @property
    def micro_batch(self) -> int:
        return self.micro_batch_size or self.group_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # --- validation -----------------------------------------------------------------------------------
    def validate(self, source: str = "config") -> TrainConfig:
        """Raise ``HiexpError`` naming the first bad key; return self so calls chain."""

        def bad(key: str, why: str) -> HiexpError:
            return HiexpError(f"{source}: {key}: {why}")

        if self.algorithm not in ALGORITHMS:
            raise bad("algorithm", f"{self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if self.reward not in REWARD_METRICS:
            raise bad("reward", f"{self.reward!r} is not one of {', '.join(REWARD_METRICS)}")
        if self.report_to not in REPORT_TO:
            raise bad("report_to", f"{self.report_to!r} is not one of {', '.join(REPORT_TO)}")
        if self.format not in FORMATS:
            raise bad("format", f"{self.format!r} is not one of {', '.join(FORMATS)}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise bad("scale_rewards", f"{self.scale_rewards!r} is not one of group, batch, none")
        if self.group_size < 2:
            raise bad(
                "group_size",
                f"must be >= 2 (got {self.group_size}): a group of one has no baseline, so every advantage is 0",
            )
        for key in ("batch_size", "steps", "max_turns", "max_response_tokens", "max_turn_tokens", "top_k",
                    "save_steps", "num_iterations", "lora_r", "grad_norm_window"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(key, f"must be a positive integer, got {value!r}")
        if self.n is not None and (not isinstance(self.n, int) or self.n < 1):
            raise bad("n", f"must be a positive integer or null, got {self.n!r}")
        if self.n is not None and self.n < self.batch_size:
            raise bad("n", f"{self.n} questions cannot fill a batch of {self.batch_size}")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise bad("micro_batch_size", f"must be a positive integer or null, got {self.micro_batch_size!r}")
        if self.completions_per_step % self.micro_batch:
            raise bad(
                "micro_batch_size",
                f"{self.micro_batch} does not divide batch_size * group_size = {self.completions_per_step}",
            )
        if not 0.0 < self.temperature:
            raise bad("temperature", f"must be > 0 for RL rollouts, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise bad("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.beta < 0:
            raise bad("beta", f"must be >= 0, got {self.beta}")
        if self.learning_rate <= 0:
            raise bad("learning_rate", f"must be > 0, got {self.learning_rate}")
        low, high = self.clip_range
        if not (0 < low < 1 and high > 0):
            raise bad("epsilon_low/epsilon_high", f"clip range [1-{low}, 1+{high}] is empty or inverted")
        if not self.lora_targets:
            raise bad("lora_targets", "needs at least one module name")
        return self


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    """Turn YAML/CLI values into the field's type (YAML gives ``1e-3`` as a string, CLI gives strings)."""
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in ("null", "~") and name in _NULLABLE:
        return None
    kind = type(default) if default is not None else _NULLABLE.get(name, str)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return list(value)
        return str(value)
    except (TypeError, ValueError):
        raise HiexpError(f"{source}: {name}: expected {kind.__name__}, got {value!r}") from None


# Fields whose default is None, with the type a non-null value takes.
_NULLABLE: dict[str, type] = {
    "n": int, "index": str, "micro_batch_size": int, "epsilon_low": float, "epsilon_high": float,
    "embedder": str, "save_total_limit": int,
}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (or start from defaults), apply ``overrides`` (None values ignored), validate."""
    import yaml

    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.exists():
            raise HiexpError(f"{path}: no such config file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise HiexpError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise HiexpError(f"{path}: expected a mapping of option: value, got {type(loaded).__name__}")
        raw = loaded
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise HiexpError(f"{source}: unknown option(s) {', '.join(unknown)}; see docs/training.md")
    defaults = TrainConfig()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _coerce(name, value, getattr(defaults, name), source)
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in known:
            raise HiexpError(f"unknown override {name!r}")
        values[name] = _coerce(name, value, getattr(defaults, name), "command line")
    return TrainConfig(**values).validate(source)


def dump_config(config: TrainConfig) -> str:
    """The config as YAML, in field order (what the run directory and checkpoints record)."""
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def resolve_config_path(value: str | None) -> Path | None:
    """A config file path, or the name of a config shipped with hiexp (``cpu`` -> ``train/configs/train_cpu.yaml``)."""
    if value is None:
        return None
    path = Path(value)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    for candidate in (PACKAGED_CONFIGS / f"train_{value}.yaml", PACKAGED_CONFIGS / f"{value}.yaml"):
        if candidate.exists():
            return candidate
    return path
