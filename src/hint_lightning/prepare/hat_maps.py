"""VQA-HAT human attention maps: reading them from the zips or folders, and scoring proposals.

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
:func:`hint_lightning.prepare.human_importance.proposal_importance`.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from hint_lightning.prepare.human_importance import average_attention_maps, proposal_importance

__all__ = ["HatSource", "hat_importance", "iter_hat_maps", "map_to_unit", "resize_map"]

_MAP_NAME: Final = re.compile(r"^(\d+)_(\d+)\.png$", re.IGNORECASE)
_MAX_LISTED: Final = 5


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
