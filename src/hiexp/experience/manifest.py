"""The fields of a HEK's ``manifest.json``, checked once when the HEK loads.

Commands and pages read these fields (a parent's version, source paths, thresholds, an update's merges), so a
value of the wrong kind, from an edited or damaged manifest, must stop the load with the field's name rather
than surface later as a traceback in whatever read it. Fields hiexp does not know are kept as they are
(``extra="allow"``): a newer hiexp may add some, and users may note their own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hiexp.errors import HiexpError


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class FileRecord(_Record):
    """An input file: where it was and its content hash."""

    path: str
    sha256: str | None = None


class EmbedderRecord(_Record):
    """The embedder the entries' vectors come from."""

    model_id: str
    dim: int | None = None


class LevelClustering(_Record):
    """How one level was clustered (a Ward cut height or a number of clusters)."""

    threshold: float | None = None
    n_clusters_requested: int | None = None
    method: str | None = None
    clusters: int | None = None


class SourcesRecord(_Record):
    """What the entries were made from."""

    e1_files: list[FileRecord] = Field(default_factory=list)
    trajectory_files: list[FileRecord] = Field(default_factory=list)
    update_trajectory_files: list[FileRecord] = Field(default_factory=list)
    hand_written: str | None = None


class ParentRecord(_Record):
    """The version an update started from."""

    hek_version: str
    path: str | None = None


class UpdateRecord(_Record):
    """What an update changed, and who wrote the new entries."""

    added: list[str] = Field(default_factory=list)
    merged: dict[str, str] = Field(default_factory=dict)
    evicted: list[str] = Field(default_factory=list)
    dissolved: list[str] = Field(default_factory=list)
    key: str | None = None
    models: dict[str, str] | None = None


class E1ThresholdRecord(_Record):
    """The E1 cosine threshold calibrated for the HEK's embedder."""

    value: float = Field(ge=-1, le=1)
    fire_rate: float | None = Field(None, ge=0, le=1)


class CasesRecord(_Record):
    """The recommended use of a HEK of cases."""

    per_episode: int | None = Field(None, ge=0)
    placement: str | None = None


class HEKManifest(_Record):
    """Every field of a HEK manifest that hiexp reads."""

    schema_version: int
    hek_version: str
    files: dict[str, str]
    counts: dict[str, int] = Field(default_factory=dict)
    created: str | None = None
    description: str | None = None
    reflector: str | list[str] | None = None  # several when the E1 files came from several models
    summarizer: str | None = None
    embedder: EmbedderRecord | str | None = None
    dim: int | None = Field(None, ge=1)
    thresholds: dict[str, LevelClustering] | None = None
    sources: SourcesRecord | None = None
    parent: ParentRecord | None = None
    update: UpdateRecord | None = None
    lineage: list[str] | None = None
    e1_threshold: E1ThresholdRecord | float | None = None
    cases: CasesRecord | None = None
    measured: dict[str, Any] | None = None
    warnings: list[str] | None = None

    @field_validator("e1_threshold")
    @classmethod
    def _cosine(cls, value: E1ThresholdRecord | float | None) -> E1ThresholdRecord | float | None:
        if isinstance(value, float) and not -1.0 <= value <= 1.0:
            raise ValueError("a cosine in [-1, 1]")
        return value


def check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """``manifest`` as read, once every field hiexp reads is known to hold its kind; else a ``HiexpError``
    naming the field."""
    if not isinstance(manifest, dict):
        raise HiexpError(f"{where}: corrupted manifest (not a JSON object)")
    try:
        HEKManifest.model_validate(manifest)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise HiexpError(f"{where}: {field!r}: {error['msg']}; the file is corrupted or was edited, rebuild the "
                         "HEK") from None
    return manifest


__all__ = ["HEKManifest", "check_manifest"]
