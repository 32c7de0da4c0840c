"""How a store that cannot be used is reported: one line naming the file, the item and the fix.

Every reader of :mod:`hint_lightning.stores` opens its file with :func:`open_store` and turns
low-level failures (a truncated file, a dataset that cannot be read, a checksum mismatch, a
value out of range) into a :class:`StoreError`, whose message is one line: the file, what is
wrong with which item, and how to rebuild it (:func:`rebuild_hint`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py

__all__ = [
    "StoreError",
    "UnverifiedStoreWarning",
    "open_store",
    "read_errors",
    "rebuild_hint",
    "warn_unverified",
]

_PREPARE = "python -m hint_lightning.prepare"
_warned: set[str] = set()


class StoreError(ValueError):
    """A prepared file that cannot be used as it is.

    Args:
        path: The file.
        problem: What is wrong, naming the item (dataset, image, question).
        hint: How to rebuild it; default :func:`rebuild_hint` of ``path``.

    Attributes:
        path: The file.

    Example:
        >>> str(StoreError("/d/prepared/vqa/vqa_v2/val.h5", "answer_type 7 of question 42"))
        ... # doctest: +NORMALIZE_WHITESPACE
        '/d/prepared/vqa/vqa_v2/val.h5: answer_type 7 of question 42; delete it and rebuild it
        with: python -m hint_lightning.prepare vqa_v2 --data-dir /d'
    """

    def __init__(self, path: str | Path, problem: str, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}; {hint or rebuild_hint(self.path)}")


class UnverifiedStoreWarning(UserWarning):
    """A store written before stores carried checksums: its content is not verified."""


def rebuild_hint(path: str | Path) -> str:
    """How to rebuild the store at ``path``, from where it lies in the data layout.

    Example:
        >>> rebuild_hint("/d/prepared/features/trainval_adaptive.h5").split("prepare ")[-1]
        'features --data-dir /d --features trainval_adaptive'
        >>> rebuild_hint("/d/prepared/coco/karpathy/test.h5")
        'delete it and rebuild it with: python -m hint_lightning.prepare coco --data-dir /d'
        >>> rebuild_hint("/d/easyvqa_cp/easyvqa_cp_0123456789ab.h5")
        'delete it: the next run rebuilds it'
    """
    path = Path(path)
    parts = path.parts
    if "prepared" in parts:
        at = len(parts) - 1 - parts[::-1].index("prepared")
        data_dir = Path(*parts[:at]) if at else Path(".")
        kind = parts[at + 1] if at + 1 < len(parts) else ""
        if kind == "features":
            option = "" if path.stem == "trainval_36" else f" --features {path.stem}"
            command = f"{_PREPARE} features --data-dir {data_dir}{option}"
        elif kind == "vqa" and at + 2 < len(parts) - 1:
            command = f"{_PREPARE} {parts[at + 2]} --data-dir {data_dir}"
        elif kind == "coco":
            command = f"{_PREPARE} coco --data-dir {data_dir}"
        else:
            command = f"{_PREPARE} --help"
        return f"delete it and rebuild it with: {command}"
    if path.name.startswith("easyvqa_cp_"):
        return "delete it: the next run rebuilds it"
    return "delete it and run the command that wrote it again"


def open_store(path: str | Path, what: str, **kwargs: Any) -> h5py.File:
    """Opens an HDF5 store read-only; a truncated or foreign file is a :class:`StoreError`.

    Args:
        path: The file.
        what: What it should be, for messages (e.g. ``"feature store"``).
        **kwargs: Passed to :class:`h5py.File` (e.g. ``rdcc_nbytes``).

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        StoreError: When it is not a readable HDF5 file (truncated, empty, another format).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as exc:
        size = path.stat().st_size
        reason = _first_line(exc)
        raise StoreError(
            path, f"not a readable {what} ({size:,} bytes; truncated or not HDF5: {reason})"
        ) from None


@contextmanager
def read_errors(path: str | Path, what: str) -> Iterator[None]:
    """Turns an ``OSError`` or ``KeyError`` while reading ``what`` of ``path`` into a
    :class:`StoreError` (a truncated file often opens, then fails on its first read)."""
    try:
        yield
    except (OSError, KeyError) as exc:
        raise StoreError(path, f"cannot read {what} ({_first_line(exc)})") from None


def warn_unverified(path: str | Path) -> None:
    """Warns, once per file and process, that a store has no checksums (written before them)."""
    key = str(Path(path).resolve())
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(
        f"{path} has no content checksums (written before stores carried them), so its content "
        f"is not verified; to add them, {rebuild_hint(path)}",
        UnverifiedStoreWarning,
        stacklevel=3,
    )


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without h5py's "Unable to ..." noise."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.strip("'\"")
