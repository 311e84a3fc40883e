"""The demo set shipped inside the package: 395 HotpotQA dev questions and their paragraphs.

Built once from the two HotpotQA distractor files of the shared data (see ``build_demo``) and stored as two
gzip JSONL files next to this module, so that ``hiexp demo`` and the tests need nothing outside the package:

- ``demo/hotpotqa.jsonl.gz``: the examples (one ``Example`` per line; ``metadata["context_ids"]`` names
  the question's ten paragraphs in the corpus);
- ``demo/hotpotqa_corpus.jsonl.gz``: the closed-world corpus, ``{id, title, contents}`` per paragraph;
- ``demo/ATTRIBUTION.md``: where the questions come from and their licence (CC BY-SA 4.0).

Splits: the 200 questions whose ``sha256("hiexp-demo-split:" + id)`` is smallest form ``test``; the other
195 form ``train``. The rule depends only on the ids, so it is stable under re-building and reordering.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hiexp.data.corpus import (
    copy_gzip_to_plain,
    corpus_from_items,
    load_corpus,
    write_corpus,
    write_gzip_lines,
)
from hiexp.data.formats import RawItem
from hiexp.contracts.example import Example
from hiexp.errors import HiexpError
from hiexp.io import cache_dir, sha256_file

DEMO_SPLIT_SALT = "hiexp-demo-split:"
DEMO_TEST_SIZE = 200
DEMO_SOURCE_DATASET = "hotpotqa-dev"


def _demo_files() -> tuple[Path, Path]:
    from hiexp.data.registry import DEMO_CORPUS_FILE, DEMO_EXAMPLES_FILE

    return DEMO_EXAMPLES_FILE, DEMO_CORPUS_FILE


def split_key(example_id: str) -> str:
    return hashlib.sha256((DEMO_SPLIT_SALT + example_id).encode("utf-8")).hexdigest()


def assign_splits(ids: list[str], test_size: int = DEMO_TEST_SIZE) -> dict[str, str]:
    """``id -> "train" | "test"``: the ``test_size`` ids with the smallest salted hash are test."""
    ranked = sorted(ids, key=split_key)
    test = set(ranked[:test_size])
    return {i: ("test" if i in test else "train") for i in ids}


def build_demo_items() -> tuple[list[Example], list]:
    """The demo examples and corpus built from the shared HotpotQA files (needs the shared data)."""
    from hiexp.data.corpus import passage_id
    from hiexp.data.registry import DEMO_DATASET, load_raw

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


def read_demo_items(skip_bad: bool = False) -> list[RawItem]:
    """The shipped demo examples with their paragraphs looked up in the shipped corpus."""
    from hiexp.data.formats import iter_jsonl_records

    examples_file, corpus_file = _demo_files()
    if not examples_file.exists() or not corpus_file.exists():
        raise HiexpError(f"the demo set is missing from the package ({examples_file.parent}); reinstall hiexp")
    by_id = {p.id: p for p in load_corpus(corpus_file)}
    items = []
    for where, record in iter_jsonl_records(examples_file, skip_bad=skip_bad):
        ex = Example.from_dict(record)
        missing = [i for i in ex.metadata.get("context_ids", []) if i not in by_id]
        if missing:
            raise HiexpError(f"{examples_file}:{where}: context passage {missing[0]} is not in {corpus_file}")
        paragraphs = [(by_id[i].title, by_id[i].text) for i in ex.metadata.get("context_ids", [])]
        items.append(RawItem(ex, paragraphs))
    return items


def demo_corpus_path() -> Path:
    """The shipped demo corpus as a plain JSONL in the cache (decompressed once, keyed by its hash)."""
    _, corpus_file = _demo_files()
    if not corpus_file.exists():
        raise HiexpError(f"the demo corpus is missing from the package ({corpus_file}); reinstall hiexp")
    target = cache_dir("corpora") / f"hotpotqa-demo-{sha256_file(corpus_file)[:16]}.jsonl"
    if not target.exists():
        copy_gzip_to_plain(corpus_file, target)
    return target
