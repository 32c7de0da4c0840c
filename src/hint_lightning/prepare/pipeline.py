"""Raw downloads -> every prepared file of a VQA experiment, skipping what is up to date.

The steps reuse the converters of :mod:`hint_lightning.prepare.features`,
:mod:`~hint_lightning.prepare.vqa_questions` and :mod:`~hint_lightning.prepare.vqa_hat`; this
module only orders them, decides what to rebuild and reports. A step is rebuilt when its output
is missing or changed, when one of its inputs or options changed (see
:mod:`hint_lightning.prepare.state`), or with ``force``. Outputs are under ``prepared/``
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

import itertools
import json
import os
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import h5py
import numpy as np
from rich.console import Console
from rich.markup import escape

from hint_lightning.data.feature_store import FeatureStore
from hint_lightning.prepare.features import convert_tsv_to_hdf5, feature_store_is_current
from hint_lightning.prepare.layout import (
    SPLITS,
    DataLayout,
    MissingPreparedFilesError,
    RawFile,
    require_raw,
)
from hint_lightning.prepare.state import BuildLedger, file_digest, h5_digest
from hint_lightning.prepare.summary import PrepareReport
from hint_lightning.prepare.vqa_hat import (
    IMPORTANCE_STORE_VERSION,
    format_hat_coverage,
    write_hat_coverage,
    write_importance_store,
)
from hint_lightning.prepare.vqa_questions import (
    SPLIT_STORE_VERSION,
    build_answer_vocab,
    check_images,
    describe_sources,
    join,
    load_annotations,
    load_glove,
    load_questions,
    write_split_store,
)
from hint_lightning.text.question_types import load_question_types
from hint_lightning.text.tokenize import build_token_vocab, tokenize
from hint_lightning.utils.io import atomic_path, write_json

__all__ = [
    "DEFAULT_MIN_ANSWER_COUNT",
    "prepare_features",
    "prepare_hat",
    "prepare_questions",
    "prepare_vqa",
]

DEFAULT_MIN_ANSWER_COUNT: Final = 9
"""Answers kept in the vocabulary: ``multiple_choice_answer`` of at least 9 questions."""
MAX_QUESTION_LENGTH: Final = 14
"""T: tokens stored per question."""
QUESTION_TYPE_LIST: Final = "mscoco"
"""The official question-type list of the split stores."""
TOKEN_MIN_COUNT: Final = 1
"""Every question token is in the vocabulary."""
GLOVE_DIM: Final = 300
GLOVE_SEED: Final = 0
"""Seed of the random rows of tokens that GloVe lacks."""
IMPORTANCE_SEED: Final = 0
"""Seed of the random-importance control."""
LOG_WIDTH: Final = 120
"""Console width when the output is not a terminal (logs)."""
GEOMETRY_DATASETS: Final = ("image_ids", "image_w", "image_h", "num_boxes", "boxes")
"""What the importance stores depend on in a feature store (not the features themselves)."""


@dataclass
class _Run:
    """State shared by the steps of one run.

    Attributes:
        layout: The data folder's paths.
        features: The feature variant.
        force: Rebuild every step.
        progress: Show progress bars.
        console: Where messages go.
        report: What happened to each output.
    """

    layout: DataLayout
    features: str
    force: bool
    progress: bool
    console: Console
    report: PrepareReport
    _loaded: dict[Path, list[dict]] = field(default_factory=dict)

    def step(
        self,
        ledger: BuildLedger,
        output: Path,
        stamp: Mapping[str, Any],
        build: Callable[[], None],
    ) -> bool:
        """Runs ``build`` unless ``output`` is up to date with ``stamp``; True when built."""
        name = self.report.name(output)
        if not self.force and ledger.is_current(output, stamp):
            self.console.print(f"[dim]skip   {name} (up to date)[/]")
            self.report.add(output, "skipped")
            return False
        ledger.forget(output)
        self.console.print(f"[bold]build[/]  {name}")
        start = time.perf_counter()
        build()
        ledger.record(output, stamp)
        self.report.add(output, "built", time.perf_counter() - start)
        return True

    def status(self, message: str) -> Any:
        """A spinner while something without its own progress bar runs."""
        return self.console.status(message) if self.progress else nullcontext()

    def load(self, raw: RawFile, kind: Literal["questions", "annotations"]) -> list[dict]:
        """The items of a raw question or annotation file, read once per run."""
        path = raw.resolve()
        if path not in self._loaded:
            if raw.layout is None:
                raise ValueError(f"{path} is not a question or annotation file")
            loader = load_questions if kind == "questions" else load_annotations
            with self.status(f"reading {path.name}"):
                self._loaded[path] = loader(path, raw.layout)
        return self._loaded[path]

    def release(self, *raws: RawFile) -> None:
        """Forgets loaded files (the real ones take gigabytes as Python objects)."""
        for raw in raws:
            self._loaded.pop(raw.resolve(), None)


def _start(
    data_dir: str | os.PathLike[str],
    dataset: str | None,
    features: str,
    force: bool,
    progress: bool,
    console: Console | None,
) -> _Run:
    """A new run over ``data_dir``."""
    layout = DataLayout(data_dir)
    layout.feature_store(features)  # validates the variant name
    if dataset is not None:
        layout.vqa_dir(dataset)  # validates the dataset name
    report = PrepareReport(layout.data_dir, layout.prepared, dataset)
    return _Run(layout, features, force, progress, console or _default_console(), report)


def _default_console() -> Console:
    """A stdout console; 120 columns when writing to a file or pipe (rich would take 80)."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, LOG_WIDTH)
    return console


