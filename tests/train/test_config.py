"""TrainConfig: YAML loading, overrides, validation messages, the shipped example config."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiexp.errors import HiexpError
from hiexp.train.config import PACKAGED_CONFIGS, TrainConfig, dump_config, load_config, resolve_config_path

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_config_loads_by_name_and_writes_out_every_option():
    shipped = PACKAGED_CONFIGS / "train_cpu.yaml"
    config = load_config(shipped)
    assert config.lora and config.model == "qwen2.5-coder-0.5b" and config.hek == "none"
    assert resolve_config_path("cpu") == shipped
    # every option is written out in the example
    import yaml

    assert set(yaml.safe_load(shipped.read_text())) == set(TrainConfig.__dataclass_fields__)


def test_overrides_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-4\nsteps: '3'\nlora: 'false'\nlora_targets: q_proj, v_proj\nn: null\n")
    config = load_config(path, {"algorithm": "gspo", "seed": "7", "steps": None})
    assert config.learning_rate == 1e-4 and config.steps == 3 and config.lora is False
    assert config.lora_targets == ["q_proj", "v_proj"] and config.n is None
    assert config.algorithm == "gspo" and config.seed == 7
    assert config.clip_range == (3e-4, 4e-4)  # GSPO's default clip range
    assert load_config(None, {"epsilon_low": 0.1}).clip_range == (0.1, 0.2)
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(config))
    assert load_config(again) == config


@pytest.mark.parametrize(
    "text, message",
    [
        ("algorithm: ppo\n", "algorithm"),
        ("reward: bleu\n", "reward"),
        ("group_size: 1\n", "group_size"),
        ("steps: 0\n", "steps"),
        ("steps: two\n", "steps"),
        ("unknown_key: 1\n", "unknown option"),
        ("group_size: 4\nbatch_size: 1\nmicro_batch_size: 3\n", "micro_batch_size"),
        ("top_p: 1.5\n", "top_p"),
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
    assert str(path) in str(info.value) or message == "unknown option"


def test_missing_config_file(tmp_path):
    with pytest.raises(HiexpError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_the_options_table_in_the_docs_names_every_field_with_its_default():
    """docs/training.md's table is written by hand; this keeps it equal to ``TrainConfig``."""
    import dataclasses
    import re

    from hiexp.train.config import TrainConfig

    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    table = text.split("## Options (`TrainConfig`)", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`(\w+)`", cells[0])
        values = [v.strip() for v in cells[1].split(",")] if len(names) > 1 else [cells[1]]
        if len(values) == 1:  # one value for every name of the row
            values = values * len(names)
        documented.update(zip(names, values + [""] * (len(names) - len(values))))
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert set(documented) == set(fields), "fields missing from / unknown to the docs table"
    defaults = TrainConfig()
    for name, shown in documented.items():
        value = getattr(defaults, name)
        word = shown.split(" ")[0].strip("`")
        if isinstance(value, list):
            continue
        if value is None:
            assert word == "null", name
        elif isinstance(value, bool):
            assert word == str(value).lower(), name
        elif isinstance(value, (int, float)):
            assert float(word) == value, name
        else:
            assert word == value, name
