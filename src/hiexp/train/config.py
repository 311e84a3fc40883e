"""``TrainConfig``: every option of ``hiexp train``, read from YAML with CLI overrides, validated by pydantic.

One model holds the whole run so that a checkpoint can record it and a HiExp run and its vanilla baseline
differ in exactly one field (``hek``). The agent's options are the agent's own ``AgentConfig``, nested under
``agent:``, so a rollout during training and an episode of ``hiexp eval`` are configured with the same
names. Values are checked here, before any model is loaded, so that a typo fails in a second with a message
naming the key rather than minutes into a run.
"""

from __future__ import annotations

import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hiexp.agent.config import AgentConfig
from hiexp.errors import HiexpError

# Clip ranges when the config leaves them unset. GRPO clips per-token ratios (0.2 as in PPO/DeepSeekMath);
# GSPO clips one length-normalised sequence ratio, which moves far less, so the GSPO paper uses 3e-4 / 4e-4.
DEFAULT_EPSILON = {"grpo": (0.2, 0.2), "gspo": (3e-4, 4e-4)}

# Where training rollouts differ from the agent's defaults: nucleus sampling as in the paper's rollouts.
TRAIN_AGENT_DEFAULTS: dict[str, Any] = {"top_p": 0.95}
# Agent options the trainer sets itself: rollouts are seeded from the run's ``seed`` (per step and sample).
_AGENT_OPTIONS_SET_BY_TRAINER = ("seed",)


def _agent(**values: Any) -> AgentConfig:
    return AgentConfig(**{**TRAIN_AGENT_DEFAULTS, **values})


