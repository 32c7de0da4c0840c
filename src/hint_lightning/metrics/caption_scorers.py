"""The pycocoevalcap scorers as coco-caption's ``COCOEvalCap.evaluate`` runs them.

``Bleu(4)`` (``closest`` reference length, nothing printed), ``Meteor`` (meteor-1.5.jar, Java;
its process is stopped when scoring ends), ``Rouge`` (ROUGE-L, beta 1.2), ``Cider`` (CIDEr-D,
document frequencies from the evaluated images) and, opt-in, ``Spice``. Each returns
``{metric: (corpus score, per-image scores in the order of gts)}``.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.spice import get_stanford_models as _stanford_models
from pycocoevalcap.spice.spice import Spice

__all__ = [
    "CaptionEvaluation",
    "SpiceUnavailableError",
    "ensure_spice_models",
    "evaluate",
    "scorers",
]


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


def ensure_spice_models() -> None:
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
    ensure_spice_models()
    try:
        average, per_image = Spice().compute_score(gts, res)
    except (subprocess.CalledProcessError, OSError, ValueError) as err:
        raise SpiceUnavailableError(
            f"SPICE (spice-1.0.jar) failed: {err!r}. SPICE 1.0 is known to need Java 8 (newer "
            "Java fails with InaccessibleObjectException in its cache) and up to 8 GB of memory"
        ) from err
    by_id = dict(zip(sorted(gts), per_image, strict=True))  # Spice scores images in sorted order
    return {"SPICE": (float(average), [float(by_id[i]["All"]["f"]) for i in gts])}


def evaluate(
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


def scorers(*, meteor: bool, spice: bool) -> list[_Scorer]:
    """The scorers in coco-caption's order: BLEU, METEOR, ROUGE-L, CIDEr, SPICE."""
    chosen: list[_Scorer] = [_bleu]
    if meteor:
        chosen.append(_meteor)
    chosen += [_rouge, _cider]
    if spice:
        chosen.append(_spice)
    return chosen
