"""The steps of ``prepare coco``: feature store, vocabularies, caption stores, references,
visual-word importance and the report (the table in :mod:`hint_lightning.prepare.coco`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from rich.markup import escape

from hint_lightning.prepare.coco_captions import (
    MAX_WORDS,
    build_caption_vocab,
    caption_references,
    check_features,
    empty_captions,
    write_caption_store,
    write_references,
)
from hint_lightning.prepare.coco_masks import write_visual_word_importance
from hint_lightning.prepare.coco_splits import (
    KarpathyImage,
    RobustSplit,
    family_splits,
    load_karpathy,
    load_robust_split,
)
from hint_lightning.prepare.layout import (
    COCO_FAMILIES,
    DataLayout,
)
from hint_lightning.prepare.run import (
    GEOMETRY_DATASETS,
    Run,
    feature_step,
)
from hint_lightning.prepare.summary import OutputRecord, PrepareReport, Status
from hint_lightning.stores.errors import open_store
from hint_lightning.stores.features import FeatureStore
from hint_lightning.stores.prepare_state import (
    BuildLedger,
    describe_sources,
    file_digest,
    h5_digest,
)
from hint_lightning.stores.versions import (
    CAPTION_STORE_VERSION,
    COCO_IMPORTANCE_VERSION,
    COCO_REFERENCES_VERSION,
    COCO_REPORT_VERSION,
    COCO_VOCAB_VERSION,
)
from hint_lightning.stores.vqa_questions import read_vocabulary
from hint_lightning.text.visual_words import (
    Duplicates,
    VisualWords,
    load_visual_words,
    read_visual_words_text,
)
from hint_lightning.utils.io import read_json, write_json

__all__ = [
    "REFERENCES_VERSION",
    "VOCAB_VERSION",
    "CocoReport",
    "Inputs",
    "caption_step",
    "coco_output_counts",
    "features_step",
    "importance_step",
    "references_step",
    "report_step",
    "robust_split",
    "vocab_step",
]

VOCAB_VERSION: Final = COCO_VOCAB_VERSION
REFERENCES_VERSION: Final = COCO_REFERENCES_VERSION
_MAX_REPORTED: Final = 5
"""Empty captions named on the console (the report file lists all)."""


# --------------------------------------------------------------------------------------------
# The report: counts of the COCO outputs.
# --------------------------------------------------------------------------------------------


def coco_output_counts(path: Path) -> dict[str, int]:
    """What a prepared COCO file holds (for the summary table).

    Returns:
        Caption store: ``images``, ``captions``; importance store: ``images``, ``rows``;
        vocabulary: ``tokens``; references: ``images``, ``references``; report:
        ``empty_captions``.
    """
    if path.suffix == ".h5":
        with open_store(path, "prepared COCO store") as handle:
            if "index_offsets" in handle:
                return {
                    "images": int(handle["index_image_ids"].shape[0]),
                    "rows": int(handle["image_id"].shape[0]),
                }
            return {
                "images": int(handle["image_ids"].shape[0]),
                "captions": int(handle["captions"].shape[0]),
            }
    payload = read_json(path)
    if path.name == "vocab.json":
        return {"tokens": len(payload)}
    if path.name.endswith("_references.json"):
        return {"images": len(payload["images"]), "references": len(payload["annotations"])}
    if path.name == "coco_report.json":
        return {"empty_captions": int(payload["empty_captions"]["count"])}
    return {}


class CocoReport(PrepareReport):
    """A :class:`PrepareReport` that also knows how to count the COCO outputs."""

    def add(self, path: Path, status: Status, seconds: float | None = None) -> None:
        """Records an output (COCO outputs counted by :func:`coco_output_counts`)."""
        coco = self.prepared / "coco"
        if not (path.is_relative_to(coco) and status != "absent" and path.is_file()):
            super().add(path, status, seconds)
            return
        self.outputs[self.name(path)] = OutputRecord(
            path=path,
            status=status,
            seconds=None if seconds is None else round(seconds, 3),
            counts=coco_output_counts(path),
            size=path.stat().st_size,
        )


# --------------------------------------------------------------------------------------------
# Inputs read once per run (only when a step is built).
# --------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """The raw inputs of a COCO run, read on first use.

    Attributes:
        layout: The data folder's paths.
        robust: The robust split (the raw override when present, else the shipped one).
        duplicates: The visual-word duplicates policy.
    """

    layout: DataLayout
    robust: RobustSplit
    duplicates: Duplicates
    _images: list[KarpathyImage] | None = None
    _splits: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def karpathy_path(self) -> Path:
        """``raw/coco/dataset_coco.json``."""
        return self.layout.karpathy_file().path

    def images(self, run: Run) -> list[KarpathyImage]:
        """The Karpathy file's images."""
        if self._images is None:
            with run.status(f"reading {self.karpathy_path.name}"):
                self._images = load_karpathy(self.karpathy_path)
        return self._images

    def splits(self, run: Run, family: str) -> dict[str, list[int]]:
        """The positions of each split's images in :meth:`images`."""
        if family not in self._splits:
            self._splits[family] = family_splits(
                self.images(run), family, self.robust, self.karpathy_path
            )
        return self._splits[family]

    def visual_words(self) -> VisualWords:
        """The visual-word mapping."""
        return load_visual_words(self.duplicates)

    def stamp(self, family: str | None) -> dict[str, Any]:
        """What every caption output of ``family`` depends on (None: both families)."""
        stamp: dict[str, Any] = {"karpathy": describe_sources([self.karpathy_path])}
        if family != "karpathy":
            stamp["robust_split"] = self.robust.sha256
        return stamp


