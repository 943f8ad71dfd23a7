"""The motion file: round trip, validation, and every bad file a reader may be handed."""

from __future__ import annotations

import numpy as np
import pytest
from motion_samples import sample_arrays

from core.motion import robust_shape, write_motion
from core.motion_format import (
    FLAG_DETECTED,
    FLAG_INTERPOLATED,
    FLAG_NOT_ANALYSED,
    FORMAT_VERSION,
    MotionFormatError,
    motion_arrays,
    read_motion,
)
from core.people.smoothing import build_track
from core.smpl import load_smpl_data
from core.standins.motion import synthetic_motion


@pytest.fixture(scope="module")
def smpl(standin_assets):
    return load_smpl_data(standin_assets / "SMPL_NEUTRAL.pkl")


@pytest.fixture(scope="module")
def motion(smpl):
    return synthetic_motion(smpl, n_frames=40, n_people=2, gap=(10, 15))


def test_round_trip_keeps_every_array_and_the_exact_frame_rate(motion, tmp_path):
    write_motion(tmp_path / "m.npz", motion)
    back = read_motion(tmp_path / "m.npz")
    assert back.fps == 30000 / 1001
    assert back.meta == motion.meta
    assert [p.person_id for p in back.people] == [0, 1]
    for a, b in zip(motion.people, back.people, strict=True):
        for name in ("frame", "time", "pose", "betas", "cam_crop", "cam_full", "translation", "box", "flags",
                     "shape", "rest_vertices", "rest_joints"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    p0 = back.person(0)
    assert len(p0) == 35 and 12 not in p0.frame
    assert p0.flags[p0.frame == 15][0] == FLAG_INTERPOLATED and p0.flags[0] == FLAG_DETECTED
    assert back.joint_names[0] == "pelvis" and back.parents[0] == -1
    # No pickles anywhere: plain np.load reads it.
    with np.load(tmp_path / "m.npz", allow_pickle=False) as raw:
        assert str(raw["format"]) == "staf-motion"


def test_rest_pose_is_the_shaped_template(motion, smpl):
    p = motion.people[0]
    expected = smpl.v_template + smpl.shapedirs @ p.shape
    assert np.allclose(p.rest_vertices, expected, atol=1e-5)
    assert np.allclose(p.rest_joints, smpl.j_regressor @ expected, atol=1e-5)


def test_robust_shape_ignores_outlier_frames():
    betas = np.zeros((50, 10))
    betas[:, 0] = 1.0 + np.linspace(-0.01, 0.01, 50)
    betas[3] = 40.0
    assert abs(robust_shape(betas)[0] - 1.0) < 1e-3


def _rewrite(motion, path, **changes):
    arrays = motion_arrays(motion)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize("changes, message", [
    ({"version": np.array(FORMAT_VERSION + 1)}, "newer than this reader"),
    ({"format": np.array("something-else")}, "not a motion file"),
    ({"person_0/pose": None}, "'person_0/pose' is missing"),
    ({"person_1/betas": np.zeros((40, 9), np.float32)}, r"'person_1/betas' has shape \(40, 9\)"),
    ({"meta": np.array("{not json")}, "'meta' is not valid JSON"),
    ({"parents": np.arange(24, dtype=np.int32)}, "not a kinematic tree"),
    ({"faces": np.full((13776, 3), 7000, np.int32)}, "outside"),
])
def test_bad_motion_files_fail_with_one_line(motion, tmp_path, changes, message):
    _rewrite(motion, tmp_path / "bad.npz", **changes)
    with pytest.raises(MotionFormatError, match=message) as err:
        read_motion(tmp_path / "bad.npz")
    assert "\n" not in str(err.value) and "bad.npz" in str(err.value)


def test_nan_and_damaged_files(motion, tmp_path):
    pose = motion.people[0].pose.copy()
    pose[3, 5, 1] = np.nan
    _rewrite(motion, tmp_path / "nan.npz", **{"person_0/pose": pose})
    with pytest.raises(MotionFormatError, match="NaN"):
        read_motion(tmp_path / "nan.npz")
    write_motion(tmp_path / "ok.npz", motion)
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(MotionFormatError, match=r"cut\.npz"):
        read_motion(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(MotionFormatError, match="not a motion file"):
        read_motion(tmp_path / "text.npz")
    with pytest.raises(MotionFormatError, match="not found"):
        read_motion(tmp_path / "absent.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array([object()], dtype=object))
    with pytest.raises(MotionFormatError):
        read_motion(pickled)


def test_other_widths_and_deflated_files_still_read(motion, tmp_path):
    """Hand-written files may use numpy's default widths or savez_compressed: read and converted."""
    arrays = motion_arrays(motion)
    arrays["person_0/pose"] = arrays["person_0/pose"].astype(np.float64)
    arrays["frame_index"] = arrays["frame_index"].astype(np.int32)
    arrays["person_1/flags"] = arrays["person_1/flags"].astype(np.int64)
    np.savez_compressed(tmp_path / "wide.npz", **arrays)
    back = read_motion(tmp_path / "wide.npz")
    assert back.people[0].pose.dtype == np.float32 and back.frame_index.dtype == np.int64
    assert back.people[1].flags.dtype == np.uint8
    assert np.array_equal(back.people[0].pose, motion.people[0].pose)
    assert np.array_equal(back.frame_index, motion.frame_index)


def test_version_1_files_still_read_and_version_2_arrays_round_trip(tmp_path):
    arrays = sample_arrays()
    v2_only = ("contacts", "world_translation", "pose_locked", "reprojection_px")
    old = {k: v for k, v in arrays.items() if k != "camera_to_world" and k.rsplit("/", 1)[-1] not in v2_only}
    old["version"] = np.array(1, np.int64)
    np.savez(tmp_path / "v1.npz", **old)
    v1 = read_motion(tmp_path / "v1.npz")
    assert v1.camera_to_world is None and v1.person(1).contacts is None and v1.person(1).pose_locked is None
    np.savez(tmp_path / "v2.npz", **arrays)
    v2 = read_motion(tmp_path / "v2.npz")
    assert np.array_equal(v2.camera_to_world, arrays["camera_to_world"])
    for name in ("contacts", "world_translation", "pose_locked", "reprojection_px"):
        assert np.array_equal(getattr(v2.person(1), name), arrays[f"person_1/{name}"], equal_nan=True), name
    assert v2.person(0).contacts is None


def test_frames_the_detector_skipped_have_their_own_flag():
    ran = np.arange(12) % 2 == 0  # --detect-every 2
    boxes = [np.array([100.0, 100, 50, 80]) if r and i not in (4, 6) else None for i, r in enumerate(ran)]
    track = build_track(boxes, ran, max_gap=5, smooth_sigma=0)
    assert (track.flags[[0, 2, 8, 10]] == FLAG_DETECTED).all()
    assert (track.flags[[1, 9, 11]] == FLAG_NOT_ANALYSED).all()  # between or after analysed frames
    assert (track.flags[[4, 6]] == FLAG_INTERPOLATED).all()  # analysed, nobody found, filled in
    assert (track.flags[[3, 5, 7]] == FLAG_INTERPOLATED | FLAG_NOT_ANALYSED).all()  # skipped, inside that gap
