"""A tiny raw-data tree in exactly the raw layout and the distributed formats.

:func:`write_fixture_tree` (CLI: ``python -m hint_lightning.prepare fixture --data-dir DIR``)
writes under ``DIR/raw/`` everything that ``python -m hint_lightning.prepare vqacp_v2`` and
``vqa_v2`` read (layout: :mod:`hint_lightning.prepare`), composed from the format writers of
:mod:`hint_lightning.testing.tsv` and :mod:`hint_lightning.testing.vqa_files`:

* ``features/trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv``: one row per image,
  36 boxes, base64 float32, CRLF, rows in random order; with ``adaptive`` also
  ``features/trainval_adaptive/karpathy_*_resnet101_faster_rcnn_genome.tsv*`` (the same images
  with 10-100 boxes, spread over four files like ``trainval.zip``).
* ``vqa_v2/``: VQA v2 question and annotation dicts of train2014 and val2014 (every third
  image is a val2014 image).
* ``vqacp_v2/``: VQA-CP v2 train and test lists of the *same* questions (each item with its
  ``coco_split``), re-split by :func:`hint_lightning.data.cp_split.make_cp_split` with
  ``test_fraction=1/3``: VQA-CP is a re-split of VQA v2 train + val.
* ``vqahat/vqahat_train.zip`` (one map per question of a train2014 image) and
  ``vqahat_val.zip`` (three maps per question of a val2014 image) for about half of the
  questions, plus one question id in each zip that is in no split (the coverage report lists
  them as unmatched).
* ``glove/glove.6B.300d.txt``: 300-d vectors of most question words (some are left out, and a
  few words that no question uses are added).
* with ``coco`` (the default): ``coco/dataset_coco.json``,
  ``coco/annotations/instances_{train,val}2014.json`` and ``coco/split_robust_coco.json`` for
  the same images (so every image has features), written by
  :func:`hint_lightning.testing.coco_files.write_coco_files` from its own random stream: the
  VQA files are the same with and without it. Prepare with
  ``python -m hint_lightning.prepare coco --data-dir DIR --word-count-threshold 1``.
* ``README.txt`` in ``DIR`` saying what the tree is and how to prepare it.

**Answers and the vocabulary threshold.** Questions are picked from a larger pool of plausible
examples (:func:`~hint_lightning.testing.vqa_files.make_vqa_examples`) so that answer types
cycle yes/no, other, number, other (25 / 50 / 25 %) and every answer is picked for up to
:data:`ANSWER_CLUSTER` questions before a new one is preferred. With
``--min-answer-count 2`` (:data:`FIXTURE_MIN_ANSWER_COUNT`) the vocabulary then holds yes and
no, several numbers and several other answers; the real threshold 9 would keep almost nothing
of a 48-question tree (and the prepare step refuses an empty vocabulary).

Example:
    >>> import tempfile, pathlib
    >>> files = write_fixture_tree(pathlib.Path(tempfile.mkdtemp()), num_images=3,
    ...                            questions_per_image=2, feature_dim=8)
    >>> for name in sorted(files):
    ...     print(name)
    README.txt
    raw/coco/annotations/instances_train2014.json
    raw/coco/annotations/instances_val2014.json
    raw/coco/dataset_coco.json
    raw/coco/split_robust_coco.json
    raw/features/trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv
    raw/glove/glove.6B.300d.txt
    raw/vqa_v2/v2_OpenEnded_mscoco_train2014_questions.json
    raw/vqa_v2/v2_OpenEnded_mscoco_val2014_questions.json
    raw/vqa_v2/v2_mscoco_train2014_annotations.json
    raw/vqa_v2/v2_mscoco_val2014_annotations.json
    raw/vqacp_v2/vqacp_v2_test_annotations.json
    raw/vqacp_v2/vqacp_v2_test_questions.json
    raw/vqacp_v2/vqacp_v2_train_annotations.json
    raw/vqacp_v2/vqacp_v2_train_questions.json
    raw/vqahat/vqahat_train.zip
    raw/vqahat/vqahat_val.zip
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from hint_lightning.data.cp_split import make_cp_split, question_concepts
from hint_lightning.testing.coco_files import FIXTURE_WORD_COUNT_THRESHOLD, write_coco_files
from hint_lightning.testing.tsv import (
    BottomUpImage,
    random_bottom_up_images,
    random_boxes,
    write_bottom_up_tsv,
)
from hint_lightning.testing.vqa_files import (
    make_hat_maps,
    make_vqa_examples,
    write_glove,
    write_hat_zip,
    write_vqa_v2_annotations,
    write_vqa_v2_questions,
    write_vqacp_annotations,
    write_vqacp_questions,
)
from hint_lightning.text.tokenize import tokenize
from hint_lightning.utils.io import write_text

__all__ = ["ANSWER_CLUSTER", "FIXTURE_MIN_ANSWER_COUNT", "write_fixture_tree"]

FIXTURE_MIN_ANSWER_COUNT: Final = 2
"""The ``--min-answer-count`` to prepare a fixture tree with (the real data uses 9)."""
ANSWER_CLUSTER: Final = 3
"""Questions an answer is picked for before a new answer is preferred."""

_TYPE_CYCLE: Final = ("yes/no", "other", "number", "other")
_POOL_FACTOR: Final = 12
"""Candidate examples drawn per question picked."""
_COCO_IMAGE_IDS: Final = 581_929
"""Image ids are drawn from 1..this (the range of COCO 2014 ids)."""
_HAT_SIZES: Final = {"train": (48, 36), "val": (40, 40)}
"""(width, height) of the fixture's VQA-HAT maps (real maps have their own resolution)."""
_GLOVE_DIM: Final = 300
_GLOVE_EXTRA_WORDS: Final = ("zebu", "quasar", "xylophone", ",", ".")
_ADAPTIVE_FILES: Final = (
    "karpathy_train_resnet101_faster_rcnn_genome.tsv.0",
    "karpathy_train_resnet101_faster_rcnn_genome.tsv.1",
    "karpathy_val_resnet101_faster_rcnn_genome.tsv",
    "karpathy_test_resnet101_faster_rcnn_genome.tsv",
)
_TSV_36: Final = "trainval_resnet101_faster_rcnn_genome_36.tsv"
_COCO_STREAM: Final = 2014
"""Extra seed word of the COCO files' random stream (independent of the VQA files')."""


