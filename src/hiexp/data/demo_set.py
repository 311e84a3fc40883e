"""The demo sets shipped inside the package: 395 HotpotQA dev questions and their paragraphs, and 400 GSM8K
problems for the math task.

Built once from the two HotpotQA distractor files of the data directory (see ``build_demo.py``) and stored as two
gzip JSONL files next to this module, so that ``hiexp demo`` and the tests need nothing outside the package:

- ``demo/hotpotqa.jsonl.gz``: the examples (one ``Example`` per line; ``metadata["context_ids"]`` names
  the question's ten paragraphs in the corpus);
- ``demo/hotpotqa_corpus.jsonl.gz``: the closed-world corpus, ``{id, title, contents}`` per paragraph;
- ``demo/ATTRIBUTION.md``: where the questions come from and their licence (CC BY-SA 4.0).

Splits: the 200 questions whose ``sha256("hiexp-demo-split:" + id)`` is smallest form ``test``; the other
195 form ``train``. The rule depends only on the ids, so it is stable under re-building and reordering.
``demo/gsm8k.jsonl.gz`` holds the 200 GSM8K train problems and the 200 GSM8K test problems with the smallest
hash of the same kind: its ``train`` split comes from GSM8K's train file and its ``test`` split from its test
file, so no problem crosses over.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hiexp.contracts.example import Example
from hiexp.data.corpus import copy_gzip_to_plain, load_corpus
from hiexp.data.formats import RawItem
from hiexp.errors import HiexpError
from hiexp.io import cache_dir, sha256_file

DEMO_SPLIT_SALT = "hiexp-demo-split:"
DEMO_TEST_SIZE = 200
DEMO_SOURCE_DATASET = "hotpotqa-dev"


DEMO_DATASET = "hotpotqa"
DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_EXAMPLES_FILE = DEMO_DIR / "hotpotqa.jsonl.gz"
DEMO_CORPUS_FILE = DEMO_DIR / "hotpotqa_corpus.jsonl.gz"

# The math demo set: GSM8K problems (MIT), 200 from its train file and 200 from its test file, chosen by the
# same salted hash of the id, so ``hiexp demo --task math`` distils from train and evaluates on test offline.
MATH_DEMO_DATASET = "gsm8k-demo"
MATH_DEMO_FILE = DEMO_DIR / "gsm8k.jsonl.gz"
MATH_DEMO_SPLIT_SIZE = 200
MATH_DEMO_SOURCES = {"train": "gsm8k-train", "test": "gsm8k"}


def _demo_files() -> tuple[Path, Path]:
    return DEMO_EXAMPLES_FILE, DEMO_CORPUS_FILE


def split_key(example_id: str) -> str:
    return hashlib.sha256((DEMO_SPLIT_SALT + example_id).encode("utf-8")).hexdigest()


def assign_splits(ids: list[str], test_size: int = DEMO_TEST_SIZE) -> dict[str, str]:
    """``id -> "train" | "test"``: the ``test_size`` ids with the smallest salted hash are test."""
    ranked = sorted(ids, key=split_key)
    test = set(ranked[:test_size])
    return {i: ("test" if i in test else "train") for i in ids}


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


def read_math_demo_items(skip_bad: bool = False) -> list[RawItem]:
    """The shipped GSM8K demo problems (no paragraphs: the math task has no corpus)."""
    from hiexp.data.formats import iter_jsonl_records

    if not MATH_DEMO_FILE.exists():
        raise HiexpError(f"the math demo set is missing from the package ({MATH_DEMO_FILE}); reinstall hiexp")
    return [RawItem(Example.from_dict(record), []) for _, record in iter_jsonl_records(MATH_DEMO_FILE, skip_bad=skip_bad)]


def demo_corpus_path() -> Path:
    """The shipped demo corpus as a plain JSONL in the cache (decompressed once, keyed by its hash)."""
    _, corpus_file = _demo_files()
    if not corpus_file.exists():
        raise HiexpError(f"the demo corpus is missing from the package ({corpus_file}); reinstall hiexp")
    target = cache_dir("corpora") / f"hotpotqa-demo-{sha256_file(corpus_file)[:16]}.jsonl"
    if not target.exists():
        copy_gzip_to_plain(corpus_file, target)
    return target
