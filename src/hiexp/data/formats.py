"""Readers for every file format in the data directory, all mapped into ``Example``.

A file is read record by record (JSONL lines, JSON array items, CSV rows or parquet rows); each record's
format is recognised from its keys, so the same code serves a dataset picked by name and a path given on
the command line. The formats:

``distractor``  HotpotQA / 2WikiMultihopQA: ``_id, question, answer, context=[[title, [sentences]]]``
``musique``     MuSiQue: ``id, question, answer, answer_aliases, paragraphs=[{title, paragraph_text}]``
``flashrag``    FlashRAG / Search-R1 lists: ``id, question, golden_answers``
``verl``        verl / Search-R1 parquet rows: ``prompt=[{content}], reward_model.ground_truth``
``math``        GSM8K (``answer`` ends in ``#### 18``), MATH-500 and AIME (``problem``/``question``, ``answer``)
``qa``          anything else with ``question`` and ``answer`` (R1-Searcher lists, Bamboogle CSV)

Context paragraphs come back beside each example (``RawItem.paragraphs``) rather than inside it, so that
examples stay small; the corpus builder and ``load_dataset(with_context=True)`` use them.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiexp.contracts.example import Example
from hiexp.errors import HiexpError
from hiexp.io import InputError, iter_jsonl_numbered, open_input, read_json

KINDS = ("distractor", "musique", "flashrag", "verl", "math", "qa")
# Separator of answer aliases in verl / DeepResearcher ``ground_truth`` strings.
VERL_ANSWER_SPLIT = "<|answer_split|>"
# Path components that mark a file of math problems when the records alone cannot tell (AIME 2025 has
# only ``question`` and ``answer``, like a QA list).
MATH_PATH_HINTS = ("math", "gsm8k", "aime", "amc")


@dataclass
class RawItem:
    """One parsed record: the example and its context paragraphs as ``(title, text)`` in source order."""

    example: Example
    paragraphs: list[tuple[str, str]] = field(default_factory=list)


class BadRecord(ValueError):
    """A record that parses as JSON but is not a usable example; the reader adds file and line."""


# --------------------------------------------------------------------------------------------- reading


def open_text(path: Path, newline: str | None = None):
    """A text input file through the one reader's checks (missing, directory, gzip by content), as UTF-8
    with an optional BOM."""
    import io as _io

    return _io.TextIOWrapper(open_input(path), encoding="utf-8-sig", newline=newline)


def read_json_document(path: Path) -> Any | None:
    """The parsed content of a ``.json`` file, or None when it holds one object per line (read it as JSONL
    then: some datasets ship that under a ``.json`` name)."""
    try:
        return read_json(path)
    except InputError as exc:
        if "Extra data" in str(exc):
            return None
        raise


def _bad(message: str, skip_bad: bool) -> None:
    if skip_bad:
        warnings.warn(message + "; skipped", stacklevel=3)
        return
    raise InputError(message)


def iter_jsonl_records(path: Path, skip_bad: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file (plain or gzip)."""
    for lineno, record in iter_jsonl_numbered(path, skip_bad=skip_bad):
        yield str(lineno), record


