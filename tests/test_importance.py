"""Specification of human importance: s = E+ / (E+ + E-) of each box under an attention map."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hint_lightning.data.importance import (
    average_attention_maps,
    proposal_importance,
    sampled_summed_area_table,
    summed_area_table,
)


def reference_importance(attention_map: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Direct per-box loop over pixel masks: the definition, with no summed-area table."""
    attention_map = np.asarray(attention_map, dtype=np.float64)
    height, width = attention_map.shape
    scores = []
    for box in np.asarray(boxes, dtype=np.float64):
        x1, y1, x2, y2 = (math.floor(v + 0.5) for v in box)
        x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
        y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
        inside_mask = np.zeros((height, width), dtype=bool)
        if x2 > x1 and y2 > y1:
            inside_mask[y1:y2, x1:x2] = True
        area = int(inside_mask.sum())
        inside = attention_map[inside_mask].sum()
        outside = attention_map[~inside_mask].sum()
        e_plus = inside / area if area > 0 else 0.0
        e_minus = outside / (height * width - area) if area < height * width else 0.0
        scores.append(e_plus / (e_plus + e_minus) if e_plus + e_minus > 0 else 0.0)
    return np.array(scores)


@pytest.fixture
def block_map() -> np.ndarray:
    """4x4 map of zeros with a 2x2 block of ones at rows 1-2, columns 1-2."""
    attention = np.zeros((4, 4))
    attention[1:3, 1:3] = 1.0
    return attention


# --- values computed by hand ---------------------------------------------------------------------


def test_box_equal_to_the_block_scores_one(block_map: np.ndarray) -> None:
    # E+ = 4 / 4 = 1, E- = 0 / 12 = 0 -> s = 1.
    assert proposal_importance(block_map, np.array([[1, 1, 3, 3]])) == pytest.approx([1.0])


def test_box_covering_half_of_the_block(block_map: np.ndarray) -> None:
    # Left half: pixels (1,1), (2,1). E+ = 2 / 2 = 1, E- = 2 / 14 = 1/7 -> s = 1 / (8/7) = 7/8.
    assert proposal_importance(block_map, np.array([[1, 1, 2, 3]])) == pytest.approx([7 / 8])


def test_box_containing_the_block_and_zeros(block_map: np.ndarray) -> None:
    # Columns 1-2, rows 0-2: 6 pixels, sum 4. E+ = 4/6, E- = 0 / 10 = 0 -> s = 1.
    assert proposal_importance(block_map, np.array([[1, 0, 3, 3]])) == pytest.approx([1.0])


def test_box_on_zeros_only(block_map: np.ndarray) -> None:
    # Pixel (3, 3): E+ = 0, E- = 4 / 15 -> s = 0.
    assert proposal_importance(block_map, np.array([[3, 3, 4, 4]])) == pytest.approx([0.0])


def test_box_overlapping_one_block_pixel(block_map: np.ndarray) -> None:
    # Rows 0-1, columns 0-1: 4 pixels, only (1,1) is 1. E+ = 1/4, E- = 3/12 = 1/4 -> s = 1/2.
    assert proposal_importance(block_map, np.array([[0, 0, 2, 2]])) == pytest.approx([0.5])


def test_non_uniform_map() -> None:
    # Values 1..16 row by row (total 136). Box: row 0, columns 0-1 -> values 1, 2.
    # E+ = 3 / 2 = 1.5, E- = 133 / 14 = 9.5 -> s = 1.5 / 11 = 3/22.
    attention = np.arange(1.0, 17.0).reshape(4, 4)
    assert proposal_importance(attention, np.array([[0, 0, 2, 1]])) == pytest.approx([3 / 22])


def test_scores_all_boxes_at_once_in_input_order(block_map: np.ndarray) -> None:
    boxes = np.array([[3, 3, 4, 4], [1, 1, 3, 3], [0, 0, 2, 2], [1, 1, 2, 3]])
    scores = proposal_importance(block_map, boxes)
    assert scores == pytest.approx([0.0, 1.0, 0.5, 7 / 8])
    assert scores.shape == (4,)
    assert scores.dtype == np.float64


def test_non_square_map_uses_x_for_columns_and_y_for_rows() -> None:
    # 2 rows x 3 columns, a single 1 at row 0, column 2.
    attention = np.zeros((2, 3))
    attention[0, 2] = 1.0
    # x in [2, 3), y in [0, 1): exactly that pixel -> s = 1.
    # x in [0, 1), y in [0, 2): column 0 -> E+ = 0 -> s = 0.
    boxes = np.array([[2, 0, 3, 1], [0, 0, 1, 2]])
    assert proposal_importance(attention, boxes) == pytest.approx([1.0, 0.0])


