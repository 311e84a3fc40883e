"""Small file helpers shared by every stage: JSONL with precise errors, atomic writes, content hashes.

Long jobs append one JSON line per finished unit of work and fsync it, so that a crash loses at most the
unit in flight; whole artefacts are written to a temporary sibling and renamed into place, so that a
reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from hiexp.errors import HiexpError

MAX_LINE_BYTES = 16 << 20
"""Longest JSONL line (or JSON file) read: far above any record hiexp writes, far below what would exhaust
memory once parsed (a 64 MB question grew a process to 11.7 GB before this limit)."""

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class InputError(HiexpError):
    """A bad record in an input file. ``skippable``: a command with ``--skip-bad`` may skip it instead (the
    CLI adds that hint only for commands that have the option)."""

    def __init__(self, message: str, skippable: bool = True):
        super().__init__(message)
        self.skippable = skippable


def open_input(path: str | Path) -> Any:
    """An input file opened for reading bytes: plain, or gzip (by its magic bytes, whatever its name).

    Refuses, in one line naming the file: a missing path, a directory, a ``.gz`` that is not gzip.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file", skippable=False)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file", skippable=False)
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})", skippable=False) from None
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    if path.name.endswith(".gz") and magic:
        raise InputError(f"{path}: is named .gz but is not a gzip file", skippable=False)
    return path.open("rb")


def _lines(path: Path, handle: Any, max_line_bytes: int) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of each line, the BOM of the first one removed; an over-long line or a
    damaged gzip stream is one ``InputError``."""
    import zlib

    lineno = 0
    try:
        while True:
            line = handle.readline(max_line_bytes + 1)
            if not line:
                return
            lineno += 1
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                raise InputError(f"{path}:{lineno}: a line longer than {max_line_bytes >> 20} MB; not a record "
                                 "hiexp reads", skippable=False)
            if lineno == 1 and line.startswith(_BOM):
                line = line[len(_BOM):]
            yield lineno, line
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: a damaged gzip stream after line {lineno} ({exc})", skippable=False) from None


def parse_json(text: str | bytes, where: str, whole_file: bool = False) -> Any:
    """``json.loads`` whose every failure (syntax, bad UTF-8, nesting too deep) is one ``InputError``;
    for a ``whole_file`` the message names the line of a syntax error."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        if whole_file:
            raise InputError(f"{where}:{exc.lineno}: malformed JSON ({exc.msg})") from None
        raise InputError(f"{where}: malformed JSON ({exc})") from None
    except ValueError as exc:
        raise InputError(f"{where}: malformed JSON ({exc})") from None