def _iter_json_file(path: Path, skip_bad: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    data = read_json_document(path)
    if data is None:  # one object per line despite the .json name (MIGRES does this)
        yield from iter_jsonl_records(path, skip_bad)
        return
    if isinstance(data, dict):
        for key in ("data", "examples", "records"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            raise HiexpError(f"{path}: expected a JSON array of records, got an object")
    if not isinstance(data, list):
        raise HiexpError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            _bad(f"{path}:[{index}]: expected a JSON object, got {type(record).__name__}", skip_bad)
            continue
        yield f"[{index}]", record


def _iter_csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open_text(path, newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            if not reader.fieldnames:
                raise HiexpError(f"{path}: empty CSV file (expected a header with Question and Answer)")
            for row in reader:
                yield str(reader.line_num), {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{reader.line_num + 1}: not UTF-8 text (byte {exc.start})",
                             skippable=False) from None
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}: not a CSV row ({exc})", skippable=False) from None


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise HiexpError(f"{path}: cannot read parquet ({exc})") from None
    for index, record in enumerate(table.to_pylist()):
        yield f"row {index}", record


def iter_file_records(path: str | Path, skip_bad: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for every record of a data file; ``where`` is a line number or array index."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file", skippable=False)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a data file", skippable=False)
    name = path.name.lower()
    if name.endswith(".parquet"):
        yield from _iter_parquet(path)
    elif name.endswith(".csv"):
        yield from _iter_csv(path)
    elif name.endswith((".json", ".json.gz")):
        yield from _iter_json_file(path, skip_bad)
    else:  # .jsonl, .jsonl.gz and anything else: one JSON object per line
        yield from iter_jsonl_records(path, skip_bad)


# --------------------------------------------------------------------------------------------- parsing


def detect_kind(record: dict[str, Any]) -> str | None:
    """The format of one record, recognised from its keys (None when it is not an example)."""
    if "context" in record and "answer" in record:
        return "distractor"
    if "paragraphs" in record and "answer" in record:
        return "musique"
    if "golden_answers" in record:
        return "flashrag"
    if "reward_model" in record:
        return "verl"
    if "problem" in record and "answer" in record:
        return "math"
    if "question" in record and "answer" in record:
        answer = record["answer"]
        if isinstance(answer, str) and "####" in answer:
            return "math"
        return "qa"
    return None


def path_suggests_math(path: str | Path) -> bool:
    parts = [p.lower() for p in Path(path).parts[-3:]]
    return any(hint in part for part in parts for hint in MATH_PATH_HINTS)


def _literal(value: Any) -> Any:
    """Undo the ``str(list)`` encoding that some copies (HippoRAG, MIGRES train) use for nested fields."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            try:
                return json.loads(value)
            except ValueError:
                raise BadRecord(f"cannot parse nested field {value[:60]!r}") from None
    return value


def join_sentences(sentences: list[str]) -> str:
    """One paragraph from sentences, with a space where neither side already has one."""
    text = ""
    for sentence in sentences:
        sentence = str(sentence)
        if text and sentence and not text[-1].isspace() and not sentence[0].isspace():
            text += " "
        text += sentence
    return text.strip()


def _answers(values: Any) -> list[str]:
    """The gold answers as distinct non-empty strings. A missing value (None, or NaN as pandas and parquet
    write an empty cell) is no answer, never the text "nan"."""
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        values = [values]
    out: list[str] = []
    for value in values:
        if value is None or (isinstance(value, float) and value != value) or isinstance(value, (dict, list)):
            continue
        value = str(value).strip()
        if value and value not in out:
            out.append(value)
    return out


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _question(record: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise BadRecord(f"no question (expected one of {', '.join(keys)})")


def _record_id(record: dict[str, Any], keys: tuple[str, ...], fallback: str) -> str:
    for key in keys:
        value = record.get(key)
        if value is not None and str(value) != "":
            return str(value)
    return fallback


def _parse_distractor(record: dict[str, Any], fallback_id: str) -> tuple[str, str, list[str], dict, list]:
    context = _literal(record["context"])
    if not isinstance(context, list):
        raise BadRecord("'context' is not a list of [title, sentences]")
    paragraphs = []
    for item in context:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            raise BadRecord("'context' item is not [title, sentences]")
        title, sentences = item
        if isinstance(sentences, str):
            sentences = [sentences]
        paragraphs.append((str(title), join_sentences(list(sentences))))
    facts = _literal(record.get("supporting_facts") or [])
    meta: dict[str, Any] = {}
    if record.get("type"):
        meta["type"] = str(record["type"])
    if record.get("level"):
        meta["level"] = str(record["level"])
    meta["supporting_titles"] = _unique([str(f[0]) for f in facts if isinstance(f, (list, tuple)) and f])
    qid = _record_id(record, ("_id", "id"), fallback_id)
    return qid, _question(record, "question"), _answers(record.get("answer")), meta, paragraphs


def _parse_musique(record: dict[str, Any], fallback_id: str) -> tuple[str, str, list[str], dict, list]:
    items = _literal(record["paragraphs"])
    if not isinstance(items, list):
        raise BadRecord("'paragraphs' is not a list")
    paragraphs, supporting = [], []
    for item in items:
        if not isinstance(item, dict):
            raise BadRecord("'paragraphs' item is not an object")
        title = str(item.get("title", ""))
        paragraphs.append((title, str(item.get("paragraph_text", item.get("text", ""))).strip()))
        if item.get("is_supporting") in (True, "True", "true"):
            supporting.append(title)
    qid = _record_id(record, ("id", "_id"), fallback_id)
    meta: dict[str, Any] = {"supporting_titles": _unique(supporting)}
    if "__" in qid:
        meta["type"] = qid.split("__", 1)[0]
    golds = _answers([record.get("answer"), *_answers(_literal(record.get("answer_aliases") or []))])
    return qid, _question(record, "question"), golds, meta, paragraphs


def _parse_flashrag(record: dict[str, Any], fallback_id: str) -> tuple[str, str, list[str], dict, list]:
    meta: dict[str, Any] = {}
    if isinstance(record.get("metadata"), dict) and record["metadata"]:
        meta["source_metadata"] = record["metadata"]
    if record.get("split"):
        meta["split"] = str(record["split"])
    if record.get("data_source"):
        meta["source"] = str(record["data_source"])
    qid = _record_id(record, ("id", "_id", "idx"), fallback_id)
    golds = _answers(_literal(record["golden_answers"]))
    return qid, _question(record, "question"), golds, meta, []


def _parse_verl(record: dict[str, Any], fallback_id: str) -> tuple[str, str, list[str], dict, list]:
    reward = record.get("reward_model") or {}
    truth = reward.get("ground_truth") if isinstance(reward, dict) else None
    if isinstance(truth, dict):  # Search-R1 parquet: {"target": [...]}
        truth = truth.get("target")
    if isinstance(truth, str):
        truth = truth.split(VERL_ANSWER_SPLIT)
    question = record.get("question")
    if not (isinstance(question, str) and question.strip()):
        prompt = record.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
            question = prompt[-1].get("content")
    if not (isinstance(question, str) and question.strip()):
        raise BadRecord("no question (expected 'question' or 'prompt[].content')")
    extra = record.get("extra_info") or {}
    meta: dict[str, Any] = {}
    if record.get("data_source"):
        meta["source"] = str(record["data_source"])
    if isinstance(extra, dict) and extra.get("split"):
        meta["split"] = str(extra["split"])
    qid = str(extra.get("index")) if isinstance(extra, dict) and extra.get("index") is not None else fallback_id
    return qid, question.strip(), _answers(truth), meta, []


def _parse_math(record: dict[str, Any], fallback_id: str) -> tuple[str, str, list[str], dict, list]:
    answer = record.get("answer")
    if isinstance(answer, str) and "####" in answer:  # GSM8K: the final answer follows the last ####
        answer = answer.rsplit("####", 1)[1].strip()
    meta: dict[str, Any] = {}
    for key in ("subject", "level", "url"):
        if record.get(key) not in (None, ""):
            meta[key] = record[key]
    qid = _record_id(record, ("id", "unique_id", "_id", "idx"), fallback_id)
    return qid, _question(record, "problem", "question"), _answers(answer), meta, []


def _parse_qa(record: dict[str, Any], fallback_id: str) -> tuple[str, str, list[str], dict, list]:
    qid = _record_id(record, ("id", "_id", "idx", "qid"), fallback_id)
    answers = record.get("answer", record.get("answers"))
    if isinstance(answers, str) and answers[:1] == "[":
        answers = _literal(answers)
    return qid, _question(record, "question", "query"), _answers(answers), {}, []


_PARSERS = {
    "distractor": _parse_distractor,
    "musique": _parse_musique,
    "flashrag": _parse_flashrag,
    "verl": _parse_verl,
    "math": _parse_math,
    "qa": _parse_qa,
}


MAX_QUESTION_CHARS = 20_000
"""Longest question read: multi-hop questions run to a few hundred characters, competition
math problems to a few thousand; a record far beyond that is a mistake that would only exhaust memory."""


def parse_record(
    record: dict[str, Any], kind: str, dataset: str, task: str, fallback_id: str, split: str | None = None
) -> RawItem:
    """Map one record of a known ``kind`` into an ``Example`` (raises ``BadRecord`` when it cannot)."""
    try:
        qid, question, golds, meta, paragraphs = _PARSERS[kind](record, fallback_id)
    except KeyError as exc:
        raise BadRecord(f"missing field {exc}") from None
    except (TypeError, AttributeError) as exc:
        raise BadRecord(f"unexpected field type ({exc})") from None
    if not golds:
        raise BadRecord("no gold answer")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadRecord(f"a question of {len(question):,} characters; hiexp reads questions of at most "
                        f"{MAX_QUESTION_CHARS:,}")
    metadata: dict[str, Any] = {"dataset": dataset, "task": task}
    if split and "split" not in meta:
        metadata["split"] = split
    metadata.update(meta)
    return RawItem(Example(id=qid, question=question, golden_answers=golds, metadata=metadata), paragraphs)


def read_raw_items(
    path: str | Path,
    dataset: str,
    task: str | None = None,
    split: str | None = None,
    skip_bad: bool = False,
) -> list[RawItem]:
    """Every example of one data file with its context paragraphs.

    ``task`` is ``"qa"`` or ``"math"``; None decides per record (math formats) and from the path (a
    ``math``/``gsm8k``/``aime`` directory or file name). A record that cannot be read stops with a
    ``HiexpError`` naming file and line, or is skipped with a warning under ``skip_bad``.
    """
    path = Path(path)
    math_path = path_suggests_math(path)
    items: list[RawItem] = []
    position = 0
    for where, record in iter_file_records(path, skip_bad=skip_bad):
        kind = detect_kind(record)
        try:
            if kind is None:
                keys = ", ".join(k if k.isprintable() else repr(k) for k in sorted(record)[:8])
                raise BadRecord(
                    f"unrecognised record (keys: {keys}); expected question/answer, golden_answers, "
                    "context or paragraphs"
                )
            record_task = task or ("math" if kind == "math" or math_path else "qa")
            if kind == "qa" and record_task == "math":
                kind = "math"
            item = parse_record(record, kind, dataset, record_task, f"{dataset}-{position}", split)
        except BadRecord as exc:
            _bad(f"{path}:{where}: {exc}", skip_bad)
            continue
        items.append(item)
        position += 1
    return items


def passage_id(title: str, text: str) -> str:
    """A stable id for a paragraph: 12 hex digits of sha256 over title and text."""
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:12]
