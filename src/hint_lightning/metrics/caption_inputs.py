"""Validation of the caption metrics' inputs: one caption per image, references, line breaks."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from numbers import Integral
from typing import Any, Final, TypeVar

__all__ = [
    "JAVA_LINE_BREAKS",
    "check_one_line",
    "check_strings",
    "check_text",
    "collect_results",
    "references_of",
    "tokenized_inputs",
]

K = TypeVar("K", bound=Hashable)

# Java's PTBTokenizer (-preserveLines) ends a line at each of these; the official code only
# replaces "\n" by a space, so any other would shift every later caption onto the wrong image.
JAVA_LINE_BREAKS: Final[tuple[str, ...]] = ("\n", "\r", "\x0b", "\x0c", "\u2028", "\u2029")


def check_text(text: object, what: str) -> str:
    """Return ``text`` if it is a str, else raise a TypeError naming ``what``."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}: {text!r}")
    return text


def check_strings(values: object, what: str) -> list[str]:
    """Return ``values`` as a list of str, requiring a non-empty sequence of str."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must be a sequence of str, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"{what} must not be empty")
    return [check_text(value, f"item {i} of {what}") for i, value in enumerate(values)]


def check_one_line(texts: Mapping[Any, Sequence[str]], what: str) -> None:
    """Reject tokenized strings with a line break (one would desynchronize METEOR's protocol)."""
    for image_id, strings in texts.items():
        for text in strings:
            if any(brk in text for brk in JAVA_LINE_BREAKS):
                raise ValueError(
                    f"{what} of image {image_id!r} contains a line break: {text!r}; tokenized "
                    "captions must be single lines of space-separated tokens"
                )


def _image_id(value: object, position: int) -> int:
    """The image id of ``results[position]`` as an int (bools and non-integers rejected)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(
            f"results[{position}]['image_id'] must be an int, got {type(value).__name__}: {value!r}"
        )
    return int(value)


def collect_results(results: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """``{image id: caption}`` of the results, validated, in increasing image-id order."""
    captions: dict[int, str] = {}
    for position, result in enumerate(results):
        if not isinstance(result, Mapping) or not {"image_id", "caption"} <= result.keys():
            raise ValueError(
                f"results[{position}] must be a mapping with keys 'image_id' and 'caption', "
                f"got {result!r}"
            )
        image_id = _image_id(result["image_id"], position)
        caption = check_text(result["caption"], f"the caption of image {image_id}")
        if image_id in captions:
            raise ValueError(
                f"image {image_id} has two results ({captions[image_id]!r} and {caption!r}); "
                "coco-caption scores exactly one caption per image"
            )
        captions[image_id] = caption
    if not captions:
        raise ValueError("no results to score")
    return dict(sorted(captions.items()))


def references_of(image_id: Hashable, references: Mapping[Any, Any]) -> list[str]:
    """The validated references of one evaluated image."""
    if image_id not in references:
        hint = ""
        if str(image_id) in references:
            hint = f" (there is a key {str(image_id)!r}: use the same key type as the results)"
        raise ValueError(f"image {image_id!r} has a result but no references{hint}")
    return check_strings(references[image_id], f"the references of image {image_id!r}")


def tokenized_inputs(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Sequence[str]]
) -> tuple[dict[K, list[str]], dict[K, list[str]]]:
    """Validated copies of tokenized ``gts`` and ``res``, restricted to and ordered as ``res``."""
    if not res:
        raise ValueError("no results to score")
    res_out: dict[K, list[str]] = {}
    for image_id, captions in res.items():
        checked = check_strings(captions, f"the result of image {image_id!r}")
        if len(checked) != 1:
            raise ValueError(
                f"image {image_id!r} has {len(checked)} results; coco-caption scores exactly "
                "one caption per image"
            )
        res_out[image_id] = checked
    gts_out = {image_id: references_of(image_id, gts) for image_id in res_out}
    check_one_line(gts_out, "a reference")
    check_one_line(res_out, "the result")
    return gts_out, res_out
