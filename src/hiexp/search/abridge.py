"""Passages cut to a word budget, keeping the sentences that bear on the search.

On a CPU the prompt tokens a model reads cost most of an episode's time (docs/results.md, "Twice the
questions per minute"), and most of those are passages. A passage over the budget keeps its first sentence
(which says what the passage is about) and then the sentences that share the most search terms with the
query and the question, in their original order; "..." marks what was left out. Terms are the BM25 ones
(same stop words and stemmer as the index), so "born" in a query matches "born" and "birth" does not.
"""

from __future__ import annotations

import re
from functools import lru_cache

from hiexp.search.tokenize import Tokenizer

# a sentence ends at . ! or ? followed by space and a capital, a digit, a quote or a bracket
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
ELLIPSIS = "..."


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    return Tokenizer()


def search_terms(*texts: str) -> frozenset[str]:
    """The BM25 terms of the given texts (a query, a question), as one set."""
    tokenizer = _tokenizer()
    return frozenset(term for text in texts if text for term in tokenizer.terms(text))


def abridge(text: str, terms: frozenset[str], max_words: int) -> str:
    """``text`` cut to about ``max_words`` words: unchanged when it fits; else its first sentence and then the
    sentences holding most of ``terms`` (earlier ones first on ties), in their original order."""
    words = text.split()
    if max_words <= 0 or len(words) <= max_words:
        return text
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    lengths = [len(s.split()) for s in sentences]
    if lengths[0] >= max_words:
        return " ".join(sentences[0].split()[:max_words]) + " " + ELLIPSIS
    tokenizer = _tokenizer()
    overlap = [len(terms & set(tokenizer.terms(s))) for s in sentences]
    chosen = {0}
    used = lengths[0]
    for i in sorted(range(1, len(sentences)), key=lambda i: (-overlap[i], i)):
        if overlap[i] == 0:
            break
        if used + lengths[i] <= max_words:
            chosen.add(i)
            used += lengths[i]
    parts: list[str] = []
    for i, sentence in enumerate(sentences):
        if i in chosen:
            parts.append(sentence)
        elif not parts or parts[-1] != ELLIPSIS:
            parts.append(ELLIPSIS)
    return " ".join(parts)
