"""Embedded smoke data for captioning: easy-VQA images with captions of their shape and color.

Nothing is downloaded: the images, proposals, features and human importance are those of the
easy-VQA-CP store (:mod:`hint_lightning.stores.easyvqa`, built from the ``easy-vqa`` PyPI
package on first use). Each easy-VQA image holds one colored shape; its color and shape are
recovered from the store's questions and answers (:func:`image_colors_and_shapes`), and the
image gets one caption per template of :data:`CAPTION_TEMPLATES` ("a red circle", "there is a
blue triangle in the image", ...): five captions per image, like COCO, which also serve as the
references of the caption metrics.

The visual word of every caption is its shape word; its category is the shape, and its human
importance is the store's importance of the proposals under the shape's blurred mask (the same
map the VQA demo uses). So every caption holds exactly one decision.

Splits (by image, fixed by ``split_seed``): the easy-VQA package's 4,000 train images give
train and val (a ``val_fraction`` carve-out), its 1,000 test images give test. Only a
``hinted_fraction`` of the training images carry human importance (like COCO images without
segmentations of a mentioned category, or VQA-HAT's partial coverage), and ``hinted_only``
trains on their captions only (the HINT fine-tuning protocol); val and test carry it on every
caption. ``limit_train_images`` and ``limit_eval_images`` take seeded subsets for quick runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import torch

from hint_lightning.data.caption_batch import CaptionDataInfo
from hint_lightning.data.caption_dataset import CaptionDataset, CaptionTable, TensorImages
from hint_lightning.data.caption_loading import CaptionDataModuleBase
from hint_lightning.prepare.easyvqa import ensure_store
from hint_lightning.stores.easyvqa import (
    COLOR_WORDS,
    SHAPE_WORDS,
    TEST_IMAGE_ID_OFFSET,
    EasyVQACPArrays,
    EasyVQACPParams,
    load_store,
)
from hint_lightning.text.tokens import BOS_INDEX, CAPTION_SPECIAL_TOKENS, EOS_INDEX, PAD_INDEX

__all__ = [
    "CAPTION_TEMPLATES",
    "EasyVQACaptionDataModule",
    "caption_vocab",
    "encode_image_captions",
    "image_colors_and_shapes",
]

CAPTION_TEMPLATES: Final[tuple[str, ...]] = (
    "a {color} {shape}",
    "there is a {color} {shape} in the image",
    "the image shows a {color} {shape}",
    "a {shape} that is {color}",
    "a picture of a {color} {shape}",
)
"""The captions of an image (the shape word is the visual word)."""

_NEGATIONS: Final = ("not", "no")
"""Question tokens that invert a yes/no answer ("is there not a red shape?")."""
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")


def _lookup(vocabulary: tuple[str, ...], words: tuple[str, ...]) -> np.ndarray:
    """``[V]`` index of each vocabulary entry in ``words``, -1 when absent."""
    index = {word: i for i, word in enumerate(words)}
    return np.array([index.get(entry, -1) for entry in vocabulary], dtype=np.int64)


def _votes(images: np.ndarray, values: np.ndarray, num_images: int, size: int) -> np.ndarray:
    """``[I, size]`` counts of ``values`` (``>= 0``) per image."""
    votes = np.zeros((num_images, size), dtype=np.int64)
    keep = values >= 0
    np.add.at(votes, (images[keep], values[keep]), 1)
    return votes


def image_colors_and_shapes(arrays: EasyVQACPArrays) -> tuple[np.ndarray, np.ndarray]:
    """The color and shape of every store image, recovered from its questions and answers.

    Evidence, per question: a color or shape *answer* ("what color is the circle?" -> red); the
    color or shape words of a question that is not yes/no ("what color is the triangle?"
    names the image's shape); and the words of a yes/no question whose answer says they are
    present ("is there a red shape?" yes, "is there not a circle?" no). Without any, an image
    whose yes/no answers rule out all shapes (colors) but one gets that one.

    Args:
        arrays: a loaded easy-VQA-CP store.

    Returns:
        ``(color [I], shape [I])`` indices into :data:`COLOR_WORDS` and :data:`SHAPE_WORDS`,
        -1 for an image without evidence.

    Raises:
        ValueError: when an image's evidence names two colors or two shapes.
    """
    tokens, answers = arrays.tokens, arrays.answer
    token_color = _lookup(arrays.tokens_vocab, COLOR_WORDS)[tokens].max(axis=1)
    token_shape = _lookup(arrays.tokens_vocab, SHAPE_WORDS)[tokens].max(axis=1)
    negated = np.isin(tokens, [arrays.tokens_vocab.index(w) for w in _NEGATIONS]).any(axis=1)
    answer_words = np.asarray(arrays.answers, dtype=object)[answers]
    yes_no = np.isin(answer_words, ["yes", "no"])
    present = ~yes_no | ((answer_words == "yes") != negated)
    answer_color = _lookup(arrays.answers, COLOR_WORDS)[answers]
    answer_shape = _lookup(arrays.answers, SHAPE_WORDS)[answers]

    num_images = len(arrays.image_id)
    image = arrays.image_index
    absent = yes_no & ~present
    results = []
    for from_answer, from_question, size, kind in (
        (answer_color, token_color, len(COLOR_WORDS), "colors"),
        (answer_shape, token_shape, len(SHAPE_WORDS), "shapes"),
    ):
        evidence = np.concatenate([from_answer, np.where(present, from_question, -1)])
        votes = _votes(np.concatenate([image, image]), evidence, num_images, size)
        conflicting = (votes > 0).sum(axis=1) > 1
        if conflicting.any():
            bad = int(np.argmax(conflicting))
            raise ValueError(
                f"easy-VQA image {int(arrays.image_id[bad])}: its questions name several {kind} "
                f"({votes[bad].tolist()})"
            )
        # Elimination: "is there a circle?" no, "is there a triangle?" no -> a rectangle.
        possible = _votes(image, np.where(absent, from_question, -1), num_images, size) == 0
        only = np.where(possible.sum(axis=1) == 1, possible.argmax(axis=1), -1)
        results.append(np.where(votes.any(axis=1), votes.argmax(axis=1), only))
    return results[0], results[1]


def caption_vocab() -> tuple[str, ...]:
    """The caption vocabulary: the special tokens, then every template word, sorted.

    Example:
        >>> vocab = caption_vocab()
        >>> vocab[:4], "circle" in vocab, "red" in vocab
        (('<pad>', '<bos>', '<eos>', '<unk>'), True, True)
    """
    words = {w for t in CAPTION_TEMPLATES for w in t.split() if not w.startswith("{")}
    return (*CAPTION_SPECIAL_TOKENS, *sorted(words | set(COLOR_WORDS) | set(SHAPE_WORDS)))


def encode_image_captions(
    colors: np.ndarray, shapes: np.ndarray, vocab: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Every caption of every image, encoded.

    Args:
        colors: ``[I]`` color indices.
        shapes: ``[I]`` shape indices.
        vocab: the caption vocabulary.

    Returns:
        ``(captions [I * P, L], shape_position [I * P], texts)``: P = one caption per template,
        image-major (captions ``i * P .. i * P + P - 1`` are image ``i``'s), ``<bos> .. <eos>``
        right-padded with 0; the position of the shape word in each row; ``texts[i]`` the P
        caption strings of image ``i`` (the references).

    Example:
        >>> vocab = caption_vocab()
        >>> captions, position, texts = encode_image_captions(np.array([5]), np.array([0]), vocab)
        >>> texts[0][0], [vocab[t] for t in captions[0] if t], int(position[0])
        ('a red circle', ['<bos>', 'a', 'red', 'circle', '<eos>'], 3)
    """
    index = {word: i for i, word in enumerate(vocab)}
    # Templates over the C x S (color, shape) combinations, then gathered per image.
    width = max(len(t.split()) for t in CAPTION_TEMPLATES) + 2
    table = np.full((len(COLOR_WORDS), len(SHAPE_WORDS), len(CAPTION_TEMPLATES), width), PAD_INDEX)
    positions = np.zeros((len(CAPTION_TEMPLATES),), dtype=np.int64)
    for t, template in enumerate(CAPTION_TEMPLATES):
        words = template.split()
        positions[t] = words.index("{shape}") + 1
        for c, color in enumerate(COLOR_WORDS):
            for s, shape in enumerate(SHAPE_WORDS):
                filled = [w.format(color=color, shape=shape) for w in words]
                table[c, s, t, : len(filled) + 2] = [
                    BOS_INDEX,
                    *map(index.__getitem__, filled),
                    EOS_INDEX,
                ]
    captions = table[colors, shapes].reshape(-1, width).astype(np.int64)
    position = np.tile(positions, len(colors))
    texts = [
        [t.format(color=COLOR_WORDS[c], shape=SHAPE_WORDS[s]) for t in CAPTION_TEMPLATES]
        for c, s in zip(colors.tolist(), shapes.tolist(), strict=True)
    ]
    return captions, position, texts


def _subset(rows: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """A sorted seeded subset of at most ``limit`` rows (all when None)."""
    if limit is None or limit >= len(rows):
        return rows
    return np.sort(rng.permutation(rows)[:limit])


class EasyVQACaptionDataModule(CaptionDataModuleBase):
    """Captions of easy-VQA images (module docstring), in memory, batched by tensor indexing.

    Args:
        data_dir: root data folder (the easy-VQA-CP store goes to ``<data_dir>/easyvqa_cp``).
        batch_size: global training batch size in captions.
        eval_batch_size: global evaluation batch size in captions.
        num_workers: DataLoader processes (0 is fastest: batches are index operations).
        shuffle: shuffle the training captions every epoch.
        split_seed: seed of the val carve-out, the hinted images and the limits.
        val_fraction: share of the package's training images held out as val.
        hinted_fraction: share of the training images whose captions carry human importance.
        hinted_only: train only on the hinted images' captions (HINT fine-tuning).
        max_decisions_per_caption: kept for interface parity with COCO (every caption has one
            decision here; 0 removes them).
        limit_train_images: keep a seeded subset of this many training images (None: all).
        limit_eval_images: keep a seeded subset of this many val and test images each.
        num_proposals: N, proposals per image (store parameter).
        blur_sigma: blur of the shape masks (store parameter).
        seed: seed of the proposals (store parameter).
        cache_dir: folder of the easy-VQA-CP stores; default ``<data_dir>/easyvqa_cp``.
        pin_memory: passed to the DataLoaders.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        num_workers: int = 0,
        shuffle: bool = True,
        split_seed: int = 0,
        val_fraction: float = 0.1,
        hinted_fraction: float = 1.0,
        hinted_only: bool = False,
        max_decisions_per_caption: int | None = None,
        limit_train_images: int | None = None,
        limit_eval_images: int | None = None,
        num_proposals: int = 24,
        blur_sigma: float = 3.0,
        seed: int = 0,
        cache_dir: str | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0 or not 0.0 <= hinted_fraction <= 1.0:
            raise ValueError(
                f"val_fraction must be in [0, 1) and hinted_fraction in [0, 1], got "
                f"{val_fraction}, {hinted_fraction}"
            )
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        self.save_hyperparameters()
        self.cache_dir = Path(cache_dir) if cache_dir else Path(data_dir) / "easyvqa_cp"
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.shuffle = shuffle
        self.pin_memory = pin_memory
        self.split_seed = split_seed
        self.val_fraction = val_fraction
        self.hinted_fraction = hinted_fraction
        self.hinted_only = hinted_only
        self.max_decisions_per_caption = max_decisions_per_caption
        self.limit_train_images = limit_train_images
        self.limit_eval_images = limit_eval_images
        self.params = EasyVQACPParams(num_proposals=num_proposals, blur_sigma=blur_sigma, seed=seed)
        self.info: CaptionDataInfo | None = None
        self._datasets: dict[str, CaptionDataset] = {}
        self._references: dict[str, dict[int, list[str]]] = {}
        self._device_batch_size = batch_size
        self._device_eval_batch_size = eval_batch_size

    def prepare_data(self) -> None:
        """Builds the easy-VQA-CP store if it is missing (a few seconds, no download)."""
        ensure_store(self.cache_dir, self.params)

    def _image_splits(self, arrays: EasyVQACPArrays, known: np.ndarray) -> dict[str, np.ndarray]:
        """Image rows of train, val, test and hinted (module docstring)."""
        rng = np.random.default_rng(self.split_seed)
        rows = np.flatnonzero(known)
        pool = rows[arrays.image_id[rows] < TEST_IMAGE_ID_OFFSET]
        order = rng.permutation(pool)
        num_val = int(np.floor(self.val_fraction * len(pool) + 0.5))
        val, train = np.sort(order[:num_val]), np.sort(order[num_val:])
        test = rows[arrays.image_id[rows] >= TEST_IMAGE_ID_OFFSET]
        hinted = _subset(train, int(np.floor(self.hinted_fraction * len(train) + 0.5)), rng)
        if self.hinted_only:
            train = hinted
        return {
            "train": _subset(train, self.limit_train_images, rng),
            "val": _subset(val, self.limit_eval_images, rng),
            "test": _subset(test, self.limit_eval_images, rng),
            "hinted": hinted,
        }

    def setup(self, stage: str | None = None) -> None:
        """Loads the store, captions every image and builds the datasets of every split.

        Raises:
            FileNotFoundError: when the store is missing (call :meth:`prepare_data` first).
        """
        self._set_batch_sizes()
        if self._datasets:
            return
        path = self.cache_dir / self.params.filename()
        if not path.is_file():
            raise FileNotFoundError(f"no easy-VQA-CP store at {path}: call prepare_data() first")
        arrays = load_store(path)
        colors, shapes = image_colors_and_shapes(arrays)
        known = (colors >= 0) & (shapes >= 0)
        vocab = caption_vocab()
        captions, position, texts = encode_image_captions(
            colors.clip(min=0), shapes.clip(min=0), vocab
        )
        per_image = len(CAPTION_TEMPLATES)
        splits = self._image_splits(arrays, known)
        images = TensorImages(torch.from_numpy(arrays.features), torch.from_numpy(arrays.boxes))
        importance = torch.from_numpy(arrays.human_importance)
        for split in SPLITS:
            image_rows = splits[split]
            rows = (image_rows[:, None] * per_image + np.arange(per_image)).reshape(-1)
            carries = np.isin(image_rows, splits["hinted"]) if split == "train" else True
            token_rows = np.full(captions[rows].shape, -1, dtype=np.int64)
            owner = np.repeat(image_rows, per_image)
            with_importance = np.broadcast_to(carries, image_rows.shape).repeat(per_image)
            hinted_rows = np.flatnonzero(with_importance)
            token_rows[hinted_rows, position[rows][hinted_rows]] = owner[hinted_rows]
            table = CaptionTable.build(
                captions[rows],
                owner,
                arrays.image_id[owner],
                token_rows,
                self.max_decisions_per_caption,
            )
            self._datasets[split] = CaptionDataset(table, images, importance)
            self._references[split] = {
                int(arrays.image_id[r]): texts[r] for r in image_rows.tolist()
            }
        self.info = CaptionDataInfo(
            vocab=vocab,
            feature_dim=int(arrays.features.shape[-1]),
            max_proposals=int(arrays.features.shape[1]),
            name="easyvqa_captions",
        )

    def references(self, split: str) -> dict[int, list[str]]:
        """Image id -> the reference captions of ``split`` (its images' five captions)."""
        if not self._references:
            raise RuntimeError("call prepare_data() and setup() first")
        return self._references[split]
