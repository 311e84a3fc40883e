"""The math-verify worker process (``python -m hiexp.scoring.verify_worker``): one JSON line in
(``[prediction, gold, timeout]``), one line out (``true`` / ``false``). It compares on its own main thread,
so math-verify's timeouts work; ``metrics._VerifyWorker`` kills it when a comparison overruns anyway."""

from __future__ import annotations

import json
import sys


def main() -> None:
    from hiexp.scoring.metrics import verify_latex

    for line in sys.stdin:
        try:
            prediction, gold, timeout = json.loads(line)
            equal = verify_latex(str(prediction), str(gold), float(timeout))
        except (ValueError, TypeError):
            equal = False
        sys.stdout.write("true\n" if equal else "false\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
