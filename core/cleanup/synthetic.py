"""A procedural walk with known foot contacts and a known camera, and STAF-like noise to spoil it.

Tests and the clean-up benchmark need motions whose truth is known exactly: where the floor is,
which foot point touches it on which frame, how the camera turns. ``make_walk`` builds one on the
stand-in body (feet skinned rigidly, see ``walk_body``): the pelvis follows a path (straight, or
with a turn) on the ground plane z = 0, each foot goes through heel strike, foot flat, heel off,
toe off and swing, and the legs are solved by inverse kinematics from the pelvis and the feet, so
a planted heel or toe stays exactly where it was put (to float precision), including while both
feet are down. Arms counter-swing, the spine counter-rotates a little. A camera at a known height
and pitch watches, fixed, or panning (and tilting a little) to follow the walker.

Everything comes out in the engine's conventions (root orientation and translation in each
frame's camera axes, x right, y down, z forward) plus the truth in the world frame that
``core.cleanup.ground`` builds (origin on the floor under the camera, z up, y the first camera's
forward direction on the floor). ``add_staf_noise`` adds what STAF gets wrong: depth along the
viewing ray, small joint rotations, a little image-plane translation, all temporally correlated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d
from scipy.spatial.transform import Rotation

from core.cleanup.feet import foot_points, foot_vertex_indices, joint_positions, pelvis_rays

__all__ = ["SyntheticWalk", "add_staf_noise", "make_walk", "walk_body"]

_UP = np.array([0.0, 0.0, 1.0])
# Gait phases of one leg as fractions of a cycle, from its heel strike (typical walking values).
_FLAT, _HEEL_OFF, _TOE_OFF = 0.10, 0.45, 0.62
_STRIKE_DEG, _PUSH_DEG = -20.0, 35.0  # foot angle at heel strike (toes up) and at toe off (toes down)


@dataclass(frozen=True, eq=False)
class SyntheticWalk:
    """A walk in the engine's conventions with its ground truth (F frames; metres, radians).

    Inputs as the engine has them: ``pose`` (F, 24, 3) axis-angle, root in each frame's camera axes;
    ``translation`` (F, 3) camera axes; the body (``rest_vertices``, ``rest_joints``,
    ``skin_weights``, ``parents``); ``frames`` (F,); ``fps``; ``r_rel`` (F, 3, 3) camera-f -> camera-0.
    Truth: ``camera_to_world`` (F, 4, 4), ``world_joints`` (F, 24, 3), ``world_feet`` (F, 4, 3) at
    ``foot_indices`` (4,), ``contacts`` (F, 4) bool, ``camera_height`` (m), ``camera_pitch_deg``.
    """

    fps: float
    frames: np.ndarray
    pose: np.ndarray
    translation: np.ndarray
    rest_vertices: np.ndarray
    rest_joints: np.ndarray
    skin_weights: np.ndarray
    parents: np.ndarray
    foot_indices: np.ndarray
    r_rel: np.ndarray
    camera_to_world: np.ndarray
    world_joints: np.ndarray
    world_feet: np.ndarray
    contacts: np.ndarray
    camera_height: float
    camera_pitch_deg: float

    @property
    def distance_walked(self) -> float:
        """Length of the pelvis's path on the floor (m)."""
        return float(np.linalg.norm(np.diff(self.world_joints[:, 0, :2], axis=0), axis=1).sum())

    def subset(self, rows: np.ndarray) -> SyntheticWalk:
        """The same walk on some frames only (to make gaps): every per-frame array indexed by ``rows``."""
        per_frame = ("frames", "pose", "translation", "r_rel", "camera_to_world", "world_joints", "world_feet",
                     "contacts")
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update({k: values[k][rows] for k in per_frame})
        return SyntheticWalk(**values)


