"""Raw COCO downloads -> every prepared file of a captioning experiment, skipping what is
up to date: ``python -m hint_lightning.prepare coco --data-dir DIR``.

Raw inputs (under ``DIR/raw/``, each as distributed)::

    coco/dataset_coco.json                         Karpathy split (caption_datasets.zip)
    coco/annotations/instances_train2014.json      COCO 2014 instances
    coco/annotations/instances_val2014.json
    coco/split_robust_coco.json                    optional: replaces the shipped robust split
    features/<name>/*.tsv                          bottom-up features (or, without them, an
                                                   existing prepared/features/<name>.h5)

Prepared layout (under ``DIR/prepared/``; every file is written to a temporary name and
renamed, and trusted only once its ledger entry is written, exactly like the VQA outputs: see
:mod:`hint_lightning.prepare.pipeline` and :mod:`hint_lightning.stores.prepare_state`)::

    features/<name>.h5                 the FeatureStore the VQA commands build (built here the
                                       same way when missing or out of date)
    coco/<family>/vocab.json           JSON list: <pad>=0, <bos>=1, <eos>=2, <unk>=3, then the
                                       tokens seen more than 5 times in the family's training
                                       captions (karpathy: train + restval; robust: train ids)
    coco/<family>/<split>.h5           caption store of split train / val / test
                                       (hint_lightning.prepare.coco_captions)
    coco/<family>/<split>_references.json   COCO-format references of every image of val and
                                       test (robust test: all 9,138 ids, whichever COCO 2014
                                       part the image comes from)
    coco/importance.h5                 visual-word human importance per (image, category)
                                       (hint_lightning.prepare.coco_masks)
    coco/coco_report.json              empty captions (skipped; listed with their image ids),
                                       images without captions, split sizes, robust split source

``<family>`` is ``karpathy`` or ``robust`` (:mod:`hint_lightning.prepare.coco_splits`). Each
folder keeps its own ledger ``prepare_state.json``.

What each output is built from (a change rebuilds it; prepared inputs count by content):

============================  ==============================================================
output                        built from (options)
============================  ==============================================================
<family>/vocab.json           dataset_coco.json, the robust split (robust) (threshold)
<family>/<split>.h5           dataset_coco.json, the robust split (robust), vocab.json, the
                              feature store's image ids, the visual-word mapping (duplicates)
<family>/<split>_references   dataset_coco.json, the robust split (robust)
importance.h5                 both instances files, the feature store's boxes and sizes
coco_report.json              dataset_coco.json, the robust split
============================  ==============================================================

Errors (``ValueError``, exit status 1 on the command line) name the file and the id: an image
of the Karpathy file without features (image id, Karpathy file, feature store), an annotation
with an unknown category id, a malformed segmentation (annotation id and image id), a robust
id that is not in the Karpathy file. Missing raw files raise
:class:`~hint_lightning.prepare.layout.MissingRawFilesError` (exit status 2) listing them all.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from hint_lightning.prepare.coco_captions import WORD_COUNT_THRESHOLD
from hint_lightning.prepare.coco_steps import (
    REFERENCES_VERSION,
    VOCAB_VERSION,
    CocoReport,
    Inputs,
    caption_step,
    coco_output_counts,
    features_step,
    importance_step,
    references_step,
    report_step,
    robust_split,
    vocab_step,
)
from hint_lightning.prepare.layout import (
    COCO_FAMILIES,
    COCO_REFERENCE_SPLITS,
    COCO_SPLITS,
    DataLayout,
    require_raw,
)
from hint_lightning.prepare.run import Run, default_console, finish
from hint_lightning.stores.prepare_state import h5_digest
from hint_lightning.stores.versions import COCO_REPORT_VERSION
from hint_lightning.text.visual_words import Duplicates

__all__ = [
    "COCO_REPORT_VERSION",
    "REFERENCES_VERSION",
    "VOCAB_VERSION",
    "coco_output_counts",
    "prepare_coco",
]


# --------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------


def prepare_coco(
    data_dir: str | os.PathLike[str],
    *,
    features: str = "trainval_36",
    float16: bool = False,
    feature_dim: int = 2048,
    word_count_threshold: int = WORD_COUNT_THRESHOLD,
    duplicates: Duplicates = "last",
    force: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Everything the captioning experiments need, skipping what is up to date.

    Checks first that every needed raw file is there (one error lists all missing ones), then
    builds (or skips) the feature store, per split family the vocabulary, the caption stores
    and the references, the visual-word importance store and the report (module docstring),
    and prints a summary table.

    Args:
        data_dir: The data folder (``raw/`` inside; ``prepared/`` is written).
        features: ``"trainval_36"`` or ``"trainval_adaptive"``.
        float16: Store features as float16 (when the feature store is built here).
        feature_dim: D, floats per proposal in the TSVs.
        word_count_threshold: Tokens seen more than this many times in the training captions
            enter the vocabulary (5).
        duplicates: Visual words listed under two categories: ``"last"`` (NBT) or
            ``"exclude"`` (:mod:`hint_lightning.text.visual_words`).
        force: Rebuild every output.
        progress: Show progress bars.
        console: Where messages and the summary go (default: stdout).

    Returns:
        ``{"dataset": "coco", "data_dir", "built", "skipped", "absent", "outputs",
        "empty_captions": int, "robust_split": str, "seconds"}``; output names are relative to
        ``prepared/`` (``"coco/robust/test_references.json"``).

    Raises:
        MissingRawFilesError: Listing every missing raw file and where it is distributed (the
            TSVs only when the feature store is missing too).
        ValueError: For malformed raw files, naming the file and the image or annotation id.
    """
    layout = DataLayout(data_dir)
    store_path = layout.feature_store(features)  # validates the variant name
    report = CocoReport(layout.data_dir, layout.prepared, "coco")
    run = Run(layout, features, force, progress, console or default_console(), report)
    needed = layout.coco_files()
    if not store_path.is_file():
        needed += layout.feature_files(features)
    require_raw(needed, layout.data_dir, "coco")
    inputs = Inputs(layout, robust_split(layout), duplicates)
    run.console.print(
        f"[bold]Preparing coco[/] in {escape(str(layout.data_dir))} (features {features}, "
        f"robust split {escape(inputs.robust.source)}, word count > {word_count_threshold}, "
        f"visual-word duplicates {duplicates}{', force' if force else ''})",
        soft_wrap=True,
    )
    started = time.perf_counter()
    features_step(run, float16, feature_dim)
    image_ids = h5_digest(store_path, ("image_ids",))
    for family in COCO_FAMILIES:
        vocab_step(run, inputs, family, word_count_threshold)
        for split in COCO_SPLITS:
            caption_step(run, inputs, family, split, store_path, image_ids)
        for split in COCO_REFERENCE_SPLITS:
            references_step(run, inputs, family, split)
    importance_step(run, store_path)
    report_step(run, inputs)
    return finish(run, "Prepared coco", started)
