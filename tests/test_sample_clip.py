"""The demo's sample clip: a rendered person who walks and waves, that BlazePose follows and the
landmark solver turns into motion close to the truth the clip was rendered from."""

from __future__ import annotations

import av
import numpy as np
import pytest

from core.motion_format import read_motion
from core.posing import pose_person
from core.reconstruct import ReconstructOptions, reconstruct
from core.render.raster import project
from core.sample_clip import write_sample_clip

# BlazePose landmark -> SMPL joint: shoulders, elbows, wrists, hips, knees, ankles (left, right).
BLAZE_TO_SMPL = {11: 16, 12: 17, 13: 18, 14: 19, 15: 20, 16: 21, 23: 1, 24: 2, 25: 4, 26: 5, 27: 7, 28: 8}
MIRROR = np.arange(24)
for _l, _r in ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)):
    MIRROR[_l], MIRROR[_r] = _r, _l


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    truth = write_sample_clip(folder / "sample.mp4", seconds=4.0)
    empty = folder / "assets"
    empty.mkdir()  # no STAF weights, no SMPL: the landmark solver on the look-alike body
    reconstruct(folder / "sample.mp4", folder / "m.npz", ReconstructOptions(assets=str(empty), progress="none"))
    return folder / "sample.mp4", truth, read_motion(folder / "m.npz")


def bend(joints: np.ndarray, a: int, b: int, c: int) -> np.ndarray:
    """Angle (degrees) at joint b between the bones to a and to c, per frame: 180 is straight."""
    u, v = joints[:, a] - joints[:, b], joints[:, c] - joints[:, b]
    cos = np.einsum("fa,fa->f", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_the_clip_is_a_moving_full_body_person(clip):
    path, truth, _ = clip
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 120 and frames[0].shape == (480, 640, 3)
    lo, hi = truth.box[:, :2] - truth.box[:, 2:] / 2, truth.box[:, :2] + truth.box[:, 2:] / 2
    assert lo.min() > 0 and hi[:, 0].max() < 640 and hi[:, 1].max() < 480  # head to feet inside every frame
    assert np.ptp(truth.box[:, 0]) > 250 and truth.box[:, 3].min() > 180  # walks across, tall in the frame
    for a, b, c in ((1, 4, 7), (2, 5, 8), (16, 18, 20), (17, 19, 21)):
        assert np.ptp(bend(truth.joints, a, b, c)) > 30  # knees and elbows bend and straighten
    # The body is drawn: at the pelvis the picture differs from the empty room a few frames later.
    x, y = np.round(truth.joints_2d[0, 0]).astype(int)
    assert np.abs(frames[0][y, x].astype(int) - frames[60][y, x]).sum() > 60


def test_blazepose_follows_the_person_left_and_right(clip):
    _, truth, motion = clip
    person = motion.people[0]
    assert len(person) >= 0.95 * len(motion.frame_index)
    seen = ~np.isnan(person.landmarks[:, 0, 0])
    assert seen.sum() >= 0.45 * len(motion.frame_index)  # landmarks on every analysed frame (every 2nd)
    marks = person.landmarks[seen][:, list(BLAZE_TO_SMPL), :2]
    rows = person.frame[seen]
    height = np.median(truth.box[:, 3])
    err = np.linalg.norm(marks - truth.joints_2d[rows][:, list(BLAZE_TO_SMPL.values())], axis=-1)
    swapped = np.linalg.norm(marks - truth.joints_2d[rows][:, MIRROR[list(BLAZE_TO_SMPL.values())]], axis=-1)
    assert np.median(err) < 0.05 * height, (np.median(err), height)
    assert np.mean(np.median(err, 1) < np.median(swapped, 1)) > 0.9


def test_the_landmark_solver_moves_with_the_rendered_body(clip):
    _, truth, motion = clip
    person = motion.people[0]
    assert motion.meta["options"]["solver"] == "landmarks"
    joints, _ = pose_person(motion, person)
    pixels = project(joints, motion.meta["camera"]["focal_length_px"], 640, 480)
    rows = person.frame
    height = np.median(truth.box[:, 3])
    err = np.linalg.norm(pixels - truth.joints_2d[rows], axis=-1)
    swapped = np.linalg.norm(pixels[:, MIRROR] - truth.joints_2d[rows], axis=-1)
    assert np.median(err) < 0.05 * height, (np.median(err), height)
    assert np.all(np.median(err, 1) < np.median(swapped, 1))  # left and right never swapped
    for a, b, c in ((1, 4, 7), (2, 5, 8), (16, 18, 20), (17, 19, 21)):
        fitted, true = bend(joints, a, b, c), bend(truth.joints[rows], a, b, c)
        assert np.ptp(fitted) > 20, (b, np.ptp(fitted))  # not static
        if b in (4, 5):
            assert np.corrcoef(fitted, true)[0, 1] > 0.6  # the knees bend when the rendered ones do
    # The rendered floor is found, the camera roughly where it was (1.5 m up, pitched 8 degrees down).
    world = motion.meta["world"]
    assert abs(world["camera_height_m"] - 1.5) < 0.4 and abs(world["camera_pitch_deg"] - 8.0) < 4.0, world


def test_short_small_and_long_clips(tmp_path):
    truth = write_sample_clip(tmp_path / "short.mp4", seconds=0.2, width=320, height=240)
    assert truth.box.shape == (6, 4) and truth.box[:, 3].min() > 90
    truth = write_sample_clip(tmp_path / "long.mp4", seconds=4.5, width=320, height=240, fps=20)
    assert len(truth.joints) == 90
    assert np.array_equal(truth.joints_2d[80], truth.joints_2d[0])  # the 4 s walk loops
    with av.open(str(tmp_path / "long.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 90
    assert not list(tmp_path.glob("*.tmp*"))
