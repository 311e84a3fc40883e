"""Datasets in one schema, loaders for every shipped format, closed-world corpora.

``load_dataset(name_or_path, split, n, seed)`` returns ``Example`` records; ``list_datasets()`` names what it
accepts; ``corpus_path_for(name_or_path)`` gives the passage JSONL of a dataset's own paragraphs (built and
cached on first use); ``load_corpus(path)`` reads any passage file. ``DEMO_DATASET`` is the set shipped in
the package.
"""

from hiexp.contracts.example import Example
from hiexp.data.closed_world import NAMED_CORPORA, corpus_path_for
from hiexp.data.corpus import load_corpus
from hiexp.data.formats import passage_id
from hiexp.data.paths import find_shared_data_dir, shared_data_dir
from hiexp.data.registry import DEMO_DATASET, REGISTRY, DatasetSpec, get_spec, list_datasets, load_dataset

__all__ = [
    "DEMO_DATASET",
    "NAMED_CORPORA",
    "REGISTRY",
    "DatasetSpec",
    "Example",
    "corpus_path_for",
    "find_shared_data_dir",
    "get_spec",
    "list_datasets",
    "load_corpus",
    "load_dataset",
    "passage_id",
    "shared_data_dir",
]
