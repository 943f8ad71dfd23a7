"""The cameras of the motion file: crop camera -> full-image camera -> root translation, and back."""

from __future__ import annotations

import numpy as np

from core.camera import crop_to_full, full_to_translation, project_full, translation_to_cameras


def test_translation_and_cameras_invert_each_other():
    rng = np.random.default_rng(0)
    width, height, focal = 1920, 1080, 2202.9
    box = np.column_stack([rng.uniform(200, 1700, 20), rng.uniform(200, 900, 20), rng.uniform(80, 400, 20),
                           rng.uniform(200, 900, 20)])
    cam_crop = np.column_stack([rng.uniform(0.6, 1.2, 20), rng.normal(0, 0.1, 20), rng.normal(0, 0.1, 20)])
    cam_full = crop_to_full(cam_crop, box, width, height)
    translation = full_to_translation(cam_full, width, focal)
    back_crop, back_full = translation_to_cameras(translation, box, width, height, focal)
    assert np.allclose(back_full, cam_full, rtol=1e-10, atol=1e-12)
    assert np.allclose(back_crop, cam_crop, rtol=1e-10, atol=1e-12)


def test_the_box_centre_projects_where_the_crop_camera_puts_it():
    # A root at the camera's centre ray, 5 m away, lands in the image centre whatever the box.
    t = np.array([[0.0, 0.0, 5.0]])
    px = project_full(np.zeros((1, 1, 3)), t, 640, 480, 800.0)
    assert np.allclose(px, [[[320.0, 240.0]]])
    cam_crop, cam_full = translation_to_cameras(t, np.array([[320.0, 240.0, 100.0, 200.0]]), 640, 480, 800.0)
    assert np.allclose(cam_crop[0, 1:], 0.0) and np.isclose(cam_full[0, 0], 2 * 800 / (640 * 5))
