"""Numeric options checked at parse time: NaN passes every range comparison (and typer's ``min``/``max``),
so a cosine or a reward must be named as such here, before a command starts any work."""

from __future__ import annotations

import math

import typer


def cosine(value: float | None) -> float | None:
    """A cosine threshold: in [-1, 1], not NaN."""
    if value is not None and not -1.0 <= value <= 1.0:
        raise typer.BadParameter(f"a cosine in [-1, 1], got {value}")
    return value


def finite(value: float | None) -> float | None:
    """Any finite number."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"a finite number, got {value}")
    return value
