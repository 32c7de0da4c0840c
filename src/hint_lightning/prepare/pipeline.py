"""Raw downloads -> every prepared file of a VQA experiment, skipping what is up to date.

The steps (:mod:`hint_lightning.prepare.vqa_steps`, on a :class:`~hint_lightning.prepare.run.Run`)
reuse the converters of :mod:`hint_lightning.prepare.features`,
:mod:`~hint_lightning.prepare.vqa_questions` and :mod:`~hint_lightning.prepare.vqa_hat`; this
module only orders them. A step is rebuilt when its output
is missing or changed, when one of its inputs or options changed (see
:mod:`hint_lightning.stores.prepare_state`), or with ``force``. Outputs are under ``prepared/``
(``<ds>`` is the dataset folder ``vqa/<dataset>/``):

===========================  ===================================================================
output                       built from (options)
===========================  ===================================================================
features/<name>.h5           the TSVs under ``raw/features/<name>/`` (float16, feature_dim)
<ds>/answers.json            VQA v2 train2014 + val2014 annotations; for vqacp_v2 without them
                             the VQA-CP v2 train + test annotations, the same questions
                             (min_answer_count)
<ds>/tokens.json             the questions of every split of the dataset
<ds>/glove.npy               ``raw/glove/glove.6B.300d.txt`` (optional) and tokens.json
<ds>/<split>.h5              the split's question and annotation files, answers.json,
                             tokens.json and the image ids of the feature store
<ds>/<split>_importance.h5   both VQA-HAT sources, the question and image ids of <split>.h5
                             and the boxes of the feature store (seed)
<ds>/hat_coverage.json       both VQA-HAT sources and the question ids of every split store
===========================  ===================================================================

The ledger of what each output was built from is ``<ds>/prepare_state.json``.

Every output is written to a temporary file and renamed (the converters do it; the JSON files
here go through :mod:`hint_lightning.utils.io`), and the ledger entry that makes an output
trusted is written only after that, so an interrupted run leaves nothing a later run trusts.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from hint_lightning.prepare.layout import require_raw
from hint_lightning.prepare.run import feature_step, finish, start
from hint_lightning.prepare.vqa_steps import DEFAULT_MIN_ANSWER_COUNT, hat_steps, question_steps

__all__ = [
    "DEFAULT_MIN_ANSWER_COUNT",
    "prepare_features",
    "prepare_hat",
    "prepare_questions",
    "prepare_vqa",
]


# --------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------


def prepare_features(
    data_dir: str | os.PathLike[str],
    *,
    features: str = "trainval_36",
    float16: bool = False,
    feature_dim: int = 2048,
    force: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Converts the bottom-up TSVs of one variant into ``prepared/features/<variant>.h5``.

    Args:
        data_dir: The data folder (``raw/`` inside).
        features: ``"trainval_36"`` or ``"trainval_adaptive"``.
        float16: Store features as float16.
        feature_dim: D, floats per proposal in the TSVs.
        force: Rebuild even when up to date.
        progress: Show progress bars.
        console: Where messages and the summary go (default: stdout).

    Returns:
        The report: ``built``, ``skipped``, ``absent`` (output names relative to
        ``prepared/``), ``outputs`` (per output ``path``, ``status``, ``size``, ``counts``,
        ``seconds``), ``dataset`` (None), ``data_dir``, ``seconds``.

    Raises:
        MissingRawFilesError: When no TSV is there (the message says where to get them).
    """
    run = start(data_dir, None, features, force, progress, console)
    require_raw(run.layout.feature_files(features), run.layout.data_dir, f"features {features}")
    started = time.perf_counter()
    feature_step(run, float16, feature_dim)
    return finish(run, f"Prepared features {features}", started)


