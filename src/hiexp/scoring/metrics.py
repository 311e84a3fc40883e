"""Outcome metrics: EM, CEM and F1 over answer aliases, and answer equivalence for math.

QA metrics follow the official HotpotQA evaluation (``hotpot_evaluate_v1.py``), which shares SQuAD's
normalisation: lower-case, drop ASCII punctuation, drop the words a/an/the, collapse whitespace. Two of its
details matter and are kept on purpose:

- F1 is 0 when either side normalises to ``yes``, ``no`` or ``noanswer`` and the two differ (a yes/no
  question gets no partial credit for sharing other words);
- two answers that both normalise to the empty string are an exact match but have F1 0 (no tokens).

CEM ("cover exact match", R1-Searcher's CEM and FlashRAG's ``acc``) asks whether the normalised gold occurs
in the normalised prediction. A gold that normalises to nothing counts only against an empty prediction, so
CEM >= EM always. Every metric is the maximum over the gold aliases, a float in [0, 1], and 0 for a missing
(None) prediction.

Math answers are compared by ``math_equal``: LaTeX wrappers, units, degrees and thousands separators removed
(``336^\\circ`` = ``336``, ``1,000`` = ``1000``, ``10 \\text{ cm}`` = ``10``), then the strings, the numbers,
the choice letters, and otherwise mathematical equivalence by math-verify (latex2sympy + sympy, with a
timeout): ``\\sqrt{2}/2`` = ``\\frac{\\sqrt{2}}{2}``, ``(-\\infty, 3]`` intervals, sets and tuples.
"""

from __future__ import annotations

import contextlib
import math
import re
import string
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hiexp.errors import HiexpError
from hiexp.scoring.extract import braced_content, last_boxed

TASKS = ("qa", "math")

_ARTICLE_WORDS = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)
# Normalised answers that get no partial F1 credit against anything but themselves.
_NO_PARTIAL_CREDIT = frozenset({"yes", "no", "noanswer"})


def normalize_answer(s: str | None) -> str:
    """SQuAD / HotpotQA normalisation: lower, no ASCII punctuation, no articles, single spaces."""
    if s is None:
        return ""
    text = str(s).lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCTUATION)
    text = _ARTICLE_WORDS.sub(" ", text)
    return " ".join(text.split())


def _as_golds(golds: str | Iterable[str] | None) -> list[str]:
    if golds is None:
        return []
    if isinstance(golds, str):
        return [golds]
    return [str(g) for g in golds if g is not None]


def _f1_normalised(prediction: str, gold: str) -> float:
    if (prediction in _NO_PARTIAL_CREDIT or gold in _NO_PARTIAL_CREDIT) and prediction != gold:
        return 0.0
    pred_tokens = prediction.split()
    gold_tokens = gold.split()
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str | None, golds: str | Iterable[str]) -> float:
    """1.0 if the normalised prediction equals some normalised gold, else 0.0."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _as_golds(golds)))


def cover_exact_match(prediction: str | None, golds: str | Iterable[str]) -> float:
    """1.0 if some normalised gold is a substring of the normalised prediction (CEM), else 0.0."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    for gold in _as_golds(golds):
        gold_norm = normalize_answer(gold)
        if (gold_norm and gold_norm in pred) or gold_norm == pred:
            return 1.0
    return 0.0


