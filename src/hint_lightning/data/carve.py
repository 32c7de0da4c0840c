"""The validation carve-out of a VQA train store: fixed by a seed, independent of order."""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from hint_lightning.utils.splitmix import splitmix64

__all__ = ["carve_validation"]

_CARVE_SALT: Final = 0x76616C5F63617276
"""Mixed into the hash of :func:`carve_validation` (``b"val_carv"``), so that the carve-out
does not correlate with the random importance control (also SplitMix64 of question ids)."""


def carve_validation(question_id: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which questions form the validation carve-out.

    The ``round(fraction * Q)`` questions (halves round up) with the smallest hash
    ``SplitMix64(SplitMix64(seed ^ salt) ^ question_id)``, ties broken by question id: the
    choice depends on the seed and the set of question ids, not on their order.

    Args:
        question_id: [Q] integer question ids.
        fraction: Share of the questions in the carve-out, in [0, 1).
        seed: Seed of the hash.

    Returns:
        [Q] bool, True for validation questions.

    Raises:
        ValueError: If ``fraction`` is out of range.

    Example:
        >>> ids = np.arange(1000, 1100)
        >>> val = carve_validation(ids, 0.1, seed=0)
        >>> int(val.sum()), bool((carve_validation(ids[::-1], 0.1, seed=0)[::-1] == val).all())
        (10, True)
        >>> bool((carve_validation(ids, 0.1, seed=1) == val).all())
        False
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    ids = np.asarray(question_id, dtype=np.int64)
    key = splitmix64(np.array([(seed ^ _CARVE_SALT) % 2**64], dtype=np.uint64))
    hashes = splitmix64(key ^ ids.astype(np.uint64))
    num_val = math.floor(fraction * len(ids) + 0.5)
    order = np.lexsort((ids, hashes))
    mask = np.zeros(len(ids), dtype=bool)
    mask[order[:num_val]] = True
    return mask
