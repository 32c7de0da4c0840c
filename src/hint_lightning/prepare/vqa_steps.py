"""The VQA steps of ``prepare``: vocabularies, GloVe, split stores, importance stores, coverage.

Each step is one output of the table in :mod:`hint_lightning.prepare.pipeline`, rebuilt only
when it is out of date (:meth:`hint_lightning.prepare.run.Run.step`).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Final

import numpy as np

from hint_lightning.prepare.glove import load_glove
from hint_lightning.prepare.layout import SPLITS, DataLayout, RawFile
from hint_lightning.prepare.run import GEOMETRY_DATASETS, Run, require_prepared
from hint_lightning.prepare.vqa_hat import (
    format_hat_coverage,
    write_hat_coverage,
    write_importance_store,
)
from hint_lightning.prepare.vqa_questions import build_answer_vocab, write_split_store
from hint_lightning.prepare.vqa_raw import check_images, join
from hint_lightning.stores.features import FeatureStore
from hint_lightning.stores.prepare_state import (
    BuildLedger,
    describe_sources,
    file_digest,
    h5_digest,
)
from hint_lightning.stores.versions import IMPORTANCE_STORE_VERSION, SPLIT_STORE_VERSION
from hint_lightning.stores.vqa_questions import read_vocabulary
from hint_lightning.text.question_types import load_question_types
from hint_lightning.text.tokenize import build_token_vocab, tokenize
from hint_lightning.utils.io import atomic_path, read_json, write_json

__all__ = ["DEFAULT_MIN_ANSWER_COUNT", "hat_steps", "question_steps"]

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


def _answers_step(run: Run, ledger: BuildLedger, dataset: str, min_count: int) -> None:
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


def _tokens_step(run: Run, ledger: BuildLedger, dataset: str) -> None:
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


def _glove_step(run: Run, ledger: BuildLedger, dataset: str) -> None:
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
        tokens = list(read_vocabulary(tokens_path))
        with run.status(f"reading {glove.name}"):
            matrix, found = load_glove(glove, tokens, dim=GLOVE_DIM, seed=GLOVE_SEED)
        _save_npy(out, matrix)
        run.console.print(
            f"       GloVe vectors for {found:,} of {len(tokens):,} tokens; the others random"
        )

    run.step(ledger, out, stamp, build)


def _split_step(run: Run, ledger: BuildLedger, dataset: str, split: str, images: str) -> None:
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
        tokens = list(read_vocabulary(tokens_path))
        stats = write_split_store(
            out,
            entries,
            answers=read_vocabulary(answers_path),
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


def question_steps(run: Run, dataset: str, min_count: int) -> None:
    """Answers, tokens, GloVe and the split stores of ``dataset``."""
    store_path = run.layout.feature_store(run.features)
    require_prepared(
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
    run: Run, ledger: BuildLedger, dataset: str, split: str, hat: list[Path], geometry: str
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


def _coverage_step(run: Run, ledger: BuildLedger, dataset: str, hat: list[Path]) -> None:
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
    summary = format_hat_coverage(read_json(out, "coverage report"))
    run.report.notes["coverage"] = summary
    run.console.print(summary, soft_wrap=True)


def hat_steps(run: Run, dataset: str) -> None:
    """The importance store of every split and the coverage report."""
    layout = run.layout
    store_path = layout.feature_store(run.features)
    splits = [layout.split_store(dataset, split) for split in SPLITS[dataset]]
    require_prepared(
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