class TrainConfig(BaseModel):
    """Options of experience-aligned RL (``hiexp train --config FILE``); ``docs/training.md`` has the table."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # model and data
    model: str = Field("qwen2.5-coder-0.5b", description=(
        "policy: preset (`qwen2.5-coder-0.5b`, `default` = Qwen2.5-Coder-1.5B, `tiny-random`), local model "
        "directory or hub id; loaded with the transformers backend because it is trained"))
    dataset: str = Field("hotpotqa", description="training questions: a dataset name of `hiexp.data` or a JSONL path")
    split: str = Field("train", description="split of `dataset` (`train` keeps the test split clean)")
    n: int | None = Field(64, ge=1, description="questions taken from the split (null = all)")
    index: str | None = Field(None, description=(
        "retriever: index directory, corpus JSONL or `http(s)://` URL; null = the dataset's closed-world "
        "corpus (BM25)"))
    agent: AgentConfig = Field(default_factory=_agent, description=(
        "the search agent (`hiexp.agent.AgentConfig`, every option of docs/agent.md): format, passages per "
        "search, searches, token budgets, sampling; training changes one default, `top_p: 0.95`, and seeds "
        "rollouts from `seed`"))
    # rollouts
    group_size: int = Field(4, ge=2, description="G rollouts per question (>= 2: a group of one has no baseline)")
    batch_size: int = Field(2, ge=1, description="questions per optimizer step (`batch_size * group_size` trajectories)")
    micro_batch_size: int | None = Field(None, ge=1, description=(
        "trajectories per forward/backward (null = G); gradient accumulation covers the rest"))
    vllm_mode: Literal["off", "server", "colocate"] = Field("off", description=(
        "sample rollouts with vLLM through TRL: `server` (a `trl vllm-serve` process), `colocate` (an engine in "
        "each training process) or `off` (the trained model itself, the CPU default)"))
    vllm_server_base_url: str | None = Field(None, description=(
        "with `vllm_mode: server`: the `trl vllm-serve` URL (null = http://localhost:8000)"))
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description=(
        "with `vllm_mode: colocate`: the share of GPU memory vLLM may take"))
    # algorithm
    algorithm: Literal["grpo", "gspo"] = Field("grpo", description=(
        "`grpo` (token-level importance ratio) or `gspo` (one length-normalised ratio per sequence)"))
    epsilon_low: float | None = Field(None, gt=0, lt=1, description=(
        "clip range `[1 - low, 1 + high]`; null = GRPO 0.2/0.2, GSPO 3e-4/4e-4"))
    epsilon_high: float | None = Field(None, gt=0, description="upper side of the clip range (see `epsilon_low`)")
    beta: float = Field(1e-3, ge=0, description=(
        "KL weight to the reference (the base model with the adapter off); 0 = no reference pass"))
    num_iterations: int = Field(1, ge=1, description=(
        "optimisation passes per batch of rollouts (mu); with 1 the ratio is exactly 1 and clipping never fires"))
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description=(
        "divide advantages by the group's reward std (`group`, GRPO), the batch's, or not at all (`none`, Dr. GRPO)"))
    # optimisation
    learning_rate: float = Field(1e-5, gt=0, description="AdamW learning rate")
    lr_scheduler: str = Field("constant", description="learning-rate schedule (a transformers scheduler name)")
    warmup_steps: int = Field(0, ge=0, description="warm-up steps of the schedule")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    steps: int = Field(100, ge=1, description="optimizer steps of the run")
    lora: bool = Field(True, description="train a LoRA adapter (peft) instead of every weight")
    lora_r: int = Field(16, ge=1, description="adapter rank")
    lora_alpha: int = Field(32, ge=1, description="adapter scale")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="adapter dropout")
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1,
                                    description="module names the adapter wraps (a list, or one comma-separated string)")
    gradient_checkpointing: bool = Field(False, description="trade compute for activation memory on long episodes")
    # experience
    hek: str = Field("none", description=(
        "HEK directory conditioning every rollout (E2/E3 in the system prompt, E1 in tool responses), or `none` "
        "for the vanilla baseline with nothing else changed"))
    hek_top_k: int = Field(5, ge=0, description="E2/E3 entries in the system prompt")
    hek_threshold: float | None = Field(None, ge=-1, le=1, description=(
        "least query-title cosine for an E1 entry to join the passages (default: the threshold calibrated in "
        "the HEK's manifest, else 0.8)"))
    hek_exclude_own_question: bool = Field(True, description=(
        "hide from a rollout the entries distilled from its own question (E1 by source, E2/E3 through their "
        "children): the reflector saw its gold answer, so they can quote it; `false` = the paper's plain lookup"))
    embedder: str | None = Field(None, description="embedder of HEK lookups; null = the one named in the HEK manifest")
    hek_refresh_every: int = Field(0, ge=0, description=(
        "closed loop: every this many steps the rollouts since the last refresh update the HEK (`hiexp update`), "
        "and the new version conditions the next steps; 0 = the HEK stays fixed"))
    hek_reflector: str = Field("policy", description=(
        "who distils and summarises at a refresh: `policy` (the model being trained, self-distillation) or a "
        "model (preset, directory, .gguf, URL) as a teacher"))
    hek_success_key: Literal["em", "cem", "f1"] = Field("cem", description=(
        "reward that splits a refresh's rollouts into successes and failures"))
    hek_success_threshold: float = Field(1.0, ge=0, le=1, description="a rollout succeeds when that reward is >= this")
    hek_dedup_threshold: float = Field(0.9, ge=-1, le=1, description=(
        "a new E1 title at least this close (cosine) to an existing one is merged into it"))
    hek_evict_harmful: bool = Field(True, description=(
        "at a refresh, evict entries whose usefulness (reward with vs without them, same question) is harmful"))
    hek_usefulness: Literal["off", "filter", "rank"] = Field("off", description=(
        "use the HEK's usefulness table in lookups: `filter` hides harmful entries, `rank` also prefers helpful ones"))
    # run
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds data order, rollout sampling and the adapter's initialisation")
    output_dir: str = Field("runs/train", description="run directory: checkpoints, `metrics.jsonl`, `rollouts.jsonl`, `config.yaml`")
    save_steps: int = Field(50, ge=1, description="checkpoint every this many steps (and at the end, and on Ctrl-C)")
    save_total_limit: int | None = Field(None, ge=1, description="checkpoints kept (null = all)")
    save_rollouts: bool = Field(True, description="append every trajectory to `rollouts.jsonl` (usable by `hiexp build`)")
    report_to: Literal["none", "tensorboard", "wandb"] = Field("none", description=(
        "also send metrics to `tensorboard` or `wandb` through TRL (`none` = JSONL only)"))
    grad_norm_window: int = Field(10, ge=1, description="steps in the gradient-norm variance window")

    # --- parsing --------------------------------------------------------------------------------------
    @field_validator("agent", mode="before")
    @classmethod
    def _agent_section(cls, value: Any) -> Any:
        """A partial ``agent:`` mapping starts from the training defaults, not from the agent's."""
        if isinstance(value, AgentConfig) or value is None:
            return _agent() if value is None else value
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping of agent options, got {type(value).__name__}")
        known = {f.name for f in fields(AgentConfig)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown agent option(s) {', '.join(map(str, unknown))}; see docs/agent.md")
        for name in _AGENT_OPTIONS_SET_BY_TRAINER:
            if name in value:
                raise ValueError(f"{name} is set by the trainer: use the top-level `{name}`")
        return {**TRAIN_AGENT_DEFAULTS, **value}

    @field_validator("lora_targets", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @field_validator("lora_targets")
    @classmethod
    def _module_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _MODULE_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not a module name: {bad[0]!r} (names such as q_proj, v_proj, all-linear)")
        return value

    @field_validator("lr_scheduler")
    @classmethod
    def _scheduler_name(cls, value: str) -> str:
        if value not in LR_SCHEDULERS:
            raise ValueError(f"unknown schedule {value!r}; choose one of {', '.join(LR_SCHEDULERS)}")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> TrainConfig:
        if self.n is not None and self.n < self.batch_size:
            raise ValueError(f"n: {self.n} questions cannot fill a batch of {self.batch_size}")
        if self.completions_per_step % self.micro_batch:
            raise ValueError(f"micro_batch_size: {self.micro_batch} does not divide batch_size * group_size = "
                             f"{self.completions_per_step}")
        if self.hek_refresh_every and not self.use_hek:
            raise ValueError("hek_refresh_every: a closed loop refreshes a HEK; give one with hek (a directory "
                             "or `demo`)")
        if self.hek_refresh_every and not self.save_rollouts:
            raise ValueError("hek_refresh_every: a refresh reads the rollouts file; set save_rollouts: true")
        if self.agent.temperature <= 0:
            raise ValueError(f"agent.temperature: must be > 0 for RL rollouts, got {self.agent.temperature}")
        return self

    # --- derived values -------------------------------------------------------------------------------
    @property
    def use_hek(self) -> bool:
        return str(self.hek).lower() not in ("none", "", "null")

    @property
    def reward(self) -> str:
        """The outcome reward of an episode (``agent.reward_metric``: ``em``, ``cem`` or ``f1``)."""
        return self.agent.reward_metric

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
        """Every option as plain data (what ``config.yaml`` and checkpoints record; loads back unchanged)."""
        data = self.model_dump(exclude={"agent"})
        agent = asdict(self.agent)
        for name in _AGENT_OPTIONS_SET_BY_TRAINER:
            agent.pop(name)
        # keep the field order of the class, with the agent's section where it is declared
        return {name: (agent if name == "agent" else data[name]) for name in type(self).model_fields}


# transformers' SchedulerType values, without importing transformers to check a config
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay")
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def check_can_run(config: TrainConfig) -> None:
    """What a config needs of this machine, checked before any model loads: vLLM for ``vllm_mode``, the
    logger of ``report_to``, a directory (not a file) at ``output_dir``."""
    import importlib.util

    if config.vllm_mode != "off" and importlib.util.find_spec("vllm") is None:
        raise HiexpError(f"vllm_mode: {config.vllm_mode} needs vLLM, which is not installed "
                         '(pip install -e ".[vllm]" on a GPU machine), or set vllm_mode: off')
    if config.report_to != "none" and importlib.util.find_spec(config.report_to) is None:
        raise HiexpError(f"report_to: {config.report_to} is not installed (pip install {config.report_to}), or "
                         "set report_to: none")
    output_dir = Path(config.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise HiexpError(f"output_dir: {output_dir} is a file; the run directory must be a directory")


def _one_line(exc: ValidationError, source: str) -> HiexpError:
    """Pydantic's first error as ``source: key: what is wrong (got value)``."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "config"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith(key + ":"):  # a cross-field check that names its key already
        key, message = message.split(":", 1)
        message = message.strip()
    got = ""
    if error["type"] not in ("value_error", "missing") and not isinstance(error.get("input"), dict):
        got = f" (got {error.get('input')!r})"
    if error["type"] == "extra_forbidden":
        return HiexpError(f"{source}: unknown option {key}; see docs/training.md")
    return HiexpError(f"{source}: {key}: {message}{got}")


def make_config(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """A validated ``TrainConfig`` from plain values; any problem is one ``HiexpError`` naming the key."""
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise _one_line(exc, source) from None
    except HiexpError as exc:  # raised by AgentConfig's own checks
        raise HiexpError(f"{source}: agent: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``key=value`` or ``agent.key=value`` from the command line; the value is read as YAML (``3``, ``null``)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise HiexpError(f"--set {text!r}: expected key=value (for example --set agent.max_turns=2)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [part.strip() for part in key.split(".")], value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                settings: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (or start from defaults), apply ``overrides`` (top-level, None values ignored)
    and ``settings`` (``key=value`` strings, dotted keys reach into ``agent``), validate."""
    import yaml

    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.exists():
            raise HiexpError(f"{path}: no such config file")
        if not path.is_file():
            raise HiexpError(f"{path}: is a directory; --config takes a YAML file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise HiexpError(f"{path}: not a text file; --config takes a YAML file") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise HiexpError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise HiexpError(f"{path}: expected a mapping of option: value, got {type(loaded).__name__}")
        raw = loaded
    if overrides or settings:
        source = f"{source} with command-line overrides"
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = value
    for text in settings:
        keys, value = parse_override(text)
        target = raw
        for key in keys[:-1]:
            section = target.get(key)
            target[key] = section = dict(section) if isinstance(section, dict) else {}
            target = section
        target[keys[-1]] = value
    return make_config(raw, source)


def dump_config(config: TrainConfig) -> str:
    """The config as YAML, in field order (what the run directory and checkpoints record)."""
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def options_table() -> str:
    """The markdown table of every option with its default and meaning (``docs/training.md`` holds it)."""

    def shown(value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, list):
            return ", ".join(map(str, value))
        if isinstance(value, AgentConfig):
            return ", ".join(f"{k}: {v}" for k, v in TRAIN_AGENT_DEFAULTS.items()) + "; the rest as `AgentConfig`"
        return f"`{value}`" if isinstance(value, str) else str(value)

    defaults = TrainConfig()
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for name, info in TrainConfig.model_fields.items():
        rows.append(f"| `{name}` | {shown(getattr(defaults, name))} | {info.description} |")
    return "\n".join(rows) + "\n"


PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def resolve_config_path(value: str | None) -> Path | None:
    """A config file path, or the name of a config shipped with hiexp (``cpu`` -> ``train/configs/train_cpu.yaml``,
    ``math-cpu`` -> ``train_math_cpu.yaml``)."""
    if value is None:
        return None
    path = Path(value)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    name = value.replace("-", "_")  # ``math-cpu`` -> ``train_math_cpu.yaml``
    for candidate in (PACKAGED_CONFIGS / f"train_{name}.yaml", PACKAGED_CONFIGS / f"{name}.yaml"):
        if candidate.exists():
            return candidate
    return path


if __name__ == "__main__":  # python -m hiexp.train.config: the options table of docs/training.md
    print(options_table(), end="")
