"""GloVe word vectors (``glove.6B.300d.txt``) -> the initial embeddings of a token vocabulary."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hint_lightning.text.tokens import PAD_INDEX

__all__ = ["load_glove"]


def _parse_glove_line(line: str, dim: int, path: Path, number: int) -> tuple[str, list[str]]:
    """Splits a GloVe line into its word and ``dim`` number fields (the word may hold spaces).

    Raises:
        ValueError: Naming the file and the line if the field count is wrong.
    """
    parts = line.rstrip().rsplit(" ", dim)
    if len(parts) != dim + 1 or not parts[0]:
        raise ValueError(
            f"{path}, line {number}: expected a word and {dim} numbers separated by spaces, "
            f"got {len(parts) - 1} fields: {line[:60]!r}"
        )
    return parts[0], parts[1:]


def load_glove(
    path: str | os.PathLike[str], tokens: Sequence[str], dim: int = 300, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Initial word embeddings of a token vocabulary from a GloVe text file (streamed).

    Every line is ``word v_1 ... v_dim`` separated by single spaces; blank lines are skipped;
    the first occurrence of a word wins. Every line's field count is checked, and the
    numbers of the words in ``tokens`` are parsed.

    Args:
        path: E.g. ``glove.6B.300d.txt``.
        tokens: The vocabulary (index 0 is padding).
        dim: The vector size of the file.
        seed: Seed of the random vectors of the tokens not in the file.

    Returns:
        ``(matrix, found)``: float32 ``[V, dim]``; row ``i`` is the GloVe vector of
        ``tokens[i]``, or, when the file lacks it, a small random vector (uniform in
        [-0.1, 0.1) from ``numpy.random.default_rng(seed)``, drawn for all rows first so a
        row does not depend on which others are found); row 0 (padding) is zeros. ``found``
        counts the tokens found in the file.

    Raises:
        ValueError: If a line is malformed (naming the file and the line number).
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.1, 0.1, size=(len(tokens), dim)).astype(np.float32)
    wanted: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        wanted.setdefault(token, []).append(i)
    found: set[str] = set()
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            word, fields = _parse_glove_line(line, dim, path, number)
            if word not in wanted or word in found:
                continue
            try:
                vector = np.array(fields, dtype=np.float32)
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: not a number in {line[:60]!r}") from error
            found.add(word)
            matrix[wanted[word]] = vector
    if len(tokens):
        matrix[PAD_INDEX] = 0.0
    return matrix, sum(1 for t in tokens if t in found)
