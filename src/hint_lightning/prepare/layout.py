"""Where every raw input lives, where it is officially distributed, and where outputs go.

The layouts themselves are specified in :mod:`hint_lightning.prepare`; this module turns them
into paths for one ``data_dir`` (the prepared paths come from
:class:`hint_lightning.stores.layout.StoreLayout`) and checks that the raw inputs a command
needs are there:
:func:`require_raw` raises :class:`MissingRawFilesError`, whose message lists every missing
file (not just the first) and where each is officially distributed.

Example:
    >>> layout = DataLayout("/data")
    >>> layout.questions("vqacp_v2", "train").path.as_posix()
    '/data/raw/vqacp_v2/vqacp_v2_train_questions.json'
    >>> layout.split_store("vqa_v2", "val").as_posix()
    '/data/prepared/vqa/vqa_v2/val.h5'
    >>> SPLITS["vqa_v2"], RAW_SPLITS["vqa_v2"]
    (('train', 'val'), ('train2014', 'val2014'))
    >>> layout.coco_captions("robust", "test").as_posix()
    '/data/prepared/coco/robust/test.h5'
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from hint_lightning.stores.layout import (
    COCO_FAMILIES,
    COCO_REFERENCE_SPLITS,
    COCO_SPLITS,
    DATASETS,
    FEATURE_VARIANTS,
    SPLITS,
    MissingPreparedFilesError,
    StoreLayout,
    check_dataset,
    check_split,
    check_variant,
    relative_to,
)

__all__ = [
    "COCO_FAMILIES",
    "COCO_REFERENCE_SPLITS",
    "COCO_SPLITS",
    "DATASETS",
    "DISTRIBUTIONS",
    "FEATURE_VARIANTS",
    "RAW_SPLITS",
    "SPLITS",
    "DataLayout",
    "Distribution",
    "MissingPreparedFilesError",
    "MissingRawFilesError",
    "RawFile",
    "raw_layout_help",
    "require_raw",
]

RAW_SPLITS: Final[dict[str, tuple[str, ...]]] = {
    "vqacp_v2": ("train", "test"),
    "vqa_v2": ("train2014", "val2014"),
}
"""The raw file split of each prepared split (same order as :data:`SPLITS`)."""

_OFFICIAL_TSVS: Final[dict[str, tuple[str, ...]]] = {
    "trainval_36": ("trainval_resnet101_faster_rcnn_genome_36.tsv",),
    "trainval_adaptive": (
        "karpathy_train_resnet101_faster_rcnn_genome.tsv.0",
        "karpathy_train_resnet101_faster_rcnn_genome.tsv.1",
        "karpathy_val_resnet101_faster_rcnn_genome.tsv",
        "karpathy_test_resnet101_faster_rcnn_genome.tsv",
    ),
}
_TSV_NAME: Final = re.compile(r"^[^.].*\.tsv(\.\d+)?$")
_INDENT: Final[dict[str, Any]] = {
    "initial_indent": "    ",
    "subsequent_indent": "    ",
    "break_on_hyphens": False,
    "break_long_words": False,
}

Layout = Literal["vqacp", "vqa_v2"]


@dataclass(frozen=True)
class Distribution:
    """Where one kind of raw input is officially distributed.

    Attributes:
        title: What it is, with its authors.
        where: Where to get it and what to do with it.
    """

    title: str
    where: str


DISTRIBUTIONS: Final[dict[str, Distribution]] = {
    "vqa_v2": Distribution(
        "VQA v2 (Goyal et al., CVPR 2017)",
        "https://visualqa.org/download.html: training and validation questions "
        "(v2_Questions_{Train,Val}_mscoco.zip) and annotations "
        "(v2_Annotations_{Train,Val}_mscoco.zip); unzip the JSON files into raw/vqa_v2/",
    ),
    "vqacp_v2": Distribution(
        "VQA-CP v2 (Agrawal et al., CVPR 2018)",
        "the VQA-CP project page https://www.cc.gatech.edu/grads/a/aagrawal307/vqa-cp/: the "
        "four vqacp_v2_{train,test}_{questions,annotations}.json files, into raw/vqacp_v2/",
    ),
    "vqahat": Distribution(
        "VQA-HAT human attention (Das et al., EMNLP 2016)",
        "the VQA-HAT project page https://computing.ece.vt.edu/~abhshkdz/vqa-hat/: "
        "vqahat_train.zip and vqahat_val.zip, into raw/vqahat/ (keep the zips, or extract them "
        "to raw/vqahat/vqahat_train/ and raw/vqahat/vqahat_val/)",
    ),
    "features": Distribution(
        "bottom-up attention features (Anderson et al., CVPR 2018)",
        "https://github.com/peteanderson80/bottom-up-attention (README, pretrained features): "
        "trainval_36.zip (36 boxes per image) -> raw/features/trainval_36/, or trainval.zip "
        "(10-100 boxes per image) -> raw/features/trainval_adaptive/; unzip the TSV file(s)",
    ),
    "karpathy": Distribution(
        "COCO captions in the Karpathy split (Karpathy and Fei-Fei, CVPR 2015)",
        "https://cs.stanford.edu/people/karpathy/deepimagesent/ (caption_datasets.zip): "
        "dataset_coco.json, into raw/coco/",
    ),
    "coco": Distribution(
        "MS COCO 2014 instance annotations (Lin et al., ECCV 2014)",
        "https://cocodataset.org/#download: 2014 Train/Val annotations "
        "(annotations_trainval2014.zip); instances_train2014.json and instances_val2014.json "
        "into raw/coco/annotations/",
    ),
    "glove": Distribution(
        "GloVe 6B word vectors (Pennington et al., EMNLP 2014), optional",
        "https://nlp.stanford.edu/projects/glove/: glove.6B.zip; only glove.6B.300d.txt is "
        "needed, at raw/glove/glove.6B.300d.txt (without it, question embeddings start random)",
    ),
}
"""Where each kind of raw input comes from, keyed by its folder under ``raw/``."""


@dataclass(frozen=True)
class RawFile:
    """One raw input: its canonical path, accepted alternatives and its distribution.

    Attributes:
        path: The canonical path (e.g. the zip).
        source: Key of :data:`DISTRIBUTIONS`.
        alternatives: Other accepted paths (e.g. the extracted folder of a zip).
        layout: ``"vqacp"`` or ``"vqa_v2"`` for question and annotation files.
    """

    path: Path
    source: str
    alternatives: tuple[Path, ...] = field(default=())
    layout: Layout | None = None

    def exists(self) -> bool:
        """Whether the file or one of its alternatives exists."""
        return any(p.exists() for p in (self.path, *self.alternatives))

    def resolve(self) -> Path:
        """The first existing path (the canonical one when none exists)."""
        return next((p for p in (self.path, *self.alternatives) if p.exists()), self.path)


class MissingRawFilesError(FileNotFoundError):
    """Raw inputs are missing; the message lists each one and where it is distributed.

    Args:
        missing: The missing raw files.
        data_dir: The data folder (paths are shown relative to it).
        purpose: What they are needed for (e.g. ``"vqacp_v2"``).

    Attributes:
        missing: The missing files (canonical paths).
    """

    def __init__(self, missing: Sequence[RawFile], data_dir: Path, purpose: str) -> None:
        self.missing = [f.path for f in missing]
        lines = [f"missing raw files for {purpose} (under {data_dir}):"]
        for source in dict.fromkeys(f.source for f in missing):
            distribution = DISTRIBUTIONS[source]
            lines.append(f"  {distribution.title}:")
            for raw in (f for f in missing if f.source == source):
                also = "".join(
                    f" (or the folder {relative_to(a, data_dir)}/)" for a in raw.alternatives
                )
                lines.append(f"    - {relative_to(raw.path, data_dir)}{also}")
            lines.append(textwrap.fill(f"get it from {distribution.where}", 96, **_INDENT))
        lines.append("Run `python -m hint_lightning.prepare --help` for the whole raw layout.")
        super().__init__("\n".join(lines))


def require_raw(files: Iterable[RawFile], data_dir: Path, purpose: str) -> None:
    """Raises :class:`MissingRawFilesError` listing every file of ``files`` that is missing."""
    missing = [f for f in files if not f.exists()]
    if missing:
        raise MissingRawFilesError(missing, data_dir, purpose)


class DataLayout(StoreLayout):
    """The raw and prepared paths of one data folder.

    Args:
        data_dir: The folder holding ``raw/`` (and, once prepared, ``prepared/``).
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        super().__init__(data_dir)
        self.raw = self.data_dir / "raw"

    # ---------------------------------------------------------------- raw inputs

    def questions(self, dataset: str, split: str) -> RawFile:
        """The raw question file of a prepared split (``train``/``test``/``val``)."""
        raw_split = _raw_split(dataset, split)
        if dataset == "vqacp_v2":
            path = self.raw / "vqacp_v2" / f"vqacp_v2_{raw_split}_questions.json"
            return RawFile(path, "vqacp_v2", layout="vqacp")
        path = self.raw / "vqa_v2" / f"v2_OpenEnded_mscoco_{raw_split}_questions.json"
        return RawFile(path, "vqa_v2", layout="vqa_v2")

    def annotations(self, dataset: str, split: str) -> RawFile:
        """The raw annotation file of a prepared split."""
        raw_split = _raw_split(dataset, split)
        if dataset == "vqacp_v2":
            path = self.raw / "vqacp_v2" / f"vqacp_v2_{raw_split}_annotations.json"
            return RawFile(path, "vqacp_v2", layout="vqacp")
        path = self.raw / "vqa_v2" / f"v2_mscoco_{raw_split}_annotations.json"
        return RawFile(path, "vqa_v2", layout="vqa_v2")

    def question_files(self, dataset: str) -> list[RawFile]:
        """Question and annotation files of every split of ``dataset``."""
        files = []
        for split in SPLITS[check_dataset(dataset)]:
            files += [self.questions(dataset, split), self.annotations(dataset, split)]
        return files

    def hat_sources(self) -> list[RawFile]:
        """``vqahat_train.zip`` and ``vqahat_val.zip`` (or their extracted folders)."""
        folder = self.raw / "vqahat"
        return [
            RawFile(folder / f"vqahat_{part}.zip", "vqahat", (folder / f"vqahat_{part}",))
            for part in ("train", "val")
        ]

    def glove(self) -> Path:
        """``raw/glove/glove.6B.300d.txt`` (optional)."""
        return self.raw / "glove" / "glove.6B.300d.txt"

    def feature_folder(self, variant: str) -> Path:
        """``raw/features/<variant>/``."""
        return self.raw / "features" / check_variant(variant)

    def feature_tsvs(self, variant: str) -> list[Path]:
        """The TSV files (``*.tsv``, ``*.tsv.<n>``) of a feature variant, sorted by name."""
        folder = self.feature_folder(variant)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and _TSV_NAME.match(p.name))

    def feature_files(self, variant: str) -> list[RawFile]:
        """The TSVs as raw files: those present, else the official names (all missing)."""
        found = self.feature_tsvs(variant)
        if found:
            return [RawFile(p, "features") for p in found]
        folder = self.feature_folder(variant)
        return [RawFile(folder / name, "features") for name in _OFFICIAL_TSVS[variant]]

    # ---------------------------------------------------------------- COCO captioning

    def karpathy_file(self) -> RawFile:
        """``raw/coco/dataset_coco.json`` (the Karpathy split)."""
        return RawFile(self.raw / "coco" / "dataset_coco.json", "karpathy")

    def coco_instances(self, subtype: str) -> RawFile:
        """``raw/coco/annotations/instances_<subtype>.json`` (subtype train2014 or val2014)."""
        if subtype not in ("train2014", "val2014"):
            raise ValueError(f"COCO instances are train2014 or val2014, not {subtype!r}")
        return RawFile(self.raw / "coco" / "annotations" / f"instances_{subtype}.json", "coco")

    def coco_files(self) -> list[RawFile]:
        """The raw COCO inputs of ``prepare coco`` (besides the features)."""
        return [self.karpathy_file(), *map(self.coco_instances, ("train2014", "val2014"))]

    def robust_split_override(self) -> Path:
        """``raw/coco/split_robust_coco.json``: when present, used instead of the robust split
        that ships with the package (optional)."""
        return self.raw / "coco" / "split_robust_coco.json"


