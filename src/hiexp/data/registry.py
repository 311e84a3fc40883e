"""Datasets by name: which files make each one, its task, its splits; ``load_dataset`` and friends.

A name maps to one or more files under the data directory (see ``paths.py``), or, for the demo set
``hotpotqa``, to files shipped inside the package. A path given instead of a name is read with the format
detected from its records (``formats.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from hiexp.contracts.example import Example
from hiexp.data.demo_set import (
    DEMO_DATASET,
    DEMO_EXAMPLES_FILE,
    MATH_DEMO_DATASET,
    MATH_DEMO_FILE,
    read_demo_items,
    read_math_demo_items,
)
from hiexp.data.formats import RawItem, passage_id, read_raw_items
from hiexp.data.paths import find_shared_data_dir, shared_data_dir
from hiexp.errors import HiexpError


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    Attributes:
        name: the name users type (``hiexp data show NAME``, ``load_dataset(NAME)``).
        files: data files relative to the data directory (or absolute, for the shipped demo); several
            files are concatenated and questions repeated across them are kept once (first file wins).
        task: ``"qa"`` (EM/CEM/F1 against text answers) or ``"math"`` (answer equivalence).
        description: one line for ``hiexp data list``.
        split: the source split recorded in ``metadata["split"]`` when the records carry none.
        split_field: the metadata key that ``split=`` filters on (``"source"`` for the mixed
            DeepResearcher lists, whose "splits" are the benchmarks they were drawn from).
        has_context: whether examples carry context paragraphs (so a closed-world corpus exists).
        licence: the benchmark's licence, from SOURCES.md.
    """

    name: str
    files: tuple[str, ...]
    task: str = "qa"
    description: str = ""
    split: str | None = None
    split_field: str = "split"
    has_context: bool = False
    licence: str = ""
    builtin: bool = False
    aliases: tuple[str, ...] = field(default=())

    def paths(self) -> list[Path]:
        """The files of this dataset on this machine (a clear error when the data directory is absent)."""
        if self.builtin:
            return [Path(f) for f in self.files]
        root = shared_data_dir()
        paths = [root / f for f in self.files]
        for path in paths:
            if not path.exists():
                raise HiexpError(f"dataset {self.name!r}: {path} is missing from the data directory")
        return paths

    def available(self) -> bool:
        if self.builtin:
            return all(Path(f).exists() for f in self.files)
        root = find_shared_data_dir()
        return root is not None and all((root / f).exists() for f in self.files)


