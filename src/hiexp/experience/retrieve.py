"""Experience-guided search: the ``ExperienceHook`` that feeds a HEK into the agent loop.

Two moments in an episode receive experience:

* at the start, the question is embedded and the ``top_k`` closest E2/E3 entries (the general lessons) go
  into the system prompt;
* at every search call, the query is embedded and matched against the *titles* of the E1 entries; if the
  best cosine reaches ``threshold``, that entry's *description* is returned for the tool response (match
  on the title, inject the description: the parent-child split of the paper).

Lookups are one matrix product against a normalised matrix per level, built once from the HEK's
``embeddings.npy`` rows; top-k selection uses ``argpartition`` so that it stays linear in the HEK size.
The texts returned are the bare entries (rendered through ``prompts/*.txt``); the agent wraps them in its
own marked ``<experience>`` block, injects them as non-trainable ``experience`` turns and records ``meta``
(entry ids and scores) in the trajectory.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hiexp.contracts.experience import Injection
from hiexp.errors import HiexpError

PROMPTS_DIR = Path(__file__).parent / "prompts"
LEVELS = ("E1", "E2", "E3")

# Named ablations of the paper's components (``hiexp eval --hek ... --ablation NAME``).
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {"start_levels": ("E2", "E3"), "use_e1": True},
    "no-e1": {"start_levels": ("E2", "E3"), "use_e1": False},
    "no-e2e3": {"start_levels": (), "use_e1": True},
    "only-e3": {"start_levels": ("E3",), "use_e1": False},
}


@cache
def _template(name: str) -> str:
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").rstrip("\n")


def _field(entry: Any, name: str, default: Any = None) -> Any:
    """Read a field of an entry that is either an ``Entry`` object or a plain dict."""
    if isinstance(entry, dict):
        return entry.get(name, default)
    return getattr(entry, name, default)


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores of each row, best first (``argpartition``, then a small sort)."""
    n = scores.shape[-1]
    k = min(k, n)
    if k <= 0:
        return np.zeros(scores.shape[:-1] + (0,), dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    order = np.argsort(-np.take_along_axis(scores, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)


def question_key(question: str) -> str:
    """How questions are compared for provenance: case and runs of whitespace do not matter."""
    return " ".join(str(question).split()).casefold()


def question_provenance(entries: Sequence[Any]) -> dict[str, set[str]]:
    """Entry id -> keys of the questions it was distilled from.

    An E1 entry names its question in ``sources.question`` (or only its id in ``sources.question_id``); an
    E2/E3 entry inherits the questions of its children (and of ``sources.question_ids``). Ids are mapped to
    question texts through the E1 entries that carry both. Entries with no recorded question (hand-written
    ones) map to an empty set.
    """
    by_id = {_field(e, "id"): e for e in entries}
    text_of_id: dict[str, str] = {}
    for entry in entries:
        sources = _field(entry, "sources", {}) or {}
        if sources.get("question_id") and sources.get("question"):
            text_of_id[str(sources["question_id"])] = question_key(sources["question"])
    memo: dict[str, set[str]] = {}

    def keys_of(entry_id: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if entry_id in memo:
            return memo[entry_id]
        entry = by_id.get(entry_id)
        if entry is None or entry_id in seen:
            return set()
        sources = _field(entry, "sources", {}) or {}
        keys = set()
        if sources.get("question"):
            keys.add(question_key(sources["question"]))
        ids = list(sources.get("question_ids") or []) + ([sources["question_id"]] if sources.get("question_id") else [])
        keys.update(text_of_id[str(i)] for i in ids if str(i) in text_of_id)
        for child in _field(entry, "children", []) or []:
            keys |= keys_of(child, seen | {entry_id})
        memo[entry_id] = keys
        return keys

    return {_field(e, "id"): keys_of(_field(e, "id")) for e in entries}


def _rows_by_question(entries: Sequence[Any], provenance: dict[str, set[str]]) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = {}
    for row, entry in enumerate(entries):
        for key in provenance.get(_field(entry, "id"), ()):
            rows.setdefault(key, []).append(row)
    return {key: np.asarray(value, dtype=np.int64) for key, value in rows.items()}


@dataclass
class LevelIndex:
    """The entries of one level with their normalised embedding matrix (rows aligned with ``entries``)."""

    entries: list[Any]
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class ExperienceRetrieverConfig:
    """Options of experience-guided search.

    top_k: how many E2/E3 entries go into the system prompt at the start of an episode.
    threshold: minimum cosine between a search query and an E1 title for the E1 description to be injected.
    start_levels: levels offered at the start of an episode (``()`` switches start-of-episode experience off).
    use_e1: inject E1 descriptions into tool responses (off = the "no E1" ablation).
    batch_size: texts per call to the embedder.
    exclude_own_question: never offer an episode the entries distilled from its own question (E1 by its
      source question, E2/E3 through their children). The reflector sees the gold answer, so such entries
      can quote it; when a HEK built from the training questions conditions training rollouts, this keeps
      the reward from measuring whether the policy copies its answer out of the experience.
    """

    top_k: int = 5
    threshold: float = 0.8
    start_levels: tuple[str, ...] = ("E2", "E3")
    use_e1: bool = True
    batch_size: int = 64
    exclude_own_question: bool = False


class ExperienceRetriever:
    """Implements ``hiexp.contracts.experience.ExperienceHook`` over a HEK and an embedder.

    ``hek`` is a ``hiexp.experience.hek.HEK`` (or anything with ``entries``, ``embeddings`` aligned with
    them, and ``version``); ``embedder`` has ``encode_queries(texts) -> float32 [n, dim]``. ``levels``, if
    given, overrides ``start_levels``/``use_e1`` at once (e.g. ``levels=("E3",)`` is the "only E3" ablation).
    """

    def __init__(
        self,
        hek: Any,
        embedder: Any,
        top_k: int = 5,
        threshold: float = 0.8,
        start_levels: Sequence[str] = ("E2", "E3"),
        use_e1: bool = True,
        levels: Sequence[str] | None = None,
        batch_size: int = 64,
        exclude_own_question: bool = False,
    ):
        if levels is not None:
            unknown = [lv for lv in levels if lv not in LEVELS]
            if unknown:
                raise HiexpError(f"unknown experience level(s) {unknown}; choose from {', '.join(LEVELS)}")
            start_levels = tuple(lv for lv in levels if lv in ("E2", "E3"))
            use_e1 = "E1" in levels
        bad = [lv for lv in start_levels if lv not in ("E2", "E3")]
        if bad:
            raise HiexpError(f"start-of-episode experience comes from E2/E3, not {bad}")
        if top_k < 0:
            raise HiexpError(f"experience top_k must be >= 0, got {top_k}")
        if not -1.0 <= threshold <= 1.0:
            raise HiexpError(f"experience threshold is a cosine in [-1, 1], got {threshold}")
        self.config = ExperienceRetrieverConfig(
            top_k=top_k, threshold=threshold, start_levels=tuple(start_levels), use_e1=use_e1, batch_size=batch_size,
            exclude_own_question=exclude_own_question,
        )
        self.hek = hek
        self.embedder = embedder
        self.version: str | None = getattr(hek, "version", None)

        entries = list(_field(hek, "entries", []) or [])
        embeddings = getattr(hek, "embeddings", None)
        if embeddings is None:
            raise HiexpError("the HEK carries no embeddings (embeddings.npy); rebuild it with `hiexp build`")
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(entries):
            raise HiexpError(
                f"the HEK has {len(entries)} entries but an embedding matrix of shape {embeddings.shape}; "
                "rebuild it with `hiexp build`"
            )
        dim = getattr(embedder, "dim", None)
        if dim is not None and len(entries) and embeddings.shape[1] != dim:
            raise HiexpError(
                f"the HEK's embeddings have dimension {embeddings.shape[1]} but the embedder "
                f"{getattr(embedder, 'model_id', '?')!r} gives {dim}: use the embedder the HEK was built with"
            )
        self._check_embedder(hek, embedder)
        by_level: dict[str, list[int]] = {lv: [] for lv in LEVELS}
        for row, entry in enumerate(entries):
            level = _field(entry, "level")
            if level in by_level:
                by_level[level].append(row)
        self.levels: dict[str, LevelIndex] = {
            lv: LevelIndex([entries[r] for r in rows], _normalise(embeddings[rows]) if rows else np.zeros((0, 1)))
            for lv, rows in by_level.items()
        }
        # One matrix over every start level: the top-k is taken across E2 and E3 together.
        start_rows = [r for lv in self.config.start_levels for r in by_level[lv]]
        self._start = LevelIndex(
            [entries[r] for r in start_rows], _normalise(embeddings[start_rows]) if start_rows else np.zeros((0, 1))
        )
        # question key -> rows of an index whose entries were distilled from that question
        self._own_start: dict[str, np.ndarray] = {}
        self._own_e1: dict[str, np.ndarray] = {}
        if exclude_own_question:
            provenance = question_provenance(entries)
            self._own_start = _rows_by_question(self._start.entries, provenance)
            self._own_e1 = _rows_by_question(self.levels["E1"].entries, provenance)

    @staticmethod
    def _check_embedder(hek: Any, embedder: Any) -> None:
        manifest = getattr(hek, "manifest", None) or {}
        built_with = manifest.get("embedder") if isinstance(manifest, dict) else None
        if isinstance(built_with, dict):
            built_with = built_with.get("model_id") or built_with.get("name")
        model_id = getattr(embedder, "model_id", None)
        if built_with and model_id and str(built_with) != str(model_id):
            warnings.warn(
                f"the HEK was embedded with {built_with!r} but queries are embedded with {model_id!r}; "
                "cosines are not comparable",
                stacklevel=3,
            )
        # The manifest's name is outside the content hashes: check the vectors themselves. A few titles
        # embedded now must give the stored rows back, or every cosine of the lookup would be meaningless.
        entries = list(getattr(hek, "entries", []))[:4]
        stored = getattr(hek, "embeddings", None)
        if entries and stored is not None and len(stored) >= len(entries) and callable(
                getattr(embedder, "encode_passages", None)):
            fresh = _normalise(np.asarray(embedder.encode_passages([_field(e, "title", "") for e in entries]),
                                          dtype=np.float32))
            if fresh.shape[1] != stored.shape[1]:
                raise HiexpError(f"the HEK's vectors have {stored.shape[1]} dimensions but {model_id} gives "
                                 f"{fresh.shape[1]}: load it with the embedder it was built with ({built_with})")
            agreement = float(np.mean(np.sum(fresh * np.asarray(stored[: len(entries)]), axis=1)))
            if agreement < 0.98:
                raise HiexpError(f"the HEK's vectors were not made by {model_id} (cosine {agreement:.2f} on its "
                                 f"first titles; the manifest names {built_with}): load it with the embedder it "
                                 "was built with")

    # --- embedding --------------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        chunks = []
        size = max(1, self.config.batch_size)
        for start in range(0, len(texts), size):
            chunks.append(np.asarray(self.embedder.encode_queries(texts[start : start + size]), dtype=np.float32))
        return _normalise(np.concatenate(chunks, axis=0))

    @staticmethod
    def _mask_own(scores: np.ndarray, questions: Sequence[str], own: dict[str, np.ndarray]) -> None:
        """Set to -inf the scores of entries distilled from each row's own question (in place)."""
        if not own:
            return
        for row, question in enumerate(questions):
            rows = own.get(question_key(question))
            if rows is not None:
                scores[row, rows] = -np.inf

    # --- the hook -----------------------------------------------------------------------------------
    def for_questions(self, questions: list[str]) -> list[Injection]:
        """The top-k E2/E3 entries for each question, rendered for the system prompt."""
        if not questions:
            return []
        index = self._start
        if self.config.top_k == 0 or len(index) == 0:
            return [Injection() for _ in questions]
        scores = self._embed(list(questions)) @ index.matrix.T
        self._mask_own(scores, questions, self._own_start)
        best = top_k_indices(scores, self.config.top_k)
        entry_template = _template("question_entry.txt")
        out = []
        for row, picks in enumerate(best):
            picks = [i for i in picks if np.isfinite(scores[row, i])]
            chosen = [index.entries[i] for i in picks]
            lines = "\n".join(
                entry_template.format(title=_field(e, "title", ""), description=_field(e, "description", ""))
                for e in chosen
            )
            out.append(
                Injection(
                    text=lines,
                    meta={
                        "stage": "question",
                        "entry_ids": [_field(e, "id") for e in chosen],
                        "levels": [_field(e, "level") for e in chosen],
                        "scores": [round(float(scores[row, i]), 4) for i in picks],
                    },
                )
            )
        return out

    def for_queries(self, queries: list[str], questions: list[str] | None = None) -> list[Injection]:
        """The best-matching E1 description for each query when its title cosine reaches the threshold.

        ``questions`` (the question of each query's episode) is needed only by ``exclude_own_question``.
        """
        if not queries:
            return []
        index = self.levels["E1"]
        if not self.config.use_e1 or len(index) == 0:
            return [Injection() for _ in queries]
        scores = self._embed(list(queries)) @ index.matrix.T
        if questions is not None:
            self._mask_own(scores, questions, self._own_e1)
        best = scores.argmax(axis=1)
        template = _template("query_entry.txt")
        out = []
        for row, i in enumerate(best):
            score = float(scores[row, i])
            entry = index.entries[i]
            if not np.isfinite(score):  # every E1 entry came from this episode's own question
                out.append(Injection(text="", meta={"stage": "query", "best_id": None, "best_score": None}))
                continue
            meta = {"stage": "query", "best_id": _field(entry, "id"), "best_score": round(score, 4)}
            if score >= self.config.threshold:
                meta.update(entry_ids=[_field(entry, "id")], scores=[round(score, 4)])
                text = template.format(title=_field(entry, "title", ""), description=_field(entry, "description", ""))
                out.append(Injection(text=text, meta=meta))
            else:
                out.append(Injection(text="", meta=meta))
        return out


def load_experience_hook(
    hek_dir: str | Path,
    embedder: Any | None = None,
    top_k: int = 5,
    threshold: float = 0.8,
    ablation: str = "full",
    exclude_own_question: bool = False,
) -> ExperienceRetriever:
    """Load a HEK directory and wrap it in an ``ExperienceRetriever`` (what ``hiexp eval --hek`` uses).

    ``embedder`` defaults to the embedder named in the HEK manifest, else the default embedder.
    """
    from hiexp.experience.hek import HEK
    from hiexp.search.embed import load_embedder

    if ablation not in ABLATIONS:
        raise HiexpError(f"unknown ablation {ablation!r}; choose from {', '.join(ABLATIONS)}")
    hek = HEK.load(hek_dir)
    if embedder is None:
        manifest = getattr(hek, "manifest", None) or {}
        name = manifest.get("embedder") if isinstance(manifest, dict) else None
        if isinstance(name, dict):
            name = name.get("name") or name.get("model_id")
        embedder = load_embedder(name or "default")
    return ExperienceRetriever(
        hek, embedder, top_k=top_k, threshold=threshold, exclude_own_question=exclude_own_question,
        **ABLATIONS[ablation],
    )
