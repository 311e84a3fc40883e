"""Bridges to other training frameworks (``verl``): hiexp's episode inside their rollout machinery."""
