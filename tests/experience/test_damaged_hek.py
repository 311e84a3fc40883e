"""Damaged HEKs (issue 12, class 6): a manifest with wrong types, vectors that are not unit vectors, or an
embedder that did not make the vectors is refused in one line, never a traceback or a silent wrong lookup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hiexp.errors import HiexpError
from hiexp.experience.hek import HEK
from hiexp.experience.schema import Entry
from hiexp.search.embed import load_embedder


@pytest.fixture
def hek_dir(tmp_path) -> Path:
    embedder = load_embedder("hashing-64", cache=False)
    titles = ["Search the full name", "Compare both dates", "Plan the searches"]
    entries = [Entry(id=f"e{i}", level="E1", title=t, description="d", thinking="t", tags=[], children=[],
                     sources={"question_id": f"q{i}"}) for i, t in enumerate(titles[:2])]
    entries.append(Entry(id="e2", level="E2", title=titles[2], description="d", thinking="t", tags=[],
                         children=["e0", "e1"], sources={}))
    vectors = embedder.encode_passages(titles).astype(np.float32)
    return HEK(entries, vectors).save(tmp_path / "hek", embedder={"model_id": embedder.model_id, "dim": 64})


def edit_manifest(directory: Path, **changes) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("changes", [
    {"files": ["entries.jsonl"]},
    {"counts": "three"},
    {"counts": {"E1": "2", "E2": 1, "E3": 0}},
    {"embedder": 5},
    {"dim": "64"},
    {"schema_version": 99},
])
def test_a_manifest_with_wrong_types_is_refused(hek_dir, changes):
    edit_manifest(hek_dir, **changes)
    with pytest.raises(HiexpError) as info:
        HEK.load(hek_dir)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"{oops", b"[1, 2]", b"\xff\xfe", b"[" * 100_000])
def test_an_unreadable_manifest_is_refused(hek_dir, content):
    (hek_dir / "manifest.json").write_bytes(content)
    with pytest.raises(HiexpError, match="manifest"):
        HEK.load(hek_dir)


def test_nan_vectors_are_refused_even_when_the_hashes_agree(hek_dir):
    from hiexp.experience.hek import content_version
    from hiexp.io import sha256_file

    vectors = np.load(hek_dir / "embeddings.npy")
    vectors[1] = np.nan
    np.save(hek_dir / "embeddings.npy", vectors)
    files = {"entries.jsonl": sha256_file(hek_dir / "entries.jsonl"),
             "embeddings.npy": sha256_file(hek_dir / "embeddings.npy")}
    edit_manifest(hek_dir, files=files, hek_version=content_version(files["entries.jsonl"], files["embeddings.npy"]))
    with pytest.raises(HiexpError, match="row 1 is not a unit vector"):
        HEK.load(hek_dir)


class PermutedEmbedder:
    """Same dimension as the HEK's embedder, different vectors: a different model of the same size."""

    model_id = "other-64"
    dim = 64

    def __init__(self):
        self.inner = load_embedder("hashing-64", cache=False)

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)[:, ::-1].copy()

    def encode_passages(self, texts):
        return self.inner.encode_passages(texts)[:, ::-1].copy()


def test_an_embedder_that_did_not_make_the_vectors_is_refused(hek_dir):
    """The manifest's embedder name is outside the hashes: the vectors themselves are checked."""
    from hiexp.components import make_experience_hook

    assert make_experience_hook(hek_dir) is not None  # the embedder the manifest names
    with pytest.raises(HiexpError, match="not made by other-64") as info:
        make_experience_hook(hek_dir, embedder=PermutedEmbedder())
    assert "\n" not in str(info.value)
    with pytest.raises(HiexpError, match="dimension"):
        make_experience_hook(hek_dir, embedder="hashing-32")
    edit_manifest(hek_dir, embedder={"model_id": "hashing-32", "dim": 64})  # a name edited by hand
    with pytest.raises(HiexpError, match="dimension"):
        make_experience_hook(hek_dir)


@pytest.mark.parametrize("key,value", [
    ("parent", "v1"), ("sources", ["a"]), ("update", 3), ("lineage", "v0"),
    # inside the fields, where a reader would meet them later (pydantic: issue 33)
    ("parent", {"hek_version": 7}), ("sources", {"e1_files": "e1.jsonl"}), ("sources", {"e1_files": [{"sha256": "x"}]}),
    ("update", {"merged": ["E1-a"]}), ("update", {"evicted": "E1-a"}), ("e1_threshold", 5.0),
    ("e1_threshold", {"value": "high"}), ("thresholds", {"E2": {"threshold": "tall"}}), ("counts", {"E1": "many"}),
    ("embedder", {"dim": 64}), ("dim", -3), ("cases", {"per_episode": "two"}), ("lineage", [1, 2]),
])
def test_a_manifest_field_of_the_wrong_kind_is_named(tmp_path, key, value):
    import shutil

    from hiexp.experience.hek import HEK, resolve_hek_dir

    shutil.copytree(resolve_hek_dir("demo"), tmp_path / "hek")
    path = tmp_path / "hek" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[key] = value
    path.write_text(json.dumps(manifest))
    with pytest.raises(HiexpError, match=f"'{key}[.']") as info:
        HEK.load(tmp_path / "hek")
    assert "\n" not in str(info.value) and "rebuild the HEK" in str(info.value)


@pytest.mark.parametrize("sources,ok", [({"question_id": 5}, True), ({"trajectory_ids": [1, 2]}, True),
                                        ({"trajectory_ids": 3}, False), ({"question_ids": [{"a": 1}]}, False),
                                        ({"question_id": ["x"]}, False)])
def test_entry_sources_are_read_as_ids_or_refused(sources, ok):
    from pydantic import ValidationError

    from hiexp.experience.schema import Entry

    record = {"id": "E1-a", "level": "E1", "title": "t", "sources": sources}
    if ok:
        entry = Entry.from_dict(record)
        assert all(isinstance(v, str) for v in entry.sources.get("trajectory_ids", []))
        assert entry.sources.get("question_id") in (None, "5")
    else:
        with pytest.raises(ValidationError):
            Entry.from_dict(record)
