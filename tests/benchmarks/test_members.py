"""The members benchmark feeds a smaller member the larger picture averaged down."""

import numpy as np

from benchmarks.members import area_resize


def test_area_resize_averages_the_pixels_each_output_pixel_covers():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4) * 2
    out = area_resize(x, 2)
    assert out.shape == (2, 3, 2, 2) and out.dtype == np.uint8
    blocks = x.reshape(2, 3, 2, 2, 2, 2).astype(float).mean(axis=(3, 5))
    assert np.array_equal(out, np.round(blocks).astype(np.uint8))


def test_area_resize_keeps_a_flat_picture_flat_at_a_ratio_that_does_not_divide():
    x = np.full((1, 3, 96, 96), 200, dtype=np.uint8)
    assert np.array_equal(area_resize(x, 64), np.full((1, 3, 64, 64), 200, dtype=np.uint8))
