"""Math grading off the main thread: math-verify cannot time itself out there, so a worker process does
the comparison and is killed when it overruns; a training step's rewards share one grading budget."""

from __future__ import annotations

import sys
import threading

from hiexp.scoring.metrics import _VerifyWorker, grading_budget, math_equal


def in_thread(function, *args):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", function(*args)))
    thread.start()
    thread.join()
    return out["value"]


def test_symbolic_answers_are_compared_from_any_thread():
    assert in_thread(math_equal, "x^2+2x+1", "(x+1)^2")
    assert not in_thread(math_equal, "x^2+2x+2", "(x+1)^2")
    assert in_thread(math_equal, "\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2")


def test_a_worker_that_hangs_is_killed_and_counts_as_unequal():
    hanging = _VerifyWorker([sys.executable, "-c", "import time; time.sleep(3600)"])
    assert hanging.verify("x", "x", timeout=1, startup=0) is False
    assert hanging._process is None  # killed, not left running
    worker = _VerifyWorker()
    assert worker.verify("(x+1)^2", "x^2+2x+1", timeout=3)
    worker._process.kill()  # a worker that died is started again on the next call
    worker._process.wait()
    assert worker.verify("(x+1)^2", "x^2+2x+1", timeout=3)
    worker._stop()


def test_a_spent_budget_skips_math_verify_and_counts_it():
    with grading_budget(0) as budget:
        assert not math_equal("x^2+2x+1", "(x+1)^2")  # would be equal with time left
        assert math_equal("0.5", "1/2")  # numbers are compared without math-verify
    assert budget.skipped == 1
