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
before pycocoevalcap would fail obscurely. :func:`score_tokenized` is the Java-free path: BLEU,
ROUGE-L and CIDEr-D of already tokenized captions (METEOR on request).

Differences from the official code, none of which changes a score that the official code computes
correctly:

* images are scored in increasing image-id order, so the result does not depend on the order of
  the results (the official order is that of the annotation file's images; a different order can
  only change the last bits of a float sum);
* the other line terminators of Java's tokenizer (``"\\r"``, ``"\\v"``, ``"\\f"``, U+2028, U+2029)
  are replaced by spaces, as ``"\\n"`` is; the official code would shift every later caption onto
  the wrong image, silently. The tokenizer's output is checked against its input as well;
* nothing is printed by BLEU, and the METEOR process is stopped when scoring ends.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Final, TypeVar

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.spice import get_stanford_models as _stanford_models
from pycocoevalcap.spice.spice import Spice
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

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

K = TypeVar("K", bound=Hashable)

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

_JAVA_HELP: Final[str] = (
    "The coco-caption metrics need a Java runtime (the PTB tokenizer, METEOR and SPICE are Java "
    "programs run by pycocoevalcap): {reason}. Install one with `make java` (in the "
    "hint-lightning repository) or `sudo apt-get install default-jre-headless` (Debian/Ubuntu), "
    "and make sure `java` is on PATH. Without Java, score_tokenized() computes BLEU, ROUGE-L and "
    "CIDEr of already tokenized captions."
)

# Java's PTBTokenizer (-preserveLines) ends a line at each of these; the official code only
# replaces "\n" by a space, so any other would shift every later caption onto the wrong image.
_JAVA_LINE_BREAKS: Final[tuple[str, ...]] = ("\n", "\r", "\x0b", "\x0c", "\u2028", "\u2029")

_JAVA_VERSION_TIMEOUT_S: Final[float] = 60.0


class JavaNotFoundError(RuntimeError):
    """No usable Java runtime: the tokenizer, METEOR and SPICE cannot run."""


class SpiceUnavailableError(RuntimeError):
    """SPICE was requested but cannot run (Stanford CoreNLP missing, or SPICE failed)."""


@dataclass(frozen=True)
class CaptionEvaluation:
    """Corpus-level and per-image caption scores.

    Attributes:
        scores: metric name -> corpus score (``"Bleu_1"`` .. ``"CIDEr"``, as coco-caption's
            ``COCOEvalCap.eval``).
        per_image: image id -> metric name -> score of that image (``COCOEvalCap.imgToEval``):
            sentence-level BLEU, METEOR, ROUGE-L, CIDEr-D (with the corpus's document
            frequencies) and SPICE's ``All`` F-score. Images in increasing id order for
            :func:`evaluate_captions`, in the order of ``res`` for :func:`evaluate_tokenized`.
    """

    scores: dict[str, float]
    per_image: dict[Any, dict[str, float]]

    def per_image_metric(self, metric: str) -> dict[Any, float]:
        """One metric for every image, e.g. ``evaluation.per_image_metric("CIDEr")``.

        Args:
            metric: a key of :attr:`scores`.

        Returns:
            image id -> score of that image.

        Raises:
            KeyError: if the metric was not computed.
        """
        if metric not in self.scores:
            raise KeyError(f"metric {metric!r} was not computed; computed: {sorted(self.scores)}")
        return {image_id: scores[metric] for image_id, scores in self.per_image.items()}


# --------------------------------------------------------------------------------------------
# Java.
# --------------------------------------------------------------------------------------------