def walk_body(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The stand-in body with rigid feet: (rest_vertices, rest_joints, skin_weights, parents).

    The stand-in skins its heel 44 % to the shin, so a heel vertex slides as the ankle flexes and
    no pose keeps heel and toe planted together; real SMPL's heel follows the ankle. Vertices
    below the ankle that are skinned mostly to the ankle and foot get only those two joints here.
    """
    from core.standins.body import make_body

    body = make_body(seed)
    verts = np.array(body.v_template, np.float64)
    joints = np.array(body.joints, np.float64)
    weights = np.array(body.lbs_weights, np.float64)
    for ankle, foot in ((7, 10), (8, 11)):
        share = weights[:, ankle] + weights[:, foot]
        rows = (share > 0.5) & (verts[:, 1] < joints[ankle, 1])
        kept = weights[rows][:, [ankle, foot]] / share[rows, None]
        weights[rows] = 0.0
        weights[rows, ankle], weights[rows, foot] = kept[:, 0], kept[:, 1]
    return verts, joints, weights, np.array(body.parents, np.int64)


def _rot_x(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*np.shape(angle), 3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1], out[..., 1, 2], out[..., 2, 1], out[..., 2, 2] = c, -s, s, c
    return out


def _body_frame(heading: np.ndarray) -> np.ndarray:
    """Rest axes -> world for a person facing ``heading`` (radians in the floor plane): y up, z along it."""
    h = np.stack([np.cos(heading), np.sin(heading), np.zeros_like(heading)], -1)
    up = np.broadcast_to(_UP, h.shape)
    return np.stack([np.cross(up, h), up, h], -1)


def _min_jerk(u: np.ndarray) -> np.ndarray:
    return u ** 3 * (10.0 - 15.0 * u + 6.0 * u * u)


def _path(length: float, heading0: float, turn: float, turn_start: float, turn_length: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A path sampled every mm: arc lengths (N,), floor positions (N, 2), headings (N,)."""
    s = np.arange(0.0, length + 1e-3, 1e-3)
    heading = heading0 + turn * np.clip((s - turn_start) / max(turn_length, 1e-9), 0.0, 1.0)
    step = np.stack([np.cos(heading), np.sin(heading)], -1)
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(0.5 * (step[1:] + step[:-1]) * 1e-3, axis=0)])
    return s, xy, heading


