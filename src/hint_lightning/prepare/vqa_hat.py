"""VQA-HAT human attention maps -> human importance of every proposal (and the controls).

Sources: ``vqahat_train.zip`` / ``vqahat_val.zip`` as distributed, or the folders they extract
to. They hold grayscale PNGs named ``{question_id}_{k}.png`` (one map per train question,
``k = 1``; three per val question, ``k = 1, 2, 3``), each at its own resolution.

Member names: only the base name counts (``vqahat_train/123_1.png`` is question 123, map 1).
Directories, anything under ``__MACOSX/`` and hidden files (base name starting with ``.``)
are skipped; any other name that is not ``{digits}_{digits}.png`` (extension in any case) is
an error that names the offending members, as is the same ``(question_id, k)`` twice.

Importance of a question (:func:`hat_importance`): each map is scaled to [0, 1] (8-bit /255,
16-bit /65535), resized to the image's (width, height) with PIL's bilinear filter on float32
(antialiased when shrinking), the maps are averaged, and every proposal box is scored with
:func:`hint_lightning.data.importance.proposal_importance`.

Importance store (:func:`write_importance_store`, layout in :mod:`hint_lightning.prepare`):
``human`` as above; ``one_minus = 1 - human`` on the image's real proposals; ``random``: a
fixed U[0, 1) value per (question, proposal) given by :func:`random_importance` (a
counter-based hash of ``(seed, question_id, proposal index)``, so a question gets the same
random importance in every store built with that seed, whatever the order or number of
questions). All three are 0 beyond an image's number of proposals and for questions without
a map.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import h5py
import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hint_lightning.data.importance import average_attention_maps, proposal_importance
from hint_lightning.prepare.vqa_questions import describe_sources
from hint_lightning.utils.io import atomic_path, write_json

__all__ = [
    "IMPORTANCE_STORE_VERSION",
    "FeatureBoxes",
    "HatSource",
    "format_hat_coverage",
    "hat_coverage",
    "hat_importance",
    "iter_hat_maps",
    "map_to_unit",
    "random_importance",
    "resize_map",
    "write_hat_coverage",
    "write_importance_store",
]

IMPORTANCE_STORE_VERSION: Final = 1
"""``format_version`` attribute of the importance stores written here."""

_MAP_NAME: Final = re.compile(r"^(\d+)_(\d+)\.png$", re.IGNORECASE)
_ROW_BLOCK: Final = 4096
"""Rows of the importance store written at once (bounds memory)."""
_CHUNK_ROWS: Final = 256
"""HDF5 chunk height of the importance arrays (gzip-compressed: they are mostly zeros)."""
_MAX_LISTED: Final = 5


class FeatureBoxes(Protocol):
    """What the importance store needs of a feature store
    (:class:`hint_lightning.data.feature_store.FeatureStore`)."""

    max_boxes: int

    def __contains__(self, image_id: object) -> bool:
        """Whether the store has the image."""
        ...

    def image_size(self, image_id: int) -> tuple[int, int]:
        """``(width, height)`` of the image in pixels."""
        ...

    def boxes(self, image_id: int) -> np.ndarray:
        """[n, 4] float32 proposal boxes x1, y1, x2, y2 in pixels."""
        ...


# --------------------------------------------------------------------------------------------
# Reading the maps.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    """One map file: its question id, its number ``k`` and its name in the source."""

    question_id: int
    k: int
    name: str


def _skipped(name: str) -> bool:
    """Directories, ``__MACOSX`` entries and hidden files are not maps."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return name.endswith("/") or not parts or "__MACOSX" in parts or parts[-1].startswith(".")


def _parse_members(names: Iterable[str], source: Path) -> list[_Member]:
    """Parses member names into maps; skips non-maps (see module docstring).

    Raises:
        ValueError: Naming the source and the names that match no map pattern.
    """
    members, bad = [], []
    for name in names:
        if _skipped(name):
            continue
        match = _MAP_NAME.match(name.replace("\\", "/").rsplit("/", 1)[-1])
        if match is None:
            bad.append(name)
        else:
            members.append(_Member(int(match.group(1)), int(match.group(2)), name))
    if bad:
        shown = ", ".join(repr(n) for n in bad[:_MAX_LISTED])
        raise ValueError(
            f"{source}: {len(bad)} member(s) not named '{{question_id}}_{{k}}.png': {shown}"
        )
    return members