def f1(prediction: str | None, golds: str | Iterable[str]) -> float:
    """Token-level F1 of the normalised answers (HotpotQA rules), the best over the golds."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return max((_f1_normalised(pred, normalize_answer(g)) for g in _as_golds(golds)), default=0.0)


def score_answer(prediction: str | None, golden_answers: str | Iterable[str], task: str = "qa") -> dict[str, float]:
    """``{"em", "cem", "f1"}`` of one prediction; for ``task="math"`` all three are answer equivalence."""
    if task == "qa":
        return {
            "em": exact_match(prediction, golden_answers),
            "cem": cover_exact_match(prediction, golden_answers),
            "f1": f1(prediction, golden_answers),
        }
    if task == "math":
        value = float(any(math_equal(prediction, g) for g in _as_golds(golden_answers)))
        return {"em": value, "cem": value, "f1": value}
    raise HiexpError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def mean_scores(scores: list[dict[str, float]]) -> dict[str, float]:
    """Means of em/cem/f1 over a list of ``score_answer`` results, plus ``n``."""
    n = len(scores)
    out = {key: (sum(s[key] for s in scores) / n if n else 0.0) for key in ("em", "cem", "f1")}
    out["n"] = n
    return out


# ---------------------------------------------------------------------------------------------- math

_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|\\displaystyle|\\left|\\right|~")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree")
_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*(?=\{)")
_UNIT_WORDS = (
    "cm|mm|km|m|kg|g|mg|ml|l|s|sec|seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|years?|"
    "inch(?:es)?|in|feet|foot|ft|yards?|miles?|mph|meters?|metres?|units?|dollars?|cents?|degrees?|"
    "percent|pounds?|lbs?|ounces?|oz|square|sq|cubic|students?|people|points?"
)
# Each unit is a whole word (no letter after it) inside an atomic group, so a run of letters that no unit
# covers fails at once instead of being split every possible way ("1mmmm...!" took exponential time).
_TRAILING_UNITS = re.compile(rf"^(.*?\d)\s*(?>(?:{_UNIT_WORDS})(?![A-Za-z])(?:\^?\d)?\.?\s*)+$", re.IGNORECASE)
_SPACED_WORDS = re.compile(r"^([-+]?[\d.,/]*\d)\s+[A-Za-z][A-Za-z ]*$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_SLASH_FRACTION = re.compile(r"^([-+]?)(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_LATEX_FRACTION = re.compile(r"^([-+]?)\\frac\{([-+]?\d+(?:\.\d+)?)\}\{([-+]?\d+(?:\.\d+)?)\}$")
_SHORT_FRAC = re.compile(r"\\frac(\d)(\d)")
_SHORT_SQRT = re.compile(r"\\sqrt(\d+)")
_VARIABLE_PREFIX = re.compile(r"^[A-Za-z]\s*=\s*(?!=)")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")


def _unwrap_commands(text: str) -> str:
    """``\\text{cm}`` -> ``cm`` (and the like), handling nested braces."""
    while True:
        match = _TEXT_COMMANDS.search(text)
        if not match:
            return text
        inner = braced_content(text, match.end())
        if inner is None:
            return text[: match.start()] + text[match.end() :]
        text = text[: match.start()] + inner + text[match.end() + len(inner) + 2 :]


MAX_MATH_ANSWER_CHARS = 400
"""Longest answer (after taking it out of its box) that is normalised and compared as mathematics; a longer
one is compared as a string only. Real answers are short, and every step of the grading is then bounded."""


def normalize_math_answer(s: str | None) -> str:
    """A canonical string for a math answer: no ``$``/``\\boxed``/spacing/units, ``\\dfrac`` -> ``\\frac``."""
    if s is None:
        return ""
    text = str(s).strip()
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    if len(text) > MAX_MATH_ANSWER_CHARS:
        return "".join(text.split())
    text = text.replace("$", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = text.replace("{,}", ",").replace("\\%", "").replace("%", "")
    text = _LATEX_SPACING.sub(" ", text)
    text = _DEGREES.sub("", text)
    text = _unwrap_commands(text)
    text = text.strip().rstrip(".").strip()
    text = _VARIABLE_PREFIX.sub("", text)
    match = _TRAILING_UNITS.match(text) or _SPACED_WORDS.match(text)
    if match:
        text = match.group(1)
    text = _SHORT_FRAC.sub(r"\\frac{\1}{\2}", text)
    text = _SHORT_SQRT.sub(r"\\sqrt{\1}", text)
    text = "".join(text.split())
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return text


def _number(text: str) -> float | None:
    """The value of a plain number, ``a/b`` or ``\\frac{a}{b}``; None for anything else."""
    if _PLAIN_NUMBER.match(text):
        return float(text)
    for pattern in (_SLASH_FRACTION, _LATEX_FRACTION):
        match = pattern.match(text)
        if match:
            sign, num, den = match.groups()
            if float(den) == 0:
                return None
            value = float(num) / float(den)
            return -value if sign == "-" else value
    return None


MATH_TIMEOUT_SECONDS = 3
"""Longest parse or comparison of one answer by math-verify (a pathological expression counts as unequal)."""


MATH_FILE_BUDGET_SECONDS = 45
"""math-verify seconds that ``hiexp score`` spends on one prediction file at most (see ``grading_budget``)."""

MATH_STEP_BUDGET_SECONDS = 60
"""math-verify seconds that one training step's rewards may spend at most (the RL reward never stalls a step)."""


@dataclass
class GradingBudget:
    """Seconds that math-verify may still spend inside ``grading_budget``, and how many comparisons were
    skipped once they ran out."""

    left: float
    skipped: int = 0


_ACTIVE_BUDGET: list[GradingBudget] = []


@contextlib.contextmanager
def grading_budget(seconds: float) -> Iterator[GradingBudget]:
    """Bound the math-verify time of everything graded inside the block (a file, a training step): once
    ``seconds`` are spent, the remaining answers are compared as normalised strings and numbers only, and
    ``budget.skipped`` counts them."""
    budget = GradingBudget(float(seconds))
    _ACTIVE_BUDGET.append(budget)
    try:
        yield budget
    finally:
        _ACTIVE_BUDGET.remove(budget)