def read_json(path: str | Path, max_bytes: int = MAX_LINE_BYTES) -> Any:
    """A whole JSON file (a manifest, a metadata file) through the same checks as JSONL lines."""
    path = Path(path)
    with open_input(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{path}: larger than {max_bytes >> 20} MB; not a file hiexp reads", skippable=False)
    return parse_json(data[len(_BOM):] if data.startswith(_BOM) else data, str(path), whole_file=True)


def iter_jsonl_numbered(path: str | Path, skip_bad: bool = False,
                        max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL file (plain or gzip).

    The one reader of JSONL input: a line that is not a JSON object (bad syntax, bad UTF-8, nested too
    deeply, a list) raises ``InputError`` naming the file and line, or is skipped with a warning when
    ``skip_bad`` is set; a truncated last line (a crash mid-write) is treated the same way. A UTF-8 BOM is
    accepted. What cannot be skipped (a directory, a damaged gzip file, a line over ``max_line_bytes``)
    always raises.
    """
    path = Path(path)
    with open_input(path) as handle:
        for lineno, line in _lines(path, handle, max_line_bytes):
            if not line.strip():
                continue
            try:
                record = parse_json(line, f"{path}:{lineno}")
            except InputError as exc:
                message = str(exc)
            else:
                if isinstance(record, dict):
                    yield lineno, record
                    continue
                message = f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}"
            if not skip_bad:
                raise InputError(message)
            warnings.warn(message + "; skipped", stacklevel=2)


def iter_jsonl(path: str | Path, skip_bad: bool = False) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-blank line (see ``iter_jsonl_numbered``)."""
    for _, record in iter_jsonl_numbered(path, skip_bad=skip_bad):
        yield record


def read_jsonl(path: str | Path, skip_bad: bool = False) -> list[dict[str, Any]]:
    """All records of a JSONL file (see ``iter_jsonl``)."""
    return list(iter_jsonl(path, skip_bad=skip_bad))


def repair_torn_tail(path: str | Path) -> bool:
    """Cut a last line that a crash left without its newline; True if something was cut."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return False
        keep, block = 0, 1 << 16
        position = handle.seek(0, os.SEEK_END)
        while position > 0:  # find the last newline, reading backwards
            start = max(0, position - block)
            handle.seek(start)
            at = handle.read(position - start).rfind(b"\n")
            if at != -1:
                keep = start + at + 1
                break
            position = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    warnings.warn(f"{path}: dropped a torn last line (an interrupted write); its work is done again", stacklevel=2)
    return True


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]] | dict[str, Any]) -> None:
    """Append records as JSON lines and fsync, so finished work survives a crash. A torn last line left by an
    earlier crash is cut first, so a new record never joins a fragment. Only for files the caller wrote."""
    if isinstance(records, dict):
        records = [records]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def atomic_write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSONL file atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


HEK_FILES = ("manifest.json", "entries.jsonl")
"""The files that make a directory a HEK (the experience layer's full check is ``hek.is_hek_dir``)."""


def enclosing_hek(path: str | Path) -> Path | None:
    """The HEK directory that ``path`` lies strictly inside, if any."""
    for parent in Path(path).absolute().parents:
        if all((parent / name).is_file() for name in HEK_FILES):
            return parent
    return None


def check_output_place(target: str | Path, inputs: Iterable[str | Path] = (), allow_in_hek: Iterable[str] = ()
                       ) -> Path:
    """Refuse an output that lands on or inside what the command reads (``inputs``), or inside a HEK: a HEK
    changes only whole (``hiexp build`` / ``update``), so a file dropped into it, or a HEK's own file
    replaced, would leave it unreadable or carrying files its manifest does not know. ``allow_in_hek`` names
    the files a command may keep inside a HEK it reads (``usefulness.json``). An input that is not on disk (a
    dataset or shipped HEK name, a URL) cannot be written over and is passed by. Every writer's checks and its
    lock (``exclusive_output``) start here, so one rule holds for every command."""
    target = Path(target)
    absolute = target.absolute()
    hek = enclosing_hek(target)
    if hek is not None and not (absolute.parent == hek and target.name in set(allow_in_hek)):
        raise HiexpError(f"{target}: lies inside the HEK {hek}; a HEK changes only whole (hiexp build or update), "
                         "so choose an output outside it")
    for source in inputs:
        source_path = Path(source).absolute()
        if not source_path.exists():
            continue
        if absolute == source_path or source_path in absolute.parents:
            where = "is" if absolute == source_path else "lies inside"
            raise HiexpError(f"{target}: {where} the input {source}; choose an output outside what the command reads")
    return target


def check_output_dir(target: str | Path, is_own: Callable[[Path], bool] | None = None, overwrite: bool = False,
                     what: str = "output directory", overwrite_option: str | None = "--overwrite",
                     inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse to replace what a command did not create: a file, or a non-empty directory that ``is_own``
    does not recognise as one of its own kind (unless ``overwrite``), or a place ``check_output_place``
    refuses (inside a HEK or one of ``inputs``). Call it before the slow part; ``overwrite_option`` is the
    command's option that lifts the rule (None: it has none)."""
    target = check_output_place(target, inputs)
    if not target.exists():
        return target
    if not target.is_dir():
        raise HiexpError(f"{target}: exists and is a file; choose a new directory for the {what}")
    if overwrite or not any(target.iterdir()) or (is_own is not None and is_own(target)):
        return target
    hint = f", or pass {overwrite_option} to replace it whole" if overwrite_option else ""
    raise HiexpError(f"{target}: exists, is not empty and is not a {what}; choose a new or empty directory{hint}")


def check_output_file(target: str | Path, magic: bytes | None = None, what: str = "output file") -> Path:
    """Refuse a directory, or an existing file this command did not write: one that does not begin with
    ``magic`` (the kind's signature, e.g. PNG's), so that ``--out`` cannot replace a user's document."""
    target = check_output_place(target)
    if target.is_dir():
        raise HiexpError(f"{target}: is a directory; --out takes the {what} to write")
    if target.exists() and magic is not None:
        with target.open("rb") as handle:
            if handle.read(len(magic)) != magic:
                raise HiexpError(f"{target}: exists and is not a {what}; choose a new file name")
    return target


def check_own_jsonl(path: Path, keys: Iterable[str], what: str) -> None:
    """Refuse to resume, repair or append to a JSONL file that this kind of command did not write: its first
    line must be a JSON object with every one of ``keys``. A missing or empty file is fine. ``what`` names
    the kind with its article ("a hiexp trajectory file")."""
    check_output_place(path)
    if path.is_dir():
        raise HiexpError(f"{path}: is a directory; --out takes {what} (.jsonl)")
    if not path.is_file():
        return
    with path.open("rb") as handle:
        first = handle.readline(MAX_LINE_BYTES)
    if not first.strip():
        return
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    keys = tuple(keys)
    if not isinstance(record, dict) or any(key not in record for key in keys):
        raise HiexpError(f"{path}: exists and is not {what} (its first line has no {', '.join(keys)}); "
                         "choose a new --out, nothing was written")


@contextlib.contextmanager
def atomic_directory(target: str | Path, is_own: Callable[[Path], bool] | None = None, overwrite: bool = False,
                     what: str = "output directory") -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block finishes.

    An existing ``target`` is swapped out after the new one is complete, so a failure at any point leaves
    either the old directory or the new one, never a mixture. What may be replaced follows
    ``check_output_dir``: an empty directory, one that ``is_own`` recognises, or anything with ``overwrite``.
    """
    target = check_output_dir(target, is_own, overwrite, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    check_output_dir(target, is_own, overwrite, what)  # nothing else appeared there meanwhile
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def exclusive_output(target: str | Path, command: str = "hiexp", inputs: Iterable[str | Path] = (),
                     allow_in_hek: Iterable[str] = ()) -> Iterator[Path]:
    """Hold an exclusive lock on an output (file or directory) while a command writes it, so that a second
    command given the same ``--out`` stops at once with a clear message instead of interleaving its writes.
    The place is checked first (``check_output_place`` with ``inputs`` and ``allow_in_hek``), so a refused
    output leaves nothing behind, not even a lock file.

    The lock is an ``flock`` on ``.<name>.lock`` beside the target (beside the HEK, as
    ``.<hek>.<name>.lock``, for the one file a command keeps inside a HEK, so the HEK holds no foreign file):
    released by the kernel when the process ends, however it ends (kill -9 included), so a stale lock never
    blocks a re-run. The lock file stays.
    """
    import fcntl

    target = check_output_place(target, inputs, allow_in_hek)
    target.parent.mkdir(parents=True, exist_ok=True)
    hek = enclosing_hek(target)
    lock_path = hek.parent / f".{hek.name}.{target.name}.lock" if hek else target.parent / f".{target.name}.lock"
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise HiexpError(f"{target}: another hiexp command is writing it ({holder}); wait for it to finish "
                             "or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{command}, pid {os.getpid()}")
        handle.flush()
        yield target
    finally:
        handle.close()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short content hash of a JSON-serialisable object (key order does not matter)."""
    return sha256_text(json.dumps(obj, sort_keys=True, ensure_ascii=False))[:length]


def cache_dir(*parts: str) -> Path:
    """hiexp's cache directory (``$HIEXP_CACHE`` or ``~/.cache/hiexp``), created on demand."""
    root = Path(os.environ.get("HIEXP_CACHE") or Path.home() / ".cache" / "hiexp")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def split_url_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``(url without user:password@, (user, password) or None)``: the credentials go to the HTTP client as
    basic auth, and only the public URL is ever printed, hashed or written into a manifest or trajectory."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), (unquote(user), unquote(password))


def public_url(value: Any) -> Any:
    """``value`` with the credentials of a URL removed; anything that is not an http(s) URL unchanged."""
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return split_url_credentials(value)[0]
    return value
