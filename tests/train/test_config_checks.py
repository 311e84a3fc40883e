"""Training settings that could only fail later are refused when the config is read (issue 33)."""

from __future__ import annotations

import pytest

from hiexp.errors import HiexpError
from hiexp.train.config import check_can_run, load_config


@pytest.mark.parametrize("setting,why", [
    ("learning_rate=.inf", "learning_rate"), ("beta=.inf", "beta"), ("beta=.nan", "beta"),
    ("lr_scheduler=cosine_typo", "unknown schedule 'cosine_typo'"), ("lora_targets=q_proj,'", "not a module name"),
    ("lora_targets=[1, 2]", "lora_targets"), ("seed=-1", "seed"), ("seed=99999999999", "seed"),
])
def test_bad_settings_are_refused_in_one_line(setting, why):
    with pytest.raises(HiexpError, match=why) as info:
        load_config(None, settings=[setting])
    assert "\n" not in str(info.value)


def test_good_settings_pass():
    config = load_config(None, settings=["lr_scheduler=cosine", "lora_targets=q_proj,v_proj", "seed=7"])
    assert config.lr_scheduler == "cosine" and config.lora_targets == ["q_proj", "v_proj"]


def test_a_directory_or_binary_config_is_refused(tmp_path):
    with pytest.raises(HiexpError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(HiexpError, match="not a text file"):
        load_config(binary)


def test_what_the_machine_lacks_is_named_before_any_model_loads(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("vllm", "wandb") else real(name, *a))
    with pytest.raises(HiexpError, match="needs vLLM"):
        check_can_run(load_config(None, settings=["vllm_mode=server"]))
    with pytest.raises(HiexpError, match="report_to: wandb is not installed"):
        check_can_run(load_config(None, settings=["report_to=wandb"]))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(HiexpError, match="is a file"):
        check_can_run(load_config(None, settings=[f"output_dir={a_file}"]))
    check_can_run(load_config(None, settings=[f"output_dir={tmp_path / 'run'}"]))


@pytest.mark.parametrize("targets,ok", [(["q_proj", "v_proj"], True), (["self_attn.o_proj"], True),
                                        (["all-linear"], True), (["q_proj", "bogus_proj"], False),
                                        (["query_key_value"], False)])
def test_lora_targets_are_matched_against_the_architecture_before_the_weights_load(tmp_path, tiny_tokenizer,
                                                                                  monkeypatch, targets, ok):
    from hiexp.train.runner import check_lora_targets
    from tests.train.conftest import build_tiny_model

    build_tiny_model(tiny_tokenizer).save_pretrained(tmp_path / "tiny")
    tiny_tokenizer.save_pretrained(tmp_path / "tiny")
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("the weights were loaded"))
    config = load_config(None, settings=[f"model={tmp_path / 'tiny'}", f"lora_targets={','.join(targets)}"])
    if ok:
        check_lora_targets(config)
    else:
        with pytest.raises(HiexpError, match="is not a module of") as info:
            check_lora_targets(config)
        assert "q_proj" in str(info.value) and "\n" not in str(info.value)
