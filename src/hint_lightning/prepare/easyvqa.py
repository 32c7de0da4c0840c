"""Builds the easy-VQA-CP store (:mod:`hint_lightning.stores.easyvqa`) from the easy-vqa package.

:func:`ensure_store` returns the path of the store for a set of
:class:`~hint_lightning.stores.easyvqa.EasyVQACPParams`, building it first when it is missing
(the DataModules call it in ``prepare_data``). The file name carries a short hash of every
parameter that changes the content, so changing any of them builds a new store next to the old
ones, and an unchanged configuration reuses the file. A store written before stores carried
checksums is rebuilt in place, with a message. The build (a few seconds, with a ``rich``
progress bar) follows the easy-VQA-CP feasibility study:

1. load the 5,000 images; shape masks, shape boxes, 24 proposals per image
   (:mod:`hint_lightning.prepare.easyvqa_images`, generator ``numpy.random.default_rng(seed)``);
2. 123-d proposal features, standardized per dimension over all proposals of all images
   (``mean``/``std`` are stored; a constant dimension gets std 1), and the human importance
   of every proposal under the blurred shape mask;
3. question templates, official VQA question types, answer types and token ids
   (:mod:`hint_lightning.text.tokenize`, vocabulary over all questions);
4. the VQA-CP re-split of all 48,248 questions (train and test pooled) with
   :func:`hint_lightning.prepare.cp_split.make_cp_split` over the **templates**, with
   ``keep_one=True``, ``answer_as_concept=True`` and the soft-CP ``leak`` (default 0.1: our
   documented deviation from VQA-CP; a strict split leaves every yes/no template with a single
   train answer). The split report is printed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.prepare import easyvqa_images as images_mod
from hint_lightning.prepare.cp_split import CPSplit, format_split_report, make_cp_split
from hint_lightning.prepare.easyvqa_source import (
    EasyVQASource,
    answer_type_index,
    question_template,
    vqa_question_types,
)
from hint_lightning.stores.easyvqa import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    EasyVQACPParams,
    has_checksums,
    write_store,
)
from hint_lightning.text.tokenize import build_token_vocab, encode_questions, tokenize

__all__ = ["build_store", "ensure_store", "prior_shift_summary"]

_CHUNK: Final = 250
"""Images per step of the build (bounds the memory of the feature pass, drives the bar)."""


def _progress(console: Console) -> Progress:
    """The build's progress bar."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _image_arrays(
    source: EasyVQASource, params: EasyVQACPParams, progress: Progress
) -> dict[str, np.ndarray]:
    """Pixels -> proposals, standardized features and human importance for every image.

    Args:
        source: The raw data.
        params: Build parameters.
        progress: Live progress bar.

    Returns:
        ``image_id`` [I], ``features`` [I, N, D], ``boxes`` [I, N, 4] (normalized),
        ``human_importance`` [I, N], ``shape_box`` [I, 4] (normalized), ``mask_area`` [I],
        ``feature_mean`` and ``feature_std`` [D].
    """
    image_ids = source.sorted_image_ids()
    paths = [source.image_paths[int(i)] for i in image_ids]
    starts = range(0, len(paths), _CHUNK)
    task = progress.add_task("loading images", total=len(paths))
    chunks = []
    for start in starts:
        chunks.append(images_mod.load_images(paths[start : start + _CHUNK]))
        progress.advance(task, len(chunks[-1]))
    pixels = np.concatenate(chunks)
    num_images, height, width, _ = pixels.shape

    masks = images_mod.shape_masks(pixels)
    shape_boxes = images_mod.mask_boxes(masks)
    rng = np.random.default_rng(params.seed)
    boxes = images_mod.make_proposals(shape_boxes, rng, height, width, params.num_proposals)

    task = progress.add_task("features, human importance", total=num_images)
    features = np.empty((num_images, params.num_proposals, images_mod.FEATURE_DIM), np.float32)
    importance = np.empty((num_images, params.num_proposals), np.float32)
    for start in starts:
        part = slice(start, start + _CHUNK)
        features[part] = images_mod.proposal_features(pixels[part], boxes[part])
        maps = images_mod.attention_maps(masks[part], params.blur_sigma)
        importance[part] = images_mod.human_importance(maps, boxes[part])
        progress.advance(task, len(pixels[part]))

    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    std[std < 1e-6] = 1.0
    features = ((features - mean) / std).astype(np.float32)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return {
        "image_id": image_ids,
        "features": features,
        "boxes": (boxes / scale).astype(np.float32),
        "human_importance": importance,
        "shape_box": (shape_boxes / scale).astype(np.float32),
        "mask_area": masks.sum(axis=(1, 2)).astype(np.int64),
        "feature_mean": mean.astype(np.float32),
        "feature_std": std.astype(np.float32),
    }


