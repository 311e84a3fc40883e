"""One way to read a field of a record that arrives either as its model object or as its plain dict (a
trajectory or entry read back from JSONL, a verl output), so that readers need not care which."""

from __future__ import annotations

from typing import Any


def field_of(record: Any, name: str, default: Any = None) -> Any:
    """``record[name]`` for a dict, ``record.name`` otherwise; ``default`` where it is absent."""
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)
