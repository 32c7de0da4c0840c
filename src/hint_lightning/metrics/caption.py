"""The official coco-caption metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and opt-in SPICE).

A validated wrapper around pycocoevalcap (the Python 3 port of tylin/coco-caption) that runs the
pipeline of the official ``COCOEvalCap.evaluate``:

1. the references and the results are tokenized, in two separate calls, by coco-caption's
   ``PTBTokenizer`` (Stanford CoreNLP 3.4.1 run with Java, ``-preserveLines -lowerCase``, then
   punctuation tokens removed);
2. pycocoevalcap's ``Bleu(4)`` (``closest`` reference length), ``Meteor`` (meteor-1.5.jar, Java),
   ``Rouge`` (ROUGE-L, beta 1.2) and ``Cider`` score the tokenized captions. coco-caption's
   "CIDEr" is CIDEr-D (clipped n-gram counts, Gaussian length penalty with sigma 6, times 10);
3. only the images that have a result are evaluated (``COCOEvalCap.params['image_id'] =
   cocoRes.getImgIds()``), and CIDEr-D's document frequencies come from the references of exactly
   those images. CIDEr therefore depends on the evaluated set: a lone image always scores 0.

Java runs the tokenizer, METEOR and SPICE; :func:`require_java` checks for it with a clear message
before pycocoevalcap would fail obscurely (:mod:`hint_lightning.metrics.ptb_tokenizer`; the
scorers: :mod:`hint_lightning.metrics.caption_scorers`). :func:`score_tokenized` is the
Java-free path: BLEU, ROUGE-L and CIDEr-D of already tokenized captions (METEOR on request).

Differences from the official code, none of which changes a score that the official code computes
correctly:

* images are scored in increasing image-id order, so the result does not depend on the order of
  the results (the official order is that of the annotation file's images; a different order can
  only change the last bits of a float sum);
* the other line terminators of Java's tokenizer (``"\\r"``, ``"\\v"``, ``"\\f"``, U+2028, U+2029)
  are replaced by spaces, as ``"\\n"`` is; the official code would shift every later caption onto
  the wrong image, silently. The tokenizer's output is checked against its input as well;
* nothing is printed by BLEU, and the METEOR process is stopped when scoring ends;
* the tokenizer's temporary file goes to a temporary folder of ours, not into the installed
  package (the official code fails on a read-only install).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from hint_lightning.metrics.caption_inputs import (
    K,
    check_one_line,
    collect_results,
    references_of,
    tokenized_inputs,
)
from hint_lightning.metrics.caption_scorers import (
    CaptionEvaluation,
    SpiceUnavailableError,
    ensure_spice_models,
    evaluate,
    scorers,
)
from hint_lightning.metrics.ptb_tokenizer import (
    JavaNotFoundError,
    ptb_tokenize,
    require_java,
    run_ptb_tokenizer,
)
from hint_lightning.stores.captions import coco_references

__all__ = [
    "CAPTION_METRICS",
    "JAVA_FREE_METRICS",
    "CaptionEvaluation",
    "JavaNotFoundError",
    "SpiceUnavailableError",
    "coco_references",
    "evaluate_captions",
    "evaluate_tokenized",
    "ptb_tokenize",
    "require_java",
    "score_captions",
    "score_tokenized",
]

CAPTION_METRICS: Final[tuple[str, ...]] = (
    "Bleu_1",
    "Bleu_2",
    "Bleu_3",
    "Bleu_4",
    "METEOR",
    "ROUGE_L",
    "CIDEr",
)
"""The metrics of :func:`score_captions`, in coco-caption's order (``"SPICE"`` is opt-in)."""

JAVA_FREE_METRICS: Final[tuple[str, ...]] = tuple(m for m in CAPTION_METRICS if m != "METEOR")
"""The metrics of :func:`score_tokenized` without METEOR: they need no Java."""


def evaluate_tokenized(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Sequence[str]], *, meteor: bool = False
) -> CaptionEvaluation:
    """Corpus and per-image scores of already tokenized captions (no Java unless ``meteor``).

    Args:
        gts: image id -> tokenized references (lower-case, space-separated tokens, no
            punctuation: the output of :func:`ptb_tokenize`). Images without a result are
            ignored.
        res: image id -> a list holding the one tokenized result caption of that image; every
            image of ``res`` is evaluated, in this order.
        meteor: also compute METEOR (needs Java).

    Returns:
        Bleu_1..4, ROUGE_L and CIDEr (plus METEOR), corpus-level and per image.

    Raises:
        ValueError: for an image of ``res`` without references, with an empty reference list,
            with not exactly one result, or for a string with a line break.
        TypeError: for a caption or reference that is not a str.
        JavaNotFoundError: if ``meteor`` and Java is missing.

    Examples:
        >>> gts = {1: ["a dog runs on the grass"], 2: ["a cat sleeps on a sofa"], 3: ["a horse"]}
        >>> res = {1: ["a dog runs on the grass"], 2: ["a cat on a sofa"], 3: ["a bird"]}
        >>> cider = evaluate_tokenized(gts, res).per_image_metric("CIDEr")
        >>> {image_id: round(score, 3) for image_id, score in cider.items()}
        {1: 10.0, 2: 4.4, 3: 0.0}
    """
    gts_checked, res_checked = tokenized_inputs(gts, res)
    if meteor:
        require_java()
    return evaluate(gts_checked, res_checked, scorers(meteor=meteor, spice=False))


