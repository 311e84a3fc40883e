"""Experience-guided search: the ``ExperienceHook`` that feeds a HEK into the agent loop.

Two moments in an episode receive experience:

* at the start, the question is embedded and the ``top_k`` closest E2/E3 entries (the general lessons) go
  into the system prompt;
* at every search call, the query is embedded and matched against the *titles* of the E1 entries; if the
  best cosine reaches ``threshold``, that entry's *description* is returned for the tool response (match
  on the title, inject the description: the parent-child split of the paper).

Lookups go through one ``index.EntryIndex`` per use (E1 titles; E2/E3 together): an exact matrix product
up to 20k entries, an inverted-file index above it, updated in place when a HEK is refreshed. A
usefulness table (``usefulness.py``) can filter out harmful entries or re-rank candidates.
The texts returned are the bare entries (rendered through ``prompts/*.txt``); the agent wraps them in its
own marked ``<experience>`` block, injects them as non-trainable ``experience`` turns and records ``meta``
(entry ids and scores) in the trajectory.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hiexp.contracts.experience import Injection
from hiexp.contracts.fields import field_of
from hiexp.errors import HiexpError
from hiexp.scoring.kinds import ANSWER_KINDS, answer_kind

from .index import EXACT_MAX, EntryIndex, unit_rows
from .schema import is_case_only

PROMPTS_DIR = Path(__file__).parent / "prompts"
LEVELS = ("E1", "E2", "E3")

# Named ablations of the paper's components (``hiexp eval --hek ... --ablation NAME``).
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {"start_levels": ("E2", "E3"), "use_e1": True},
    "no-e1": {"start_levels": ("E2", "E3"), "use_e1": False},
    "no-e2e3": {"start_levels": (), "use_e1": True},
    "only-e3": {"start_levels": ("E3",), "use_e1": False},
    "cases-only": {"start_levels": (), "use_e1": False},
}


@cache
def _template(name: str) -> str:
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").rstrip("\n")


def start_entry_text(title: str, description: str) -> str:
    """One E2/E3 entry as the system prompt shows it."""
    return _template("question_entry.txt").format(title=title, description=description)


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
    by_id = {field_of(e, "id"): e for e in entries}
    text_of_id: dict[str, str] = {}
    for entry in entries:
        sources = field_of(entry, "sources", {}) or {}
        if sources.get("question_id") and sources.get("question"):
            text_of_id[str(sources["question_id"])] = question_key(sources["question"])
    memo: dict[str, set[str]] = {}

    def keys_of(entry_id: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if entry_id in memo:
            return memo[entry_id]
        entry = by_id.get(entry_id)
        if entry is None or entry_id in seen:
            return set()
        sources = field_of(entry, "sources", {}) or {}
        keys = set()
        if sources.get("question"):
            keys.add(question_key(sources["question"]))
        keys.update(question_key(q) for q in sources.get("merged_questions") or [])  # dedup (update.py)
        ids = list(sources.get("question_ids") or []) + ([sources["question_id"]] if sources.get("question_id") else [])
        keys.update(text_of_id[str(i)] for i in ids if str(i) in text_of_id)
        for child in field_of(entry, "children", []) or []:
            keys |= keys_of(child, seen | {entry_id})
        memo[entry_id] = keys
        return keys

    return {field_of(e, "id"): keys_of(field_of(e, "id")) for e in entries}


def _ids_by_question(entries: Sequence[Any], provenance: dict[str, set[str]]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for entry in entries:
        entry_id = field_of(entry, "id")
        for key in provenance.get(entry_id, ()):
            ids.setdefault(key, []).append(entry_id)
    return ids


USEFULNESS_MODES = ("off", "filter", "rank")
CASE_PLACEMENTS = ("replace", "beside")


def _case_dict(case: Any) -> dict[str, Any]:
    return case if isinstance(case, dict) else case.model_dump(mode="json")


def _case_searches(entry: Any) -> int:
    return len(field_of(field_of(entry, "case"), "steps", []) or [])


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
    usefulness_mode: what a usefulness table (``usefulness.py``) does to the lookup: ``off``; ``filter``
      (never offer an entry it marks harmful); ``rank`` (also order candidates by cosine plus
      ``usefulness_weight`` times the entry's effect; the E1 threshold still applies to the cosine).
    usefulness_weight: weight of an entry's effect (a reward difference in [-1, 1]) in ``rank`` mode.
    usefulness_min_episodes: episodes an entry must have been seen in before it can be marked harmful.
    exact_max: up to this many entries per level the lookup is an exact matrix product; above it an
      inverted-file index when faiss is installed (``index.py``).
    """

    top_k: int = 5
    threshold: float = 0.8
    start_levels: tuple[str, ...] = ("E2", "E3")
    use_e1: bool = True
    batch_size: int = 64
    exclude_own_question: bool = False
    usefulness_mode: str = "off"
    usefulness_weight: float = 0.1
    usefulness_min_episodes: int = 3
    exact_max: int = EXACT_MAX
    cases: int = 0
    """How many worked cases (``cases.py``) go into the system prompt, the most similar questions' (0: none).
    A case of the episode's own question is never offered, whatever ``exclude_own_question`` says: it holds
    the answer."""
    case_placement: str = "replace"
    """``replace``: the cases stand where the format's fixed worked example stood; ``beside``: after it."""
    prefer_multi_search: bool = True
    """Among the ``3 * cases`` most similar cases, show those that searched two or three times first: the
    policy under-searches, and a one-search case shows it nothing new."""
    match_answer_kind: bool = True
    """Show only cases whose question asks for the same kind of answer (yes/no, one of two choices, open;
    ``scoring/kinds.py``): a small policy copies the form of an example's answer, and a yes/no case shown for
    a "which ..." question draws a "yes" (dev: 40 questions, docs/results.md)."""
    start_order: str = "fixed"
    """Order of the chosen E2/E3 entries in the system prompt: ``fixed`` (E3 before E2, each in the HEK's
    order) or ``score`` (most similar first). Which entries are chosen does not change; with ``fixed`` two
    questions given the same entries get the same prompt prefix, which the model server's prompt cache
    then computes once."""

    def __post_init__(self) -> None:
        self.start_levels = tuple(self.start_levels)
        bad = [lv for lv in self.start_levels if lv not in ("E2", "E3")]
        if bad:
            raise HiexpError(f"start-of-episode experience comes from E2/E3, not {bad}")
        if self.top_k < 0:
            raise HiexpError(f"experience top_k must be >= 0, got {self.top_k}")
        if not -1.0 <= self.threshold <= 1.0:
            raise HiexpError(f"experience threshold is a cosine in [-1, 1], got {self.threshold}")
        if self.usefulness_mode not in USEFULNESS_MODES:
            raise HiexpError(f"usefulness mode {self.usefulness_mode!r}; choose from {', '.join(USEFULNESS_MODES)}")
        if self.start_order not in ("fixed", "score"):
            raise HiexpError(f"start_order must be fixed or score, got {self.start_order!r}")
        if self.cases < 0:
            raise HiexpError(f"cases (worked cases per episode) must be >= 0, got {self.cases}")
        if self.case_placement not in CASE_PLACEMENTS:
            raise HiexpError(f"case placement {self.case_placement!r}; choose from {', '.join(CASE_PLACEMENTS)}")

    def with_levels(self, levels: Sequence[str]) -> ExperienceRetrieverConfig:
        """This config with ``start_levels`` and ``use_e1`` set from one list of levels (an ablation)."""
        unknown = [lv for lv in levels if lv not in LEVELS]
        if unknown:
            raise HiexpError(f"unknown experience level(s) {unknown}; choose from {', '.join(LEVELS)}")
        return replace(self, start_levels=tuple(lv for lv in levels if lv in ("E2", "E3")), use_e1="E1" in levels)


