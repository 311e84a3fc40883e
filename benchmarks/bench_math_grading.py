"""Math grading on adversarial answers against ordinary ones, in one run.

The grader is the RL reward of math training, so one answer that makes it hang stalls a training step. Each
adversarial class is ~10 KB (letters that look like units, nested ``\\text{``, unclosed ``\\boxed{``, towers of
powers, huge factorials and exponents); the baseline is ordinary answers (numbers, fractions, radicals) that
math-verify really compares. Prints the worst seconds for one adversarial answer, then a file of 1,000
(adversarial and ordinary mixed) graded under ``hiexp score``'s per-file budget.

    python benchmarks/bench_math_grading.py
"""

from __future__ import annotations

import time

ADVERSARIAL = {
    "unit letters": "1" + "m" * 10_000 + "!",
    "nested text": "\\text{" * 1_700 + "1",
    "unclosed boxes": "\\boxed{" * 1_430,
    "power tower": "2^" * 5_000 + "2",
    "nested fractions": "\\frac{" * 1_660,
    "tower of nines": "9^9^9^9^9",
    "braced tower": "2^{3^{4^{5^{6}}}}",
    "factorial": "123456!",
    "huge exponent": "10^{1000000}",
    "latex soup": ("\\left(\\frac{\\sqrt{x^{2}+1}}{\\pi}\\right)" * 300)[:10_000],
}
ORDINARY = [("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"), ("0.5", "\\frac{1}{2}"), ("(-\\infty, 3]", "(-\\infty,3]"),
            ("\\{1, 2\\}", "\\{2, 1\\}"), ("2\\pi", "\\pi \\cdot 2")]


def main() -> None:
    from hiexp.scoring.metrics import MATH_FILE_BUDGET_SECONDS, grading_budget, math_equal

    start = time.perf_counter()
    for pred, gold in ORDINARY:
        math_equal(pred, gold)
    ordinary = (time.perf_counter() - start) / len(ORDINARY)
    print(f"ordinary answer (math-verify compares it): {ordinary:.3f} s each")

    worst = 0.0
    for name, text in ADVERSARIAL.items():
        seconds = 0.0
        for pred, gold in ((text, "42"), ("42", text)):
            start = time.perf_counter()
            math_equal(pred, gold)
            seconds = max(seconds, time.perf_counter() - start)
        worst = max(worst, seconds)
        print(f"{name:>16} ({len(text):>6} chars): {seconds:.4f} s")

    answers = list(ADVERSARIAL.values()) + [p for p, _ in ORDINARY]
    start = time.perf_counter()
    with grading_budget(MATH_FILE_BUDGET_SECONDS) as budget:
        for i in range(1_000):
            math_equal(answers[i % len(answers)], ORDINARY[i % len(ORDINARY)][1])
    file_seconds = time.perf_counter() - start
    print(f"a file of 1,000 answers: {file_seconds:.1f} s (budget {MATH_FILE_BUDGET_SECONDS} s of math-verify, "
          f"{budget.skipped} comparisons past it)")
    print(f"math_grading_worst_adversarial_seconds: {worst:.4f}")


if __name__ == "__main__":
    main()