def prepare_questions(
    dataset: str,
    data_dir: str | os.PathLike[str],
    *,
    features: str = "trainval_36",
    min_answer_count: int = DEFAULT_MIN_ANSWER_COUNT,
    force: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Answer and token vocabularies, GloVe embeddings and split stores of ``dataset``.

    Needs the feature store (:func:`prepare_features`) to check every question's image.

    Args:
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        data_dir: The data folder.
        features: The feature variant the split stores refer to.
        min_answer_count: Keep answers that are the multiple-choice answer of at least this
            many questions (9 on the real data; 2 on the fixture tree).
        force: Rebuild every output.
        progress: Show progress bars.
        console: Where messages go.

    Returns:
        The report (see :func:`prepare_features`), plus ``answer_source``.

    Raises:
        MissingRawFilesError: Naming every missing question or annotation file.
        MissingPreparedFilesError: When the feature store is missing.
    """
    run = start(data_dir, dataset, features, force, progress, console)
    require_raw(run.layout.question_files(dataset), run.layout.data_dir, f"{dataset} questions")
    started = time.perf_counter()
    question_steps(run, dataset, min_answer_count)
    return finish(run, f"Prepared {dataset} questions", started)


def prepare_hat(
    dataset: str,
    data_dir: str | os.PathLike[str],
    *,
    features: str = "trainval_36",
    force: bool = False,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Importance stores of every split of ``dataset`` and ``hat_coverage.json``.

    Both VQA-HAT sources (train and val) are used for every split: VQA-CP re-mixes COCO train
    and val. Needs the feature store and the split stores (:func:`prepare_questions`).

    Args:
        dataset: ``"vqacp_v2"`` or ``"vqa_v2"``.
        data_dir: The data folder.
        features: The feature variant (the one the split stores were built for).
        force: Rebuild every output.
        progress: Show progress bars.
        console: Where messages go.

    Returns:
        The report (see :func:`prepare_features`), plus ``coverage`` (the printed summary).

    Raises:
        MissingRawFilesError: Naming every missing VQA-HAT source.
        MissingPreparedFilesError: When the feature store or a split store is missing.
    """
    run = start(data_dir, dataset, features, force, progress, console)
    require_raw(run.layout.hat_sources(), run.layout.data_dir, f"{dataset} human attention")
    started = time.perf_counter()
    hat_steps(run, dataset)
    return finish(run, f"Prepared {dataset} human importance", started)


def prepare_vqa(
    dataset: str,
    data_dir: str | os.PathLike[str],
    *,
    features: str = "trainval_36",
    float16: bool = False,
    force: bool = False,
    progress: bool = True,
    feature_dim: int = 2048,
    min_answer_count: int = DEFAULT_MIN_ANSWER_COUNT,
    console: Console | None = None,
) -> dict[str, Any]:
    """Everything the experiments on ``dataset`` need, skipping what is up to date.

    Checks first that every needed raw file is there (one error lists all missing ones), then
    runs the feature, question and importance steps (see the module docstring) and prints a
    summary table.

    Args:
        dataset: ``"vqacp_v2"`` (splits train, test) or ``"vqa_v2"`` (train = train2014,
            val = val2014).
        data_dir: The data folder (``raw/`` inside; ``prepared/`` is written).
        features: ``"trainval_36"`` or ``"trainval_adaptive"``.
        float16: Store features as float16.
        force: Rebuild every output.
        progress: Show progress bars.
        feature_dim: D, floats per proposal in the TSVs.
        min_answer_count: Answer-vocabulary threshold (9 on the real data).
        console: Where messages and the summary go (default: stdout).

    Returns:
        ``{"dataset", "data_dir", "built": [...], "skipped": [...], "absent": [...],
        "outputs": {name: {"path", "status", "size", "counts", "seconds"}},
        "answer_source": str, "coverage": str, "seconds": float}``; names are paths relative
        to ``prepared/`` (``"vqa/vqacp_v2/train.h5"``); ``absent`` holds ``glove.npy`` when
        the GloVe text is missing.

    Raises:
        MissingRawFilesError: Listing every missing raw file and where it is distributed.
        ValueError: For malformed raw files (naming file and line or question id).
    """
    run = start(data_dir, dataset, features, force, progress, console)
    layout = run.layout
    require_raw(
        [*layout.feature_files(features), *layout.question_files(dataset), *layout.hat_sources()],
        layout.data_dir,
        dataset,
    )
    run.console.print(
        f"[bold]Preparing {dataset}[/] in {escape(str(layout.data_dir))} (features {features}"
        f"{', float16' if float16 else ''}, min answer count {min_answer_count}"
        f"{', force' if force else ''})",
        soft_wrap=True,
    )
    started = time.perf_counter()
    feature_step(run, float16, feature_dim)
    question_steps(run, dataset, min_answer_count)
    hat_steps(run, dataset)
    return finish(run, f"Prepared {dataset}", started)
