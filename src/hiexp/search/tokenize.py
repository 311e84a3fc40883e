"""The one text-to-terms function that both corpus and queries go through.

BM25 only matches what the tokenizer makes equal, so indexing and querying must share every step: lower
case, a word pattern, English stop words, the Snowball English stemmer (PyStemmer). Query terms are
capped (``max_query_tokens``) so that a pasted 100 KB "query" costs the same as a long question instead of
scoring thousands of terms against every document.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass
from typing import Any

from hiexp.errors import HiexpError

# Words of two or more word characters: the pattern scikit-learn's CountVectorizer and bm25s use.
WORD_PATTERN = r"(?u)\b\w\w+\b"
STOPWORD_SETS = ("en", "en_plus", "none")
# Words that say how a question is asked, not what it is about: the agent leaves them out when it anchors a
# query on the question or checks an answer against it. Narrower than bm25s's lists (it keeps "not", "no",
# "if", which can be the point of a query) and wider on question words ("who", "which", "whose").
FUNCTION_WORDS = frozenset("""a an and are as at be been by did do does for from had has have he her his how
in is it its of on or she that the their they this to was were what when where which who whom whose why
with""".split())


@dataclass
class TokenizerConfig:
    """How text becomes BM25 terms. Stored in an index's ``meta.json``; queries reuse the stored one."""

    stopwords: str = "en"
    """Stop-word list removed before stemming: ``en`` (the short Lucene/bm25s English list), ``en_plus``
    (a longer NLTK-like list) or ``none``."""
    stemmer: str | None = "english"
    """Snowball stemmer language for PyStemmer, or None to match surface forms only."""
    lower: bool = True
    """Lower-case text before splitting."""
    max_query_tokens: int = 256
    """Terms kept per query after stop-word removal; the rest are dropped (documented in docs/search.md)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tokenizer:
    """Turns passages and queries into stemmed terms with a per-instance stem cache."""

    def __init__(self, config: TokenizerConfig | None = None):
        self.config = config or TokenizerConfig()
        if self.config.stopwords not in STOPWORD_SETS:
            raise HiexpError(
                f"unknown stop-word list {self.config.stopwords!r}; choose one of {', '.join(STOPWORD_SETS)}"
            )
        if self.config.max_query_tokens < 1:
            raise HiexpError("max_query_tokens must be at least 1")
        self._split = re.compile(WORD_PATTERN).findall
        self._stopwords = frozenset(_stopword_list(self.config.stopwords))
        self._stemmer = _make_stemmer(self.config.stemmer)
        self._stems: dict[str, str] = {}
        # PyStemmer objects are not thread-safe, and a server answers requests from a thread pool.
        self._stem_lock = threading.Lock()

    def stem_all(self, words: list[str]) -> list[str]:
        """Stem ``words`` through the cache; PyStemmer is asked only about words not seen before."""
        if self._stemmer is None:
            return words
        unseen = [w for w in set(words) if w not in self._stems]
        if unseen:
            with self._stem_lock:
                stemmed = self._stemmer.stemWords(unseen)
            self._stems.update(zip(unseen, stemmed))
        stems = self._stems
        return [stems[w] for w in words]

    def words(self, text: str) -> list[str]:
        """Lower-cased words of ``text`` without stop words, not yet stemmed."""
        if self.config.lower:
            text = text.lower()
        stop = self._stopwords
        return [w for w in self._split(text) if w not in stop]

    def terms(self, text: str) -> list[str]:
        """The stemmed terms of one passage."""
        return self.stem_all(self.words(text))

    def query_terms(self, query: str) -> list[str]:
        """The stemmed terms of one query, at most ``max_query_tokens`` of them."""
        if not isinstance(query, str):
            raise HiexpError(f"a query must be a string, got {type(query).__name__}: {query!r:.80}")
        return self.stem_all(self.words(query)[: self.config.max_query_tokens])


def _stopword_list(name: str) -> tuple[str, ...]:
    if name == "none":
        return ()
    from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_EN_PLUS

    return STOPWORDS_EN if name == "en" else STOPWORDS_EN_PLUS


def _make_stemmer(language: str | None):
    if not language:
        return None
    try:
        import Stemmer
    except ImportError as exc:  # pragma: no cover - PyStemmer is a core dependency
        raise HiexpError("PyStemmer is not installed: pip install PyStemmer (or set stemmer=None)") from exc
    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        raise HiexpError(
            f"unknown stemmer language {language!r}; PyStemmer knows {', '.join(Stemmer.algorithms())}"
        ) from None