def score_tokenized(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Sequence[str]], *, meteor: bool = False
) -> dict[str, float]:
    """Corpus scores of already tokenized captions: the Java-free path (no METEOR by default).

    Same scorers and document-frequency set as :func:`score_captions`, minus the tokenizer. See
    :func:`evaluate_tokenized` for the arguments and errors.

    Args:
        gts: image id -> tokenized references.
        res: image id -> ``[tokenized result caption]``.
        meteor: also compute METEOR (needs Java).

    Returns:
        ``{"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}`` (plus ``"METEOR"``)
        -> corpus score.

    Examples:
        >>> gts = {1: ["a dog runs on the grass", "a brown dog running"],
        ...        2: ["a cat sleeps on a sofa", "a cat is sleeping"],
        ...        3: ["two people ride horses", "people riding horses on a beach"]}
        >>> res = {1: ["a dog runs on the grass"], 2: ["a cat on a sofa"], 3: ["a horse"]}
        >>> scores = score_tokenized(gts, res)
        >>> [round(scores[metric], 3) for metric in ("Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr")]
        [0.855, 0.695, 0.708, 2.78]
        >>> score_tokenized({1: ["a dog"]}, {1: ["a dog"]})["CIDEr"]  # one image: idf all 0
        0.0
    """
    return evaluate_tokenized(gts, res, meteor=meteor).scores


def evaluate_captions(
    results: Sequence[Mapping[str, Any]],
    references: Mapping[int, Sequence[str]],
    *,
    spice: bool = False,
    tokenize: bool = True,
) -> CaptionEvaluation:
    """Corpus and per-image coco-caption scores of one caption per image (needs Java).

    Args:
        results: ``[{"image_id": int, "caption": str}, ...]``, one per image (the format of
            coco-caption result files); every image is evaluated.
        references: image id -> raw reference captions (e.g. :func:`coco_references`). Images
            without a result are ignored: they do not enter CIDEr-D's document frequencies.
        spice: also compute SPICE (downloads Stanford CoreNLP at first use).
        tokenize: run coco-caption's PTB tokenizer on captions and references first (the
            official pipeline). With ``False`` they must already be tokenized.

    Returns:
        Bleu_1..4, METEOR, ROUGE_L, CIDEr (and SPICE), corpus-level and per image (in
        increasing image-id order).

    Raises:
        ValueError: for a malformed result, an image with two results, a result without
            references, an empty reference list, or (``tokenize=False``) a line break.
        TypeError: for a non-int image id, or a caption or reference that is not a str.
        JavaNotFoundError: if Java is missing.
        SpiceUnavailableError: if ``spice`` and SPICE cannot run.
        RuntimeError: if the tokenizer's or METEOR's Java process fails.
    """
    res = {image_id: [caption] for image_id, caption in collect_results(results).items()}
    gts = {image_id: references_of(image_id, references) for image_id in res}
    if not tokenize:
        check_one_line(gts, "a reference")
        check_one_line(res, "the result")
    require_java()
    if spice:
        ensure_spice_models()  # fail before the long part
    if tokenize:
        gts, res = run_ptb_tokenizer(gts), run_ptb_tokenizer(res)
    return evaluate(gts, res, scorers(meteor=True, spice=spice))


def score_captions(
    results: Sequence[Mapping[str, Any]],
    references: Mapping[int, Sequence[str]],
    *,
    spice: bool = False,
    tokenize: bool = True,
) -> dict[str, float]:
    """The official coco-caption scores of one caption per image (needs Java).

    PTB tokenization, then BLEU-1..4, METEOR, ROUGE-L and CIDEr-D through pycocoevalcap's
    scorers, with CIDEr-D's document frequencies from the evaluated images: the numbers of
    ``COCOEvalCap.evaluate``. Per-image scores: :func:`evaluate_captions`.

    Args:
        results: ``[{"image_id": int, "caption": str}, ...]``, one per image.
        references: image id -> raw reference captions; images without a result are ignored.
        spice: also compute SPICE (downloads Stanford CoreNLP at first use).
        tokenize: run coco-caption's PTB tokenizer first (``False``: inputs already tokenized).

    Returns:
        ``{"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}`` (and
        ``"SPICE"``) -> corpus score.

    Raises:
        ValueError: for a malformed result, an image with two results, a result without
            references, an empty reference list, or (``tokenize=False``) a line break.
        TypeError: for a non-int image id, or a caption or reference that is not a str.
        JavaNotFoundError: if Java is missing.
        SpiceUnavailableError: if ``spice`` and SPICE cannot run.
        RuntimeError: if the tokenizer's or METEOR's Java process fails.
    """
    return evaluate_captions(results, references, spice=spice, tokenize=tokenize).scores
