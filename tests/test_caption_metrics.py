"""The coco-caption metrics reproduce the official coco-caption demo, with and without Java.

Reference data (``tests/data/coco_caption_ref/``, see its ``ATTRIBUTION.md``): the 1,000 fake
captions of coco-caption's ``cocoEvalCapDemo.ipynb``, their COCO val2014 references, the same
captions after coco-caption's PTBTokenizer, the demo's published scores and a full-precision
reproduction with pycocoevalcap 1.2.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import random
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.tokenizer import ptbtokenizer
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from hint_lightning.metrics import caption_scorers
from hint_lightning.metrics.caption import (
    CAPTION_METRICS,
    JAVA_FREE_METRICS,
    JavaNotFoundError,
    SpiceUnavailableError,
    coco_references,
    evaluate_captions,
    evaluate_tokenized,
    ptb_tokenize,
    require_java,
    score_captions,
    score_tokenized,
)

DATA = Path(__file__).parent / "data" / "coco_caption_ref"

# Full-precision reproduction: CIDEr to 1e-9 (as the fixture's README asks); all metrics are in
# fact reproduced bit for bit by the same scorers.
FULL_PRECISION = 1e-9


def _load(name: str) -> Any:
    with (DATA / name).open(encoding="utf-8") as file:
        return json.load(file)


@pytest.fixture(scope="module")
def results() -> list[dict[str, Any]]:
    """The 1,000 results of the coco-caption demo, ``[{"image_id", "caption"}]``."""
    return _load("captions_val2014_fakecap_results.json")


@pytest.fixture(scope="module")
def references() -> dict[int, list[str]]:
    """Their raw COCO references (5,005 captions)."""
    return coco_references(_load("captions_val2014_fakecap_subset.json"))


@pytest.fixture(scope="module")
def tokenized() -> dict[str, dict[str, list[str]]]:
    """``{"gts", "res"}`` after coco-caption's PTBTokenizer, keyed by str image ids."""
    return _load("tokenized_ptb.json")


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    """Published scores, full-precision reproduction and per-image scores."""
    return _load("expected_scores.json")


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which there is no ``java``."""
    monkeypatch.setenv("PATH", str(tmp_path))


def _published(expected: dict[str, Any], metrics: tuple[str, ...]) -> dict[str, float]:
    return {metric: expected["published_demo_notebook"][metric] for metric in metrics}


def _reproduced(expected: dict[str, Any], metrics: tuple[str, ...]) -> dict[str, float]:
    return {metric: expected["reproduced_pycocoevalcap_1.2"][metric] for metric in metrics}


# ---------------------------------------------------------------------------------------------
# (a) The official pipeline (Java): the coco-caption demo's published numbers.
# ---------------------------------------------------------------------------------------------


def test_score_captions_reproduces_the_coco_caption_demo(
    results: list[dict[str, Any]], references: dict[int, list[str]], expected: dict[str, Any]
) -> None:
    scores = score_captions(results, references)

    assert list(scores) == list(CAPTION_METRICS)
    assert {m: round(s, 3) for m, s in scores.items()} == _published(expected, CAPTION_METRICS)
    assert scores == pytest.approx(
        _reproduced(expected, CAPTION_METRICS), rel=0, abs=FULL_PRECISION
    )
    assert all(type(score) is float for score in scores.values())


def test_ptb_tokenize_reproduces_coco_caption_tokenization(
    results: list[dict[str, Any]], references: dict[int, list[str]], tokenized: dict[str, Any]
) -> None:
    res = ptb_tokenize({result["image_id"]: [result["caption"]] for result in results})

    assert ptb_tokenize(references) == {int(k): v for k, v in tokenized["gts"].items()}
    assert res == {int(k): v for k, v in tokenized["res"].items()}


def test_scoring_works_from_a_read_only_install(
    results: list[dict[str, Any]],
    references: dict[int, list[str]],
    expected: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is written inside the installed pycocoevalcap (its PTBTokenizer writes there)."""
    package = Path(ptbtokenizer.__file__).resolve().parents[1]  # .../pycocoevalcap
    real_open = os.open

    def read_only_package(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writing and Path(os.fsdecode(path)).resolve().is_relative_to(package):
            raise PermissionError(errno.EROFS, "Read-only file system", os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_package)
    with pytest.raises(PermissionError):  # what the official tokenizer does on such an install
        PTBTokenizer().tokenize({1: [{"caption": "A dog."}]})
    scores = score_captions(results, references)
    assert scores == pytest.approx(
        _reproduced(expected, CAPTION_METRICS), rel=0, abs=FULL_PRECISION
    )


def test_per_image_scores_without_tokenizer_match_coco_caption(
    tokenized: dict[str, Any], expected: dict[str, Any]
) -> None:
    """tokenize=False on tokenized captions (shuffled): same corpus and per-image scores."""
    results = [{"image_id": int(k), "caption": v[0]} for k, v in tokenized["res"].items()]
    random.Random(0).shuffle(results)
    references = {int(k): v for k, v in tokenized["gts"].items()}

    evaluation = evaluate_captions(results, references, tokenize=False)

    reproduced = _reproduced(expected, CAPTION_METRICS)
    assert evaluation.scores == pytest.approx(reproduced, rel=0, abs=FULL_PRECISION)
    assert list(evaluation.per_image) == sorted(references)
    for metric in ("CIDEr", "ROUGE_L", "Bleu_4", "METEOR"):
        per_image = evaluation.per_image_metric(metric)
        want = {int(k): scores[metric] for k, scores in expected["per_image"].items()}
        assert per_image == pytest.approx(want, rel=0, abs=FULL_PRECISION), metric


# ---------------------------------------------------------------------------------------------
# (b) The Java-free path: already tokenized captions.
# ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_java")
def test_score_tokenized_reproduces_the_demo_without_java(
    tokenized: dict[str, Any], expected: dict[str, Any]
) -> None:
    with pytest.raises(JavaNotFoundError):
        require_java()  # really no Java here

    scores = score_tokenized(tokenized["gts"], tokenized["res"])

    assert list(scores) == list(JAVA_FREE_METRICS)
    assert {m: round(s, 3) for m, s in scores.items()} == _published(expected, JAVA_FREE_METRICS)
    assert scores == pytest.approx(
        _reproduced(expected, JAVA_FREE_METRICS), rel=0, abs=FULL_PRECISION
    )


@pytest.mark.usefixtures("no_java")
def test_evaluate_tokenized_per_image_cider_and_extra_references(
    tokenized: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Per-image CIDEr-D; references of images without a result are ignored (not in the DF)."""
    gts = dict(tokenized["gts"]) | {"0": ["an extra reference that must not count"]}

    cider = evaluate_tokenized(gts, tokenized["res"]).per_image_metric("CIDEr")

    want = {k: scores["CIDEr"] for k, scores in expected["per_image"].items()}
    assert cider == pytest.approx(want, rel=0, abs=FULL_PRECISION)


@pytest.mark.usefixtures("no_java")
def test_cider_document_frequencies_come_from_the_evaluated_images(
    tokenized: dict[str, Any], expected: dict[str, Any]
) -> None:
    some = list(tokenized["res"])[:100]
    res = {k: tokenized["res"][k] for k in some}

    cider = evaluate_tokenized(tokenized["gts"], res).per_image_metric("CIDEr")

    assert cider != pytest.approx({k: expected["per_image"][k]["CIDEr"] for k in some})


@pytest.mark.usefixtures("no_java")
def test_score_tokenized_with_meteor_needs_java(tokenized: dict[str, Any]) -> None:
    with pytest.raises(JavaNotFoundError, match="make java"):
        score_tokenized(tokenized["gts"], tokenized["res"], meteor=True)


# ---------------------------------------------------------------------------------------------
# (c) Input validation and missing tools.
# ---------------------------------------------------------------------------------------------

REFS = {1: ["a dog on a boat"], 2: ["a cat on a sofa", "a sleeping cat"]}


@pytest.mark.parametrize(
    ("results", "references", "error", "message"),
    [
        ([{"image_id": 3, "caption": "a dog"}], REFS, ValueError, "image 3 has a result but no"),
        (
            [{"image_id": 1, "caption": "a dog"}],
            {"1": ["a dog"]},
            ValueError,
            "image 1 has a result but no references .*'1'",
        ),
        (
            [{"image_id": 1, "caption": "a dog"}, {"image_id": 1, "caption": "a boat"}],
            REFS,
            ValueError,
            "image 1 has two results",
        ),
        (
            [{"image_id": 2, "caption": "a cat"}],
            {2: []},
            ValueError,
            "the references of image 2 must not be empty",
        ),
        (
            [{"image_id": 2, "caption": None}],
            REFS,
            TypeError,
            "the caption of image 2 must be a str, got NoneType",
        ),
        (
            [{"image_id": 2, "caption": ["a cat"]}],
            REFS,
            TypeError,
            "the caption of image 2 must be a str, got list",
        ),
        (
            [{"image_id": 2, "caption": "a cat"}],
            {2: "a cat on a sofa"},
            TypeError,
            "the references of image 2 must be a sequence of str",
        ),
        (
            [{"image_id": 2, "caption": "a cat"}],
            {2: ["a cat", 7]},
            TypeError,
            "item 1 of the references of image 2 must be a str, got int",
        ),
        ([{"image_id": "2", "caption": "a cat"}], REFS, TypeError, "image_id'\\] must be an int"),
        ([{"image_id": True, "caption": "a cat"}], REFS, TypeError, "must be an int, got bool"),
        ([{"image_id": 2}], REFS, ValueError, "results\\[0\\] must be a mapping with keys"),
        ([], REFS, ValueError, "no results"),
        (
            [{"image_id": 2, "caption": "a cat\non a sofa"}],
            REFS,
            ValueError,
            "the result of image 2 contains a line break",
        ),
    ],
)
def test_score_captions_validates_its_inputs(
    results: list[dict[str, Any]],
    references: dict[Any, Any],
    error: type[Exception],
    message: str,
) -> None:
    """Errors name the image; they come before Java is needed (tokenize=False: no line breaks)."""
    with pytest.raises(error, match=message):
        score_captions(results, references, tokenize=False)


@pytest.mark.parametrize(
    ("gts", "res", "error", "message"),
    [
        (REFS, {3: ["a dog"]}, ValueError, "image 3 has a result but no references"),
        (REFS, {1: ["a dog", "a boat"]}, ValueError, "image 1 has 2 results"),
        (REFS, {1: []}, ValueError, "the result of image 1 must not be empty"),
        ({1: []}, {1: ["a dog"]}, ValueError, "the references of image 1 must not be empty"),
        (REFS, {1: [None]}, TypeError, "item 0 of the result of image 1 must be a str"),
        (REFS, {1: "a dog"}, TypeError, "the result of image 1 must be a sequence of str"),
        ({1: ["a\rdog"]}, {1: ["a dog"]}, ValueError, "a reference of image 1 contains a line"),
        (REFS, {}, ValueError, "no results"),
    ],
)
@pytest.mark.usefixtures("no_java")
def test_score_tokenized_validates_its_inputs(
    gts: dict[Any, Any], res: dict[Any, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        score_tokenized(gts, res)


@pytest.mark.usefixtures("no_java")
def test_missing_java_is_reported_before_pycocoevalcap_runs() -> None:
    with pytest.raises(JavaNotFoundError, match="no `java` executable on PATH") as info:
        score_captions([{"image_id": 1, "caption": "a dog"}], REFS)
    assert "make java" in str(info.value)
    assert "apt-get install default-jre-headless" in str(info.value)
    with pytest.raises(JavaNotFoundError, match="make java"):
        ptb_tokenize({1: ["a dog"]})


def test_broken_java_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'no Java runtime present' >&2\nexit 1\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(JavaNotFoundError, match="exited with status 1: no Java runtime present"):
        require_java()


def test_spice_without_stanford_corenlp_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """SPICE downloads Stanford CoreNLP at first use; offline that fails with a clear error."""

    def offline() -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(caption_scorers._stanford_models, "get_stanford_models", offline)
    with pytest.raises(SpiceUnavailableError, match=r"Stanford CoreNLP 3\.6\.0") as info:
        score_captions([{"image_id": 1, "caption": "a dog"}], REFS, spice=True)
    assert "impossible offline" in str(info.value)
    assert "without spice=True" in str(info.value)


def test_a_failing_meteor_process_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead METEOR process gives a RuntimeError with its stderr (and no deadlock at exit)."""

    class BrokenMeteor(Meteor):
        def __init__(self) -> None:
            self.meteor_cmd = ["java", "-jar", "no-such-meteor.jar"]
            self.meteor_p = subprocess.Popen(
                self.meteor_cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            self.lock = threading.Lock()

    monkeypatch.setattr(caption_scorers, "Meteor", BrokenMeteor)
    with pytest.raises(RuntimeError, match=r"METEOR .*failed.*no-such-meteor\.jar"):
        score_tokenized(REFS, {1: ["a dog"], 2: ["a cat"]}, meteor=True)
    gc.collect()  # Meteor.__del__ takes the scorer's lock: it must have been released


def test_per_image_metric_rejects_unknown_metrics() -> None:
    evaluation = evaluate_tokenized(REFS, {1: ["a dog"], 2: ["a cat"]})
    with pytest.raises(KeyError, match="METEOR"):
        evaluation.per_image_metric("METEOR")


# ---------------------------------------------------------------------------------------------
# (d) Small cases by hand.
# ---------------------------------------------------------------------------------------------


def test_identical_and_empty_captions_through_the_official_pipeline() -> None:
    """Tokenization makes case and punctuation irrelevant; an empty caption scores 0."""
    references = {1: ["A man riding a horse."], 2: ["Two cats sleep on a red sofa."]}
    results = [
        {"image_id": 2, "caption": ""},
        {"image_id": 1, "caption": "a man, riding a HORSE"},
    ]

    per_image = evaluate_captions(results, references).per_image

    assert list(per_image) == [1, 2]
    assert per_image[1] == pytest.approx(dict.fromkeys(CAPTION_METRICS, 1.0) | {"CIDEr": 10.0})
    assert per_image[2] == dict.fromkeys(CAPTION_METRICS, 0.0)


@pytest.mark.usefixtures("no_java")
def test_identical_caption_scores_the_maximum() -> None:
    gts = {1: ["a man riding a horse"], 2: ["two cats sleep on a red sofa"]}
    res = {1: ["a man riding a horse"], 2: ["three dogs"]}

    per_image = evaluate_tokenized(gts, res).per_image

    # BLEU has coco-caption's 1e-9 smoothing in its denominators, hence approx.
    assert per_image[1] == pytest.approx(dict.fromkeys(JAVA_FREE_METRICS, 1.0) | {"CIDEr": 10.0})
    assert per_image[2]["ROUGE_L"] == 0.0
    assert per_image[2]["CIDEr"] == 0.0
    assert per_image[2]["Bleu_1"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.usefixtures("no_java")
def test_bleu_by_hand() -> None:
    """Clipped unigram precision 3/4, bigram 2/3, no brevity penalty (equal lengths)."""
    scores = score_tokenized({1: ["the cat sat down"]}, {1: ["the the cat sat"]})

    assert scores["Bleu_1"] == pytest.approx(3 / 4)
    assert scores["Bleu_2"] == pytest.approx((3 / 4 * 2 / 3) ** 0.5)


@pytest.mark.usefixtures("no_java")
def test_cider_of_a_lone_image_is_zero() -> None:
    """CIDEr-D's idf comes from the evaluated images: with one image every weight is log(1) = 0."""
    scores = score_tokenized({1: ["a man riding a horse"]}, {1: ["a man riding a horse"]})

    assert scores["CIDEr"] == 0.0
    assert scores["ROUGE_L"] == 1.0


def test_ptb_tokenize_by_hand() -> None:
    """Lower case, punctuation removed; every line break becomes a space (no misalignment)."""
    captions = {
        1: ["A Dog, runs!", "a\rb\u2028c\nd"],
        2: [""],
        3: [],
        4: ["It's 5 o'clock."],
    }

    assert ptb_tokenize(captions) == {
        1: ["a dog runs", "a b c d"],
        2: [""],
        3: [],
        4: ["it 's 5 o'clock"],
    }