def _raw_split(dataset: str, split: str) -> str:
    """The raw file split of prepared split ``split`` of ``dataset``."""
    return RAW_SPLITS[dataset][SPLITS[dataset].index(check_split(dataset, split))]


def raw_layout_help() -> str:
    """The raw layout and where each file is officially distributed, for ``--help``."""
    sources = "\n".join(
        f"  {d.title}:\n{textwrap.fill(d.where, 96, **_INDENT)}" for d in DISTRIBUTIONS.values()
    )
    return (
        "raw layout under DATA_DIR/raw/ (each file exactly as officially distributed):\n"
        "  raw/vqacp_v2/vqacp_v2_{train,test}_{questions,annotations}.json\n"
        "  raw/vqa_v2/v2_OpenEnded_mscoco_{train2014,val2014}_questions.json\n"
        "  raw/vqa_v2/v2_mscoco_{train2014,val2014}_annotations.json\n"
        "  raw/vqahat/vqahat_train.zip  raw/vqahat/vqahat_val.zip  (or extracted folders)\n"
        "  raw/features/trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv\n"
        "  raw/features/trainval_adaptive/karpathy_*_resnet101_faster_rcnn_genome.tsv*\n"
        "  raw/glove/glove.6B.300d.txt  (optional)\n"
        "  raw/coco/dataset_coco.json  (COCO captioning: the Karpathy split)\n"
        "  raw/coco/annotations/instances_{train2014,val2014}.json  (COCO captioning)\n"
        "  raw/coco/split_robust_coco.json  (optional: replaces the shipped robust split)\n\n"
        f"where to get them:\n{sources}\n\n"
        "outputs go to DATA_DIR/prepared/ (see `hint_lightning.prepare`'s module docstring;\n"
        "COCO: `hint_lightning.prepare.coco`'s);\n"
        "a step whose output is up to date with its inputs and options is skipped.\n\n"
        "examples:\n"
        "  python -m hint_lightning.prepare vqacp_v2 --data-dir /data/hint\n"
        "  python -m hint_lightning.prepare fixture --data-dir /tmp/tiny\n"
        "  python -m hint_lightning.prepare vqacp_v2 --data-dir /tmp/tiny --min-answer-count 2\n"
        "  python -m hint_lightning.prepare coco --data-dir /data/hint\n"
    )
