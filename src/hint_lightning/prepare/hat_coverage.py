"""Which VQA-HAT maps match which split of a prepared dataset (``hat_coverage.json``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hint_lightning.prepare.hat_maps import HatSource
from hint_lightning.stores.errors import open_store
from hint_lightning.utils.io import write_json

__all__ = ["format_hat_coverage", "hat_coverage", "write_hat_coverage"]

_MAX_LISTED = 5
"""Unmatched question ids shown in the summary."""


def _split_question_ids(path: Path) -> np.ndarray:
    """The sorted question ids of a split store."""
    with open_store(path, "split store") as handle:
        return np.sort(handle["question_id"][()].astype(np.int64))


def hat_coverage(
    hat_sources: Sequence[str | os.PathLike[str]],
    split_stores: Mapping[str, str | os.PathLike[str]],
) -> dict[str, Any]:
    """Which VQA-HAT maps match which split, and which match none (only names are read).

    Unmatched maps are expected (on the real data a few hundred of ~60k maps match no VQA-CP
    v2 question) and are reported, not raised.

    Args:
        hat_sources: VQA-HAT zips or folders.
        split_stores: Split name -> split store file, e.g. ``{"train": ..., "test": ...}``.

    Returns:
        ``{"sources": [{"name", "maps", "questions"}], "maps": int, "questions": int,
        "matched": {split: int}, "matched_any": int,
        "unmatched": {"count": int, "question_ids": [sorted ints]}}`` where ``maps`` counts
        map files and ``questions`` distinct question ids with maps.
    """
    per_source, question_ids, maps = [], set(), 0
    for path in hat_sources:
        with HatSource(path) as hat:
            per_source.append(
                {"name": hat.path.name, "maps": hat.num_maps, "questions": len(hat.groups)}
            )
            maps += hat.num_maps
            question_ids.update(hat.groups)
    hat_ids = np.array(sorted(question_ids), dtype=np.int64)
    matched_any = np.zeros(hat_ids.shape[0], dtype=bool)
    matched: dict[str, int] = {}
    for split, path in split_stores.items():
        in_split = np.isin(hat_ids, _split_question_ids(Path(path)))
        matched[split] = int(in_split.sum())
        matched_any |= in_split
    unmatched = hat_ids[~matched_any]
    return {
        "sources": per_source,
        "maps": maps,
        "questions": int(hat_ids.shape[0]),
        "matched": matched,
        "matched_any": int(matched_any.sum()),
        "unmatched": {"count": int(unmatched.shape[0]), "question_ids": unmatched.tolist()},
    }


def format_hat_coverage(report: Mapping[str, Any]) -> str:
    """A one-paragraph summary of a :func:`hat_coverage` report.

    Example:
        >>> report = {
        ...     "sources": [{"name": "vqahat_val.zip", "maps": 6, "questions": 2}],
        ...     "maps": 6, "questions": 2, "matched": {"train": 1, "test": 0},
        ...     "matched_any": 1, "unmatched": {"count": 1, "question_ids": [42]},
        ... }
        >>> for part in format_hat_coverage(report).split("; "):
        ...     print(part)
        VQA-HAT coverage: 6 maps of 2 questions (vqahat_val.zip: 6 maps, 2 questions)
        matched train 1, test 0
        1 question(s) with maps match no split (e.g. 42).
    """
    sources = ", ".join(
        f"{s['name']}: {s['maps']} maps, {s['questions']} questions" for s in report["sources"]
    )
    matched = ", ".join(f"{split} {count}" for split, count in report["matched"].items())
    unmatched = report["unmatched"]
    if unmatched["count"]:
        examples = ", ".join(str(q) for q in unmatched["question_ids"][:_MAX_LISTED])
        more = ", ..." if unmatched["count"] > _MAX_LISTED else ""
        tail = f"{unmatched['count']} question(s) with maps match no split (e.g. {examples}{more})."
    else:
        tail = "every question with maps matches a split."
    return (
        f"VQA-HAT coverage: {report['maps']} maps of {report['questions']} questions "
        f"({sources}); matched {matched}; {tail}"
    )


def write_hat_coverage(
    out_path: str | os.PathLike[str],
    hat_sources: Sequence[str | os.PathLike[str]],
    split_stores: Mapping[str, str | os.PathLike[str]],
) -> str:
    """Writes the :func:`hat_coverage` report as JSON (atomically) and returns its summary.

    Args:
        out_path: E.g. ``prepared/vqa/vqacp_v2/hat_coverage.json``.
        hat_sources: VQA-HAT zips or folders.
        split_stores: Split name -> split store file.

    Returns:
        The one-paragraph summary (:func:`format_hat_coverage`) to print.
    """
    report = hat_coverage(hat_sources, split_stores)
    write_json(out_path, report)
    return format_hat_coverage(report)
