"""Crops are cut as the published weights expect: the box centre on pixel 112 of 224."""

from __future__ import annotations

import numpy as np

from core.crops import crop_person, normalise


def _dot_image(x: int, y: int, shape: tuple[int, int] = (300, 400)) -> np.ndarray:
    img = np.zeros((*shape, 3), np.uint8)
    img[y, x] = (255, 128, 7)
    return img


def test_box_centre_lands_on_pixel_112_at_scale_one():
    # side = 1.2 * 186.666... = 224 -> scale 1: every source pixel maps to exactly one crop pixel.
    box = np.array([100.0, 50.0, 224 / 1.2, 100.0])
    crop = crop_person(_dot_image(100, 50), box)
    assert crop.shape == (224, 224, 3)
    ys, xs = np.nonzero(crop[..., 0])
    assert list(zip(ys, xs, strict=True)) == [(112, 112)]
    assert tuple(crop[112, 112]) == (255, 128, 7)


def test_offsets_scale_about_pixel_112():
    # side 112 -> scale 2: the source pixel one to the right and three down of the centre goes to
    # (112 + 2, 112 + 6); bilinear sampling at an exact pixel gives the pixel's value unchanged.
    box = np.array([60.0, 70.0, 50.0, 112 / 1.2])
    crop = crop_person(_dot_image(61, 73), box)
    assert tuple(crop[118, 114]) == (255, 128, 7)
    # Half way to the neighbouring crop pixel the value is interpolated: half of it.
    assert crop[118, 113, 0] == 128 and crop[118, 115, 0] == 128


def test_outside_the_image_is_black_and_normalise_is_imagenet():
    box = np.array([0.0, 0.0, 100.0, 100.0])  # centred on the top-left corner
    crop = crop_person(np.full((50, 50, 3), 200, np.uint8), box)
    assert crop[:100, :100].max() == 0 and crop[150, 150, 0] == 200
    x = normalise(crop[None])
    assert x.shape == (1, 3, 224, 224)
    assert abs(float(x[0, 0, 0, 0]) - (0 - 0.485) / 0.229) < 1e-6
    assert abs(float(x[0, 2, 150, 150]) - (200 / 255 - 0.406) / 0.225) < 1e-6
