"""What each prepared output was built from, so that up-to-date steps can be skipped.

Every prepared folder (``prepared/vqa/<dataset>/``) keeps a ledger, ``prepare_state.json``,
with one entry per output file: the output's own size and mtime, and the *stamp* it was built
from: a JSON object of

* raw inputs, described by name, size and mtime
  (:func:`describe_sources`), so touching or replacing a
  raw file rebuilds what depends on it;
* prepared inputs, described by a digest of their *content* (:func:`file_digest`,
  :func:`h5_digest`), so rebuilding an upstream file with the same content does not cascade;
* the options that shape the output (thresholds, seeds, format versions).

An output is trusted (:meth:`BuildLedger.is_current`) only when it exists, its size and mtime
are the recorded ones and its recorded stamp equals the stamp computed now. The entry is
removed before a rebuild starts and written only after the output was renamed into place, so a
step that fails or is interrupted anywhere leaves no output that a later run trusts. (The
feature stores are checked through their own ``sources`` attribute instead:
:func:`hint_lightning.prepare.features.feature_store_is_current`.)

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> out = folder / "answers.json"
    >>> _ = out.write_text('["yes", "no"]')
    >>> ledger = BuildLedger(folder)
    >>> ledger.is_current(out, {"min_count": 9})
    False
    >>> ledger.record(out, {"min_count": 9})
    >>> BuildLedger(folder).is_current(out, {"min_count": 9})
    True
    >>> ledger.is_current(out, {"min_count": 2})
    False
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hint_lightning.stores.versions import LEDGER_VERSION
from hint_lightning.utils.io import write_json

__all__ = [
    "LEDGER_NAME",
    "BuildLedger",
    "describe_sources",
    "file_digest",
    "file_record",
    "h5_digest",
]

LEDGER_NAME: Final = "prepare_state.json"
"""The ledger's file name inside a prepared folder."""
_ROWS_PER_READ: Final = 1 << 20


def describe_sources(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Name, size and modification time of input files, for up-to-date checks.

    Args:
        paths: Files or folders (a folder is described by the total size and the latest
            modification time of the files below it).

    Returns:
        ``[{"name": str, "size": int, "mtime": float}, ...]`` in the order given.

    Raises:
        FileNotFoundError: If a path does not exist.
    """
    described = []
    for path in map(Path, paths):
        if path.is_dir():
            stats = [p.stat() for p in path.rglob("*") if p.is_file()]
            size = sum(s.st_size for s in stats)
            mtime = max((s.st_mtime for s in stats), default=path.stat().st_mtime)
        else:
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime
        described.append({"name": path.name, "size": int(size), "mtime": float(mtime)})
    return described


def file_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"name", "size", "mtime"}`` of a file or folder (see ``describe_sources``)."""
    return describe_sources([path])[0]


def _canonical(payload: Mapping[str, Any]) -> Any:
    """``payload`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(payload, sort_keys=True))


def _file_key(path: Path) -> tuple[str, int, int, int]:
    """Identity of a file's current content for caching: path, inode, size, mtime (ns)."""
    stat = path.stat()
    return str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a (small) file's bytes, e.g. ``tokens.json``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.json"
        >>> _ = path.write_text("[]")
        >>> file_digest(path)[:12]
        '4f53cda18c2b'
    """
    return _file_digest(*_file_key(Path(path)))


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, inode: int, size: int, mtime_ns: int) -> str:
    """Cached :func:`file_digest` (the key changes whenever the file is replaced)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(functools.partial(handle.read, 1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def h5_digest(path: str | os.PathLike[str], names: Sequence[str]) -> str:
    """SHA-256 of some datasets of an HDF5 file (name, dtype, shape and values).

    E.g. the image ids of a feature store, or the question and image ids of a split store:
    what a later step actually depends on, independent of when the file was written.

    Args:
        path: The HDF5 file.
        names: The datasets, hashed in this order (read in blocks of rows).

    Returns:
        The hex digest.
    """
    return _h5_digest(*_file_key(Path(path)), tuple(names))


@functools.lru_cache(maxsize=64)
def _h5_digest(path: str, inode: int, size: int, mtime_ns: int, names: tuple[str, ...]) -> str:
    """Cached :func:`h5_digest`."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as handle:
        for name in names:
            dataset = handle[name]
            digest.update(f"{name}:{dataset.dtype.str}:{dataset.shape};".encode())
            for start in range(0, dataset.shape[0] if dataset.shape else 1, _ROWS_PER_READ):
                block = dataset[start : start + _ROWS_PER_READ] if dataset.shape else dataset[()]
                digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


class BuildLedger:
    """The stamps of the outputs of one prepared folder (``prepare_state.json``).

    Args:
        folder: The prepared folder (created when the first entry is recorded).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LEDGER_NAME
        self._entries: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        """The recorded entries; none when the ledger is absent, unreadable or of another
        version (then every output is rebuilt)."""
        try:
            payload = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(payload, dict) or payload.get("version") != LEDGER_VERSION:
            return {}
        entries = payload.get("outputs")
        return dict(entries) if isinstance(entries, dict) else {}

    def _save(self) -> None:
        """Writes the ledger atomically."""
        write_json(self.path, {"version": LEDGER_VERSION, "outputs": self._entries})

    def _key(self, output: Path) -> str:
        """The entry name of an output of this folder."""
        if output.parent.resolve() != self.folder.resolve():
            raise ValueError(f"{output} is not in the prepared folder {self.folder}")
        return output.name

    def stamp_of(self, output: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The recorded stamp of ``output``, if it exists unchanged since it was recorded."""
        output = Path(output)
        entry = self._entries.get(self._key(output))
        if entry is None or not output.is_file():
            return None
        if entry.get("output") != _canonical(file_record(output)):
            return None
        stamp = entry.get("stamp")
        return stamp if isinstance(stamp, dict) else None

    def is_current(self, output: str | os.PathLike[str], stamp: Mapping[str, Any]) -> bool:
        """Whether ``output`` exists unchanged and was built from exactly ``stamp``."""
        return self.stamp_of(output) == _canonical(stamp)

    def forget(self, output: str | os.PathLike[str]) -> None:
        """Removes the entry of ``output`` (before rebuilding it)."""
        if self._entries.pop(self._key(Path(output)), None) is not None:
            self._save()

    def record(self, output: str | os.PathLike[str], stamp: Mapping[str, Any]) -> None:
        """Records that ``output`` (complete, in place) was built from ``stamp``."""
        output = Path(output)
        self._entries[self._key(output)] = {
            "stamp": _canonical(stamp),
            "output": _canonical(file_record(output)),
        }
        self._save()
