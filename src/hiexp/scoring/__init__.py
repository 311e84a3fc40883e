"""What counts as a right answer: the final answer pulled out of a policy's text (one extractor per agent
format) and its scores against the gold answers (EM, cover EM, F1; math equivalence). Pure functions, low in
the layers, so that the agent, distillation, evaluation and training all score the same way."""

from hiexp.scoring.extract import FORMATS, extract_answer, last_boxed, last_tagged_answer
from hiexp.scoring.metrics import TASKS, cover_exact_match, exact_match, f1, math_equal, normalize_answer, score_answer

__all__ = ["FORMATS", "TASKS", "cover_exact_match", "exact_match", "extract_answer", "f1", "last_boxed",
           "last_tagged_answer", "math_equal", "normalize_answer", "score_answer"]