class ExperienceRetriever:
    """Implements ``hiexp.contracts.experience.ExperienceHook`` over a HEK and an embedder.

    ``hek`` is a ``hiexp.experience.hek.HEK`` (or anything with ``entries``, ``embeddings`` aligned with
    them, and ``version``); ``embedder`` has ``encode_queries(texts) -> float32 [n, dim]``. ``levels``, if
    given, overrides ``start_levels``/``use_e1`` at once (e.g. ``levels=("E3",)`` is the "only E3" ablation).
    ``usefulness`` is a ``Usefulness`` table (see ``usefulness_mode``). ``previous`` is the retriever of an
    earlier version of the same HEK: its E1 index is updated in place (new entries added, missing ones
    dropped) instead of being rebuilt, which is what a HEK refreshed during training wants; ``previous``
    must not be used afterwards.
    """

    def __init__(
        self,
        hek: Any,
        embedder: Any,
        config: ExperienceRetrieverConfig | None = None,
        *,
        levels: Sequence[str] | None = None,
        usefulness: Any = None,
        previous: ExperienceRetriever | None = None,
        **options: Any,
    ):
        """``options`` are fields of ``ExperienceRetrieverConfig`` set over ``config`` (``top_k=3``, ...)."""
        config = replace(config or ExperienceRetrieverConfig(), **options)
        self.config = config.with_levels(levels) if levels is not None else config
        if self.config.usefulness_mode != "off" and usefulness is None:
            raise HiexpError(
                f"usefulness mode {self.config.usefulness_mode!r} needs a usefulness table (hiexp usefulness)")
        self.hek = hek
        self.embedder = embedder
        self.usefulness = usefulness
        self.version: str | None = getattr(hek, "version", None)
        entries = list(field_of(hek, "entries", []) or [])
        embeddings = self._checked_embeddings(hek, embedder, entries, previous)
        self._build_indexes(entries, embeddings, previous)
        # question key -> ids of entries distilled from that question
        self._own: dict[str, list[str]] = {}
        if self.config.exclude_own_question:
            self._own = _ids_by_question(entries, question_provenance(entries))
        self._apply_usefulness(usefulness)

    def _checked_embeddings(self, hek: Any, embedder: Any, entries: list[Any],
                            previous: ExperienceRetriever | None) -> np.ndarray:
        """The HEK's embedding matrix, once it is known to fit its entries and the query embedder."""
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
        if previous is None or previous.hek is not hek:
            self._check_embedder(hek, embedder)
        return embeddings

    def _build_indexes(self, entries: list[Any], embeddings: np.ndarray,
                       previous: ExperienceRetriever | None) -> None:
        """The E1 index (the previous version's, synced, when there is one), the start-of-episode index and
        the index of the cases."""
        exact_max = self.config.exact_max
        self.entries: dict[str, Any] = {}
        rows_of: dict[str, list[int]] = {lv: [] for lv in LEVELS}
        ids = [field_of(entry, "id") or f"row-{row}" for row, entry in enumerate(entries)]
        for row, (entry_id, entry) in enumerate(zip(ids, entries)):
            self.entries[entry_id] = entry
            level = field_of(entry, "level")
            if level in rows_of and not is_case_only(entry):  # a bare case has no lesson to inject
                rows_of[level].append(row)
        dim = getattr(self.embedder, "dim", None)
        width = embeddings.shape[1] if embeddings.shape[1] else (dim or 1)

        def index_of(rows: list[int]) -> EntryIndex:
            return EntryIndex([ids[r] for r in rows], embeddings[rows] if rows else np.zeros((0, width)),
                              dim=width, exact_max=exact_max)

        e1_rows = rows_of["E1"]
        reuse = previous._e1 if previous is not None and previous._e1.dim == width else None
        if reuse is not None:
            reuse.sync([ids[r] for r in e1_rows], embeddings[e1_rows] if e1_rows else np.zeros((0, width)))
            self._e1 = reuse
        else:
            self._e1 = index_of(e1_rows)
        # One index over every start level: the top-k is taken across E2 and E3 together.
        self._start = index_of([r for lv in self.config.start_levels for r in rows_of[lv]])
        self._cases, self._case_own, self._other_kinds = self._case_index(entries, ids, embeddings, width, exact_max)

    def _apply_usefulness(self, usefulness: Any) -> None:
        """The entries a usefulness table marks harmful (never offered) and, in rank mode, every effect."""
        self._harmful: set[str] = set()
        self._effect: dict[str, float] = {}
        if usefulness is not None and self.config.usefulness_mode != "off":
            self._harmful = set(usefulness.harmful_ids(self.config.usefulness_min_episodes))
            if self.config.usefulness_mode == "rank":
                self._effect = {i: float(u.effect) for i, u in usefulness.entries.items()}
        # the slots of harmful entries in each index, once (a lookup only concatenates them)
        self._harmful_slots: dict[int, np.ndarray] = {
            id(index): index.slots_of(sorted(self._harmful))
            for index in (self._e1, self._start, self._cases) if self._harmful}

    def _case_index(self, entries: list[Any], ids: list[str], embeddings: np.ndarray, width: int,
                    exact_max: int) -> tuple[EntryIndex, dict[str, list[str]], dict[str, np.ndarray]]:
        """The index of the cases by their questions, question key -> ids of its cases, and answer kind ->
        the slots of the cases of every other kind (never shown to that kind). A bare case's title is its
        question, so its stored row is reused; other cases' questions are embedded here."""
        rows = [r for r, e in enumerate(entries) if field_of(e, "case") is not None]
        if self.config.cases == 0 or not rows:
            return EntryIndex([], np.zeros((0, width)), dim=width, exact_max=exact_max), {}, {}
        questions = [field_of(field_of(entries[r], "case"), "question") for r in rows]
        vectors = np.zeros((len(rows), width), dtype=np.float32)
        fresh = [i for i, r in enumerate(rows) if question_key(field_of(entries[r], "title", "")) != question_key(questions[i])]
        for i, r in enumerate(rows):
            vectors[i] = embeddings[r]
        if fresh:
            vectors[fresh] = unit_rows(np.asarray(self.embedder.encode_passages([questions[i] for i in fresh]),
                                                  dtype=np.float32))
        own: dict[str, list[str]] = {}
        for i, r in enumerate(rows):
            own.setdefault(question_key(questions[i]), []).append(ids[r])
        index = EntryIndex([ids[r] for r in rows], vectors, dim=width, exact_max=exact_max)
        kinds = [answer_kind(q) for q in questions]
        other_kinds = {kind: index.slots_of([ids[r] for r, k in zip(rows, kinds) if k != kind])
                       for kind in ANSWER_KINDS}
        return index, own, other_kinds

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
            fresh = unit_rows(np.asarray(embedder.encode_passages([field_of(e, "title", "") for e in entries]),
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
        return unit_rows(np.concatenate(chunks, axis=0))

    def _excluded(self, index: EntryIndex, questions: Sequence[str] | None, n: int) -> list[np.ndarray | None]:
        """Per query, the slots it must not be offered: its own question's entries, harmful entries."""
        harmful = self._harmful_slots.get(id(index))
        owners = self._case_own if index is self._cases else self._own
        out: list[np.ndarray | None] = []
        for row in range(n):
            own = owners.get(question_key(questions[row])) if questions is not None and owners else None
            slots = index.slots_of(own) if own else None
            if harmful is not None and len(harmful):
                slots = harmful if slots is None else np.concatenate([slots, harmful])
            out.append(slots)
        return out

    def _search(self, index: EntryIndex, texts: list[str], k: int, questions: Sequence[str] | None,
                vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k slots and cosines per text (``vectors``: the texts already embedded); in ``rank`` mode
        candidates are over-fetched and re-ordered."""
        fetch = k * 3 if self._effect else k
        vectors = self._embed(texts) if vectors is None else vectors
        scores, slots = index.search(vectors, fetch, self._excluded(index, questions, len(texts)))
        if self._effect:
            bonus = np.array([[self._effect.get(index.ids[s], 0.0) if s >= 0 else 0.0 for s in row] for row in slots],
                             dtype=np.float32)
            if k == 1:  # the E1 lookup: only candidates that pass the threshold compete on usefulness
                passing = scores >= self.config.threshold
                rank = np.where(passing, scores + self.config.usefulness_weight * bonus, scores - 10.0)
            else:
                rank = scores + self.config.usefulness_weight * bonus
            order = np.argsort(-rank, axis=1, kind="stable")[:, :k]
            scores, slots = np.take_along_axis(scores, order, axis=1), np.take_along_axis(slots, order, axis=1)
        return scores, slots

    # --- the hook -----------------------------------------------------------------------------------
    def for_questions(self, questions: list[str]) -> list[Injection]:
        """The top-k E2/E3 entries for each question, rendered for the system prompt, and its worked cases."""
        if not questions:
            return []
        lessons = self.config.top_k > 0 and len(self._start) > 0
        cases = self.config.cases > 0 and len(self._cases) > 0
        if not (lessons or cases):
            return [Injection() for _ in questions]
        vectors = self._embed(list(questions))
        out = [Injection() for _ in questions]
        if lessons:
            out = self._lessons(list(questions), vectors)
        if cases:
            for injection, (chosen, meta) in zip(out, self._pick_cases(list(questions), vectors)):
                injection.cases = [_case_dict(field_of(e, "case")) for e in chosen]
                injection.cases_meta = meta
                injection.replace_example = self.config.case_placement == "replace"
        return out

    def _lessons(self, questions: list[str], vectors: np.ndarray) -> list[Injection]:
        index = self._start
        scores, slots = self._search(index, questions, self.config.top_k, questions, vectors)
        out = []
        for row in range(len(questions)):
            picks = [(int(s), float(c)) for s, c in zip(slots[row], scores[row]) if s >= 0 and np.isfinite(c)]
            if self.config.start_order == "fixed":
                picks.sort(key=lambda pick: (field_of(self.entries[index.ids[pick[0]]], "level") != "E3", pick[0]))
            chosen = [self.entries[index.ids[s]] for s, _ in picks]
            lines = "\n".join(
                start_entry_text(field_of(e, "title", ""), field_of(e, "description", ""))
                for e in chosen
            )
            out.append(
                Injection(
                    text=lines,
                    meta={
                        "stage": "question",
                        "entry_ids": [field_of(e, "id") for e in chosen],
                        "levels": [field_of(e, "level") for e in chosen],
                        "scores": [round(c, 4) for _, c in picks],
                    },
                )
            )
        return out

    def _pick_cases(self, questions: list[str], vectors: np.ndarray) -> list[tuple[list[Any], dict[str, Any]]]:
        """Per question, the cases to show (most similar last, nearest the question) and their record. In
        ``rank`` mode the candidates are first ordered by cosine plus the weighted usefulness effect, as the
        lessons are."""
        k = self.config.cases
        fetch = 3 * k if self.config.prefer_multi_search or self._effect else k
        excluded = self._excluded(self._cases, questions, len(questions))
        if self.config.match_answer_kind:
            others = [self._other_kinds[answer_kind(q)] for q in questions]
            excluded = [o if e is None else np.concatenate([e, o]) for e, o in zip(excluded, others)]
        scores, slots = self._cases.search(vectors, fetch, excluded)
        out = []
        for row in range(len(questions)):
            picks = [(int(s), float(c)) for s, c in zip(slots[row], scores[row]) if s >= 0 and np.isfinite(c)]
            if self._effect:
                weight = self.config.usefulness_weight
                picks.sort(key=lambda pick: -(pick[1] + weight * self._effect.get(self._cases.ids[pick[0]], 0.0)))
            if self.config.prefer_multi_search:
                picks.sort(key=lambda pick: not 2 <= _case_searches(self.entries[self._cases.ids[pick[0]]]) <= 3)
            picks = sorted(picks[:k], key=lambda pick: pick[1])
            chosen = [self.entries[self._cases.ids[s]] for s, _ in picks]
            out.append((chosen, {"stage": "cases", "entry_ids": [field_of(e, "id") for e in chosen],
                                 "scores": [round(c, 4) for _, c in picks]}))
        return out

    def for_queries(self, queries: list[str], questions: list[str] | None = None) -> list[Injection]:
        """The best-matching E1 description for each query when its title cosine reaches the threshold.

        ``questions`` (the question of each query's episode) is needed only by ``exclude_own_question``.
        """
        if not queries:
            return []
        index = self._e1
        if not self.config.use_e1 or len(index) == 0:
            return [Injection() for _ in queries]
        scores, slots = self._search(index, list(queries), 1, questions)
        template = _template("query_entry.txt")
        out = []
        for row in range(len(queries)):
            slot, score = int(slots[row, 0]), float(scores[row, 0])
            if slot < 0 or not np.isfinite(score):  # every E1 entry was excluded for this episode
                out.append(Injection(text="", meta={"stage": "query", "best_id": None, "best_score": None}))
                continue
            entry = self.entries[index.ids[slot]]
            meta = {"stage": "query", "best_id": field_of(entry, "id"), "best_score": round(score, 4)}
            if score >= self.config.threshold:
                meta.update(entry_ids=[field_of(entry, "id")], scores=[round(score, 4)])
                text = template.format(title=field_of(entry, "title", ""), description=field_of(entry, "description", ""))
                out.append(Injection(text=text, meta=meta))
            else:
                out.append(Injection(text="", meta=meta))
        return out


def recommended_case_placement(manifest: dict[str, Any] | None) -> str:
    """Where a HEK's manifest says its cases go (``cases.placement``), else ``replace``."""
    recommended = (manifest or {}).get("cases")
    placement = recommended.get("placement") if isinstance(recommended, dict) else None
    return placement if placement in CASE_PLACEMENTS else "replace"


def check_case_placement(placement: str) -> None:
    """Refuse a placement the retriever does not know, before any work."""
    if placement not in CASE_PLACEMENTS:
        raise HiexpError(f"case placement {placement!r}; choose from {', '.join(CASE_PLACEMENTS)}")


def load_experience_hook(
    hek_dir: str | Path,
    embedder: Any | None = None,
    top_k: int = 5,
    threshold: float | None = None,
    ablation: str = "full",
    exclude_own_question: bool = False,
    usefulness_mode: str = "off",
    usefulness: str | Path | None = None,
    cases: int | None = None,
    case_placement: str | None = None,
) -> ExperienceRetriever:
    """Load a HEK directory and wrap it in an ``ExperienceRetriever`` (what ``hiexp eval --hek`` uses).

    ``embedder`` defaults to the embedder named in the HEK manifest, else the default embedder.
    ``threshold`` defaults to the E1 threshold calibrated for the HEK's embedder and recorded in its
    manifest (``calibrate.py``), else the paper's 0.8.
    ``usefulness`` is a usefulness table's path; by default the HEK's own ``usefulness.json`` when
    ``usefulness_mode`` is not ``off``. ``cases`` (worked cases per episode) and ``case_placement`` default
    to what the HEK's manifest recommends (``cases.per_episode``, ``cases.placement``), else none.
    """
    from hiexp.experience.hek import HEK, resolve_hek_dir
    from hiexp.experience.usefulness import load_usefulness
    from hiexp.search.embed import load_embedder

    if ablation not in ABLATIONS:
        raise HiexpError(f"unknown ablation {ablation!r}; choose from {', '.join(ABLATIONS)}")
    if usefulness_mode not in USEFULNESS_MODES:
        raise HiexpError(f"unknown usefulness mode {usefulness_mode!r}; choose from {', '.join(USEFULNESS_MODES)}")
    hek = HEK.load(hek_dir)
    table = None
    if usefulness_mode != "off":
        table = load_usefulness(usefulness or resolve_hek_dir(hek_dir))
        if table is None:
            raise HiexpError(f"{hek_dir} has no usefulness.json for usefulness mode {usefulness_mode!r}: "
                             "make one with hiexp usefulness HEK TRAJECTORIES...")
    if embedder is None:
        embedder = load_embedder(hek.embedder_name or "default")
    if threshold is None:
        threshold = manifest_threshold(hek.manifest)
    recommended = (hek.manifest or {}).get("cases")
    recommended = recommended if isinstance(recommended, dict) else {}
    if cases is None:
        cases = recommended.get("per_episode", 0)
        cases = cases if isinstance(cases, int) and not isinstance(cases, bool) and 0 <= cases <= 16 else 0
    if case_placement is None:
        case_placement = recommended_case_placement(hek.manifest)
    return ExperienceRetriever(
        hek, embedder, top_k=top_k, threshold=threshold, exclude_own_question=exclude_own_question,
        usefulness=table, usefulness_mode=usefulness_mode, cases=cases, case_placement=case_placement,
        **ABLATIONS[ablation],
    )


PAPER_THRESHOLD = 0.8


def manifest_threshold(manifest: dict[str, Any] | None) -> float:
    """The E1 threshold a HEK's manifest records for its embedder (``e1_threshold.value``), else 0.8."""
    recorded = (manifest or {}).get("e1_threshold")
    value = recorded.get("value") if isinstance(recorded, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and -1.0 <= float(value) <= 1.0:
        return float(value)
    return PAPER_THRESHOLD