def robust_split(layout: DataLayout) -> RobustSplit:
    """The raw override when present, else the shipped robust split."""
    override = layout.robust_split_override()
    if not override.is_file():
        return load_robust_split()
    return replace(load_robust_split(override), source=layout.relative(override))


# --------------------------------------------------------------------------------------------
# Steps.
# --------------------------------------------------------------------------------------------


def features_step(run: Run, float16: bool, feature_dim: int) -> Path:
    """The feature store: built from the TSVs when they are there (skipped when up to date),
    else the existing store as is."""
    layout = run.layout
    store = layout.feature_store(run.features)
    if layout.feature_tsvs(run.features):
        feature_step(run, float16, feature_dim)
    else:
        run.console.print(
            f"[dim]use    {run.report.name(store)} (no TSVs under "
            f"{escape(layout.relative(layout.feature_folder(run.features)))}/)[/]"
        )
        run.report.add(store, "skipped")
    return store


def vocab_step(run: Run, inputs: Inputs, family: str, threshold: int) -> None:
    """``<family>/vocab.json`` from the family's training captions."""
    out = run.layout.coco_vocab(family)
    stamp = {**inputs.stamp(family), "threshold": threshold, "format_version": VOCAB_VERSION}

    def build() -> None:
        images = inputs.images(run)
        train = inputs.splits(run, family)["train"]
        captions = (s.tokens for p in train for s in images[p].sentences)
        vocab = build_caption_vocab(captions, threshold)
        write_json(out, vocab, indent=0)
        run.console.print(f"       {len(vocab):,} tokens (count > {threshold}, with 4 specials)")

    run.step(BuildLedger(out.parent), out, stamp, build)


def caption_step(
    run: Run, inputs: Inputs, family: str, split: str, store_path: Path, image_ids: str
) -> None:
    """``<family>/<split>.h5`` after checking that every image has features."""
    layout = run.layout
    vocab_path = layout.coco_vocab(family)
    out = layout.coco_captions(family, split)
    stamp = {
        **inputs.stamp(family),
        "vocab": file_digest(vocab_path),
        "images": image_ids,
        "feature_store": run.features,
        "max_words": MAX_WORDS,
        "visual_words": hashlib.sha256(read_visual_words_text().encode()).hexdigest(),
        "duplicates": inputs.duplicates,
        "format_version": CAPTION_STORE_VERSION,
    }

    def build() -> None:
        images = inputs.images(run)
        positions = inputs.splits(run, family)[split]
        with FeatureStore(store_path) as store:
            check_features(
                [images[p].cocoid for p in positions],
                store.image_ids,
                inputs.karpathy_path,
                store_path,
            )
        stats = write_caption_store(
            out,
            images,
            positions,
            read_vocabulary(vocab_path),
            inputs.visual_words(),
            attrs={
                "family": family,
                "split": split,
                "feature_store": run.features,
                "visual_word_duplicates": inputs.duplicates,
                "sources": json.dumps(
                    {"karpathy": inputs.karpathy_path.name}
                    | ({"robust_split": inputs.robust.source} if family == "robust" else {})
                ),
            },
        )
        run.console.print(
            f"       {stats['captions']:,} captions of {stats['images']:,} images, "
            f"{stats['visual_words']:,} visual words"
        )

    run.step(BuildLedger(out.parent), out, stamp, build)