# --------------------------------------------------------------------------------------------
# Images and features.
# --------------------------------------------------------------------------------------------


def _images(num_images: int, feature_dim: int, rng: np.random.Generator) -> list[BottomUpImage]:
    """Images with COCO-like ids (sorted) and 36 plausible boxes each."""
    ids = np.sort(rng.choice(np.arange(1, _COCO_IMAGE_IDS + 1), size=num_images, replace=False))
    images = random_bottom_up_images(
        num_images, feature_dim=feature_dim, boxes=36, seed=int(rng.integers(2**31))
    )
    return [(int(i), w, h, b, f) for i, (_, w, h, b, f) in zip(ids, images, strict=True)]


def _adaptive(
    images: Sequence[BottomUpImage], feature_dim: int, rng: np.random.Generator
) -> list[BottomUpImage]:
    """The same images (ids and sizes) with 10-100 boxes each, as in ``trainval.zip``."""
    adaptive = []
    for image_id, width, height, _, _ in images:
        count = int(rng.integers(10, 101))
        boxes = random_boxes(rng, count, width, height)
        features = rng.gamma(0.5, 1.0, size=(count, feature_dim)).astype(np.float32)
        adaptive.append((image_id, width, height, boxes, features))
    return adaptive


def _shuffled(images: Sequence[BottomUpImage], rng: np.random.Generator) -> list[BottomUpImage]:
    """The images in random order (the real TSVs are not sorted by id)."""
    return [images[i] for i in rng.permutation(len(images))]


# --------------------------------------------------------------------------------------------
# Questions.
# --------------------------------------------------------------------------------------------


def _pick(
    candidates: Sequence[int],
    annotations: Sequence[Mapping[str, Any]],
    questions: Sequence[Mapping[str, Any]],
    wanted: str,
    counts: Counter[str],
    used_texts: set[str],
) -> int:
    """The candidate to use next: of the wanted answer type, a new question text, and an
    answer that completes a cluster (picked 1..ANSWER_CLUSTER - 1 times) over a new answer
    over a full one; the first such candidate in pool order."""
    typed = [c for c in candidates if annotations[c]["answer_type"] == wanted] or list(candidates)

    def rank(c: int) -> tuple[int, int]:
        count = counts[annotations[c]["multiple_choice_answer"]]
        cluster = 0 if 0 < count < ANSWER_CLUSTER else 1 if count == 0 else 2
        return int(questions[c]["question"] in used_texts), cluster

    return min(typed, key=rank)