# --- coordinates: rounding and clipping ----------------------------------------------------------


def test_fractional_coordinates_round_to_the_nearest_pixel_edge(block_map: np.ndarray) -> None:
    # 0.6 -> 1, 1.4 -> 1, 2.5 -> 3 (halves round up), 2.51 -> 3, 1.49 -> 1.
    fractional = np.array([[0.6, 1.4, 2.5, 2.51], [0.6, 1.4, 1.49, 3.2]])
    rounded = np.array([[1, 1, 3, 3], [1, 1, 1, 3]])
    assert proposal_importance(block_map, fractional) == pytest.approx(
        proposal_importance(block_map, rounded)
    )
    assert proposal_importance(block_map, fractional) == pytest.approx([1.0, 0.0])


def test_boxes_are_clipped_to_the_map(block_map: np.ndarray) -> None:
    # [-2, 1, 3, 3] -> [0, 1, 3, 3]: 6 pixels with sum 4, E+ = 2/3, E- = 0 -> s = 1.
    # [2, -7, 99, 2] -> [2, 0, 4, 2]: 4 pixels, one 1: E+ = 1/4, E- = 3/12 -> s = 1/2.
    boxes = np.array([[-2, 1, 3, 3], [2, -7, 99, 2]])
    assert proposal_importance(block_map, boxes) == pytest.approx([1.0, 0.5])


# --- degenerate cases ----------------------------------------------------------------------------


def test_empty_boxes_have_zero_e_plus_and_score_zero(block_map: np.ndarray) -> None:
    boxes = np.array(
        [
            [2, 1, 2, 3],  # zero width
            [1, 2, 3, 2],  # zero height
            [3, 3, 1, 1],  # x2 < x1 and y2 < y1
            [5, 5, 9, 9],  # entirely outside: empty after clipping
            [-9, 0, -1, 4],  # left of the map
            [1.2, 1.0, 1.4, 3.0],  # x1 and x2 both round to 1
        ]
    )
    assert proposal_importance(block_map, boxes) == pytest.approx(np.zeros(6))


def test_box_covering_the_whole_map_has_zero_e_minus_and_scores_one(block_map: np.ndarray) -> None:
    boxes = np.array([[0, 0, 4, 4], [-1.0, -3.0, 100.0, 4.4]])
    assert proposal_importance(block_map, boxes) == pytest.approx([1.0, 1.0])
    assert proposal_importance(np.full((3, 5), 0.2), np.array([[0, 0, 5, 3]])) == 1.0


def test_all_zero_map_scores_zero_everywhere() -> None:
    boxes = np.array([[0, 0, 4, 4], [1, 1, 3, 3], [0, 0, 0, 0]])
    scores = proposal_importance(np.zeros((4, 4)), boxes)
    assert scores.tolist() == [0.0, 0.0, 0.0]


def test_uniform_map_scores_one_half_for_any_proper_box() -> None:
    # E+ = E- = c for any box that is neither empty nor the whole map.
    boxes = np.array([[0, 0, 1, 1], [1, 0, 3, 2], [0, 0, 3, 1]])
    assert proposal_importance(np.full((2, 3), 7.0), boxes) == pytest.approx([0.5] * 3)


def test_single_pixel_map() -> None:
    boxes = np.array([[0, 0, 1, 1], [0, 0, 0, 1]])
    assert proposal_importance(np.array([[3.0]]), boxes).tolist() == [1.0, 0.0]


def test_no_boxes_give_an_empty_result(block_map: np.ndarray) -> None:
    scores = proposal_importance(block_map, np.zeros((0, 4)))
    assert scores.shape == (0,)
    assert scores.dtype == np.float64


# --- against the direct definition ---------------------------------------------------------------


