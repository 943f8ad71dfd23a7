"""The camera's rotation from background motion (core/cleanup/camera_motion.py), on synthetic clips
with known camera motion: a textured far plane seen by a panning and tilting camera (warpPerspective
with H = K R K^-1), a moving textured "person", a translating camera over two planes at different
depths, and frames with nothing to follow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.cleanup.camera_motion import (
    CameraMotionOptions,
    CameraRotationTracker,
    fit_rotation,
    optical_axis_angles,
    rotation_angle_deg,
)

W, H = 320, 180
FOCAL = float(np.hypot(W, H))


def intrinsics(w: int = W, h: int = H, focal: float = FOCAL) -> np.ndarray:
    """Pinhole K with the principal point at the image centre (pixel centres at integers)."""
    return np.array([[focal, 0, (w - 1) / 2], [0, focal, (h - 1) / 2], [0, 0, 1.0]])


def rot_y(deg: float) -> np.ndarray:
    """Rotation about y (a pan to the right for a camera-to-reference rotation)."""
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def rot_x(deg: float) -> np.ndarray:
    """Rotation about x (a tilt up for a camera-to-reference rotation: y points down)."""
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def texture(w: int, h: int, seed: int, density: float = 1.5e-3) -> np.ndarray:
    """A gray texture with corners everywhere: blurred noise under random discs and rectangles
    (``density`` of them per pixel)."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 2)
    img = cv2.normalize(img, None, 40, 200, cv2.NORM_MINMAX).astype(np.uint8)
    for _ in range(int(density * w * h)):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(3, 14))
        g = int(rng.integers(0, 256))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, g, -1)
        else:
            cv2.rectangle(img, (x - r, y - r // 2), (x + r, y + r), g, -1)
    return img


def plane_view(tex: np.ndarray, rot: np.ndarray, c: np.ndarray | None = None, depth: float = 1.0,
               w: int = W, h: int = H) -> np.ndarray:
    """What a camera rotated by ``rot`` (its axes -> camera 0's) at ``c`` (camera 0's axes) sees of a
    plane z = depth textured with ``tex`` as camera 0 would see it (same focal), centred on its optical axis."""
    th, tw = tex.shape
    K, Kt = intrinsics(w, h, FOCAL * w / W), intrinsics(tw, th, FOCAL * w / W)
    c = np.zeros(3) if c is None else np.asarray(c, np.float64)
    # A pixel u of this camera looks along d = rot K^-1 u from c; it meets the plane at X with
    # X / depth ~ ((1 - c_z / depth) I + c e3^T / depth) d, seen by camera 0 at Kt X / depth.
    Hm = Kt @ ((1 - c[2] / depth) * np.eye(3) + np.outer(c, [0, 0, 1.0]) / depth) @ rot @ np.linalg.inv(K)
    return cv2.warpPerspective(tex, Hm, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)


def pan_clip(n: int = 60, pan: float = 20.0, tilt: float = 6.0, seed: int = 0, noise: float = 0.0):
    """A camera panning right by ``pan`` and tilting up by ``tilt`` degrees over ``n`` frames.
    Returns frames (n, H, W) uint8 and the true camera-f-to-camera-0 rotations (n, 3, 3)."""
    tex = texture(1000, 520, seed)
    rng = np.random.default_rng(seed + 1)
    s = np.linspace(0, 1, n)
    rots = np.stack([rot_y(pan * a) @ rot_x(tilt * a * a) for a in s])
    frames = [plane_view(tex, r) for r in rots]
    if noise:
        frames = [np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8) for f in frames]
    return np.stack(frames), rots


def add_person(frames: np.ndarray, seed: int = 5) -> np.ndarray:
    """Paste a textured 70 x 130 patch walking across every frame; returns its boxes (n, 4) (cx, cy, w, h)."""
    patch = texture(70, 130, seed)
    n = len(frames)
    boxes = np.zeros((n, 4))
    for f in range(n):
        x0, y0 = int(20 + 200 * f / max(1, n - 1)), 30
        frames[f, y0:y0 + 130, x0:x0 + 70] = np.roll(patch, 3 * f, axis=0)  # the "limbs" move too
        boxes[f] = (x0 + 35, y0 + 65, 70, 130)
    return boxes


def run(frames, boxes=None, **kwargs):
    tr = CameraRotationTracker(W, H, FOCAL, **kwargs)
    for f, img in enumerate(frames):
        tr.add(img, None if boxes is None else boxes[f : f + 1])
    return tr.result()


def errors_deg(est: np.ndarray, true: np.ndarray) -> np.ndarray:
    return rotation_angle_deg(np.swapaxes(true, -1, -2) @ est)


def test_fit_rotation_recovers_a_rotation_among_outliers():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 3))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    true = rot_y(7) @ rot_x(-3)
    p = q @ true.T
    p[:80] = rng.normal(size=(80, 3))  # 40 % outliers
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    R, inl, _ = fit_rotation(p, q, 1e-3, rng)
    assert rotation_angle_deg(true.T @ R) < 1e-6
    assert inl[80:].all() and inl[:80].sum() <= 2