def _leg_ik(pelvis_r: np.ndarray, hip: np.ndarray, ankle: np.ndarray, foot_r: np.ndarray, a: np.ndarray,
            b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local rotations (hip, knee, ankle) putting the ankle joint at ``ankle`` with world orientation
    ``foot_r``; ``a``, ``b`` the rest hip->knee and knee->ankle offsets. Exact when reachable."""
    # Knee flexion kappa about x: |a + Rx(kappa) b| = |ankle - hip|.
    dist2 = np.sum((ankle - hip) ** 2, axis=-1)
    p = a[1] * b[1] + a[2] * b[2]
    q = a[2] * b[1] - a[1] * b[2]
    target = (dist2 - a @ a - b @ b) / 2.0 - a[0] * b[0]
    amp, phase = np.hypot(p, q), np.arctan2(q, p)
    kappa = phase + np.arccos(np.clip(target / amp, -1.0, 1.0))
    knee_r = _rot_x(kappa)
    leg = a + np.einsum("fab,b->fa", knee_r, b)
    want = np.einsum("fba,fb->fa", pelvis_r, ankle - hip)
    forward = np.einsum("fba,fb->fa", pelvis_r, foot_r[:, :, 2] * [1.0, 1.0, 0.0])

    def frame(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        e1 = first / np.linalg.norm(first, axis=-1, keepdims=True)
        e2 = second - np.sum(second * e1, -1, keepdims=True) * e1
        e2 /= np.linalg.norm(e2, axis=-1, keepdims=True)
        return np.stack([e1, e2, np.cross(e1, e2)], -1)

    hip_r = frame(want, forward) @ np.swapaxes(frame(leg, np.broadcast_to([0.0, 0.0, 1.0], leg.shape)), -1, -2)
    ankle_r = np.swapaxes(pelvis_r @ hip_r @ knee_r, -1, -2) @ foot_r
    return hip_r, knee_r, ankle_r


def _foot_track(t: np.ndarray, side: int, period: float, speed: float, lead: float, path, lateral: float,
                heel: np.ndarray, toe: np.ndarray, flat_angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ankle positions (F, 3), foot orientations (F, 3, 3) and contacts (F, 2: heel, toe) of one leg.

    ``heel``, ``toe``: rest offsets of the heel and toe points from the ankle joint; ``side`` +1 left;
    ``lateral``: the heel's distance from the path's centre line.
    """
    s_grid, xy_grid, heading_grid = path
    cycles = t / period + (0.0 if side > 0 else 0.5)
    step = np.floor(cycles)
    phase = cycles - step

    def placement(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = speed * (k - (0.0 if side > 0 else 0.5)) * period + lead
        ang = np.interp(s, s_grid, heading_grid)
        xy = np.stack([np.interp(s, s_grid, xy_grid[:, 0]), np.interp(s, s_grid, xy_grid[:, 1])], -1)
        left = np.stack([-np.sin(ang), np.cos(ang)], -1)
        return np.concatenate([xy + side * lateral * left, np.zeros((len(k), 1))], -1), ang

    def orient(ang: np.ndarray, pitch: np.ndarray) -> np.ndarray:
        return _body_frame(ang) @ _rot_x(flat_angle + np.radians(pitch))

    strike, ang = placement(step)
    r_flat = orient(ang, np.zeros_like(ang))
    toe_spot = strike + np.einsum("fab,b->fa", r_flat, toe - heel)
    ankle = np.empty((len(t), 3))
    foot_r = np.empty((len(t), 3, 3))
    # Stance: heel rocker, foot flat, heel off (about the toe point).
    u = np.clip(phase / _FLAT, 0.0, 1.0)
    pitch = np.where(phase < _FLAT, _STRIKE_DEG * (1.0 - _min_jerk(u)), 0.0)
    u = np.clip((phase - _HEEL_OFF) / (_TOE_OFF - _HEEL_OFF), 0.0, 1.0)
    pitch = np.where(phase >= _HEEL_OFF, _PUSH_DEG * _min_jerk(u), pitch)
    r_stance = orient(ang, pitch)
    on_heel = phase < _HEEL_OFF
    ankle[:] = np.where(on_heel[:, None], strike - np.einsum("fab,b->fa", r_stance, heel),
                        toe_spot - np.einsum("fab,b->fa", r_stance, toe))
    foot_r[:] = r_stance
    # Swing: from this step's toe off to the next step's heel strike.
    swing = phase >= _TOE_OFF
    if np.any(swing):
        u = (phase[swing] - _TOE_OFF) / (1.0 - _TOE_OFF)
        r0 = orient(ang[swing], np.full(u.shape, _PUSH_DEG))
        a0 = toe_spot[swing] - np.einsum("fab,b->fa", r0, toe)
        nxt, ang1 = placement(step[swing] + 1)
        r1 = orient(ang1, np.full(u.shape, _STRIKE_DEG))
        a1 = nxt - np.einsum("fab,b->fa", r1, heel)
        m = _min_jerk(u)[:, None]
        pos = a0 + m * (a1 - a0)
        # Lift: a bump of 4 cm, and the heel comes down at 0.3 m/s as at a real heel strike.
        swing_s = (1.0 - _TOE_OFF) * period
        pos[:, 2] = (a0[:, 2] + m[:, 0] * (a1[:, 2] - a0[:, 2]) + 0.64 * u * u * (1.0 - u) ** 2
                     - 0.3 * swing_s * u * u * (u - 1.0))
        ankle[swing] = pos
        m = m[:, 0]
        foot_r[swing] = orient(ang[swing] + m * (ang1 - ang[swing]), _PUSH_DEG + m * (_STRIKE_DEG - _PUSH_DEG))
    contacts = np.stack([phase < _HEEL_OFF, (phase >= _FLAT) & (phase < _TOE_OFF)], -1)
    return ankle, foot_r, contacts


def _look(forward_xy: np.ndarray, pitch_deg: np.ndarray) -> np.ndarray:
    """Camera-to-world rotations (F, 3, 3): columns right, down, forward (OpenCV axes in a z-up world)."""
    h = forward_xy / np.linalg.norm(forward_xy, axis=-1, keepdims=True)
    p = np.radians(pitch_deg)[:, None]
    fwd = np.concatenate([np.cos(p) * h, -np.sin(p)], -1)
    right = np.concatenate([h[:, 1:2], -h[:, 0:1], np.zeros_like(p)], -1)
    return np.stack([right, np.cross(fwd, right), fwd], -1)


def make_walk(seconds: float = 8.0, fps: float = 30.0, *, step_length: float = 0.6, period: float = 1.1,
              direction_deg: float = 30.0, turn_deg: float = 0.0, distance: float = 6.0,
              camera_height: float = 1.6, camera_pitch_deg: float = 10.0, panning: bool = False,
              tilt_wobble_deg: float = 2.0, seed: int = 0) -> SyntheticWalk:
    """A walk of ``seconds`` at ``fps`` seen by a camera ``camera_height`` m up, pitched down by
    ``camera_pitch_deg``; ``direction_deg`` 0 walks left to right across the view, 90 away from the
    camera; ``turn_deg`` bends the path (over its middle third); ``panning`` makes the camera turn
    to follow the pelvis and tilt by up to ``tilt_wobble_deg``. The path's middle is ``distance``
    m in front of the camera. ``seed`` picks the stand-in body's shape."""
    verts, joints, weights, parents = walk_body(seed)
    feet = foot_vertex_indices(verts, weights)
    n = round(seconds * fps)
    t = np.arange(n) / fps
    speed = 2.0 * step_length / period
    length = speed * (seconds + 3.0 * period) + 2.0
    turn_length = length / 3.0
    path = _path(length, 0.0, np.radians(turn_deg), turn_length, turn_length)
    s0 = speed * period * 1.5  # the walk starts in full stride, a few steps along the path
    lead = s0 + 0.5 * step_length  # a heel strikes half a step ahead of the pelvis
    s_pelvis = s0 + speed * t
    s_grid, xy_grid, heading_grid = path
    # Place the visible part of the path in front of the camera, along ``direction_deg``.
    mid = np.array([np.interp(s_pelvis, s_grid, xy_grid[:, i]) for i in range(2)]).T.mean(0)
    rot = np.radians(direction_deg)
    c, s = np.cos(rot), np.sin(rot)
    xy_grid = (xy_grid - mid) @ np.array([[c, s], [-s, c]]) + [0.0, distance]
    path = (s_grid, xy_grid, heading_grid + rot)
    heading_p = np.interp(s_pelvis, s_grid, path[2])
    left_p = np.stack([-np.sin(heading_p), np.cos(heading_p)], -1)
    sway = 0.02 * np.sin(2.0 * np.pi * t / period)
    pelvis_xy = np.stack([np.interp(s_pelvis, s_grid, xy_grid[:, i]) for i in range(2)], -1) + sway[:, None] * left_p
    pelvis_r = _body_frame(heading_p)

    pose = np.zeros((n, 24, 3))
    legs = []
    for side, (hip_j, knee_j, ankle_j) in ((1, (1, 4, 7)), (-1, (2, 5, 8))):
        heel = verts[feet[0 if side > 0 else 2]] - joints[ankle_j]
        toe = verts[feet[1 if side > 0 else 3]] - joints[ankle_j]
        flat = np.arctan2(-(toe[1] - heel[1]), toe[2] - heel[2])
        lateral = abs(verts[feet[0 if side > 0 else 2], 0])
        ankle, foot_r, contact = _foot_track(t, side, period, speed, lead, path, lateral, heel, toe, -flat)
        legs.append((hip_j, knee_j, ankle_j, ankle, foot_r, contact))
    # Pelvis height: as high as the longer-reaching leg allows (98 % of its length), eroded then
    # smoothed (so it stays below that), and never past 99.5 % of the reach, so the IK is exact.
    allowed = np.full((2, n), np.inf)
    for hip_j, knee_j, ankle_j, ankle, _, _ in legs:
        a, b = joints[knee_j] - joints[hip_j], joints[ankle_j] - joints[knee_j]
        reach = np.array([[0.98], [0.995]]) * np.hypot(a[0] + b[0], np.hypot(a[1], a[2]) + np.hypot(b[1], b[2]))
        hip_xy = pelvis_xy + np.einsum("fab,b->fa", pelvis_r, joints[hip_j] - joints[0])[:, :2]
        flat_d2 = np.sum((ankle[:, :2] - hip_xy) ** 2, -1)
        allowed = np.minimum(allowed, ankle[:, 2] + np.sqrt(np.maximum(reach ** 2 - flat_d2, 0.0))
                             - (joints[hip_j, 1] - joints[0, 1]))
    height = gaussian_filter1d(minimum_filter1d(allowed[0], 2 * round(0.15 * fps) + 1, mode="nearest"),
                               0.06 * fps, mode="nearest")
    height = np.minimum(height, allowed[1])
    pelvis = np.concatenate([pelvis_xy, height[:, None]], -1)
    contacts = np.zeros((n, 4), bool)
    for i, (hip_j, knee_j, ankle_j, ankle, foot_r, contact) in enumerate(legs):
        hip = pelvis + np.einsum("fab,b->fa", pelvis_r, joints[hip_j] - joints[0])
        hip_r, knee_r, ankle_r = _leg_ik(pelvis_r, hip, ankle, foot_r, joints[knee_j] - joints[hip_j],
                                         joints[ankle_j] - joints[knee_j])
        for j, r in ((hip_j, hip_r), (knee_j, knee_r), (ankle_j, ankle_r)):
            pose[:, j] = Rotation.from_matrix(r).as_rotvec()
        contacts[:, 2 * i:2 * i + 2] = contact
    phase = 2.0 * np.pi * t / period
    swing = np.radians(15.0) * np.cos(phase)
    for j, side in ((16, 1.0), (17, -1.0)):
        arm = Rotation.from_rotvec(np.stack([side * swing, 0 * t, 0 * t], -1)) * Rotation.from_euler(
            "z", -side * 75.0, degrees=True)
        pose[:, j] = arm.as_rotvec()
    pose[:, 18, 1], pose[:, 19, 1] = -np.radians(20.0), np.radians(20.0)
    pose[:, 9, 1] = np.radians(4.0) * np.sin(phase)  # the chest turns a little with the arms

    # Camera: fixed, aimed at the middle of the walk, or panning after the pelvis.
    cam_pos = np.array([0.0, 0.0, camera_height])
    aim = pelvis[:, :2] - cam_pos[:2]
    if panning:
        aim = gaussian_filter1d(aim, 0.5 * fps, axis=0, mode="nearest")
        pitch = camera_pitch_deg + tilt_wobble_deg * np.sin(2.0 * np.pi * t / 3.7)
    else:
        aim = np.broadcast_to(aim.mean(0), aim.shape)
        pitch = np.full(n, camera_pitch_deg)
    # Turn the whole scene about the camera's vertical so that the first camera looks along +y.
    yaw0 = np.arctan2(aim[0, 1], aim[0, 0]) - np.pi / 2.0
    q = Rotation.from_euler("z", -yaw0).as_matrix()
    pelvis = (pelvis - cam_pos) @ q.T + cam_pos
    pelvis_r = q @ pelvis_r
    cam_r = _look(aim @ q[:2, :2].T, pitch)
    root_world = pelvis_r  # the root's local rotation is the identity in the body frame here
    world_pose = pose.copy()
    world_pose[:, 0] = Rotation.from_matrix(root_world).as_rotvec()
    world_joints = joint_positions(world_pose, pelvis - joints[0], joints, parents)
    world_feet = foot_points(world_pose, pelvis - joints[0], verts, joints, weights, parents, feet)
    cam_to_world = np.tile(np.eye(4), (n, 1, 1))
    cam_to_world[:, :3, :3] = cam_r
    cam_to_world[:, :3, 3] = cam_pos
    world_to_cam = np.swapaxes(cam_r, -1, -2)
    pose[:, 0] = Rotation.from_matrix(world_to_cam @ root_world).as_rotvec()
    translation = np.einsum("fab,fb->fa", world_to_cam, pelvis - cam_pos) - joints[0]
    r_rel = np.einsum("ba,fbc->fac", cam_r[0], cam_r)
    return SyntheticWalk(fps=float(fps), frames=np.arange(n), pose=pose, translation=translation,
                         rest_vertices=verts, rest_joints=joints, skin_weights=weights, parents=parents,
                         foot_indices=feet, r_rel=r_rel, camera_to_world=cam_to_world, world_joints=world_joints,
                         world_feet=world_feet, contacts=contacts, camera_height=float(camera_height),
                         camera_pitch_deg=float(camera_pitch_deg))


def _correlated(rng: np.random.Generator, shape: tuple[int, ...], sigma_frames: float) -> np.ndarray:
    """Gaussian noise of unit standard deviation, smoothed along axis 0 with a Gaussian of ``sigma_frames``."""
    white = rng.standard_normal(shape)
    if sigma_frames <= 0:
        return white
    smooth = gaussian_filter1d(white, sigma_frames, axis=0, mode="wrap")
    return smooth / smooth.std(axis=0, keepdims=True).clip(1e-12)


def add_staf_noise(pose: np.ndarray, translation: np.ndarray, rest_joints: np.ndarray, fps: float, *,
                   depth_sd: float = 0.05, rotation_sd_deg: float = 1.5, image_sd: float = 0.005,
                   correlation_s: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copies (pose, translation) of a motion in camera axes, the errors STAF makes.

    Depth: ``depth_sd`` m along each frame's viewing ray through the pelvis (STAF's depth comes from
    the crop camera's scale, its weakest estimate); image plane: ``image_sd`` m across the ray;
    rotations: every joint's local rotation turned by about ``rotation_sd_deg`` (rms angle). All
    are smoothed over ``correlation_s`` seconds (a Gaussian's sigma): STAF's temporal fusion makes
    its errors slow (acceleration error 8 mm/frame^2 on 3DPW), not frame-to-frame white noise.
    """
    rng = np.random.default_rng(seed)
    sigma = correlation_s * fps
    n = len(pose)
    ray = pelvis_rays(translation, rest_joints)
    side = np.cross(ray, [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side, axis=-1, keepdims=True)
    up = np.cross(side, ray)
    noise = _correlated(rng, (n, 3), sigma)
    noisy_t = (translation + depth_sd * noise[:, :1] * ray
               + image_sd * (noise[:, 1:2] * side + noise[:, 2:3] * up))
    turn = np.radians(rotation_sd_deg) / np.sqrt(3.0) * _correlated(rng, pose.shape, sigma)
    noisy_r = Rotation.from_rotvec(pose.reshape(-1, 3)) * Rotation.from_rotvec(turn.reshape(-1, 3))
    return noisy_r.as_rotvec().reshape(pose.shape), noisy_t


def _check_exact(walk: SyntheticWalk) -> float:
    """Largest motion (m) of a foot point between consecutive frames where the truth says it is planted."""
    both = walk.contacts[1:] & walk.contacts[:-1]
    step = np.linalg.norm(np.diff(walk.world_feet, axis=0), axis=-1)
    return float(step[both].max(initial=0.0))