def require_java() -> str:
    """Check that a working ``java`` is on PATH (pycocoevalcap runs ``java`` from PATH).

    Returns:
        The path of the ``java`` executable.

    Raises:
        JavaNotFoundError: if there is no ``java`` on PATH or ``java -version`` fails; the
            message says how to install Java.
    """
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(_JAVA_HELP.format(reason="no `java` executable on PATH"))
    try:
        completed = subprocess.run(
            [java, "-version"], capture_output=True, timeout=_JAVA_VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise JavaNotFoundError(
            _JAVA_HELP.format(reason=f"`{java} -version` failed ({err})")
        ) from err
    if completed.returncode != 0:
        output = completed.stderr.decode(errors="replace").strip()[-500:]
        reason = f"`{java} -version` exited with status {completed.returncode}: {output}"
        raise JavaNotFoundError(_JAVA_HELP.format(reason=reason))
    return java


# --------------------------------------------------------------------------------------------
# Input validation.
# --------------------------------------------------------------------------------------------


def _check_text(text: object, what: str) -> str:
    """Return ``text`` if it is a str, else raise a TypeError naming ``what``."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}: {text!r}")
    return text


def _check_strings(values: object, what: str) -> list[str]:
    """Return ``values`` as a list of str, requiring a non-empty sequence of str."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must be a sequence of str, got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError(f"{what} must not be empty")
    return [_check_text(value, f"item {i} of {what}") for i, value in enumerate(values)]


def _check_one_line(texts: Mapping[Any, Sequence[str]], what: str) -> None:
    """Reject tokenized strings with a line break (one would desynchronize METEOR's protocol)."""
    for image_id, strings in texts.items():
        for text in strings:
            if any(brk in text for brk in _JAVA_LINE_BREAKS):
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


def _collect_results(results: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """``{image id: caption}`` of the results, validated, in increasing image-id order."""
    captions: dict[int, str] = {}
    for position, result in enumerate(results):
        if not isinstance(result, Mapping) or not {"image_id", "caption"} <= result.keys():
            raise ValueError(
                f"results[{position}] must be a mapping with keys 'image_id' and 'caption', "
                f"got {result!r}"
            )
        image_id = _image_id(result["image_id"], position)
        caption = _check_text(result["caption"], f"the caption of image {image_id}")
        if image_id in captions:
            raise ValueError(
                f"image {image_id} has two results ({captions[image_id]!r} and {caption!r}); "
                "coco-caption scores exactly one caption per image"
            )
        captions[image_id] = caption
    if not captions:
        raise ValueError("no results to score")
    return dict(sorted(captions.items()))


def _references_of(image_id: Hashable, references: Mapping[Any, Any]) -> list[str]:
    """The validated references of one evaluated image."""
    if image_id not in references:
        hint = ""
        if str(image_id) in references:
            hint = f" (there is a key {str(image_id)!r}: use the same key type as the results)"
        raise ValueError(f"image {image_id!r} has a result but no references{hint}")
    return _check_strings(references[image_id], f"the references of image {image_id!r}")


def _tokenized_inputs(
    gts: Mapping[K, Sequence[str]], res: Mapping[K, Sequence[str]]
) -> tuple[dict[K, list[str]], dict[K, list[str]]]:
    """Validated copies of tokenized ``gts`` and ``res``, restricted to and ordered as ``res``."""
    if not res:
        raise ValueError("no results to score")
    res_out: dict[K, list[str]] = {}
    for image_id, captions in res.items():
        checked = _check_strings(captions, f"the result of image {image_id!r}")
        if len(checked) != 1:
            raise ValueError(
                f"image {image_id!r} has {len(checked)} results; coco-caption scores exactly "
                "one caption per image"
            )
        res_out[image_id] = checked
    gts_out = {image_id: _references_of(image_id, gts) for image_id in res_out}
    _check_one_line(gts_out, "a reference")
    _check_one_line(res_out, "the result")
    return gts_out, res_out


# --------------------------------------------------------------------------------------------
# Tokenization (Java).
# --------------------------------------------------------------------------------------------


def _one_line(caption: str) -> str:
    """Replace every line terminator of Java's tokenizer by a space."""
    for brk in _JAVA_LINE_BREAKS:
        caption = caption.replace(brk, " ")
    return caption


def _check_tokenized(captions: Mapping[K, Sequence[str]], tokenized: Mapping[K, list[str]]) -> None:
    """Raise if the tokenizer did not return one line per input caption."""
    for image_id, texts in captions.items():
        returned = len(tokenized.get(image_id, []))
        if returned != len(texts):
            raise RuntimeError(
                f"PTBTokenizer returned {returned} captions for image {image_id!r} instead of "
                f"{len(texts)}; its output is misaligned (a caption with an unusual line break?)"
            )


def ptb_tokenize(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    """Tokenize captions with coco-caption's PTBTokenizer (Stanford CoreNLP 3.4.1, Java).

    Lower-cases, splits off punctuation and removes the punctuation tokens, exactly as
    ``COCOEvalCap`` does before scoring (line breaks become spaces first).

    Args:
        captions: image id -> raw captions (strings).

    Returns:
        image id -> tokenized captions (space-separated tokens), same keys, same counts.

    Raises:
        JavaNotFoundError: if Java is missing.
        TypeError: if a caption is not a str.
        RuntimeError: if the tokenizer's output does not match its input.
    """
    checked: dict[K, list[str]] = {}
    for image_id, texts in captions.items():
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise TypeError(f"the captions of image {image_id!r} must be a sequence of str")
        what = f"caption {{}} of image {image_id!r}"
        checked[image_id] = [_check_text(t, what.format(i)) for i, t in enumerate(texts)]
    require_java()
    return _run_ptb_tokenizer(checked)


def _run_ptb_tokenizer(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    """:func:`ptb_tokenize` of validated captions, Java already checked."""
    if not any(captions.values()):
        return {image_id: [] for image_id in captions}
    inputs = {
        key: [{"caption": _one_line(text)} for text in texts] for key, texts in captions.items()
    }
    tokenized: dict[K, list[str]] = PTBTokenizer().tokenize(inputs)
    _check_tokenized(captions, tokenized)
    return {image_id: tokenized.get(image_id, []) for image_id in captions}


# --------------------------------------------------------------------------------------------
# Scorers: each returns {metric: (corpus score, per-image scores in the order of gts)}.
# --------------------------------------------------------------------------------------------

_Scored = dict[str, tuple[float, list[float]]]
_Scorer = Callable[[dict[Any, list[str]], dict[Any, list[str]]], _Scored]


def _floats(values: Sequence[Any]) -> list[float]:
    """Plain Python floats (pycocoevalcap returns numpy scalars and arrays)."""
    return [float(value) for value in values]


def _bleu(gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> _Scored:
    """BLEU-1..4, coco-caption's ``Bleu(4)`` with the ``closest`` reference length."""
    scores, per_image = Bleu(4).compute_score(gts, res, verbose=0)
    return {f"Bleu_{n + 1}": (float(scores[n]), _floats(per_image[n])) for n in range(len(scores))}


def _shutdown_meteor(scorer: Meteor) -> str:
    """Stop the METEOR process and return what it wrote to stderr.

    Also releases the scorer's lock if an error left it held, so that ``Meteor.__del__`` (which
    acquires it) cannot deadlock at garbage collection.
    """
    process = scorer.meteor_p
    with contextlib.suppress(OSError):  # a broken pipe when the process already died
        process.stdin.close()
    process.kill()
    process.wait()
    stderr = process.stderr.read().decode(errors="replace")
    process.stdout.close()
    process.stderr.close()
    if scorer.lock.locked():
        scorer.lock.release()
    return stderr


def _meteor(gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> _Scored:
    """METEOR 1.5 (``-l en -norm``), coco-caption's ``Meteor`` (Java)."""
    scorer = Meteor()
    error: Exception | None = None
    try:
        score, per_image = scorer.compute_score(gts, res)
    except (OSError, ValueError) as err:  # broken pipe, or an empty line from a dead process
        error = err
    finally:
        stderr = _shutdown_meteor(scorer)
    if error is not None:
        raise RuntimeError(
            f"METEOR (meteor-1.5.jar, run with Java) failed: {error!r}; its stderr ends with: "
            f"{stderr.strip()[-1000:]!r}"
        ) from error
    return {"METEOR": (float(score), _floats(per_image))}


def _rouge(gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> _Scored:
    """ROUGE-L (LCS F-measure with beta 1.2), coco-caption's ``Rouge``."""
    score, per_image = Rouge().compute_score(gts, res)
    return {"ROUGE_L": (float(score), _floats(per_image))}


def _cider(gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> _Scored:
    """CIDEr-D, coco-caption's ``Cider`` (document frequencies from the evaluated images)."""
    score, per_image = Cider().compute_score(gts, res)
    return {"CIDEr": (float(score), _floats(per_image))}


def _ensure_spice_models() -> None:
    """Make sure SPICE's Stanford CoreNLP 3.6.0 jars exist (pycocoevalcap downloads them)."""
    try:
        _stanford_models.get_stanford_models()
    except Exception as err:  # any download or extraction failure
        raise SpiceUnavailableError(
            "SPICE cannot run: it needs Stanford CoreNLP 3.6.0 "
            f"({_stanford_models.JAR}.jar and -models.jar in "
            f"{_stanford_models.SPICEDIR}/{_stanford_models.SPICELIB}), which pycocoevalcap "
            "downloads from nlp.stanford.edu (about 400 MB) at first use, and that download "
            f"failed ({err!r}); it is impossible offline. Run the download once on a machine "
            "with internet (python -m pycocoevalcap.spice.get_stanford_models), or score "
            "without spice=True."
        ) from err


def _spice(gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> _Scored:
    """SPICE 1.0, coco-caption's ``Spice`` (Java, Stanford CoreNLP 3.6.0); F-score ``All``."""
    _ensure_spice_models()
    try:
        average, per_image = Spice().compute_score(gts, res)
    except (subprocess.CalledProcessError, OSError, ValueError) as err:
        raise SpiceUnavailableError(
            f"SPICE (spice-1.0.jar) failed: {err!r}. SPICE 1.0 is known to need Java 8 (newer "
            "Java fails with InaccessibleObjectException in its cache) and up to 8 GB of memory"
        ) from err
    by_id = dict(zip(sorted(gts), per_image, strict=True))  # Spice scores images in sorted order
    return {"SPICE": (float(average), [float(by_id[i]["All"]["f"]) for i in gts])}


def _evaluate(
    gts: dict[Any, list[str]], res: dict[Any, list[str]], scorers: Sequence[_Scorer]
) -> CaptionEvaluation:
    """Run the scorers on tokenized inputs with the same keys in the same order."""
    scored: _Scored = {}
    for scorer in scorers:
        scored |= scorer(gts, res)
    per_image = {
        image_id: {metric: values[i] for metric, (_, values) in scored.items()}
        for i, image_id in enumerate(res)
    }
    return CaptionEvaluation({metric: score for metric, (score, _) in scored.items()}, per_image)


def _scorers(*, meteor: bool, spice: bool) -> list[_Scorer]:
    """The scorers in coco-caption's order: BLEU, METEOR, ROUGE-L, CIDEr, SPICE."""
    chosen: list[_Scorer] = [_bleu]
    if meteor:
        chosen.append(_meteor)
    chosen += [_rouge, _cider]
    if spice:
        chosen.append(_spice)
    return chosen


# --------------------------------------------------------------------------------------------
# Public scoring functions.
# --------------------------------------------------------------------------------------------


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
    gts_checked, res_checked = _tokenized_inputs(gts, res)
    if meteor:
        require_java()
    return _evaluate(gts_checked, res_checked, _scorers(meteor=meteor, spice=False))


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
    res = {image_id: [caption] for image_id, caption in _collect_results(results).items()}
    gts = {image_id: _references_of(image_id, references) for image_id in res}
    if not tokenize:
        _check_one_line(gts, "a reference")
        _check_one_line(res, "the result")
    require_java()
    if spice:
        _ensure_spice_models()  # fail before the long part
    if tokenize:
        gts, res = _run_ptb_tokenizer(gts), _run_ptb_tokenizer(res)
    return _evaluate(gts, res, _scorers(meteor=True, spice=spice))


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
