"""Options of the search agent (one dataclass, every field documented)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hiexp.errors import HiexpError

FORMATS = ("search_r1", "tool_call", "math")
FIRST_SEARCH = ("policy", "question")
PASSAGES_SEEN = ("full", "title")
REWARD_METRICS = ("em", "cem", "f1")


@dataclass
class AgentConfig:
    """How the agent talks to the model and the search engine.

    The defaults suit the small embedded model on CPU; scale ``max_tokens`` and ``max_new_tokens`` up for
    larger models.
    """

    format: str = "search_r1"
    """Action format: ``search_r1`` (``<search>``/``<answer>`` tags inside one assistant message),
    ``tool_call`` (Qwen-style ``<tool_call>`` JSON, results in a new tool turn, answer in ``\\boxed{}``) or
    ``math`` (no tool: reasoning, then the answer in ``\\boxed{}``; for math problems)."""

    top_k: int = 3
    """Passages returned per search call."""

    max_turns: int = 3
    """Search calls allowed per episode. A further search gets one reminder to answer; insisting ends the
    episode with ``finish = max_turns``."""

    max_tokens: int = 1536
    """Budget of completion tokens per episode (policy and injected tokens after the prompt). Reaching it
    ends the episode with ``finish = max_tokens``. Text-only backends estimate tokens as characters / 4."""

    max_new_tokens: int = 128
    """Tokens the policy may generate in one turn (capped by what is left of ``max_tokens``)."""

    temperature: float = 1.0
    """Sampling temperature; 0 means greedy decoding (use 0 for evaluation, 1.0 for RL rollouts)."""

    top_p: float = 1.0
    """Nucleus sampling mass."""

    seed: int = 0
    """Base seed. Each (question, sample) gets its own seed derived from it, so a trajectory does not
    depend on which other episodes share its batch (as far as the backend honours per-prompt seeds)."""

    max_query_chars: int = 300
    """A search query longer than this is refused with a corrective observation."""

    max_invalid: int = 2
    """Malformed actions tolerated per episode; the next one ends it with ``finish = invalid``."""

    reject_repeated_queries: bool = True
    """Answer a query already searched in this episode (case and spacing ignored) with a correction instead
    of the same passages again; small models otherwise loop on one query until the budget runs out."""

    first_search: str = "policy"
    """Who makes the first search: ``policy`` (the model writes its first query) or ``question`` (the episode
    opens with a search for the question itself, as if the policy had written it: the same passages that
    one retrieval would give, after which the policy reads, searches on or answers)."""

    anchor_first_query: bool = True
    """The first search retrieves for the policy's query plus the words of the question that the query left
    out (question words and other function words aside). Small models rewrite the question into a query that
    drops the names and titles BM25 needs; the query the policy wrote is still the one its context shows and
    the one ``Trajectory.queries`` records (the tool turn's ``retrieval_query`` holds what was sent)."""

    force_answer: bool = True
    """When the searches or the tolerated malformed actions run out, give the policy one last turn that
    already opens the answer (``<answer>`` / ``\\boxed{``) instead of ending without one."""

    search_before_answer: bool = True
    """An answer given before any search is sent back once with a correction asking for a search first; a
    second answer without a search is accepted. Small instruct models otherwise answer from memory at the
    first turn and never use the tool. Has no effect without a retriever."""

    answer_from_options: bool = True
    """When the question offers two choices (``..., X or Y?``) and the answer names neither, send it back
    once asking for one of them; a second such answer is accepted. Small models otherwise answer a
    comparison with the fact they compared (a director's name for "which film ..."). Search formats only."""

    answer_beyond_question: bool = True
    """When the question offers no choice (no "or" in it) and the answer is made only of the question's own
    words (``Jack`` for "the first name of Jack Benny Binion's father"), send it back once asking for what the
    question asks for; a second such answer is accepted, and yes / no is never sent back. Small models
    otherwise answer with the question's subject. Search formats only."""

    passage_words: int = 0
    """Words each passage may take in what the model reads; 0 shows passages whole. A longer passage keeps
    its first sentence and the sentences that share most search terms with the query and the question
    (``hiexp.search.abridge``). On a CPU the passages are most of the prompt tokens an episode costs."""

    passages_seen: str = "full"
    """How a passage already shown earlier in the episode is shown again: ``full`` (its text again, as
    Search-R1 does) or ``title`` (its title and a note that it is above, which costs a few tokens)."""

    few_shot: bool = True
    """Put a worked example of the format in the system prompt (small models need it to use the tool)."""

    batch_size: int = 16
    """Episodes generated together. Finished episodes leave the batch and waiting ones take their place."""

    reward_metric: str = "em"
    """Which score becomes ``rewards["reward"]``: ``em``, ``cem`` or ``f1``."""

    templates: dict[str, str] = field(default_factory=dict)
    """Template overrides by name (``system``, ``user``, ``example``, ``turn_start``, ``observation``,
    ``experience_system``, ``experience_tool``, ``rag_system``, ``closed_book_system``):
    the template text itself, or a path to a file holding it. Unnamed templates come from
    ``hiexp/agent/templates``."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse options that cannot work, naming the option."""
        if self.format not in FORMATS:
            raise HiexpError(f"unknown agent format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.first_search not in FIRST_SEARCH:
            raise HiexpError(f"unknown first_search {self.first_search!r}; choose one of {', '.join(FIRST_SEARCH)}")
        if self.reward_metric not in REWARD_METRICS:
            raise HiexpError(f"unknown reward metric {self.reward_metric!r}; choose one of {', '.join(REWARD_METRICS)}")
        for name in ("top_k", "max_tokens", "max_new_tokens", "max_query_chars", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise HiexpError(f"agent option {name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_turns", "max_invalid"):
            if int(getattr(self, name)) < 0:
                raise HiexpError(f"agent option {name} must be >= 0, got {getattr(self, name)}")
        if self.passages_seen not in PASSAGES_SEEN:
            raise HiexpError(f"unknown passages_seen {self.passages_seen!r}; choose one of {', '.join(PASSAGES_SEEN)}")
        if int(self.passage_words) < 0:
            raise HiexpError(f"agent option passage_words must be >= 0 (0 = whole passages), got {self.passage_words}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise HiexpError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise HiexpError(f"top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
