"""Rebuild the shipped demo sets (``demo_set.py``) byte for byte from the HotpotQA and GSM8K files of the data directory."""

from __future__ import annotations

import json
from pathlib import Path

from hiexp.contracts.example import Example
from hiexp.data.corpus import corpus_from_items, write_corpus, write_gzip_lines
from hiexp.data.demo_set import (
    DEMO_DATASET,
    DEMO_SOURCE_DATASET,
    MATH_DEMO_DATASET,
    MATH_DEMO_SOURCES,
    MATH_DEMO_SPLIT_SIZE,
    assign_splits,
    split_key,
)
from hiexp.data.formats import passage_id
from hiexp.data.registry import load_raw


def build_demo_items() -> tuple[list[Example], list]:
    """The demo examples and corpus built from the HotpotQA files of the data directory."""
    _, _, items = load_raw(DEMO_SOURCE_DATASET)
    splits = assign_splits([item.example.id for item in items])
    examples = []
    for item in items:
        ex = item.example
        meta = {
            "dataset": DEMO_DATASET,
            "task": "qa",
            "split": splits[ex.id],
            "source_split": ex.metadata.get("split", "dev"),
        }
        for key in ("type", "level", "supporting_titles"):
            if key in ex.metadata:
                meta[key] = ex.metadata[key]
        meta["context_ids"] = [passage_id(t, x) for t, x in item.paragraphs]
        examples.append(Example(ex.id, ex.question, list(ex.golden_answers), meta))
    return examples, corpus_from_items(items)


def build_demo(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``hotpotqa.jsonl.gz`` and ``hotpotqa_corpus.jsonl.gz`` into ``out_dir`` (byte-reproducible)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    examples, passages = build_demo_items()
    examples_path = write_gzip_lines(
        out_dir / "hotpotqa.jsonl.gz", (json.dumps(ex.to_dict(), ensure_ascii=False) + "\n" for ex in examples)
    )
    corpus_path = write_corpus(passages, out_dir / "hotpotqa_corpus.jsonl.gz")
    return examples_path, corpus_path


def build_math_demo_examples() -> list[Example]:
    """The GSM8K demo problems: per split, the ``MATH_DEMO_SPLIT_SIZE`` ids with the smallest salted hash."""
    examples = []
    for split, source in MATH_DEMO_SOURCES.items():
        _, _, items = load_raw(source)
        chosen = sorted((item.example for item in items), key=lambda ex: split_key(ex.id))[:MATH_DEMO_SPLIT_SIZE]
        for ex in sorted(chosen, key=lambda ex: ex.id):
            meta = {"dataset": MATH_DEMO_DATASET, "task": "math", "split": split, "source": source}
            examples.append(Example(ex.id, ex.question, list(ex.golden_answers), meta))
    return examples


def build_math_demo(out_dir: str | Path) -> Path:
    """Write ``gsm8k.jsonl.gz`` into ``out_dir`` (byte-reproducible)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_gzip_lines(out_dir / "gsm8k.jsonl.gz", (json.dumps(ex.to_dict(), ensure_ascii=False) + "\n"
                                                         for ex in build_math_demo_examples()))
