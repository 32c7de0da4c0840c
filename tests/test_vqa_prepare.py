"""VQA v2 / VQA-CP v2 raw files -> vocabularies and split stores (prepare.vqa_questions)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from hint_lightning.metrics.vqa_accuracy import vqa_accuracy
from hint_lightning.prepare.fixture.vqa_files import (
    make_vqa_examples,
    write_glove,
    write_vqa_v2_annotations,
    write_vqa_v2_questions,
    write_vqacp_annotations,
    write_vqacp_questions,
)
from hint_lightning.prepare.glove import load_glove
from hint_lightning.prepare.vqa_questions import (
    build_answer_vocab,
    soft_target_scores,
    write_split_store,
)
from hint_lightning.prepare.vqa_raw import check_images, join, load_annotations, load_questions
from hint_lightning.text.answers import ANSWER_TYPES
from hint_lightning.text.question_types import load_question_types
from hint_lightning.text.tokenize import build_token_vocab, encode_tokens, tokenize

IMAGE_IDS = (9, 25, 42, 77)


@pytest.fixture(scope="module")
def examples() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """24 plausible questions and their annotations on 4 images."""
    return make_vqa_examples(IMAGE_IDS, questions_per_image=6, seed=3)


@pytest.fixture
def vqacp_files(tmp_path: Path, examples: tuple[list, list]) -> tuple[Path, Path]:
    """VQA-CP v2 question and annotation files of the examples."""
    questions, annotations = examples
    split = {9: "train2014", 25: "val2014", 42: "train2014", 77: "val2014"}
    return (
        write_vqacp_questions(tmp_path / "vqacp_v2_train_questions.json", questions, split),
        write_vqacp_annotations(tmp_path / "vqacp_v2_train_annotations.json", annotations, split),
    )


@pytest.fixture
def vqa_v2_files(tmp_path: Path, examples: tuple[list, list]) -> tuple[Path, Path]:
    """VQA v2 question and annotation files of the examples."""
    questions, annotations = examples
    return (
        write_vqa_v2_questions(
            tmp_path / "v2_OpenEnded_mscoco_train2014_questions.json", questions, "train2014"
        ),
        write_vqa_v2_annotations(
            tmp_path / "v2_mscoco_train2014_annotations.json", annotations, "train2014"
        ),
    )


class FakeImages:
    """A stand-in for a FeatureStore: only its image ids and path."""

    def __init__(self, image_ids: list[int], path: Path) -> None:
        self.image_ids = np.array(image_ids, dtype=np.int64)
        self.path = path

    def __contains__(self, image_id: object) -> bool:
        return image_id in set(self.image_ids.tolist())


# ------------------------------------------------------------------------------ raw formats


def test_fixture_files_have_the_real_top_level_layouts(vqacp_files, vqa_v2_files) -> None:
    cp_questions = json.loads(vqacp_files[0].read_text())
    cp_annotations = json.loads(vqacp_files[1].read_text())
    assert isinstance(cp_questions, list) and isinstance(cp_annotations, list)
    assert set(cp_questions[0]) == {"question_id", "image_id", "question", "coco_split"}
    assert {a["coco_split"] for a in cp_annotations} == {"train2014", "val2014"}
    v2_questions = json.loads(vqa_v2_files[0].read_text())
    v2_annotations = json.loads(vqa_v2_files[1].read_text())
    assert set(v2_questions) == {
        "info",
        "task_type",
        "data_type",
        "license",
        "data_subtype",
        "questions",
    }
    assert set(v2_annotations) == {"info", "license", "data_subtype", "annotations", "data_type"}
    answers = v2_annotations["annotations"][0]["answers"]
    assert len(answers) == 10
    assert set(answers[0]) == {"answer", "answer_confidence", "answer_id"}
    assert [a["answer_id"] for a in answers] == list(range(1, 11))


def test_examples_have_official_types_and_disagreeing_answers(examples) -> None:
    _, annotations = examples
    types = set(load_question_types())
    assert all(a["question_type"] in types for a in annotations)
    assert {a["answer_type"] for a in annotations} <= set(ANSWER_TYPES)
    raw = [answer["answer"] for a in annotations for answer in a["answers"]]
    assert any(r != r.lower() for r in raw), "some answers are capitalised"
    assert any(r.endswith(".") for r in raw), "some answers carry punctuation"
    assert any(len({x["answer"] for x in a["answers"]}) > 1 for a in annotations)
    assert make_vqa_examples(IMAGE_IDS, questions_per_image=6, seed=3) == examples


@pytest.mark.parametrize("layout", ["vqacp", "vqa_v2"])
def test_loaders_read_both_layouts(layout: str, vqacp_files, vqa_v2_files, examples) -> None:
    questions_path, annotations_path = vqacp_files if layout == "vqacp" else vqa_v2_files
    questions = load_questions(questions_path, layout)  # type: ignore[arg-type]
    annotations = load_annotations(annotations_path, layout)  # type: ignore[arg-type]
    assert [q["question_id"] for q in questions] == [q["question_id"] for q in examples[0]]
    assert [a["answers"] for a in annotations] == [a["answers"] for a in examples[1]]
    assert ("coco_split" in questions[0]) == (layout == "vqacp")


def test_vqa_v2_file_where_vqacp_expected_names_file_and_layout(vqa_v2_files) -> None:
    with pytest.raises(ValueError, match="looks like VQA v2") as error:
        load_questions(vqa_v2_files[0], "vqacp")
    assert str(vqa_v2_files[0]) in str(error.value)
    assert "layout='vqa_v2'" in str(error.value)
    with pytest.raises(ValueError, match=re.escape(str(vqa_v2_files[1]))):
        load_annotations(vqa_v2_files[1], "vqacp")


def test_vqacp_file_where_vqa_v2_expected_names_file_and_layout(vqacp_files) -> None:
    with pytest.raises(ValueError, match="looks like VQA-CP v2") as error:
        load_annotations(vqacp_files[1], "vqa_v2")
    assert str(vqacp_files[1]) in str(error.value)
    assert "layout='vqacp'" in str(error.value)
    with pytest.raises(ValueError, match="looks like VQA-CP v2"):
        load_questions(vqacp_files[0], "vqa_v2")


def test_annotation_file_given_as_questions_is_named(vqa_v2_files) -> None:
    with pytest.raises(ValueError, match="looks like an annotations file"):
        load_questions(vqa_v2_files[1], "vqa_v2")


def test_missing_key_names_file_and_question_id(tmp_path: Path, examples) -> None:
    broken = [dict(q, coco_split="train2014") for q in examples[0]]
    del broken[3]["question"]
    path = tmp_path / "q.json"
    path.write_text(json.dumps(broken))
    qid = examples[0][3]["question_id"]
    with pytest.raises(ValueError, match=rf"q\.json: question of question_id {qid} lacks"):
        load_questions(path, "vqacp")


def test_vqacp_item_without_coco_split_is_an_error(tmp_path: Path, examples) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(examples[1]))  # VQA v2 items in a plain list: no coco_split
    qid = examples[1][0]["question_id"]
    with pytest.raises(ValueError, match=rf"question_id {qid} lacks the keys \['coco_split'\]"):
        load_annotations(path, "vqacp")


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        load_questions(path, "vqacp")


# ------------------------------------------------------------------------------ join


def test_join_merges_questions_and_annotations(vqacp_files, examples) -> None:
    questions = load_questions(vqacp_files[0], "vqacp")
    annotations = load_annotations(vqacp_files[1], "vqacp")
    entries = join(questions, list(reversed(annotations)), *vqacp_files)
    assert [e["question_id"] for e in entries] == [q["question_id"] for q in examples[0]]
    first, annotation = entries[0], examples[1][0]
    assert first["question"] == examples[0][0]["question"]
    assert first["answers"] == [a["answer"] for a in annotation["answers"]]
    assert first["answer_type"] == annotation["answer_type"]
    assert first["question_type"] == annotation["question_type"]
    assert first["coco_split"] == "train2014"


def test_join_missing_annotations_lists_ids_count_and_files(vqacp_files) -> None:
    questions = load_questions(vqacp_files[0], "vqacp")
    annotations = load_annotations(vqacp_files[1], "vqacp")
    missing = [a["question_id"] for a in annotations[2:9]]
    with pytest.raises(ValueError) as error:
        join(questions, annotations[:2] + annotations[9:], *vqacp_files)
    message = str(error.value)
    assert ", ".join(str(q) for q in missing[:5]) + ", ... (7 in all)" in message
    assert str(missing[5]) not in message
    assert str(vqacp_files[0]) in message and str(vqacp_files[1]) in message


def test_join_rejects_an_image_mismatch(vqacp_files) -> None:
    questions = load_questions(vqacp_files[0], "vqacp")
    annotations = load_annotations(vqacp_files[1], "vqacp")
    annotations[0] = dict(annotations[0], image_id=123456)
    with pytest.raises(ValueError, match=r"image_id .* but 123456"):
        join(questions, annotations, *vqacp_files)


# ------------------------------------------------------------------------------ answers


def _annotation(qid: int, answer: str) -> dict[str, Any]:
    return {"question_id": qid, "multiple_choice_answer": answer}


def test_answer_vocab_min_count_order_and_normalization() -> None:
    answers = ["yes"] * 4 + ["Yes."] + ["no"] * 5 + ["two", "2", "2"] + ["cat", "dog", "dog"]
    items = [_annotation(i, a) for i, a in enumerate(answers)]
    items.append(_annotation(0, "dog"))  # a question seen twice counts once
    assert build_answer_vocab(items, min_count=1) == ("no", "yes", "2", "dog", "cat")
    assert build_answer_vocab(items, min_count=3) == ("no", "yes", "2")
    assert build_answer_vocab(items, min_count=5) == ("no", "yes")
    assert build_answer_vocab(items, min_count=6) == ()
    assert build_answer_vocab(reversed(items), min_count=1) == ("no", "yes", "2", "dog", "cat")
    with pytest.raises(ValueError, match="min_count"):
        build_answer_vocab(items, min_count=0)


@pytest.mark.parametrize(
    ("count", "score"), [(1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (5, 1.0), (10, 1.0)]
)
def test_soft_target_score_per_number_of_humans(count: int, score: float) -> None:
    answers = ["2"] * count + ["blue"] * (10 - count)
    assert soft_target_scores(answers, {"2": 0, "red": 1}) == {0: score}


def test_soft_targets_normalize_and_ignore_unknown_answers() -> None:
    index = {"2": 0, "dog": 1, "yes": 2}
    answers = ["Two", "2", "two.", "the dog", "Dog", "cat", "cat", "cat", "cat", "no"]
    assert soft_target_scores(answers, index) == {0: 0.9, 1: 0.6}
    assert soft_target_scores(["Yes"] * 10, index) == {2: 1.0}  # unlike the official metric
    assert soft_target_scores(["maybe"] * 10, index) == {}


# ------------------------------------------------------------------------------ split store


@pytest.fixture
def joined(vqacp_files) -> list[dict[str, Any]]:
    """Entries of the VQA-CP fixture files."""
    questions = load_questions(vqacp_files[0], "vqacp")
    return join(questions, load_annotations(vqacp_files[1], "vqacp"), *vqacp_files)


def _write_store(path: Path, entries: list[dict], sources: list[Path], answers: tuple[str, ...]):
    tokens = build_token_vocab(tokenize(e["question"]) for e in entries)
    token_index = {t: i for i, t in enumerate(tokens)}
    summary = write_split_store(
        path,
        entries,
        answers=answers,
        token_index=token_index,
        question_types=load_question_types(),
        dataset="vqacp_v2",
        split="train",
        feature_store_name="trainval_36",
        sources=sources,
        progress=False,
    )
    return summary, token_index


def test_split_store_round_trip(tmp_path: Path, joined, vqacp_files) -> None:
    answers = build_answer_vocab(joined, min_count=2)
    out = tmp_path / "prepared" / "train.h5"
    summary, token_index = _write_store(out, joined, list(vqacp_files), answers)
    types = load_question_types()
    answer_index = {a: i for i, a in enumerate(answers)}
    q = len(joined)
    with h5py.File(out, "r") as handle:
        arrays = {name: handle[name][()] for name in handle if name != "_checksums"}
        checksummed = set(handle["_checksums"])
        attrs = dict(handle.attrs)
    assert checksummed == set(arrays)  # every dataset carries its checksums
    expected = {
        "question_id": (np.int64, (q,)),
        "image_id": (np.int64, (q,)),
        "tokens": (np.int32, (q, 14)),
        "answer_type": (np.int8, (q,)),
        "question_type": (np.int16, (q,)),
        "target_ids": (np.int32, (q, 10)),
        "target_scores": (np.float32, (q, 10)),
        "score_ids": (np.int32, (q, 10)),
        "score_values": (np.float32, (q, 10)),
    }
    assert {name: (a.dtype, a.shape) for name, a in arrays.items()} == {
        name: (np.dtype(dtype), shape) for name, (dtype, shape) in expected.items()
    }
    assert attrs["format_version"] == 1
    assert (attrs["dataset"], attrs["split"], attrs["feature_store"]) == (
        "vqacp_v2",
        "train",
        "trainval_36",
    )
    assert tuple(json.loads(attrs["question_types"])) == types
    sources = json.loads(attrs["sources"])
    assert [s["name"] for s in sources] == [p.name for p in vqacp_files]
    assert sources[0]["size"] == vqacp_files[0].stat().st_size
    assert sources[0]["mtime"] == pytest.approx(vqacp_files[0].stat().st_mtime)

    for row, entry in enumerate(joined):
        assert arrays["question_id"][row] == entry["question_id"]
        assert arrays["image_id"][row] == entry["image_id"]
        tokens = encode_tokens(tokenize(entry["question"]), token_index, 14)
        np.testing.assert_array_equal(arrays["tokens"][row], tokens)
        assert ANSWER_TYPES[arrays["answer_type"][row]] == entry["answer_type"]
        assert types[arrays["question_type"][row]] == entry["question_type"]
        ids, scores = arrays["target_ids"][row], arrays["target_scores"][row]
        stored = {int(i): float(s) for i, s in zip(ids, scores, strict=True) if i >= 0}
        want = soft_target_scores(entry["answers"], answer_index)
        assert stored == pytest.approx(want)
        assert (scores[ids < 0] == 0).all()
        # Official accuracy of every candidate, by brute force over the vocabulary.
        ids, values = arrays["score_ids"][row], arrays["score_values"][row]
        official = {int(i): float(v) for i, v in zip(ids, values, strict=True) if i >= 0}
        brute = {i: vqa_accuracy(a, entry["answers"]) for i, a in enumerate(answers)}
        assert official == pytest.approx({i: s for i, s in brute.items() if s > 0})
    assert summary["questions"] == q
    assert summary["images"] == len(IMAGE_IDS)
    assert summary["with_target"] + summary["without_target"] == q
    assert summary["with_target"] == int((arrays["target_ids"][:, 0] >= 0).sum())
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.h5"]  # no temp file left


def test_split_store_without_some_answers_in_vocab(tmp_path: Path, joined, vqacp_files) -> None:
    summary, _ = _write_store(tmp_path / "s.h5", joined, list(vqacp_files), ("yes",))
    with h5py.File(tmp_path / "s.h5", "r") as handle:
        target_ids = handle["target_ids"][()]
        score_values = handle["score_values"][()]
    assert set(np.unique(target_ids)) <= {-1, 0}
    assert summary["without_target"] == int((target_ids[:, 0] < 0).sum()) > 0
    assert (score_values <= 1).all()


def test_split_store_rejects_unknown_types_and_keeps_old_file(tmp_path: Path, joined) -> None:
    out = tmp_path / "prepared" / "train.h5"
    out.parent.mkdir()
    out.write_text("previous")
    broken = [dict(e) for e in joined]
    broken[2]["question_type"] = "what on earth"
    with pytest.raises(ValueError, match=rf"'what on earth'.*{broken[2]['question_id']}"):
        _write_store(out, broken, [], ("yes",))
    broken = [dict(e) for e in joined]
    broken[1]["answer_type"] = "color"
    with pytest.raises(ValueError, match=rf"answer types \['color'\].*{broken[1]['question_id']}"):
        _write_store(out, broken, [], ("yes",))
    assert out.read_text() == "previous"
    assert [p.name for p in out.parent.iterdir()] == ["train.h5"]


def test_split_store_interrupted_write_leaves_old_file_and_no_temp(
    tmp_path: Path, joined, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "prepared" / "train.h5"
    out.parent.mkdir()
    out.write_text("previous")
    create = h5py.Group.create_dataset
    calls = []

    def failing_create(self: h5py.Group, name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full")
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing_create)
    with pytest.raises(OSError, match="disk full"):
        _write_store(out, joined, [], ("yes",))
    assert out.read_text() == "previous"
    assert [p.name for p in out.parent.iterdir()] == ["train.h5"]


# ------------------------------------------------------------------------------ GloVe


def test_glove_found_missing_and_padding(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=4).astype(np.float32) for w in ("what", "dog", "zebra", "is")}
    path = write_glove(tmp_path / "glove.txt", vectors)
    tokens = ("<pad>", "<unk>", "dog", "is", "kite")
    matrix, found = load_glove(path, tokens, dim=4, seed=1)
    assert matrix.dtype == np.float32 and matrix.shape == (5, 4)
    assert found == 2
    np.testing.assert_array_equal(matrix[0], 0)
    np.testing.assert_array_equal(matrix[2], vectors["dog"])
    np.testing.assert_array_equal(matrix[3], vectors["is"])
    for row in (1, 4):  # <unk> and kite: small random vectors
        assert 0 < np.abs(matrix[row]).max() <= 0.1
    again, _ = load_glove(path, tokens, dim=4, seed=1)
    np.testing.assert_array_equal(matrix, again)
    other, _ = load_glove(path, tokens, dim=4, seed=2)
    assert not np.array_equal(matrix[4], other[4])


def test_glove_first_occurrence_wins_and_blank_lines_skip(tmp_path: Path) -> None:
    path = tmp_path / "glove.txt"
    path.write_text("dog 1 2\n\ndog 3 4\ncat 5 6\n")
    matrix, found = load_glove(path, ("<pad>", "<unk>", "dog"), dim=2)
    assert found == 1
    np.testing.assert_array_equal(matrix[2], [1, 2])


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [("dog 1 2\ncat 1\n", 2, "got 1 fields"), ("dog 1 2\ncat 1 two\n", 2, "not a number")],
)
def test_glove_malformed_line_names_file_and_line(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    path = tmp_path / "glove.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"glove\.txt, line {line}: .*{what}"):
        load_glove(path, ("<pad>", "<unk>", "dog", "cat"), dim=2)


# ------------------------------------------------------------------------------ images


def test_check_images_names_questions_images_and_files(tmp_path: Path, joined) -> None:
    store_path = tmp_path / "trainval_36.h5"
    check_images(joined, FakeImages(list(IMAGE_IDS), store_path), "q.json")  # all there
    store = FakeImages([9, 42], store_path)
    with pytest.raises(ValueError) as error:
        check_images(joined, store, tmp_path / "vqacp_v2_train_questions.json")
    message = str(error.value)
    missing = [e for e in joined if e["image_id"] in (25, 77)]
    first = missing[0]
    assert f"question {first['question_id']} (image {first['image_id']})" in message
    assert f"({len(missing)} in all)" in message
    assert "vqacp_v2_train_questions.json" in message
    assert str(store_path) in message