_HOTPOT = "CC BY-SA 4.0"
_SPECS = [
    DatasetSpec(
        DEMO_DATASET, (str(DEMO_EXAMPLES_FILE),), description="demo: 395 HotpotQA dev distractor questions, "
        "shipped; splits train (195) / test (200); corpus = their paragraphs", has_context=True,
        licence=_HOTPOT, builtin=True,
    ),
    DatasetSpec(
        MATH_DEMO_DATASET, (str(MATH_DEMO_FILE),), task="math", description="demo: 400 GSM8K problems, shipped; "
        "splits train (200, from GSM8K train) / test (200, from GSM8K test)", licence="MIT", builtin=True,
    ),
    DatasetSpec(
        "hotpotqa-dev",
        (
            "hotpotqa/hotpotqa_dev_distractor_migres200.jsonl",
            "hotpotqa/hotpotqa_dev_distractor_aflow_validate200.jsonl",
        ),
        description="HotpotQA dev distractor, both shared files (395 distinct questions)", split="dev",
        has_context=True, licence=_HOTPOT,
    ),
    DatasetSpec(
        "hotpotqa-aflow", ("hotpotqa/hotpotqa_dev_distractor_aflow_validate200.jsonl",),
        description="HotpotQA dev distractor, AFlow validation sample (200)", split="dev", has_context=True,
        licence=_HOTPOT,
    ),
    DatasetSpec(
        "hotpotqa-migres", ("hotpotqa/hotpotqa_dev_distractor_migres200.jsonl",),
        description="HotpotQA dev distractor, MIGRES sample (200)", split="dev", has_context=True,
        licence=_HOTPOT,
    ),
    DatasetSpec(
        "2wiki", ("2wikimultihopqa/2wiki_dev_migres164.jsonl",),
        description="2WikiMultihopQA dev with context (164)", split="dev", has_context=True,
        licence="Apache-2.0",
    ),
    DatasetSpec(
        "musique", ("musique/musique_ans_dev_kag100.json",),
        description="MuSiQue answerable dev with 20 paragraphs each (100)", split="dev", has_context=True,
        licence="CC BY 4.0",
    ),
    DatasetSpec(
        "bamboogle", ("bamboogle/bamboogle_test_flashrag.jsonl",),
        description="Bamboogle (125), no passages", split="test", licence="research use (no explicit licence)",
    ),
    DatasetSpec(
        "nq", ("qa_jsonl/nq_test_flashrag_1000.jsonl",), description="NQ-open test, FlashRAG sample (1000)",
        split="test", licence="CC BY-SA 3.0",
    ),
    DatasetSpec(
        "triviaqa", ("qa_jsonl/triviaqa_test_flashrag_1000.jsonl",),
        description="TriviaQA test, FlashRAG sample (1000)", split="test", licence="Apache-2.0",
    ),
    DatasetSpec(
        "popqa", ("qa_jsonl/popqa_test_flashrag_1000.jsonl",), description="PopQA test, FlashRAG sample (1000)",
        split="test", licence="MIT",
    ),
    DatasetSpec(
        "r1searcher-hotpotqa", ("qa_jsonl/r1searcher_hotpotqa_500.jsonl",),
        description="R1-Searcher HotpotQA dev eval list (500), no passages", split="dev", licence=_HOTPOT,
    ),
    DatasetSpec(
        "r1searcher-2wiki", ("qa_jsonl/r1searcher_2wiki_500.jsonl",),
        description="R1-Searcher 2Wiki dev eval list (500), no passages", split="dev", licence="Apache-2.0",
    ),
    DatasetSpec(
        "r1searcher-musique", ("qa_jsonl/r1searcher_musique_500.jsonl",),
        description="R1-Searcher MuSiQue dev eval list (500), no passages", split="dev", licence="CC BY 4.0",
    ),
    DatasetSpec(
        "r1searcher-bamboogle", ("qa_jsonl/r1searcher_bamboogle.jsonl",),
        description="R1-Searcher Bamboogle list (125)", split="test", licence="research use",
    ),
    DatasetSpec(
        "deepresearcher-test", ("qa_jsonl/deepresearcher_test.parquet",),
        description="DeepResearcher test mix (3197); --split picks a source: nq tq popqa hotpotqa 2wiki "
        "musique Bamboogle", split_field="source", licence="per source",
    ),
    DatasetSpec(
        "deepresearcher-dev", ("qa_jsonl/deepresearcher_dev.parquet",),
        description="DeepResearcher dev mix (875); --split picks a source", split_field="source",
        licence="per source",
    ),
    DatasetSpec(
        "gsm8k", ("math/gsm8k_test.jsonl",), task="math", description="GSM8K test (1319)", split="test",
        licence="MIT",
    ),
    DatasetSpec(
        "gsm8k-train", ("math/gsm8k_train.jsonl",), task="math", description="GSM8K train (7473)", split="train",
        licence="MIT",
    ),
    DatasetSpec(
        "math500", ("math/math500_test.jsonl",), task="math", description="MATH-500 (500)", split="test",
        licence="MIT",
    ),
    DatasetSpec(
        "aime2024", ("math/aime2024_test.jsonl",), task="math", description="AIME 2024 I+II (30)",
        split="test", licence="evaluation only (MAA)",
    ),
    DatasetSpec(
        "aime2025", ("math/aime2025_test.jsonl",), task="math", description="AIME 2025 I+II (30)",
        split="test", licence="evaluation only (MAA)",
    ),
    DatasetSpec(
        "hotpotqa-train",
        ("train/hotpotqa_train_flowcompile200.jsonl", "train/hotpotqa_train_hipporag100.json"),
        description="HotpotQA train distractor samples (FlowCompile 200 + HippoRAG 100)", split="train",
        has_context=True, licence=_HOTPOT,
    ),
    DatasetSpec(
        "musique-train", ("train/musique_train_hipporag100.json",),
        description="MuSiQue train sample with paragraphs (100)", split="train", has_context=True,
        licence="CC BY 4.0",
    ),
    DatasetSpec(
        "2wiki-train", ("train/2wiki_train_migres500.json",),
        description="2WikiMultihopQA train sample with context (500)", split="train", has_context=True,
        licence="Apache-2.0",
    ),
]
REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def list_datasets() -> list[str]:
    """The names ``load_dataset`` accepts, in registry order."""
    return list(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    spec = REGISTRY.get(name) or REGISTRY.get(name.lower())
    if spec is None:
        raise HiexpError(f"unknown dataset {name!r}; known names: {', '.join(REGISTRY)} (or give a file path)")
    return spec


def looks_like_path(name_or_path: str | Path) -> bool:
    if isinstance(name_or_path, Path):
        return True
    text = str(name_or_path)
    return "/" in text or "\\" in text or Path(text).suffix.lower() in {
        ".jsonl", ".json", ".csv", ".parquet", ".gz"
    } or (Path(text).exists() and text not in REGISTRY)


def _spec_for_path(path: Path) -> DatasetSpec | None:
    """The registered dataset a path is one of the files of (so its name and task carry over)."""
    root = find_shared_data_dir()
    try:
        resolved = path.resolve()
    except OSError:
        return None
    for spec in REGISTRY.values():
        if len(spec.files) != 1:
            continue
        candidate = Path(spec.files[0]) if spec.builtin else (root / spec.files[0] if root else None)
        if candidate is not None and candidate.exists() and candidate.resolve() == resolved:
            return spec
    return None


def _dataset_name_for_path(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".parquet"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def load_raw(name_or_path: str | Path, skip_bad: bool = False) -> tuple[str, DatasetSpec | None, list[RawItem]]:
    """``(dataset name, spec or None, items with paragraphs)`` for a name or a path, before any filtering."""
    if isinstance(name_or_path, str) and not looks_like_path(name_or_path):
        spec = get_spec(name_or_path)
        paths = spec.paths()
        name = spec.name
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise HiexpError(f"{path}: no such file (and not a dataset name; known: {', '.join(REGISTRY)})")
        spec = _spec_for_path(path)
        paths = [path]
        name = spec.name if spec else _dataset_name_for_path(path)
    if spec is not None and spec.builtin:
        reader = read_math_demo_items if spec.task == "math" else read_demo_items
        return name, spec, reader(skip_bad=skip_bad)
    task = spec.task if spec else None
    split = spec.split if spec else None
    items: list[RawItem] = []
    seen_ids: set[str] = set()
    seen_questions: set[str] = set()
    for path in paths:
        for item in read_raw_items(path, dataset=name, task=task, split=split, skip_bad=skip_bad):
            ex = item.example
            if ex.id in seen_ids or (len(paths) > 1 and ex.question in seen_questions):
                continue  # the same question in a second file (or repeated in one file)
            seen_ids.add(ex.id)
            seen_questions.add(ex.question)
            items.append(item)
    if not items:
        raise HiexpError(f"{name}: no examples in {', '.join(str(p) for p in paths)}")
    return name, spec, items


def select(examples: list, n: int | None, seed: int) -> list:
    """``n`` examples drawn by ``seed`` (kept in file order), or all of them when ``n`` is None."""
    if n is None or n >= len(examples):
        return list(examples)
    if n < 0:
        raise HiexpError(f"n must be positive, got {n}")
    chosen = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in chosen]


def filter_split(name: str, spec: DatasetSpec | None, items: list, split: str | None) -> list:
    if split is None:
        return items
    field_name = spec.split_field if spec else "split"
    values = {str(getattr(i, "example", i).metadata.get(field_name)) for i in items}
    kept = [i for i in items if str(getattr(i, "example", i).metadata.get(field_name)) == split]
    if not kept:
        kept = [i for i in items if str(getattr(i, "example", i).metadata.get(field_name)).lower() == split.lower()]
    if not kept:
        known = sorted(v for v in values if v != "None")
        if not known:
            raise HiexpError(f"dataset {name!r} has no splits to choose from; use split 'all' (--split all) to "
                             "take every record")
        raise HiexpError(f"dataset {name!r} has no split {split!r}; its splits: {', '.join(known)}")
    return kept


def load_dataset(
    name_or_path: str | Path,
    split: str | None = None,
    n: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    with_context: bool = False,
) -> list[Example]:
    """Examples of a dataset given by registered name or by file path.

    Args:
        name_or_path: a name from ``list_datasets()`` or a data file (format detected from its records).
        split: keep only this split (``train``/``test`` for the demo; the source benchmark for the
            DeepResearcher mixes); None keeps all.
        n: draw this many examples (seeded by ``seed``, kept in file order); None keeps all.
        seed: the seed of that draw.
        skip_bad: skip malformed records with a warning instead of stopping at the first.
        with_context: also put the context paragraphs in ``metadata["context"]`` as ``{id, title, text}``
            (off by default to keep examples light; ``metadata["context_ids"]`` is always there for
            datasets with context).
    """
    name, spec, items = load_raw(name_or_path, skip_bad=skip_bad)
    items = select(filter_split(name, spec, items, split), n, seed)
    examples = []
    for item in items:
        ex = item.example
        if item.paragraphs:
            ex.metadata["context_ids"] = [passage_id(t, x) for t, x in item.paragraphs]
            if with_context:
                ex.metadata["context"] = [
                    {"id": passage_id(t, x), "title": t, "text": x} for t, x in item.paragraphs
                ]
        examples.append(ex)
    return examples