def _verify(prediction: str, gold: str) -> bool:
    """Mathematical equivalence by math-verify (LaTeX parsed by latex2sympy, compared by sympy): fractions,
    radicals, intervals, sets, tuples and symbolic forms. Its timeouts use SIGALRM, which only the main
    thread may set; any other thread compares in a worker process that is killed when it overruns."""

    on_main = threading.current_thread() is threading.main_thread()
    timeout = MATH_TIMEOUT_SECONDS
    budget = _ACTIVE_BUDGET[-1] if _ACTIVE_BUDGET else None
    if budget is not None:
        if budget.left <= 0:
            budget.skipped += 1
            return False
        timeout = max(1, min(timeout, math.ceil(budget.left)))
    start = time.perf_counter()
    try:
        if not on_main:  # no SIGALRM here: a worker process that is killed when it overruns
            return _WORKER.verify(prediction, gold, timeout)
        return verify_latex(prediction, gold, timeout)
    finally:
        if budget is not None:
            budget.left -= time.perf_counter() - start


def verify_latex(prediction: str, gold: str, timeout: float | None) -> bool:
    """math-verify's equivalence of two answers (its own SIGALRM timeouts when ``timeout`` is given)."""
    from math_verify import parse, verify

    if timeout is not None:
        timeout = max(1, math.ceil(timeout))  # SIGALRM counts whole seconds; a float is refused
    try:
        gold_parsed = parse(f"${gold}$", parsing_timeout=timeout)
        prediction_parsed = parse(f"${prediction}$", parsing_timeout=timeout)
        if not gold_parsed or not prediction_parsed:
            return False
        return bool(verify(gold_parsed, prediction_parsed, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - math-verify raises many kinds on malformed LaTeX: not equal
        return False


class _VerifyWorker:
    """One process (``verify_worker.py``) that runs math-verify for the threads that cannot time it out
    themselves (a trainer's rollout thread, a server's handler). A comparison that overruns its timeout
    (plus a second for the round trip) is answered "not equal", and the process is killed and started again
    on the next call, so that no answer can stall the caller."""

    def __init__(self, command: list[str] | None = None) -> None:
        import sys

        self.command = command or [sys.executable, "-m", "hiexp.scoring.verify_worker"]
        self._lock = threading.Lock()
        self._process: Any = None

    def _start(self) -> None:
        import subprocess

        self._process = subprocess.Popen(self.command,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          text=True, bufsize=1)

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    def verify(self, prediction: str, gold: str, timeout: float, startup: float = 30.0) -> bool:
        import json
        import select

        with self._lock:
            fresh = self._process is None or self._process.poll() is not None
            if fresh:
                self._stop()
                self._start()
            try:
                self._process.stdin.write(json.dumps([prediction, gold, timeout]) + "\n")
                self._process.stdin.flush()
                # a fresh process imports math-verify and sympy first
                ready, _, _ = select.select([self._process.stdout], [], [], timeout + 1.0 + (startup if fresh else 0))
                if ready:
                    return self._process.stdout.readline().strip() == "true"
            except (OSError, ValueError):
                pass
            self._stop()
            return False


_WORKER = _VerifyWorker()


# what sympy would evaluate for ever: towers of powers (2^3^4^5), factorials of large numbers, huge exponents
_EXPLOSIVE = re.compile(r"\^\s*\{?\s*[-+]?\w+\s*\}?\s*\^|\^\s*\{\s*[-+]?\w+\s*\^|\d{3,}\s*!|\^\s*\{?\s*[-+]?\d{4,}")


def _equal_normalised(a: str, b: str) -> bool:
    if not b or not a:
        return False
    if a == b or a.lower() == b.lower():
        return True
    if max(len(a), len(b)) > MAX_MATH_ANSWER_CHARS:
        return False
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return math.isclose(na, nb, rel_tol=1e-6, abs_tol=1e-9)
    ca, cb = _CHOICE.match(a), _CHOICE.match(b)
    if ca or cb:
        return bool(ca and cb and ca.group(1).upper() == cb.group(1).upper())
    if _EXPLOSIVE.search(a) or _EXPLOSIVE.search(b):
        return False
    return _verify(a, b)


def math_equal(prediction: str | None, gold: str) -> bool:
    """Whether two math answers are the same: the strings after normalisation (wrappers, units, degrees,
    thousands separators removed), the numbers, the choice letters, or else math-verify's equivalence."""
    if prediction is None:
        return False
    return _equal_normalised(normalize_math_answer(prediction), normalize_math_answer(gold))
