"""Per-frame confidence (core/reprojection.py): joints against the detector's landmarks."""

from __future__ import annotations

import numpy as np

from core.camera import project_full
from core.cleanup.feet import joint_positions
from core.reprojection import CHECK_FRACTION, JOINT_LANDMARKS, frames_to_check, reprojection_error
from core.skeleton import SMPL_PARENTS
from core.standins.body import make_body


def test_error_is_small_when_landmarks_agree_and_large_when_sides_swap():
    body = make_body(0)
    rng = np.random.default_rng(0)
    n, width, height, focal = 12, 640, 480, 800.0
    pose = rng.normal(0, 0.15, (n, 24, 3))
    pose[:, 0] = [np.pi, 0, 0]  # upright, facing the camera
    translation = np.tile([0.0, 0.2, 4.0], (n, 1))
    parents = np.array(SMPL_PARENTS)
    joints = joint_positions(pose, np.zeros((n, 3)), body.joints, parents)
    px = project_full(joints, translation, width, height, focal)
    marks = np.full((n, 33, 3), np.nan)
    for m, j in JOINT_LANDMARKS:
        marks[:, m, :2] = px[:, j] + rng.normal(0, 1.0, (n, 2))
        marks[:, m, 2] = 0.9
    error = reprojection_error(pose, translation, body.joints, parents, marks, width, height, focal)
    assert np.all(error < 3.0)
    swapped = marks.copy()
    for left, right in ((11, 12), (13, 14), (15, 16), (23, 24), (25, 26), (27, 28)):
        swapped[:6, [left, right]] = marks[:6, [right, left]]
    swapped[8] = np.nan  # not observed
    swapped[9, :, 2] = 0.1  # seen, but nothing visible enough
    error = reprojection_error(pose, translation, body.joints, parents, swapped, width, height, focal)
    box_h = np.full(n, 1.7 * focal / 4.0)  # about the person's height in pixels
    box = np.column_stack([np.full(n, 320.0), np.full(n, 240.0), box_h / 3, box_h])
    assert np.isnan(error[8]) and np.isnan(error[9])
    assert list(frames_to_check(error, box)) == [0, 1, 2, 3, 4, 5]
    assert np.all(error[:6] > CHECK_FRACTION * box_h[:6])