def _finish(run: _Run, title: str, started: float) -> dict[str, Any]:
    """Prints the summary table and returns the report."""
    run.report.notes["seconds"] = round(time.perf_counter() - started, 3)
    run.console.print(run.report.table(f"{title} ({run.report.notes['seconds']:.1f} s)"))
    return run.report.as_dict()


# --------------------------------------------------------------------------------------------
# Features.
# --------------------------------------------------------------------------------------------


def _stored_feature_dim(path: Path) -> int | None:
    """The ``feature_dim`` attribute of a feature store (None if unreadable)."""
    try:
        with h5py.File(path, "r") as handle:
            return int(handle.attrs["feature_dim"])
    except (OSError, KeyError, ValueError):
        return None


def _feature_step(run: _Run, float16: bool, feature_dim: int) -> None:
    """TSVs -> ``features/<name>.h5`` (checked through the store's own ``sources``)."""
    tsvs = run.layout.feature_tsvs(run.features)
    out = run.layout.feature_store(run.features)
    name = run.report.name(out)
    current = (
        not run.force
        and feature_store_is_current(out, tsvs, float16)
        and _stored_feature_dim(out) == feature_dim
    )
    if current:
        run.console.print(f"[dim]skip   {name} (up to date)[/]")
        run.report.add(out, "skipped")
        return
    run.console.print(f"[bold]build[/]  {name} from {len(tsvs)} TSV file(s)")
    start = time.perf_counter()
    stats = convert_tsv_to_hdf5(
        tsvs, out, feature_dim=feature_dim, float16=float16, progress=run.progress
    )
    run.console.print(
        f"       {stats['images']:,} images, {stats['boxes']:,} boxes, {stats['mb_per_s']} MB/s"
    )
    run.report.add(out, "built", time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# Vocabularies and split stores.
# --------------------------------------------------------------------------------------------


def _answer_sources(layout: DataLayout, dataset: str) -> tuple[list[RawFile], str]:
    """The annotation files of the answer vocabulary, and a sentence saying which they are."""
    vqa_v2 = [layout.annotations("vqa_v2", split) for split in SPLITS["vqa_v2"]]
    if dataset == "vqa_v2" or all(f.exists() for f in vqa_v2):
        return vqa_v2, "VQA v2 train2014 + val2014 annotations"
    vqacp = [layout.annotations("vqacp_v2", split) for split in SPLITS["vqacp_v2"]]
    return vqacp, (
        "VQA-CP v2 train + test annotations (the same questions as VQA v2 train + val; the "
        "VQA v2 annotation files are not in raw/vqa_v2/)"
    )


def _answers_step(run: _Run, ledger: BuildLedger, dataset: str, min_count: int) -> None:
    """``answers.json``: normalized answers of at least ``min_count`` questions."""
    files, label = _answer_sources(run.layout, dataset)
    run.report.notes["answer_source"] = label
    run.console.print(f"answer vocabulary from {label}")
    out = run.layout.answers(dataset)
    stamp = {"annotations": describe_sources([f.path for f in files]), "min_count": min_count}

    def build() -> None:
        items = itertools.chain.from_iterable(run.load(f, "annotations") for f in files)
        answers = build_answer_vocab(items, min_count=min_count)
        if not answers:
            raise ValueError(
                f"no answer is the multiple-choice answer of at least {min_count} questions; "
                "lower --min-answer-count (tiny fixture trees need 2)"
            )
        write_json(out, list(answers))
        run.console.print(f"       {len(answers):,} answers (min count {min_count})")

    run.step(ledger, out, stamp, build)
    if files[0].source != dataset:
        run.release(*files)


def _tokens_step(run: _Run, ledger: BuildLedger, dataset: str) -> None:
    """``tokens.json``: every token of the dataset's questions."""
    files = [run.layout.questions(dataset, split) for split in SPLITS[dataset]]
    out = run.layout.tokens(dataset)
    stamp = {"questions": describe_sources([f.path for f in files]), "min_count": TOKEN_MIN_COUNT}

    def build() -> None:
        questions = itertools.chain.from_iterable(run.load(f, "questions") for f in files)
        tokens = build_token_vocab((tokenize(q["question"]) for q in questions), TOKEN_MIN_COUNT)
        write_json(out, list(tokens))
        run.console.print(f"       {len(tokens):,} tokens (with <pad> and <unk>)")

    run.step(ledger, out, stamp, build)


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` atomically (through a handle: ``np.save`` would rename a bare path)."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, array)


def _glove_step(run: _Run, ledger: BuildLedger, dataset: str) -> None:
    """``glove.npy`` when the GloVe text is there; otherwise say embeddings start random."""
    glove = run.layout.glove()
    tokens_path = run.layout.tokens(dataset)
    out = run.layout.glove_matrix(dataset)
    tokens_digest = file_digest(tokens_path)
    if not glove.is_file():
        previous = ledger.stamp_of(out)
        if previous is not None and previous.get("tokens") == tokens_digest:
            run.console.print(
                f"[dim]skip   {run.report.name(out)} (GloVe text gone; kept: built for these "
                "tokens)[/]"
            )
            run.report.add(out, "skipped")
            return
        if out.exists():
            ledger.forget(out)
            out.unlink()
        run.console.print(
            f"[yellow]no {run.layout.relative(glove)}: question embeddings start random[/] "
            "(optional: GloVe 6B from https://nlp.stanford.edu/projects/glove/)"
        )
        run.report.add(out, "absent")
        return
    stamp = {
        "glove": describe_sources([glove]),
        "tokens": tokens_digest,
        "dim": GLOVE_DIM,
        "seed": GLOVE_SEED,
    }

    def build() -> None:
        tokens = json.loads(tokens_path.read_text())
        with run.status(f"reading {glove.name}"):
            matrix, found = load_glove(glove, tokens, dim=GLOVE_DIM, seed=GLOVE_SEED)
        _save_npy(out, matrix)
        run.console.print(
            f"       GloVe vectors for {found:,} of {len(tokens):,} tokens; the others random"
        )

    run.step(ledger, out, stamp, build)


def _split_step(run: _Run, ledger: BuildLedger, dataset: str, split: str, images: str) -> None:
    """``<split>.h5`` after checking that every image is in the feature store."""
    layout = run.layout
    questions, annotations = layout.questions(dataset, split), layout.annotations(dataset, split)
    answers_path, tokens_path = layout.answers(dataset), layout.tokens(dataset)
    store_path = layout.feature_store(run.features)
    out = layout.split_store(dataset, split)
    stamp = {
        "raw": describe_sources([questions.path, annotations.path]),
        "answers": file_digest(answers_path),
        "tokens": file_digest(tokens_path),
        "images": images,
        "feature_store": run.features,
        "max_length": MAX_QUESTION_LENGTH,
        "question_types": QUESTION_TYPE_LIST,
        "format_version": SPLIT_STORE_VERSION,
    }

    def build() -> None:
        entries = join(
            run.load(questions, "questions"),
            run.load(annotations, "annotations"),
            questions.path,
            annotations.path,
        )
        with FeatureStore(store_path) as store:
            check_images(entries, store, questions.path)
        tokens = json.loads(tokens_path.read_text())
        stats = write_split_store(
            out,
            entries,
            answers=json.loads(answers_path.read_text()),
            token_index={token: i for i, token in enumerate(tokens)},
            question_types=load_question_types(QUESTION_TYPE_LIST),
            dataset=dataset,
            split=split,
            feature_store_name=run.features,
            sources=[questions.path, annotations.path],
            max_length=MAX_QUESTION_LENGTH,
            progress=run.progress,
        )
        run.console.print(
            f"       {stats['questions']:,} questions on {stats['images']:,} images, "
            f"{stats['with_target']:,} with an answer in the vocabulary"
        )

    run.step(ledger, out, stamp, build)
    run.release(questions, annotations)


def _require_prepared(run: _Run, paths: list[Path], command: str) -> None:
    """:class:`MissingPreparedFilesError` when a prepared input of a standalone step is missing."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise MissingPreparedFilesError(missing, run.layout.data_dir, command)


def _question_steps(run: _Run, dataset: str, min_count: int) -> None:
    """Answers, tokens, GloVe and the split stores of ``dataset``."""
    store_path = run.layout.feature_store(run.features)
    _require_prepared(
        run,
        [store_path],
        f"python -m hint_lightning.prepare features --data-dir {run.layout.data_dir} "
        f"--features {run.features}",
    )
    ledger = BuildLedger(run.layout.vqa_dir(dataset))
    _answers_step(run, ledger, dataset, min_count)
    _tokens_step(run, ledger, dataset)
    _glove_step(run, ledger, dataset)
    images = h5_digest(store_path, ("image_ids",))
    for split in SPLITS[dataset]:
        _split_step(run, ledger, dataset, split, images)


# --------------------------------------------------------------------------------------------
# Human importance.
# --------------------------------------------------------------------------------------------


def _importance_step(
    run: _Run, ledger: BuildLedger, dataset: str, split: str, hat: list[Path], geometry: str
) -> None:
    """``<split>_importance.h5`` from both VQA-HAT sources."""
    split_path = run.layout.split_store(dataset, split)
    store_path = run.layout.feature_store(run.features)
    out = run.layout.importance_store(dataset, split)
    stamp = {
        "hat": describe_sources(hat),
        "questions": h5_digest(split_path, ("question_id", "image_id")),
        "boxes": geometry,
        "feature_store": run.features,
        "seed": IMPORTANCE_SEED,
        "format_version": IMPORTANCE_STORE_VERSION,
    }

    def build() -> None:
        with FeatureStore(store_path) as store:
            stats = write_importance_store(
                out, split_path, hat, store, seed=IMPORTANCE_SEED, progress=run.progress
            )
        run.console.print(
            f"       {stats['with_importance']:,} of {stats['questions']:,} questions with "
            "human importance"
        )

    run.step(ledger, out, stamp, build)


def _coverage_step(run: _Run, ledger: BuildLedger, dataset: str, hat: list[Path]) -> None:
    """``hat_coverage.json``; its summary is printed whether built or skipped."""
    splits = {split: run.layout.split_store(dataset, split) for split in SPLITS[dataset]}
    out = run.layout.coverage(dataset)
    stamp = {
        "hat": describe_sources(hat),
        "splits": {split: h5_digest(path, ("question_id",)) for split, path in splits.items()},
    }

    def build() -> None:
        write_hat_coverage(out, hat, splits)

    run.step(ledger, out, stamp, build)
    summary = format_hat_coverage(json.loads(out.read_text()))
    run.report.notes["coverage"] = summary
    run.console.print(summary, soft_wrap=True)


def _hat_steps(run: _Run, dataset: str) -> None:
    """The importance store of every split and the coverage report."""
    layout = run.layout
    store_path = layout.feature_store(run.features)
    splits = [layout.split_store(dataset, split) for split in SPLITS[dataset]]
    _require_prepared(
        run,
        [store_path, *splits],
        f"python -m hint_lightning.prepare questions --dataset {dataset} "
        f"--data-dir {layout.data_dir} --features {run.features}",
    )
    hat = [source.resolve() for source in layout.hat_sources()]
    ledger = BuildLedger(layout.vqa_dir(dataset))
    geometry = h5_digest(store_path, GEOMETRY_DATASETS)
    for split in SPLITS[dataset]:
        _importance_step(run, ledger, dataset, split, hat, geometry)
    _coverage_step(run, ledger, dataset, hat)


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
    run = _start(data_dir, None, features, force, progress, console)
    require_raw(run.layout.feature_files(features), run.layout.data_dir, f"features {features}")
    started = time.perf_counter()
    _feature_step(run, float16, feature_dim)
    return _finish(run, f"Prepared features {features}", started)


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
    run = _start(data_dir, dataset, features, force, progress, console)
    require_raw(run.layout.question_files(dataset), run.layout.data_dir, f"{dataset} questions")
    started = time.perf_counter()
    _question_steps(run, dataset, min_answer_count)
    return _finish(run, f"Prepared {dataset} questions", started)


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
    run = _start(data_dir, dataset, features, force, progress, console)
    require_raw(run.layout.hat_sources(), run.layout.data_dir, f"{dataset} human attention")
    started = time.perf_counter()
    _hat_steps(run, dataset)
    return _finish(run, f"Prepared {dataset} human importance", started)


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
    run = _start(data_dir, dataset, features, force, progress, console)
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
    _feature_step(run, float16, feature_dim)
    _question_steps(run, dataset, min_answer_count)
    _hat_steps(run, dataset)
    return _finish(run, f"Prepared {dataset}", started)
