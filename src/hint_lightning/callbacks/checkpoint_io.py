"""Checkpoint writes that a kill cannot break: temporary file next to the target, fsync, rename.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary file lies
in the system temporary directory; committing it is ``shutil.move``, which is a copy when that
directory is on another filesystem than the run. A ``kill -9`` during the copy leaves the
target truncated (a 0-byte ``last.ckpt``: the previous good checkpoint is lost) and an orphan
in the system temporary directory (issue 10, item 3). :class:`AtomicCheckpointIO` writes the
bytes to a temporary file *in the target's directory* (:func:`hint_lightning.utils.io.atomic_path`),
flushes them to disk (``fsync``), renames the file onto the target (atomic on POSIX within one
filesystem) and syncs the directory, so the target is at every instant either the complete old
checkpoint or the complete new one. This is the write-then-rename pattern of boltons'
``fileutils.atomic_save`` (https://github.com/mahmoud/boltons, docs/fileutils.rst), with the
file and directory fsyncs of the ``atomic_write`` of the ``esl01-atomicfile`` crate.

The trainer configs install it (``conf/trainer/default.yaml``: ``plugins``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from hint_lightning.utils.io import atomic_path


def fsync_directory(folder: str | os.PathLike[str]) -> None:
    """Make a rename inside ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def save_atomically(payload: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``payload`` to ``path`` through a synced temporary file in its folder.

    On any failure (or a kill) ``path`` keeps its previous content; an exception removes the
    temporary file, a kill leaves it (``.<name>.<random>.tmp``) next to ``path``, never in the
    system temporary directory.
    """
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_directory(target.parent)
    return target


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic and durable (see the module doc).

    Remote paths (``s3://``...) keep Lightning's behaviour: object stores replace an object in
    one piece.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` (temporary file, fsync, rename)."""
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        local = str(path).removeprefix("file://")
        save_atomically(checkpoint, local)
