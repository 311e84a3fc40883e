"""The E1 threshold for a HEK's own embedder, chosen on the training searches it was distilled from.

The paper's cosine 0.8 suits its embedder; with the shipped MiniLM almost no query reaches it and E1 never
joins a search. A threshold only means something relative to its embedder's cosines, so it is calibrated:
each training query is matched against the E1 titles (its own question's entries excluded, as in training
rollouts), and the threshold is set where ``fire_rate`` of those queries get an entry. It is recorded in the
manifest (``e1_threshold``), and retrieval uses it unless told otherwise (``retrieve.manifest_threshold``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .retrieve import ExperienceRetriever

DEFAULT_FIRE_RATE = 0.25


def training_searches(records: Iterable[Any]) -> tuple[list[str], list[str]]:
    """(queries, the question of each query's episode) of trajectory records or dicts."""
    queries: list[str] = []
    questions: list[str] = []
    for record in records:
        get = record.get if isinstance(record, dict) else lambda name, default=None: getattr(record, name, default)
        for query in get("queries", []) or []:
            if isinstance(query, str) and query.strip():
                queries.append(query)
                questions.append(str(get("question", "")))
    return queries, questions


def calibrate_e1_threshold(hek: Any, embedder: Any, queries: Sequence[str], questions: Sequence[str],
                           fire_rate: float = DEFAULT_FIRE_RATE) -> dict[str, Any] | None:
    """The manifest record ``{"value", "fire_rate", "queries", "embedder", "how"}``, or None when there are
    no queries or no E1 entries to match."""
    if not 0.0 < fire_rate <= 1.0:
        raise ValueError(f"fire_rate must be in (0, 1], got {fire_rate}")
    retriever = ExperienceRetriever(hek, embedder, threshold=-1.0, top_k=0, exclude_own_question=True)
    if not queries or len(retriever._e1) == 0:
        return None
    best = [i.meta.get("best_score") for i in retriever.for_queries(list(queries), questions=list(questions))]
    scores = np.array([b for b in best if b is not None], dtype=np.float64)
    if not len(scores):
        return None
    value = float(np.quantile(scores, 1.0 - fire_rate))
    return {"value": round(value, 4), "fire_rate": fire_rate, "queries": int(len(scores)),
            "embedder": getattr(embedder, "model_id", None),
            "how": "quantile of the best E1 title cosine of each training query, own-question entries excluded"}