def random_boxes(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """Fractional boxes, many partly or wholly outside the map, some inverted or empty."""
    x = rng.uniform(-0.3 * width, 1.3 * width, size=(count, 2))
    y = rng.uniform(-0.3 * height, 1.3 * height, size=(count, 2))
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    ordered = np.concatenate([np.sort(x, axis=1), np.sort(y, axis=1)], axis=1)[:, [0, 2, 1, 3]]
    boxes[: count // 2] = ordered[: count // 2]  # half well-formed, half possibly inverted
    boxes[-3:] = [[0, 0, width, height], [-1, -1, width + 1, height + 1], [1, 1, 1, 1]]
    return boxes


@pytest.mark.parametrize("seed", range(8))
def test_matches_direct_loop_on_random_maps_and_boxes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 40, size=2)
    attention = rng.random((height, width)) ** 3
    attention[rng.random((height, width)) < 0.4] = 0.0  # exact zeros, as blurred masks have
    boxes = random_boxes(rng, 50, height, width)
    np.testing.assert_allclose(
        proposal_importance(attention, boxes), reference_importance(attention, boxes), atol=1e-12
    )


def test_matches_direct_loop_on_a_sparse_map_with_integer_boxes() -> None:
    rng = np.random.default_rng(1)
    attention = np.zeros((30, 20))
    attention[10:14, 5:9] = rng.random((4, 4))
    boxes = rng.integers(-3, 33, size=(200, 4))
    np.testing.assert_allclose(
        proposal_importance(attention, boxes), reference_importance(attention, boxes), atol=1e-12
    )


def test_large_map_matches_direct_loop() -> None:
    rng = np.random.default_rng(2)
    attention = rng.random((480, 640)).astype(np.float32)
    boxes = random_boxes(rng, 36, 480, 640)
    np.testing.assert_allclose(
        proposal_importance(attention, boxes), reference_importance(attention, boxes), atol=1e-9
    )


def test_scores_lie_in_the_unit_interval() -> None:
    rng = np.random.default_rng(3)
    attention = rng.random((16, 16)) * (rng.random((16, 16)) < 0.2)
    scores = proposal_importance(attention, random_boxes(rng, 500, 16, 16))
    assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_input_dtypes_give_the_same_scores(block_map: np.ndarray) -> None:
    boxes = np.array([[1, 1, 2, 3], [0, 0, 2, 2]])
    expected = proposal_importance(block_map, boxes)
    for attention in (block_map.astype(np.float32), block_map.astype(np.uint8), block_map > 0):
        np.testing.assert_allclose(proposal_importance(attention, boxes), expected)
    np.testing.assert_allclose(proposal_importance(block_map, boxes.astype(np.float32)), expected)
    assert proposal_importance(block_map.tolist(), boxes.tolist()) == pytest.approx(expected)


def test_inputs_are_not_modified(block_map: np.ndarray) -> None:
    boxes = np.array([[-1.6, 0.5, 9.0, 2.5]])
    map_before, boxes_before = block_map.copy(), boxes.copy()
    proposal_importance(block_map, boxes)
    np.testing.assert_array_equal(block_map, map_before)
    np.testing.assert_array_equal(boxes, boxes_before)


# --- summed-area tables --------------------------------------------------------------------------


def test_summed_area_table_holds_prefix_sums() -> None:
    attention = np.arange(12.0).reshape(3, 4)
    table = summed_area_table(attention)
    assert table.shape == (4, 5)
    for i in range(4):
        for j in range(5):
            assert table[i, j] == attention[:i, :j].sum()


def test_sampled_table_equals_the_full_table_on_its_grid() -> None:
    rng = np.random.default_rng(4)
    attention = rng.random((9, 13))
    rows = np.array([0, 2, 3, 8, 9])
    cols = np.array([0, 1, 7, 13])
    np.testing.assert_allclose(
        sampled_summed_area_table(attention, rows, cols),
        summed_area_table(attention)[np.ix_(rows, cols)],
    )


# --- input validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attention", "message"),
    [
        (np.ones(4), "shape \\[H, W\\]"),
        (np.ones((2, 2, 3)), "shape \\[H, W\\]"),
        (np.ones((0, 4)), "must not be empty"),
        (np.array([[0.0, np.nan]]), "finite"),
        (np.array([[0.0, np.inf]]), "finite"),
        (np.array([[0.5, -0.1]]), "non-negative"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_invalid_attention_maps_raise(attention: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        proposal_importance(attention, np.array([[0, 0, 1, 1]]))


@pytest.mark.parametrize(
    "boxes",
    [
        np.array([0, 0, 1, 1]),
        np.zeros((2, 3)),
        np.zeros((1, 2, 4)),
        np.array([[0.0, 0.0, np.nan, 1.0]]),
        np.array([[0.0, -np.inf, 1.0, 1.0]]),
        np.array([["0", "0", "1", "1"]]),
    ],
)
def test_invalid_boxes_raise(boxes: np.ndarray) -> None:
    with pytest.raises(ValueError, match="boxes"):
        proposal_importance(np.ones((4, 4)), boxes)


# --- averaging several maps ----------------------------------------------------------------------


def test_average_attention_maps_is_the_pixel_mean() -> None:
    maps = [np.array([[0, 3], [6, 9]], dtype=np.uint8), np.array([[3.0, 3.0], [0.0, 0.0]])]
    averaged = average_attention_maps(maps)
    assert averaged.dtype == np.float64
    np.testing.assert_array_equal(averaged, [[1.5, 3.0], [3.0, 4.5]])


def test_average_attention_maps_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        average_attention_maps([])
    with pytest.raises(ValueError, match="share one shape"):
        average_attention_maps([np.zeros((2, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="\\[H, W\\]"):
        average_attention_maps([np.zeros(4)])
