"""Bounded retries of transient failures (dropped connections, time-outs, HTTP 429 / 5xx), on tenacity.

A request function raises ``Transient`` for a failure worth another try; anything else propagates at once.
The delay doubles from ``backoff`` with jitter, is capped at ``max_backoff``, and honours a server's
``Retry-After`` (within the cap). When the tries run out the last ``Transient`` is raised again, so the
caller can name what went wrong in its own error message.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any

import tenacity

logger = logging.getLogger("hiexp")


class Transient(Exception):
    """A failure that another try may not repeat; ``what`` says what happened, for the final message."""

    def __init__(self, what: str, retry_after: float | None = None):
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


def retry_delay(attempt: int, backoff: float, max_backoff: float, retry_after: float | None = None) -> float:
    """Seconds before the try after failed try ``attempt`` (0-based): ``backoff`` doubled per try with
    jitter, at least the server's ``Retry-After``, at most ``max_backoff``."""
    delay = min(max_backoff, backoff * 2 ** attempt * (0.5 + random.random()))
    return min(max_backoff, max(delay, retry_after)) if retry_after is not None else delay


def policy(max_retries: int, backoff: float, max_backoff: float = 30.0, label: str = "request") -> dict[str, Any]:
    """Keyword arguments of ``tenacity.Retrying`` / ``AsyncRetrying``: at most ``max_retries + 1`` tries."""

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        return retry_delay(state.attempt_number - 1, backoff, max_backoff,
                           failure.retry_after if isinstance(failure, Transient) else None)

    def log(state: tenacity.RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        logger.info("retrying %s in %.1fs after %s", label, state.upcoming_sleep, getattr(failure, "what", failure))

    return dict(stop=tenacity.stop_after_attempt(max_retries + 1), wait=wait,
                retry=tenacity.retry_if_exception_type(Transient), before_sleep=log, reraise=True)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
