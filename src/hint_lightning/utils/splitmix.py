"""SplitMix64, the counter-based hash behind our order-independent random choices."""

from __future__ import annotations

import numpy as np

__all__ = ["splitmix64"]


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer (Steele, Lea & Flood 2014), element-wise on uint64, wrapping.

    Example:
        >>> hex(int(splitmix64(np.array([0], dtype=np.uint64))[0]))
        '0xe220a8397b1dcdaf'
    """
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