def _group(members: Iterable[_Member], source: Path) -> dict[int, list[_Member]]:
    """``{question_id: members sorted by k}``, question ids ascending.

    Raises:
        ValueError: If a (question id, k) appears twice.
    """
    groups: dict[int, dict[int, _Member]] = {}
    for member in members:
        group = groups.setdefault(member.question_id, {})
        if member.k in group:
            raise ValueError(
                f"{source}: map {member.k} of question {member.question_id} appears twice: "
                f"{group[member.k].name!r} and {member.name!r}"
            )
        group[member.k] = member
    return {qid: [group[k] for k in sorted(group)] for qid, group in sorted(groups.items())}


def _decode_png(data: bytes, source: Path, name: str) -> np.ndarray:
    """Decodes a PNG into a 2-D array (uint8; uint16 for 16-bit grayscale).

    Raises:
        ValueError: Naming the source and the member if the data cannot be decoded.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode.startswith("I;16"):
                return np.asarray(image, dtype=np.uint16)
            if image.mode in ("I", "F"):
                return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
            return np.asarray(image if image.mode == "L" else image.convert("L"), dtype=np.uint8)
    except Exception as error:  # PIL raises many types for corrupt data
        raise ValueError(f"{source}: cannot read the PNG {name!r} ({error})") from error


class HatSource:
    """One VQA-HAT source (zip or folder): its map names, grouped, and their decoding.

    Only the names are read when it is opened; :meth:`read` decodes the maps of one
    question. Use it as a context manager (closes the zip).

    Args:
        path: ``vqahat_train.zip`` / ``vqahat_val.zip`` or an extracted folder.

    Raises:
        FileNotFoundError: If the path does not exist.
        ValueError: If a zip is not a zip file or member names are malformed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            names = [
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            ]
        elif self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as error:
                raise ValueError(f"{self.path}: not a zip file ({error})") from error
            names = [info.filename for info in self._zip.infolist() if not info.is_dir()]
        else:
            raise FileNotFoundError(f"VQA-HAT source not found: {self.path}")
        self.groups: dict[int, list[_Member]] = _group(_parse_members(names, self.path), self.path)

    @property
    def num_maps(self) -> int:
        """The number of map files."""
        return sum(len(group) for group in self.groups.values())

    def read(self, question_id: int) -> list[np.ndarray]:
        """The maps of one question, sorted by ``k``, each a 2-D uint8 (or uint16) array."""
        maps = []
        for member in self.groups[question_id]:
            if self._zip is not None:
                try:
                    data = self._zip.read(member.name)
                except (zipfile.BadZipFile, OSError, EOFError) as error:
                    raise ValueError(
                        f"{self.path}: cannot read the member {member.name!r} ({error})"
                    ) from error
            else:
                data = (self.path / member.name).read_bytes()
            maps.append(_decode_png(data, self.path, member.name))
        return maps

    def close(self) -> None:
        """Closes the zip file (if any)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> HatSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def iter_hat_maps(source: str | os.PathLike[str]) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Streams the maps of a VQA-HAT zip or folder, grouped by question.

    The zip is never extracted: the names are listed first, then the maps of one question at
    a time are decoded.

    Args:
        source: ``vqahat_train.zip`` / ``vqahat_val.zip`` or an extracted folder.

    Yields:
        ``(question_id, maps)`` in ascending question id; ``maps`` are the question's maps
        sorted by ``k``, each a 2-D array [h, w] (uint8; uint16 for 16-bit PNGs) at its own
        resolution.

    Raises:
        ValueError: If a PNG is unreadable (naming the source and the member), a name is not
            ``{question_id}_{k}.png`` or a map appears twice.
    """
    with HatSource(source) as hat:
        for question_id in hat.groups:
            yield question_id, hat.read(question_id)


# --------------------------------------------------------------------------------------------
# Importance of one question.
# --------------------------------------------------------------------------------------------


