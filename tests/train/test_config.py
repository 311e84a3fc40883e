"""TrainConfig: YAML loading, overrides, validation messages, the shipped example config."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiexp.agent.config import AgentConfig
from hiexp.errors import HiexpError
from hiexp.train.config import PACKAGED_CONFIGS, TrainConfig, dump_config, load_config, resolve_config_path

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_config_loads_by_name_and_writes_out_every_option():
    shipped = PACKAGED_CONFIGS / "train_cpu.yaml"
    config = load_config(shipped)
    assert config.lora and config.model == "default" and config.hek == "none"
    assert config.agent.max_turns == 2 and config.reward == "f1"
    assert resolve_config_path("cpu") == shipped
    # every option is written out in the example
    import yaml

    assert set(yaml.safe_load(shipped.read_text())) == set(TrainConfig.model_fields)


def test_overrides_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-4\nsteps: '3'\nlora: 'false'\nlora_targets: q_proj, v_proj\nn: null\n"
                    "agent:\n  max_turns: 2\n")
    config = load_config(path, {"algorithm": "gspo", "seed": "7", "steps": None})
    assert config.learning_rate == 1e-4 and config.steps == 3 and config.lora is False
    assert config.lora_targets == ["q_proj", "v_proj"] and config.n is None
    assert config.algorithm == "gspo" and config.seed == 7
    assert config.clip_range == (3e-4, 4e-4)  # GSPO's default clip range
    assert load_config(None, {"epsilon_low": 0.1}).clip_range == (0.1, 0.2)
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(config))
    assert load_config(again) == config


def test_a_partial_agent_section_keeps_the_training_defaults_and_set_reaches_into_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("agent:\n  top_k: 2\n")
    config = load_config(path, settings=["agent.max_turns=1", "agent.reward_metric=cem", "steps=4"])
    agent = config.agent
    assert (agent.top_k, agent.max_turns, agent.top_p, config.reward, config.steps) == (2, 1, 0.95, "cem", 4)
    assert agent.max_new_tokens == AgentConfig().max_new_tokens  # the agent's own default
    assert TrainConfig().agent.top_p == 0.95


@pytest.mark.parametrize(
    "text, message",
    [
        ("algorithm: ppo\n", "algorithm"),
        ("agent:\n  reward_metric: bleu\n", "reward metric"),
        ("group_size: 1\n", "group_size"),
        ("steps: 0\n", "steps"),
        ("steps: two\n", "steps"),
        ("unknown_key: 1\n", "unknown option unknown_key"),
        ("agent:\n  max_turn: 1\n", "unknown agent option"),
        ("agent:\n  seed: 3\n", "top-level `seed`"),
        ("agent:\n  temperature: 0\n", "agent.temperature"),
        ("group_size: 4\nbatch_size: 1\nmicro_batch_size: 3\n", "micro_batch_size"),
        ("agent:\n  top_p: 1.5\n", "top_p"),
        ("report_to: mlflow\n", "report_to"),
        ("- a\n- b\n", "mapping"),
        ("steps: [1\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(HiexpError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)  # one line


def test_a_bad_command_line_setting_is_named(tmp_path):
    with pytest.raises(HiexpError, match="expected key=value"):
        load_config(None, settings=["agent.max_turns"])
    with pytest.raises(HiexpError, match="command-line overrides: agent.max_turns"):
        load_config(None, settings=["agent.max_turns=many"])


def test_missing_config_file(tmp_path):
    with pytest.raises(HiexpError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_the_options_table_in_the_docs_is_the_one_the_config_writes():
    """docs/training.md holds ``python -m hiexp.train.config``'s table: regenerate it when an option changes."""
    from hiexp.train.config import options_table

    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    assert options_table() in text