def test_pan_and_tilt_recovered_every_frame():
    frames, rots = pan_clip()
    res = run(frames)
    assert res.verdict == "rotating", res.note
    err = errors_deg(res.R_rel, rots)
    assert err.max() < 0.3, err.max()
    yaw, pitch = optical_axis_angles(res.R_rel[-1])
    assert yaw == pytest.approx(20.0, abs=0.3) and pitch == pytest.approx(6.0, abs=0.3)
    assert (res.quality > 0.5).all() and "pan" in res.note


def test_handheld_shake_recovered():
    """A hand-held camera: a random walk of up to 0.4 deg a frame in pan, tilt and roll."""
    rng = np.random.default_rng(7)
    angles = np.cumsum(rng.normal(0, 0.2, (50, 3)), axis=0)
    angles[0] = 0
    rots = []
    for yaw, pitch, roll in angles:
        a = np.radians(roll)
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        rots.append(rot_y(yaw) @ rot_x(pitch) @ rz)
    tex = texture(800, 520, 4)
    res = run(np.stack([plane_view(tex, r) for r in rots]))
    assert res.verdict == "rotating", res.note
    assert errors_deg(res.R_rel, np.stack(rots)).max() < 0.3


def test_moving_person_with_its_box_does_not_disturb():
    frames, rots = pan_clip()
    boxes = add_person(frames)
    res = run(frames, boxes)
    assert res.verdict == "rotating", res.note
    assert errors_deg(res.R_rel, rots).max() < 0.3


def test_moving_person_without_its_box_is_rejected_by_ransac():
    frames, rots = pan_clip()
    add_person(frames)
    res = run(frames)
    assert res.verdict == "rotating", res.note
    assert errors_deg(res.R_rel, rots).max() < 0.3


def test_static_camera_with_noise_is_exactly_identity():
    frames, _ = pan_clip(n=70, pan=0.0, tilt=0.0, noise=4.0)
    add_person(frames)
    res = run(frames)
    assert res.verdict == "static", res.note
    assert np.array_equal(res.R_rel, np.broadcast_to(np.eye(3), (70, 3, 3)))
    assert res.max_deg < 0.1


def two_plane_clip(n: int = 40, move: float = 0.15, seed: int = 2, pan: float = 0.0,
                   pivot: float = 0.0) -> np.ndarray:
    """Far textured plane at depth 10 m, near textured posts at 2.5 m covering about half the view;
    the camera moves sideways by ``move`` x 10 m and pans by ``pan`` degrees about a vertical axis
    ``pivot`` m behind its optical centre (a tripod head that is not nodal)."""
    far, near = texture(1000, 400, seed), texture(1400, 400, seed + 1)
    posts = np.zeros((400, 1400), np.uint8)
    for x in range(0, 1400, 120):
        posts[:, x : x + 60] = 255
    frames = []
    for a in np.linspace(0, 1, n):
        rot = rot_y(pan * a)
        c = np.array([move * 10 * a, 0.0, 0.0]) + rot @ [0, 0, pivot] - [0, 0, pivot]
        img = plane_view(far, rot, c, depth=10.0)
        m = plane_view(posts, rot, c, depth=2.5) > 127
        img[m] = plane_view(near, rot, c, depth=2.5)[m]
        frames.append(img)
    return np.stack(frames)


@pytest.mark.parametrize("move", [0.02, 0.15])  # 0.2 m and 1.5 m in 40 frames
def test_translating_camera_is_detected(move):
    res = run(two_plane_clip(move=move))
    assert res.verdict == "translating", res.note
    assert "camera moves" in res.note and len(res.parallax_share)