def _question_arrays(
    source: EasyVQASource, image_ids: np.ndarray, params: EasyVQACPParams
) -> tuple[dict[str, np.ndarray], dict[str, Any], CPSplit]:
    """Templates, types, tokens, answers and the CP split of every question.

    Args:
        source: The raw data.
        image_ids: Int64 array of shape [I], the image id of each store row (ascending).
        params: Build parameters.

    Returns:
        ``(arrays, vocabularies, split)``: the ``questions/`` arrays, the JSON vocabularies
        (``answers``, ``tokens``, ``templates``) and the CP split.
    """
    templates_per_question = [question_template(q) for q in source.questions]
    templates = tuple(sorted(set(templates_per_question)))
    template_index = {t: i for i, t in enumerate(templates)}
    tokens_vocab = build_token_vocab(tokenize(q) for q in set(source.questions))
    token_index = {t: i for i, t in enumerate(tokens_vocab)}
    answer_index = {a: i for i, a in enumerate(source.answer_vocab)}
    unknown = set(source.answers) - set(answer_index)
    if unknown:
        raise ValueError(f"answers outside the answer vocabulary: {sorted(unknown)}")

    split = make_cp_split(
        source.questions,
        templates_per_question,
        source.answers,
        test_fraction=params.test_fraction,
        seed=params.split_seed,
        keep_one=True,
        answer_as_concept=True,
        leak=params.leak,
    )
    split_code = np.full(source.num_questions, SPLIT_TRAIN, dtype=np.int8)
    split_code[split.test] = SPLIT_TEST
    arrays = {
        "question_id": source.question_ids.astype(np.int64),
        "image_index": np.searchsorted(image_ids, source.image_ids).astype(np.int64),
        "tokens": encode_questions(source.questions, token_index, params.max_question_length),
        "answer": np.array([answer_index[a] for a in source.answers], dtype=np.int64),
        "answer_type": answer_type_index(source.answers),
        "template": np.array([template_index[t] for t in templates_per_question], np.int64),
        "question_type": np.array(vqa_question_types(source.questions), dtype=object),
        "question": np.array(source.questions, dtype=object),
        "split": split_code,
    }
    vocabularies = {
        "answers": list(source.answer_vocab),
        "tokens": list(tokens_vocab),
        "templates": list(templates),
    }
    return arrays, vocabularies, split


def prior_shift_summary(split_stats: dict[str, Any]) -> str:
    """One line: for how many yes/no templates with test questions the majority answer flips.

    Args:
        split_stats: ``CPSplit.stats`` of a split over templates.

    Returns:
        Text such as ``"prior shift: the train-majority answer differs from the test-majority
        answer in 11 of 11 yes/no templates with CP-test questions"``.

    Example:
        >>> stats = {"answers_per_question_type": {
        ...     "is a <S> present": {"train": {"no": 90, "yes": 10}, "test": {"yes": 80}},
        ...     "what color is the <S>": {"train": {"red": 5}, "test": {}}}}
        >>> prior_shift_summary(stats)  # doctest: +NORMALIZE_WHITESPACE
        'prior shift: the train-majority answer differs from the test-majority answer in 1 of 1
        yes/no templates with CP-test questions'
    """
    flipped = total = 0
    for sides in split_stats["answers_per_question_type"].values():
        train, test = sides["train"], sides["test"]
        if not test or not set(train) | set(test) <= {"yes", "no"}:
            continue
        total += 1
        flipped += bool(train) and next(iter(train)) != next(iter(test))
    return (
        "prior shift: the train-majority answer differs from the test-majority answer in "
        f"{flipped} of {total} yes/no templates with CP-test questions"
    )


def build_store(
    path: str | os.PathLike[str],
    params: EasyVQACPParams,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """Builds the store and writes it atomically to ``path`` (overwriting it).

    Args:
        path: Destination ``.h5`` file; its folder is created if needed.
        params: Build parameters.
        source: The raw data; default :meth:`EasyVQASource.from_package`.
        console: Where the progress bar and the split report go (default: a new stdout
            ``Console``).

    Returns:
        ``path`` as a Path.
    """
    console = console or Console()
    source = source or EasyVQASource.from_package()
    began = time.perf_counter()
    with _progress(console) as progress:
        image_arrays = _image_arrays(source, params, progress)
        task = progress.add_task("questions, CP split", total=1)
        question_arrays, vocabularies, split = _question_arrays(
            source, image_arrays["image_id"], params
        )
        progress.advance(task)

        task = progress.add_task("writing store", total=1)
        write_store(
            path,
            image_arrays,
            question_arrays,
            {"params": params.to_dict(), "split_stats": split.stats, **vocabularies},
        )
        progress.advance(task)

    console.print(format_split_report(split), markup=False, highlight=False, soft_wrap=True)
    console.print(prior_shift_summary(split.stats), markup=False, highlight=False, soft_wrap=True)
    num_images, num_proposals, feature_dim = image_arrays["features"].shape
    console.print(
        f"easy-VQA-CP store: {num_images:,} images x {num_proposals} proposals x "
        f"{feature_dim} features, {len(question_arrays['question_id']):,} questions, "
        f"built in {time.perf_counter() - began:.1f} s -> {path}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return Path(path)


def ensure_store(
    cache_dir: str | os.PathLike[str],
    params: EasyVQACPParams,
    source: EasyVQASource | None = None,
    console: Console | None = None,
) -> Path:
    """The store for ``params`` in ``cache_dir``, built first if it does not exist yet.

    Args:
        cache_dir: Folder of the stores (created if needed).
        params: Build parameters (they choose the file name).
        source: The raw data; default :meth:`EasyVQASource.from_package`.
        console: Where messages go.

    Returns:
        Path of ``<cache_dir>/easyvqa_cp_<digest>.h5``.

    Raises:
        StoreError: When the file exists but is not a readable HDF5 file (e.g. truncated),
            naming it and saying to delete it.
    """
    path = Path(cache_dir) / params.filename()
    console = console or Console()
    if path.is_file():
        if has_checksums(path):
            console.print(
                f"easy-VQA-CP store: reusing {path}", markup=False, highlight=False, soft_wrap=True
            )
            return path
        console.print(
            f"easy-VQA-CP store: {path} was written before stores carried checksums; rebuilding it",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return build_store(path, params, source=source, console=console)