def _select_examples(
    image_ids: Sequence[int], questions_per_image: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``questions_per_image`` questions per image with the answer distribution of the module
    docstring; question ids ``image_id * 1000 + i`` as in VQA."""
    pool = min(1000, _POOL_FACTOR * questions_per_image + _POOL_FACTOR)
    pool_questions, pool_annotations = make_vqa_examples(
        image_ids, questions_per_image=pool, seed=seed
    )
    counts: Counter[str] = Counter()
    questions, annotations = [], []
    for position, image_id in enumerate(image_ids):
        free = list(range(position * pool, (position + 1) * pool))
        used_texts: set[str] = set()
        for i in range(questions_per_image):
            wanted = _TYPE_CYCLE[(position * questions_per_image + i) % len(_TYPE_CYCLE)]
            choice = _pick(free, pool_annotations, pool_questions, wanted, counts, used_texts)
            free.remove(choice)
            question_id = int(image_id) * 1000 + i
            question = dict(pool_questions[choice], question_id=question_id)
            annotation = dict(pool_annotations[choice], question_id=question_id)
            used_texts.add(question["question"])
            counts[annotation["multiple_choice_answer"]] += 1
            questions.append(question)
            annotations.append(annotation)
    return questions, annotations


def _vqacp_split(
    questions: Sequence[Mapping[str, Any]], annotations: Sequence[Mapping[str, Any]], seed: int
) -> tuple[list[int], list[int]]:
    """Indices of the VQA-CP train and test questions (both non-empty).

    Whole (question type, answer) groups move to test, keeping one group of each question type
    in train and every test answer a train answer; question words are not concepts here (on a
    few dozen questions word coverage would keep almost everything in train).
    """
    texts = [q["question"] for q in questions]
    split = make_cp_split(
        texts,
        [a["question_type"] for a in annotations],
        [a["multiple_choice_answer"] for a in annotations],
        test_fraction=1 / 3,
        seed=seed,
        stop_words=set().union(*(question_concepts(t, stop_words=()) for t in texts)),
    )
    train, test = split.train.tolist(), split.test.tolist()
    if not train or not test:  # a degenerate tiny tree: every third question to test
        test = list(range(2, len(questions), 3)) or [len(questions) - 1]
        train = [i for i in range(len(questions)) if i not in set(test)]
    return train, test


def _hat_questions(
    num_questions: int, groups: Sequence[Sequence[int]], rng: np.random.Generator
) -> list[int]:
    """Indices of the questions with VQA-HAT maps: about half, at least one of each group."""
    chosen = rng.random(num_questions) < 0.5
    for group in groups:
        if len(group) and not chosen[list(group)].any():
            chosen[group[0]] = True
    return np.flatnonzero(chosen).tolist()


# --------------------------------------------------------------------------------------------
# GloVe and README.
# --------------------------------------------------------------------------------------------


def _glove_vectors(
    questions: Sequence[Mapping[str, Any]], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Vectors of most question tokens (every sixth is left out) and a few other words."""
    tokens = sorted({token for q in questions for token in tokenize(q["question"])})
    words = [t for i, t in enumerate(tokens) if i % 6 != 5] + list(_GLOVE_EXTRA_WORDS)
    return {word: rng.normal(0.0, 0.4, _GLOVE_DIM).astype(np.float32) for word in words}


def _readme(data_dir: Path, facts: Mapping[str, Any]) -> str:
    """The text of ``README.txt``."""
    adaptive = (
        "\n  python -m hint_lightning.prepare vqacp_v2 --data-dir {d} --features trainval_adaptive"
        " --min-answer-count {m}{dim}"
        if facts["adaptive"]
        else ""
    )
    dim = "" if facts["feature_dim"] == 2048 else f" --feature-dim {facts['feature_dim']}"
    return (
        "hint-lightning fixture tree: a TINY, SYNTHETIC stand-in for the real raw data.\n\n"
        "Every file under raw/ has the exact layout and format of the official download it\n"
        "stands for (VQA v2, VQA-CP v2, VQA-HAT zips, bottom-up TSVs, GloVe 6B text), but the\n"
        "images, features, questions, answers and attention maps are random. It exists to test\n"
        "and demonstrate the prepare pipeline and the DataModules; numbers trained on it mean\n"
        "nothing.\n\n"
        f"Written by hint_lightning.testing.fixtures.write_fixture_tree (seed {facts['seed']}):\n"
        f"  {facts['images']} images ({facts['train2014']} train2014, {facts['val2014']} val2014),"
        f" feature_dim {facts['feature_dim']}\n"
        f"  {facts['questions']} questions; VQA-CP v2 train {facts['cp_train']}, test "
        f"{facts['cp_test']}\n"
        f"  VQA-HAT maps for {facts['hat']} questions, plus {facts['unmatched']} question ids in "
        "no split (reported as unmatched)\n\n"
        "Prepare it with a small answer threshold (the real data uses the default 9, which\n"
        "would keep almost no answer of this tree):\n"
        f"  python -m hint_lightning.prepare vqacp_v2 --data-dir {{d}} --min-answer-count {{m}}"
        f"{{dim}}\n"
        f"  python -m hint_lightning.prepare vqa_v2 --data-dir {{d}} --min-answer-count {{m}}"
        f"{{dim}}{adaptive}\n"
    ).format(d=data_dir, m=FIXTURE_MIN_ANSWER_COUNT, dim=dim) + (
        "\nCOCO captioning files (raw/coco/: Karpathy split, instances, a robust split for\n"
        "these random image ids) for the same images; prepare them with a small vocabulary\n"
        "threshold (the real data uses 5):\n"
        f"  python -m hint_lightning.prepare coco --data-dir {data_dir} --word-count-threshold "
        f"{FIXTURE_WORD_COUNT_THRESHOLD}{dim}\n"
        if facts["coco"]
        else ""
    )


# --------------------------------------------------------------------------------------------
# The tree.
# --------------------------------------------------------------------------------------------


def _check_arguments(
    data_dir: Path, num_images: int, questions_per_image: int, feature_dim: int, overwrite: bool
) -> None:
    """``ValueError`` for impossible sizes; ``FileExistsError`` over an existing raw tree."""
    if num_images < 3:
        raise ValueError(f"num_images must be at least 3 (train2014 and val2014), got {num_images}")
    if not 1 <= questions_per_image <= 80:
        raise ValueError(f"questions_per_image must be in 1..80, got {questions_per_image}")
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be positive, got {feature_dim}")
    raw = data_dir / "raw"
    if not overwrite and raw.is_dir() and any(p.is_file() for p in raw.rglob("*")):
        raise FileExistsError(
            f"{raw} already holds files; the fixture writes only into an empty raw tree "
            "(pass overwrite=True / --overwrite to replace a previous fixture)"
        )


def _write_features(
    raw: Path, images: Sequence[BottomUpImage], adaptive: bool, rng: np.random.Generator
) -> list[Path]:
    """The trainval_36 TSV, and with ``adaptive`` the four adaptive TSVs."""
    written = [write_bottom_up_tsv(raw / "features/trainval_36" / _TSV_36, _shuffled(images, rng))]
    if adaptive:
        feature_dim = images[0][4].shape[1]
        shuffled = _shuffled(_adaptive(images, feature_dim, rng), rng)
        parts = np.array_split(np.arange(len(images)), len(_ADAPTIVE_FILES))
        folder = raw / "features/trainval_adaptive"
        for name, part in zip(_ADAPTIVE_FILES, parts, strict=True):
            written.append(write_bottom_up_tsv(folder / name, [shuffled[i] for i in part]))
    return written


def _write_vqa_v2(
    raw: Path, questions: list[dict], annotations: list[dict], rows: Mapping[str, list[int]]
) -> list[Path]:
    """VQA v2 question and annotation files of train2014 and val2014."""
    written = []
    for subtype, split_rows in rows.items():
        written += [
            write_vqa_v2_questions(
                raw / f"vqa_v2/v2_OpenEnded_mscoco_{subtype}_questions.json",
                [questions[n] for n in split_rows],
                subtype,
            ),
            write_vqa_v2_annotations(
                raw / f"vqa_v2/v2_mscoco_{subtype}_annotations.json",
                [annotations[n] for n in split_rows],
                subtype,
            ),
        ]
    return written


def _write_vqacp(
    raw: Path,
    questions: list[dict],
    annotations: list[dict],
    rows: Mapping[str, list[int]],
    coco: Mapping[int, str],
) -> list[Path]:
    """VQA-CP v2 question and annotation lists of train and test (with ``coco_split``)."""
    written = []
    for split, split_rows in rows.items():
        written += [
            write_vqacp_questions(
                raw / f"vqacp_v2/vqacp_v2_{split}_questions.json",
                [questions[n] for n in split_rows],
                coco,
            ),
            write_vqacp_annotations(
                raw / f"vqacp_v2/vqacp_v2_{split}_annotations.json",
                [annotations[n] for n in split_rows],
                coco,
            ),
        ]
    return written


def _write_hat(
    raw: Path, question_ids: Mapping[str, list[int]], unmatched: Mapping[str, int], seed: int
) -> list[Path]:
    """``vqahat_train.zip`` (1 map per question) and ``vqahat_val.zip`` (3 maps per question),
    each with one extra question id that is in no split."""
    written = []
    for index, (part, per_question) in enumerate((("train", 1), ("val", 3))):
        maps = make_hat_maps(
            [*question_ids[part], unmatched[part]],
            maps_per_question=per_question,
            size=_HAT_SIZES[part],
            seed=seed + index,
        )
        members = {f"vqahat_{part}/{name}": m for name, m in maps.items()}
        written.append(write_hat_zip(raw / f"vqahat/vqahat_{part}.zip", members))
    return written


def write_fixture_tree(
    data_dir: str | os.PathLike[str],
    *,
    num_images: int = 12,
    questions_per_image: int = 4,
    adaptive: bool = False,
    feature_dim: int = 2048,
    seed: int = 0,
    overwrite: bool = False,
    coco: bool = True,
) -> dict[str, Path]:
    """Writes a tiny raw tree in exactly the raw layout and formats (see the module docstring).

    Prepare it with ``min_answer_count=FIXTURE_MIN_ANSWER_COUNT`` (``--min-answer-count 2``).
    With the defaults (12 images, 4 questions each: 48 questions) it takes well under a
    second and about 5 MB (11 MB with ``adaptive``).

    Args:
        data_dir: The data folder; the files go to ``data_dir/raw/``, ``README.txt`` to
            ``data_dir``.
        num_images: Images (at least 3; every third is a val2014 image).
        questions_per_image: Questions per image (1..80).
        adaptive: Also write the adaptive (10-100 boxes) TSVs of the same images.
        feature_dim: D of the features (2048 like the real files).
        seed: Seed of every random choice (the tree is a function of the arguments).
        overwrite: Write even if ``raw/`` already holds files (files of the same names are
            replaced, others are left).
        coco: Also write the COCO captioning files of the same images (``raw/coco/``; the
            VQA files do not change).

    Returns:
        Every written file: path relative to ``data_dir`` (posix) -> absolute path.

    Raises:
        ValueError: For impossible sizes.
        FileExistsError: When ``raw/`` already holds files and ``overwrite`` is False.
    """
    data_dir = Path(data_dir)
    _check_arguments(data_dir, num_images, questions_per_image, feature_dim, overwrite)
    raw = data_dir / "raw"
    rng = np.random.default_rng(seed)
    seeds = [int(s) for s in rng.integers(2**31, size=2)]

    images = _images(num_images, feature_dim, rng)
    image_ids = [image[0] for image in images]
    subtype_of = {i: "val2014" if n % 3 == 2 else "train2014" for n, i in enumerate(image_ids)}
    questions, annotations = _select_examples(image_ids, questions_per_image, seeds[0])
    by_coco = {
        subtype: [n for n, q in enumerate(questions) if subtype_of[q["image_id"]] == subtype]
        for subtype in ("train2014", "val2014")
    }
    cp = dict(zip(("train", "test"), _vqacp_split(questions, annotations, seed), strict=True))
    with_maps = _hat_questions(len(questions), [*cp.values(), *by_coco.values()], rng)
    hat_ids = {
        part: [
            q["question_id"]
            for q in map(questions.__getitem__, with_maps)
            if subtype_of[q["image_id"]] == subtype
        ]
        for part, subtype in (("train", "train2014"), ("val", "val2014"))
    }
    unmatched = {"train": image_ids[0] * 1000 + 999, "val": image_ids[-1] * 1000 + 998}

    written = [
        *_write_features(raw, images, adaptive, rng),
        *_write_vqa_v2(raw, questions, annotations, by_coco),
        *_write_vqacp(raw, questions, annotations, cp, subtype_of),
        *_write_hat(raw, hat_ids, unmatched, seeds[1]),
        write_glove(raw / "glove/glove.6B.300d.txt", _glove_vectors(questions, rng)),
    ]
    if coco:
        coco_seed = int(np.random.default_rng([seed, _COCO_STREAM]).integers(2**31))
        written += write_coco_files(raw, images, subtype_of, coco_seed)
    facts = {
        "seed": seed,
        "images": num_images,
        "feature_dim": feature_dim,
        "adaptive": adaptive,
        "train2014": sum(s == "train2014" for s in subtype_of.values()),
        "val2014": sum(s == "val2014" for s in subtype_of.values()),
        "questions": len(questions),
        "cp_train": len(cp["train"]),
        "cp_test": len(cp["test"]),
        "hat": len(with_maps),
        "unmatched": len(unmatched),
        "coco": coco,
    }
    written.append(write_text(data_dir / "README.txt", _readme(data_dir, facts)))
    return {path.relative_to(data_dir).as_posix(): path for path in written}