def references_step(run: Run, inputs: Inputs, family: str, split: str) -> None:
    """``<family>/<split>_references.json`` for every image of the split."""
    out = run.layout.coco_references(family, split)
    stamp = {**inputs.stamp(family), "format_version": REFERENCES_VERSION}

    def build() -> None:
        positions = inputs.splits(run, family)[split]
        references = caption_references(
            inputs.images(run), positions, f"hint-lightning COCO {family} {split} references"
        )
        write_references(out, references)
        run.console.print(
            f"       {len(references['annotations']):,} references of "
            f"{len(references['images']):,} images"
        )

    run.step(BuildLedger(out.parent), out, stamp, build)


def importance_step(run: Run, store_path: Path) -> None:
    """``importance.h5`` from both instances files and the feature store's boxes."""
    layout = run.layout
    instances = [layout.coco_instances(s).path for s in ("train2014", "val2014")]
    out = layout.coco_importance()
    stamp = {
        "instances": describe_sources(instances),
        "boxes": h5_digest(store_path, GEOMETRY_DATASETS),
        "feature_store": run.features,
        "format_version": COCO_IMPORTANCE_VERSION,
    }

    def build() -> None:
        with FeatureStore(store_path) as store:
            stats = write_visual_word_importance(
                out,
                instances,
                store,
                attrs={
                    "feature_store": run.features,
                    "sources": json.dumps(describe_sources(instances)),
                },
                progress=run.progress,
            )
        run.console.print(
            f"       {stats['rows']:,} (image, category) rows of {stats['images']:,} images"
        )
        if stats["images_without_features"]:
            run.console.print(
                "[yellow]       annotated images without features (skipped): "
                f"{stats['images_without_features']}[/]"
            )
        if stats["size_mismatch"]:
            run.console.print(
                f"[yellow]       {stats['size_mismatch']:,} images whose feature-store size "
                "differs from the instances file (boxes scaled; ids in the size_mismatch "
                "attribute)[/]"
            )

    run.step(BuildLedger(out.parent), out, stamp, build)


def _report_payload(run: Run, inputs: Inputs) -> dict[str, Any]:
    """The content of ``coco_report.json``."""
    images = inputs.images(run)
    empty = empty_captions(images)
    splits = {
        family: {
            split: {
                "images": len(positions),
                "captions": sum(1 for p in positions for s in images[p].sentences if s.tokens),
            }
            for split, positions in inputs.splits(run, family).items()
        }
        for family in COCO_FAMILIES
    }
    in_robust = {p for positions in inputs.splits(run, "robust").values() for p in positions}
    return {
        "version": COCO_REPORT_VERSION,
        "karpathy_file": run.layout.relative(inputs.karpathy_path),
        "robust_split": {"source": inputs.robust.source, "sha256": inputs.robust.sha256},
        "images": len(images),
        "captions": sum(len(image.sentences) for image in images),
        "empty_captions": {"count": len(empty), "captions": empty},
        "images_without_captions": [
            image.cocoid for image in images if not any(s.tokens for s in image.sentences)
        ],
        "robust_rest": len(images) - len(in_robust),
        "splits": splits,
    }


def report_step(run: Run, inputs: Inputs) -> None:
    """``coco_report.json``; its summary is printed whether built or skipped."""
    out = run.layout.coco_report()
    stamp = {**inputs.stamp(None), "format_version": COCO_REPORT_VERSION}

    def build() -> None:
        write_json(out, _report_payload(run, inputs))

    run.step(BuildLedger(out.parent), out, stamp, build)
    report = read_json(out, "COCO prepare report")
    empty = report["empty_captions"]
    run.report.notes["empty_captions"] = empty["count"]
    run.report.notes["robust_split"] = report["robust_split"]["source"]
    if empty["count"]:
        shown = ", ".join(str(c["image_id"]) for c in empty["captions"][:_MAX_REPORTED])
        more = " ..." if empty["count"] > _MAX_REPORTED else ""
        run.console.print(
            f"{empty['count']:,} empty caption(s) skipped (images {shown}{more}; all listed in "
            f"{run.report.name(out)})",
            soft_wrap=True,
        )
