"""Per-question outputs of an evaluation: ``per_question.jsonl``, one JSON object a line.

Each line is one question (or one decision, for captioning): its ``question_id``, the run's
constant fields (``seed``, ``run``, ...), the answer, whether it was correct or its score, and
every metric's value for that question (``null`` where undefined). Intervals
(:mod:`hint_lightning.stats`) and new aggregate metrics can then be computed from the file
without running the model again. JSON lines need no extra dependency (Parquet would need
pyarrow, which the package does not install).

The writer streams lines into a temporary file next to the target and renames it onto the
target when closed (:func:`hint_lightning.utils.io.atomic_path`): a crashed evaluation leaves
no half-written file. Under DDP each process writes its own shard,
``per_question.rank<r>.jsonl``; :func:`read_per_question` reads a run's shards together and
refuses a question that appears twice.

Example:
    >>> import tempfile, pathlib, torch
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> with PerQuestionWriter(out / PER_QUESTION_FILE, constants={"seed": 0}) as writer:
    ...     writer.add([11, 12], correct=torch.tensor([True, False]),
    ...                pointing_game=torch.tensor([1.0, float("nan")]))
    >>> read_per_question(out)
    [{'question_id': 11, 'seed': 0, 'correct': True, 'pointing_game': 1.0}, \
{'question_id': 12, 'seed': 0, 'correct': False, 'pointing_game': None}]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from torch import Tensor

from hint_lightning.utils.io import atomic_path

__all__ = [
    "PER_QUESTION_FILE",
    "PerQuestionWriter",
    "per_question_files",
    "per_question_path",
    "read_per_question",
]

PER_QUESTION_FILE = "per_question.jsonl"
"""The file name in a run's output folder (shards: ``per_question.rank<r>.jsonl``)."""


def _stem(split: str | None) -> str:
    return "per_question" if split is None else f"per_question.{split}"


def per_question_path(
    output_dir: str | os.PathLike[str], rank: int | None = None, split: str | None = None
) -> Path:
    """``<output_dir>/per_question.jsonl``, or the shard of process ``rank`` under DDP; a
    named test split's own file is ``per_question.<split>.jsonl`` (e.g. ``test_flipped``)."""
    shard = "" if rank is None else f".rank{int(rank)}"
    return Path(output_dir) / f"{_stem(split)}{shard}.jsonl"


def _plain(value: Any) -> Any:
    """A JSON value: tensors and numpy scalars to Python, NaN and infinities to None."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column(name: str, values: Tensor | Sequence[Any], rows: int) -> list[Any]:
    """One column as a list of ``rows`` plain values."""
    if isinstance(values, Tensor):
        values = values.detach().cpu()
        if values.ndim != 1:
            raise ValueError(f"column {name!r} must be one value per question, got {values.shape}")
        values = values.tolist()
    values = list(values)
    if len(values) != rows:
        raise ValueError(f"column {name!r} has {len(values)} values for {rows} questions")
    return [_plain(value) for value in values]


class PerQuestionWriter:
    """Write ``per_question.jsonl`` atomically, a batch of questions at a time.

    Use as a context manager (or call :meth:`close`; :meth:`discard` drops the file).

    Args:
        path: the target file (see :func:`per_question_path`).
        constants: fields written on every line (e.g. ``{"seed": 0, "run": "..."}``).
    """

    def __init__(
        self, path: str | os.PathLike[str], constants: Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.constants = {key: _plain(value) for key, value in dict(constants or {}).items()}
        self.rows = 0
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file: IO[str] | None = self._stack.enter_context(tmp.open("w"))

    def add(self, question_ids: Tensor | Sequence[Any], **columns: Tensor | Sequence[Any]) -> None:
        """Append one line per question.

        Args:
            question_ids: ``[B]`` the questions' ids (ints or strings).
            **columns: name -> ``[B]`` values (tensors or sequences; NaN is written as null).
        """
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is closed")
        ids = _column("question_id", question_ids, len(question_ids))
        table = {name: _column(name, values, len(ids)) for name, values in columns.items()}
        clash = sorted(set(table) & ({"question_id"} | set(self.constants)))
        if clash:
            raise ValueError(f"columns {clash} clash with the question id or the constants")
        for index, question_id in enumerate(ids):
            record = {"question_id": question_id, **self.constants}
            record.update({name: values[index] for name, values in table.items()})
            self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self.rows += len(ids)

    def close(self) -> Path:
        """Finish: the file appears at :attr:`path`."""
        if self._file is not None:
            self._file = None
            self._stack.close()
        return self.path

    def discard(self) -> None:
        """Drop what was written; :attr:`path` is left as it was."""
        if self._file is not None:
            self._file = None
            with contextlib.suppress(_Discard):
                self._stack.__exit__(_Discard, _Discard(), None)

    def __enter__(self) -> PerQuestionWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


class _Discard(Exception):
    """Unwinds the atomic write without renaming."""


def per_question_files(run: str | os.PathLike[str], split: str | None = None) -> list[Path]:
    """A run's per-question files: the file itself, or the folder's file and DDP shards (of
    the named test ``split``'s file when given)."""
    path = Path(run)
    if path.is_file():
        return [path]
    main = per_question_path(path, split=split)
    files = [main] if main.is_file() else []
    return files + sorted(path.glob(f"{_stem(split)}.rank*.jsonl"))


def read_per_question(
    run: str | os.PathLike[str], split: str | None = None
) -> list[dict[str, Any]]:
    """Every record of a run (its file and DDP shards), in file order.

    Args:
        run: a run folder or a ``per_question*.jsonl`` file.
        split: a named test split's file (``per_question.<split>.jsonl``); None: the main one.

    Returns:
        One dict per question (null values as None).

    Raises:
        FileNotFoundError: when there is no per-question file.
        ValueError: naming the file and line, for a line that is not a JSON object with a
            ``question_id``, or a question that appears twice.
    """
    files = per_question_files(run, split)
    if not files:
        raise FileNotFoundError(f"{run}: no {per_question_path(run, split=split).name}")
    records: list[dict[str, Any]] = []
    seen: dict[Any, Path] = {}
    for file in files:
        with file.open() as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{file}:{number}: not JSON ({error.msg})") from None
                if not isinstance(record, dict) or "question_id" not in record:
                    raise ValueError(f"{file}:{number}: expected an object with a question_id")
                key = record["question_id"]
                if key in seen:
                    raise ValueError(
                        f"{file}:{number}: question {key!r} already in {seen[key]} (each "
                        "question must be evaluated once)"
                    )
                seen[key] = file
                records.append(record)
    return records
