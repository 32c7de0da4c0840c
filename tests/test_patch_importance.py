"""Patch importance (``data.importance.patch_importance``, ``box_patch_importance``) against a
brute-force loop over patches and pixels, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from hint_lightning.data.importance import box_map, box_patch_importance, patch_importance


def brute_force(attention: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """HINT's E+ / (E+ + E-) for every patch, pixel by pixel."""
    height, width = attention.shape
    rows, cols = grid
    ph, pw = height // rows, width // cols
    out = []
    for r in range(rows):
        for c in range(cols):
            inside = outside = 0.0
            n_in = n_out = 0
            for i in range(height):
                for j in range(width):
                    if r * ph <= i < (r + 1) * ph and c * pw <= j < (c + 1) * pw:
                        inside, n_in = inside + attention[i, j], n_in + 1
                    else:
                        outside, n_out = outside + attention[i, j], n_out + 1
            e_plus = inside / n_in
            e_minus = outside / n_out if n_out else 0.0
            out.append(e_plus / (e_plus + e_minus) if e_plus + e_minus > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize(("shape", "grid"), [((12, 8), (3, 4)), ((8, 8), (1, 1)), ((6, 9), (6, 3))])
def test_patch_importance_matches_brute_force(
    shape: tuple[int, int], grid: tuple[int, int]
) -> None:
    rng = np.random.default_rng(sum(shape))
    attention = rng.random(shape) * (rng.random(shape) > 0.6)  # sparse: patches partly covered
    np.testing.assert_allclose(
        patch_importance(attention, grid), brute_force(attention, grid), atol=1e-12
    )


def test_box_patch_importance_is_exact_on_fractional_boxes() -> None:
    boxes = np.array([[1.5, 0.25, 5.0, 3.0], [6.0, 6.0, 8.0, 8.0]])
    coverage = np.zeros((8 * 4, 8 * 4))  # 4x supersampled: quarter pixels are exact here
    for x1, y1, x2, y2 in boxes:
        coverage[int(y1 * 4) : int(y2 * 4), int(x1 * 4) : int(x2 * 4)] += 1.0
    pixel_map = coverage.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(box_map(boxes, (8, 8)), pixel_map)
    np.testing.assert_allclose(
        box_patch_importance(boxes, (8, 8), (2, 4)), brute_force(pixel_map, (2, 4))
    )
    assert box_patch_importance(np.zeros((0, 4)), (8, 8), (2, 2)).tolist() == [0.0] * 4


def test_bad_map_size_and_grid_are_named() -> None:
    with pytest.raises(ValueError, match="human map has size 8x6 but the image is 8x8"):
        patch_importance(np.ones((8, 6)), (2, 2), image_size=(8, 8))
    with pytest.raises(ValueError, match="grid of 3x2 patches does not divide the image of 8x8"):
        patch_importance(np.ones((8, 8)), (3, 2))
    with pytest.raises(ValueError, match="two positive integers"):
        box_patch_importance(np.zeros((0, 4)), (8, 8), (0, 2))
