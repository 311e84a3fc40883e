"""Where the benchmark files live.

The data files are not shipped with the package (only the small demo sets are). They sit wherever
``$HIEXP_DATA_DIR`` points (docs/data.md lists each file and its origin), or, in a development checkout, in
a ``shared/data`` folder above it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hiexp.errors import HiexpError

DATA_DIR_ENV = "HIEXP_DATA_DIR"


def _walk_up_for_shared(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def find_shared_data_dir() -> Path | None:
    """The data directory, or None when there is none.

    Looked up in this order: ``$HIEXP_DATA_DIR``; a ``shared/data`` directory in the current directory or
    any of its parents; the same from this package's own location (an editable install in a checkout).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        found = _walk_up_for_shared(start)
        if found is not None:
            return found
    return None


def shared_data_dir() -> Path:
    """The data directory; a ``HiexpError`` that says how to point at it when it cannot be found."""
    found = find_shared_data_dir()
    if found is None:
        raise HiexpError(
            "cannot find the data directory (looked for shared/data above the current directory and "
            f"above the hiexp package); set ${DATA_DIR_ENV} to it. The shipped demo sets need none; docs/data.md says where each file comes from."
        )
    if not found.is_dir():
        raise HiexpError(f"${DATA_DIR_ENV}={found}: not a directory")
    return found