def test_tripod_pan_off_the_nodal_point_is_rotating():
    """A tripod head turning 10 cm behind the lens moves it by about a millimetre per frame: parallax
    well under the threshold, so the pan counts as a rotation. The lens moves 3.4 cm sideways in all,
    which the near posts see as 0.8 deg and the far plane as 0.2 deg: the fitted rotation lies between."""
    res = run(two_plane_clip(n=60, move=0.0, pan=20.0, pivot=0.1))
    assert res.verdict == "rotating", res.note
    assert (res.parallax_share < 0.1).all()
    assert errors_deg(res.R_rel, np.stack([rot_y(20.0 * a) for a in np.linspace(0, 1, 60)])).max() < 0.8


def test_far_plane_sideways_is_not_called_translating():
    """A camera moving in front of one far plane (no depth variation) sees no parallax: the same
    picture as a small pan, so the rotation model explains it."""
    far = texture(700, 400, 3)
    frames = np.stack([plane_view(far, np.eye(3), np.array([1.5 * a, 0, 0]), depth=10.0)
                       for a in np.linspace(0, 1, 40)])
    res = run(frames)
    assert res.verdict != "translating", res.note


@pytest.mark.parametrize("value", [0, 128])
def test_blank_frames_do_not_crash_and_are_static(value):
    res = run(np.full((20, H, W), value, np.uint8))
    assert res.verdict == "static" and res.R_rel.shape == (20, 3, 3)
    assert (res.quality[1:] == 0).all() and "no background" in res.note


def test_single_frame_and_no_frame():
    frames, _ = pan_clip(n=2)
    res = run(frames[:1])
    assert res.verdict == "static" and np.array_equal(res.R_rel, np.eye(3)[None])
    empty = CameraRotationTracker(W, H, FOCAL).result()
    assert empty.R_rel.shape == (0, 3, 3) and empty.verdict == "static"


def test_blackout_holds_the_rotation_and_recovers():
    frames, rots = pan_clip()
    frames[30:34] = 0
    res = run(frames)
    assert res.verdict == "rotating"
    assert (res.quality[30:34] == 0).all()
    assert np.allclose(res.R_rel[30:34], res.R_rel[29])
    err = errors_deg(res.R_rel, rots)
    # The corners of frame 29 are found again after the blackout: no turn is lost.
    assert err[:30].max() < 0.3 and err[34:].max() < 0.3


def test_person_filling_the_frame_holds():
    frames, _ = pan_clip(n=20)
    boxes = np.tile([W / 2, H / 2, W, H], (20, 1)).astype(float)
    boxes[:5] = np.nan  # nobody in the first five frames
    res = run(frames, boxes)
    assert (res.quality[6:] == 0).all()
    assert np.allclose(res.R_rel[6:], res.R_rel[5])


def test_rgb_input_size_change_and_scale():
    frames, rots = pan_clip(n=30)
    tr = CameraRotationTracker(W * 2, H * 2, FOCAL * 2)  # full frame twice the small copy
    for f, img in enumerate(frames):
        rgb = np.repeat(img[..., None], 3, axis=2)
        if 15 <= f < 18:
            rgb = cv2.resize(rgb, (W // 2, H // 2))  # the stream changes size for three frames
        tr.add(rgb, None, scale=2.0 if f < 15 or f >= 18 else 4.0)
    res = tr.result()
    assert res.R_rel.shape == (30, 3, 3) and "restarted" in res.note
    assert errors_deg(res.R_rel[:15], rots[:15]).max() < 0.3
    assert np.isfinite(res.R_rel).all()


def test_odd_inputs_do_not_crash():
    frames, _ = pan_clip(n=6)
    tr = CameraRotationTracker(W, H, FOCAL)
    tr.add(frames[0].astype(np.float32))  # float frame
    tr.add(np.zeros((4, 4), np.uint8))  # too small to use
    tr.add(np.stack([frames[2]] * 2, axis=2))  # two channels
    tr.add(np.full((H, W), np.nan, np.float32))
    tr.add(np.dstack([frames[4]] * 4), boxes=np.zeros((0, 4)))  # RGBA, nobody
    tr.add(frames[5], boxes=[W / 2, H / 2, 40, 80])  # one box as a flat list
    res = tr.result()
    assert res.R_rel.shape == (6, 3, 3) and np.isfinite(res.R_rel).all()


def test_bad_construction_is_refused():
    with pytest.raises(ValueError):
        CameraRotationTracker(0, 10, 100.0)
    with pytest.raises(ValueError):
        CameraRotationTracker(10, 10, float("nan"))
    with pytest.raises(ValueError):
        CameraRotationTracker(10, 10, 100.0, CameraMotionOptions(ransac_px=0))