def map_to_unit(attention_map: np.ndarray) -> np.ndarray:
    """An attention map as float64 values in [0, 1].

    Args:
        attention_map: [h, w] uint8 (divided by 255), uint16 (by 65535), bool, or float
            already in [0, 1].

    Returns:
        Float64 array [h, w].

    Raises:
        ValueError: For other dtypes, or floats outside [0, 1] or not finite.

    Example:
        >>> map_to_unit(np.array([[0, 51, 255]], dtype=np.uint8))
        array([[0. , 0.2, 1. ]])
    """
    array = np.asarray(attention_map)
    if array.dtype == np.uint8:
        return array / 255.0
    if array.dtype == np.uint16:
        return array / 65535.0
    if array.dtype == bool:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
        if not np.isfinite(array).all() or array.min(initial=0.0) < 0 or array.max(initial=0) > 1:
            raise ValueError("a float attention map must be finite and within [0, 1]")
        return array
    raise ValueError(f"unsupported attention-map dtype {array.dtype} (uint8, uint16, bool, float)")


def resize_map(attention_map: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map to an image's size (PIL, float32, ``BILINEAR``).

    PIL's bilinear filter has non-negative weights (a triangle kernel, widened to
    antialias when shrinking), so a non-negative map stays non-negative.

    Args:
        attention_map: [h, w] float array.
        image_size: ``(width, height)`` of the image.

    Returns:
        Array [height, width]: float32 when resized, the input unchanged when it already has
        that size.

    Raises:
        ValueError: If the width or height is not positive.

    Example:
        >>> resize_map(np.ones((2, 3)), (6, 4)).shape
        (4, 6)
    """
    width, height = (int(v) for v in image_size)
    if width < 1 or height < 1:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    array = np.asarray(attention_map)
    if array.shape == (height, width):
        return array
    resized = Image.fromarray(array.astype(np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.asarray(resized)


def hat_importance(
    maps: Sequence[np.ndarray], image_size: tuple[int, int], boxes: np.ndarray
) -> np.ndarray:
    """Human importance of every proposal of an image under a question's VQA-HAT maps.

    Args:
        maps: The question's maps (1 train map, 3 val maps), each [h, w] at its own
            resolution (see :func:`map_to_unit` for the dtypes).
        image_size: ``(width, height)`` of the image, the frame of the boxes.
        boxes: [n, 4] proposal boxes x1, y1, x2, y2 in image pixels.

    Returns:
        Float64 array [n] in [0, 1]: ``proposal_importance`` of the average of the maps,
        each scaled to [0, 1] and resized to the image.

    Example:
        >>> hat = np.zeros((2, 2), dtype=np.uint8)
        >>> hat[0, 0] = 255  # attention on the top-left quarter
        >>> boxes = np.array([[0, 0, 20, 10], [20, 10, 40, 20]], dtype=np.float32)
        >>> hat_importance([hat], (40, 20), boxes).round(3)
        array([0.907, 0.045])
    """
    resized = [resize_map(map_to_unit(m), image_size) for m in maps]
    attention = resized[0] if len(resized) == 1 else average_attention_maps(resized)
    return proposal_importance(attention, boxes)


# --------------------------------------------------------------------------------------------
# Random control.
# --------------------------------------------------------------------------------------------


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer, element-wise on uint64 (wrapping arithmetic)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_importance(question_ids: np.ndarray, num_proposals: int, seed: int = 0) -> np.ndarray:
    """Fixed random importance: U[0, 1) per (question, proposal), from ``seed``.

    Value ``[q, j]`` depends only on ``(seed, question_ids[q], j)`` (SplitMix64 hashing), so it
    does not change with the order or the number of questions or with ``num_proposals``.

    Args:
        question_ids: [Q] integer question ids (>= 0).
        num_proposals: M, proposals per question.
        seed: Seed (>= 0).

    Returns:
        Float32 array [Q, M] with values in [0, 1) (multiples of 2^-24).

    Example:
        >>> a = random_importance(np.array([5, 7]), 3, seed=1)
        >>> b = random_importance(np.array([7]), 4, seed=1)
        >>> bool((a[1] == b[0, :3]).all()), a.shape, a.dtype
        (True, (2, 3), dtype('float32'))
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    qids = np.asarray(question_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = _splitmix64(_splitmix64(np.array([seed], dtype=np.uint64)) ^ qids)
        columns = np.arange(1, num_proposals + 1, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
        bits = _splitmix64(key[:, None] ^ columns[None, :])
    return ((bits >> np.uint64(40)).astype(np.float64) * 2.0**-24).astype(np.float32)


# --------------------------------------------------------------------------------------------
# The importance store.
# --------------------------------------------------------------------------------------------


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``(question_id [Q], image_id [Q], feature store name)`` of a split store."""
    with h5py.File(path, "r") as handle:
        return (
            handle["question_id"][()].astype(np.int64),
            handle["image_id"][()].astype(np.int64),
            str(handle.attrs["feature_store"]),
        )


def _check_store_name(feature_store: object, expected: str, split_store: Path) -> None:
    """The feature store's file must be the one the split store was built for (if known)."""
    path = getattr(feature_store, "path", None)
    if path is not None and Path(path).stem != expected:
        raise ValueError(f"{split_store} was built for the feature store {expected!r}, got {path}")


def _question_importance(
    feature_store: FeatureBoxes, image_id: int, maps: list[np.ndarray], question_id: int
) -> np.ndarray:
    """Human importance [n] of the proposals of a question's image (float32)."""
    if image_id not in feature_store:
        raise ValueError(
            f"image {image_id} of question {question_id} is not in the feature store "
            f"{getattr(feature_store, 'path', feature_store)}"
        )
    boxes = np.asarray(feature_store.boxes(image_id))
    size = feature_store.image_size(image_id)
    return hat_importance(maps, size, boxes).astype(np.float32)


def _progress_bar() -> Progress:
    """A rich progress bar for the importance pass."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def _human_rows(
    sources: Sequence[HatSource],
    rows: Mapping[int, int],
    image_ids: np.ndarray,
    feature_store: FeatureBoxes,
    progress: bool,
) -> dict[int, np.ndarray]:
    """``{row: human importance [n]}`` for the split's questions that have maps.

    Raises:
        ValueError: If a question has maps in two sources.
    """
    human: dict[int, np.ndarray] = {}
    origin: dict[int, Path] = {}
    total = sum(len(source.groups) for source in sources)
    bar = _progress_bar() if progress else None
    task = bar.add_task("VQA-HAT maps", total=total) if bar is not None else None
    if bar is not None:
        bar.start()
    try:
        for source in sources:
            for question_id in source.groups:
                if bar is not None and task is not None:
                    bar.advance(task)
                row = rows.get(question_id)
                if row is None:
                    continue
                if row in human:
                    raise ValueError(
                        f"question {question_id} has maps in both {origin[row]} and {source.path}"
                    )
                maps = source.read(question_id)
                human[row] = _question_importance(
                    feature_store, int(image_ids[row]), maps, question_id
                )
                origin[row] = source.path
    finally:
        if bar is not None:
            bar.stop()
    return human


def _fill_block(
    start: int,
    stop: int,
    max_boxes: int,
    human: Mapping[int, np.ndarray],
    random_rows: Mapping[int, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense ``human``, ``random``, ``one_minus`` [stop - start, M] for rows start:stop."""
    shape = (stop - start, max_boxes)
    block_human, block_random, block_minus = (np.zeros(shape, np.float32) for _ in range(3))
    for row in range(start, stop):
        values = human.get(row)
        if values is None:
            continue
        n = values.shape[0]
        block_human[row - start, :n] = values
        block_minus[row - start, :n] = 1.0 - values
        block_random[row - start, :n] = random_rows[row][:n]
    return block_human, block_random, block_minus


def _write_importance(
    path: Path,
    question_ids: np.ndarray,
    human: Mapping[int, np.ndarray],
    max_boxes: int,
    seed: int,
    attrs: Mapping[str, Any],
) -> None:
    """Writes the importance store atomically, in blocks of rows."""
    num_questions = question_ids.shape[0]
    matched = np.array(sorted(human), dtype=np.int64)
    random_matrix = random_importance(question_ids[matched], max_boxes, seed)
    random_rows = {int(row): random_matrix[i] for i, row in enumerate(matched)}
    has_importance = np.zeros(num_questions, dtype=bool)
    has_importance[matched] = True
    chunks = (max(1, min(_CHUNK_ROWS, num_questions)), max(1, max_boxes))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("question_id", data=question_ids)
        handle.create_dataset("has_importance", data=has_importance)
        datasets = [
            handle.create_dataset(
                name,
                shape=(num_questions, max_boxes),
                dtype=np.float32,
                chunks=chunks if num_questions and max_boxes else None,
                compression="gzip" if num_questions and max_boxes else None,
                fillvalue=0.0,
            )
            for name in ("human", "random", "one_minus")
        ]
        for start in range(0, num_questions, _ROW_BLOCK):
            stop = min(start + _ROW_BLOCK, num_questions)
            blocks = _fill_block(start, stop, max_boxes, human, random_rows)
            for dataset, block in zip(datasets, blocks, strict=True):
                dataset[start:stop] = block
        for name, value in attrs.items():
            handle.attrs[name] = value


def write_importance_store(
    out_path: str | os.PathLike[str],
    split_store_path: str | os.PathLike[str],
    hat_sources: Sequence[str | os.PathLike[str]],
    feature_store: FeatureBoxes,
    *,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Writes the importance store of one split (layout: :mod:`hint_lightning.prepare`).

    Arrays, aligned with the split store's questions (``M = feature_store.max_boxes``):
    ``question_id [Q] int64``, ``has_importance [Q] bool``, ``human``, ``random``,
    ``one_minus`` ``[Q, M] float32`` (see the module docstring). Attributes:
    ``format_version``, ``feature_store`` (the split store's), ``seed``, ``sources`` (JSON:
    the HAT sources, then the split store, see
    :func:`~hint_lightning.prepare.vqa_questions.describe_sources`). Written to a temporary
    file and renamed.

    Args:
        out_path: The ``<split>_importance.h5`` file.
        split_store_path: The split store whose questions to cover.
        hat_sources: VQA-HAT zips or folders (train and val); maps of questions outside the
            split are skipped without being decoded.
        feature_store: The feature store of the split's images.
        seed: Seed of the random control (>= 0).
        progress: Show a rich progress bar.

    Returns:
        ``{"path", "questions", "with_importance", "maps", "hat_questions", "unmatched"}``:
        ``maps`` counts the map files, ``hat_questions`` the questions with maps over all
        sources and ``unmatched`` those of them not in this split.

    Raises:
        ValueError: If a question has maps in two sources, a matched question's image is
            not in the feature store, a PNG is unreadable, or the feature store is not the
            one the split store names.
    """
    split_store_path = Path(split_store_path)
    question_ids, image_ids, store_name = _read_split(split_store_path)
    _check_store_name(feature_store, store_name, split_store_path)
    rows = {int(qid): row for row, qid in enumerate(question_ids)}
    hats = [HatSource(path) for path in hat_sources]
    try:
        human = _human_rows(hats, rows, image_ids, feature_store, progress)
        maps = sum(hat.num_maps for hat in hats)
        hat_questions = sum(len(hat.groups) for hat in hats)
    finally:
        for hat in hats:
            hat.close()
    attrs = {
        "format_version": IMPORTANCE_STORE_VERSION,
        "feature_store": store_name,
        "seed": int(seed),
        "sources": json.dumps(describe_sources([*hat_sources, split_store_path])),
    }
    _write_importance(
        Path(out_path), question_ids, human, int(feature_store.max_boxes), seed, attrs
    )
    return {
        "path": str(out_path),
        "questions": int(question_ids.shape[0]),
        "with_importance": len(human),
        "maps": maps,
        "hat_questions": hat_questions,
        "unmatched": hat_questions - len(human),
    }


# --------------------------------------------------------------------------------------------
# Coverage report.
# --------------------------------------------------------------------------------------------


def _split_question_ids(path: Path) -> np.ndarray:
    """The sorted question ids of a split store."""
    with h5py.File(path, "r") as handle:
        return np.sort(handle["question_id"][()].astype(np.int64))


def hat_coverage(
    hat_sources: Sequence[str | os.PathLike[str]],
    split_stores: Mapping[str, str | os.PathLike[str]],
) -> dict[str, Any]:
    """Which VQA-HAT maps match which split, and which match none (only names are read).

    Unmatched maps are expected (on the real data a few hundred of ~60k maps match no VQA-CP
    v2 question) and are reported, not raised.

    Args:
        hat_sources: VQA-HAT zips or folders.
        split_stores: Split name -> split store file, e.g. ``{"train": ..., "test": ...}``.

    Returns:
        ``{"sources": [{"name", "maps", "questions"}], "maps": int, "questions": int,
        "matched": {split: int}, "matched_any": int,
        "unmatched": {"count": int, "question_ids": [sorted ints]}}`` where ``maps`` counts
        map files and ``questions`` distinct question ids with maps.
    """
    per_source, question_ids, maps = [], set(), 0
    for path in hat_sources:
        with HatSource(path) as hat:
            per_source.append(
                {"name": hat.path.name, "maps": hat.num_maps, "questions": len(hat.groups)}
            )
            maps += hat.num_maps
            question_ids.update(hat.groups)
    hat_ids = np.array(sorted(question_ids), dtype=np.int64)
    matched_any = np.zeros(hat_ids.shape[0], dtype=bool)
    matched: dict[str, int] = {}
    for split, path in split_stores.items():
        in_split = np.isin(hat_ids, _split_question_ids(Path(path)))
        matched[split] = int(in_split.sum())
        matched_any |= in_split
    unmatched = hat_ids[~matched_any]
    return {
        "sources": per_source,
        "maps": maps,
        "questions": int(hat_ids.shape[0]),
        "matched": matched,
        "matched_any": int(matched_any.sum()),
        "unmatched": {"count": int(unmatched.shape[0]), "question_ids": unmatched.tolist()},
    }


def format_hat_coverage(report: Mapping[str, Any]) -> str:
    """A one-paragraph summary of a :func:`hat_coverage` report.

    Example:
        >>> report = {
        ...     "sources": [{"name": "vqahat_val.zip", "maps": 6, "questions": 2}],
        ...     "maps": 6, "questions": 2, "matched": {"train": 1, "test": 0},
        ...     "matched_any": 1, "unmatched": {"count": 1, "question_ids": [42]},
        ... }
        >>> for part in format_hat_coverage(report).split("; "):
        ...     print(part)
        VQA-HAT coverage: 6 maps of 2 questions (vqahat_val.zip: 6 maps, 2 questions)
        matched train 1, test 0
        1 question(s) with maps match no split (e.g. 42).
    """
    sources = ", ".join(
        f"{s['name']}: {s['maps']} maps, {s['questions']} questions" for s in report["sources"]
    )
    matched = ", ".join(f"{split} {count}" for split, count in report["matched"].items())
    unmatched = report["unmatched"]
    if unmatched["count"]:
        examples = ", ".join(str(q) for q in unmatched["question_ids"][:_MAX_LISTED])
        more = ", ..." if unmatched["count"] > _MAX_LISTED else ""
        tail = f"{unmatched['count']} question(s) with maps match no split (e.g. {examples}{more})."
    else:
        tail = "every question with maps matches a split."
    return (
        f"VQA-HAT coverage: {report['maps']} maps of {report['questions']} questions "
        f"({sources}); matched {matched}; {tail}"
    )


def write_hat_coverage(
    out_path: str | os.PathLike[str],
    hat_sources: Sequence[str | os.PathLike[str]],
    split_stores: Mapping[str, str | os.PathLike[str]],
) -> str:
    """Writes the :func:`hat_coverage` report as JSON (atomically) and returns its summary.

    Args:
        out_path: E.g. ``prepared/vqa/vqacp_v2/hat_coverage.json``.
        hat_sources: VQA-HAT zips or folders.
        split_stores: Split name -> split store file.

    Returns:
        The one-paragraph summary (:func:`format_hat_coverage`) to print.
    """
    report = hat_coverage(hat_sources, split_stores)
    write_json(out_path, report)
    return format_hat_coverage(report)
