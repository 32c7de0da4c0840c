"""Where every prepared store lives under ``<data_dir>/prepared/`` (the layout of the stores).

:class:`StoreLayout` turns the layout into paths for one ``data_dir``; readers (``data/``) and
writers (``prepare/``) both take their paths from it. The raw inputs' paths are the prepare
step's business (:class:`hint_lightning.prepare.layout.DataLayout`, a :class:`StoreLayout` that
also knows ``raw/``).

Example:
    >>> layout = StoreLayout("/data")
    >>> layout.split_store("vqa_v2", "val").as_posix()
    '/data/prepared/vqa/vqa_v2/val.h5'
    >>> layout.coco_captions("robust", "test").as_posix()
    '/data/prepared/coco/robust/test.h5'
    >>> SPLITS["vqa_v2"]
    ('train', 'val')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = [
    "COCO_FAMILIES",
    "COCO_REFERENCE_SPLITS",
    "COCO_SPLITS",
    "DATASETS",
    "FEATURE_VARIANTS",
    "SPLITS",
    "MissingPreparedFilesError",
    "StoreLayout",
    "relative_to",
]

DATASETS: Final[tuple[str, ...]] = ("vqacp_v2", "vqa_v2")
"""The VQA datasets that can be prepared."""

SPLITS: Final[dict[str, tuple[str, ...]]] = {
    "vqacp_v2": ("train", "test"),
    "vqa_v2": ("train", "val"),
}
"""The prepared splits of each dataset."""

FEATURE_VARIANTS: Final[dict[str, str]] = {
    "trainval_36": "36 boxes per image (trainval_36.zip)",
    "trainval_adaptive": "10-100 boxes per image (trainval.zip)",
}
"""Feature variants: folder name under ``raw/features/`` -> description."""

COCO_FAMILIES: Final[dict[str, str]] = {
    "karpathy": "Karpathy split of dataset_coco.json (train = train + restval, 5,000 val, "
    "5,000 test)",
    "robust": "Neural Baby Talk robust split (110,234 train, 3,915 val, 9,138 test)",
}
"""COCO caption split families: folder name under ``prepared/coco/`` -> description."""

COCO_SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
"""The caption stores of each COCO split family."""

COCO_REFERENCE_SPLITS: Final[tuple[str, ...]] = ("val", "test")
"""The splits whose COCO-format references are written (for caption metrics)."""


def relative_to(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when below it, else as given."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


class MissingPreparedFilesError(FileNotFoundError):
    """Prepared inputs of a standalone command are missing (another command makes them).

    Args:
        missing: The missing prepared files.
        data_dir: The data folder.
        command: The command that makes them.
    """

    def __init__(self, missing: Sequence[Path], data_dir: Path, command: str) -> None:
        self.missing = list(missing)
        names = "\n".join(f"  - {relative_to(p, data_dir)}" for p in missing)
        super().__init__(f"missing prepared files:\n{names}\nmake them first with: {command}")


def check_dataset(dataset: str) -> str:
    """``dataset`` if known; ``ValueError`` otherwise."""
    if dataset not in SPLITS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    return dataset


def check_split(dataset: str, split: str) -> str:
    """``split`` if ``dataset`` has it; ``ValueError`` otherwise."""
    splits = SPLITS[check_dataset(dataset)]
    if split not in splits:
        raise ValueError(f"{dataset} has the splits {list(splits)}, not {split!r}")
    return split


def check_family(family: str) -> str:
    """``family`` if a known COCO split family; ``ValueError`` otherwise."""
    if family not in COCO_FAMILIES:
        raise ValueError(
            f"unknown COCO split family {family!r}; expected one of {list(COCO_FAMILIES)}"
        )
    return family


def check_variant(variant: str) -> str:
    """``variant`` if a known feature variant; ``ValueError`` otherwise."""
    if variant not in FEATURE_VARIANTS:
        raise ValueError(
            f"unknown feature variant {variant!r}; expected one of {list(FEATURE_VARIANTS)}"
        )
    return variant


class StoreLayout:
    """The prepared paths of one data folder.

    Args:
        data_dir: The folder holding ``prepared/``.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.prepared = self.data_dir / "prepared"

    # ---------------------------------------------------------------- VQA

    def feature_store(self, variant: str) -> Path:
        """``prepared/features/<variant>.h5``."""
        return self.prepared / "features" / f"{check_variant(variant)}.h5"

    def vqa_dir(self, dataset: str) -> Path:
        """``prepared/vqa/<dataset>/``."""
        return self.prepared / "vqa" / check_dataset(dataset)

    def answers(self, dataset: str) -> Path:
        """``prepared/vqa/<dataset>/answers.json``."""
        return self.vqa_dir(dataset) / "answers.json"

    def tokens(self, dataset: str) -> Path:
        """``prepared/vqa/<dataset>/tokens.json``."""
        return self.vqa_dir(dataset) / "tokens.json"

    def glove_matrix(self, dataset: str) -> Path:
        """``prepared/vqa/<dataset>/glove.npy``."""
        return self.vqa_dir(dataset) / "glove.npy"

    def split_store(self, dataset: str, split: str) -> Path:
        """``prepared/vqa/<dataset>/<split>.h5``."""
        return self.vqa_dir(dataset) / f"{check_split(dataset, split)}.h5"

    def importance_store(self, dataset: str, split: str) -> Path:
        """``prepared/vqa/<dataset>/<split>_importance.h5``."""
        return self.vqa_dir(dataset) / f"{check_split(dataset, split)}_importance.h5"

    def coverage(self, dataset: str) -> Path:
        """``prepared/vqa/<dataset>/hat_coverage.json``."""
        return self.vqa_dir(dataset) / "hat_coverage.json"

    # ---------------------------------------------------------------- COCO captioning

    def coco_dir(self, family: str | None = None) -> Path:
        """``prepared/coco/`` or, with a family, ``prepared/coco/<family>/``."""
        root = self.prepared / "coco"
        return root if family is None else root / check_family(family)

    def coco_vocab(self, family: str) -> Path:
        """``prepared/coco/<family>/vocab.json``."""
        return self.coco_dir(family) / "vocab.json"

    def coco_captions(self, family: str, split: str) -> Path:
        """``prepared/coco/<family>/<split>.h5``."""
        if split not in COCO_SPLITS:
            raise ValueError(f"COCO caption splits are {list(COCO_SPLITS)}, not {split!r}")
        return self.coco_dir(family) / f"{split}.h5"

    def coco_references(self, family: str, split: str) -> Path:
        """``prepared/coco/<family>/<split>_references.json``."""
        if split not in COCO_REFERENCE_SPLITS:
            raise ValueError(
                f"COCO references are written for {list(COCO_REFERENCE_SPLITS)}, not {split!r}"
            )
        return self.coco_dir(family) / f"{split}_references.json"

    def coco_importance(self) -> Path:
        """``prepared/coco/importance.h5`` (visual-word human importance)."""
        return self.coco_dir() / "importance.h5"

    def coco_report(self) -> Path:
        """``prepared/coco/coco_report.json``."""
        return self.coco_dir() / "coco_report.json"

    def relative(self, path: Path) -> str:
        """``path`` relative to ``prepared/`` (or ``data_dir``), for messages and reports."""
        for root in (self.prepared, self.data_dir):
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                continue
        return str(path)
