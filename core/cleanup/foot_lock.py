"""Foot lock: two-bone leg IK so that feet in contact stay planted, blended in and out.

For each leg, the frames where its heel or toe is in contact form planted runs (a run never crosses
a gap in the frame numbers). Each run gets one target, a rigid pose of the foot, from its flat
frames (heel and toe both in contact):

- orientation: the chordal quaternion mean of the input ankle's world orientation over them;
- position: the ankle position that, with that orientation, puts heel and toe at the mean of where
  the input had them (the least-squares anchor); this fixes the run's planted heel and toe points.

Why the mean and not the pose at contact start: contact starts are where the input is least
reliable (the foot still decelerating, contact found a frame early or late), and the mean moves the
input least over the run (least squares), so a foot that drifts by a few cm is held at the middle
of its drift, not at one end. On flat frames the foot is rigid, so none of its points slide.

A walk rolls the foot: heel strike (heel only), flat, heel off (toe only). On a heel-only or
toe-only frame the foot pivots about its planted point: that point stays at its anchor and the
foot turns by the input's own rotation since the nearest flat frame (so the roll is kept and the
orientation is continuous with the planted one). A run with no flat frame keeps the input's
orientation and holds each point at the mean of where it touched. With ``orientation="input"``
every frame keeps the input foot orientation exactly, the ankle placed so the touching points are
nearest their anchors (on flat frames they then move by the input's orientation noise).

The foot points are treated as rigidly attached to the ankle (joint 7 / 8): the ankle's world
transform moves them. The foot joint's (10 / 11) local rotation is left as it is, so with the
ankle's world orientation kept, the whole foot, toes included, keeps its world pose.

Per frame, two-bone IK on hip-knee-ankle (joints 1-4-7 / 2-5-8) changes the hip and knee local
rotations so the ankle reaches the target: the knee stays on the side of the hip-ankle line where
the input knee is (no flip; the thigh's forward axis when the input leg is straight), the reach is
capped below full extension (a minimum knee bend) with a soft, exponential approach to that cap
over the last ``softness`` of the leg's length (as in soft IK), so a knee never snaps straight, and
the ankle's local rotation is recomputed so the foot has the target's world orientation. Hip and
knee rotations change by the smallest rotation that moves each bone, so their twist is kept.

Blending: the lock weight is 1 on the run's frames and falls with a smoothstep over ``blend``
frames on each side (not across a gap). On those frames the IK target is the input foot moved by
the correction made at the run's end (its offset and rotation), and the locked and input local
rotations are slerped by the weight, so a correction fades out instead of pulling a swinging foot
onto the planted spot. Between two
close runs the two locks are blended with each other. Frames with weight 0 are copied bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from core.posing import axis_angle_to_matrix

from .filters import rotvec_near, slerp

__all__ = ["FootLockResult", "lock_feet"]

#: (hip, knee, ankle) joints and the (heel, toe) contact columns of the left and right legs.
LEGS = ((1, 4, 7), (2, 5, 8))
CONTACT_COLUMNS = ((0, 1), (2, 3))
_FORWARD = np.array([0.0, 0.0, 1.0])  # SMPL rest frame: knees point forward (+z)
_MAX_FOLD_DEG = 150.0  # the deepest knee bend the lock will produce (target too close to the hip)


@dataclass(frozen=True)
class FootLockResult:
    """The locked pose and what the lock did."""

    pose: np.ndarray  # (F, 24, 3) the new pose; the root translation is unchanged
    weights: np.ndarray  # (F, 2) lock weight per leg (left, right), 1 on planted frames
    segments: np.ndarray  # (S, 3) int: leg (0 left, 1 right), first row, last row of each planted run
    targets: np.ndarray  # (S, 2, 3) each run's planted heel and toe positions (NaN: that point never touched)
    max_knee_change_deg: float  # largest change of a knee's bend angle
    max_ankle_correction_m: float  # largest distance an ankle was moved
    max_lock_error_m: float  # largest distance from a planted frame's ankle to its target (soft reach)
    max_vertical_correction_m: float  # largest ankle move along ``up`` (0 if ``up`` not given)


def _mv(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("...ab,...b->...a", m, v)


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-12, n, 1.0), n[..., 0]


def _perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return v - np.sum(v * axis, axis=-1, keepdims=True) * axis


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (N, 3, 3) taking directions a to b."""
    a, _ = _unit(a)
    b, _ = _unit(b)
    w = 1.0 + np.sum(a * b, axis=-1)
    xyz = np.cross(a, b)
    opposite = w < 1e-9
    if np.any(opposite):
        other = np.where(np.abs(a[opposite, :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        xyz[opposite] = _unit(np.cross(a[opposite], other))[0]
        w[opposite] = 0.0
    return Rotation.from_quat(np.concatenate([xyz, w[:, None]], axis=1)).as_matrix()


def _leg_fk(r: dict[int, np.ndarray], base: np.ndarray, rest: np.ndarray, leg: tuple[int, int, int]):
    """Positions of hip, knee, ankle and world rotations of pelvis, hip, knee, ankle for one leg."""
    h, k, a = leg
    hip = base + _mv(r[0], rest[h] - rest[0])
    r_hip = r[0] @ r[h]
    knee = hip + _mv(r_hip, rest[k] - rest[h])
    r_knee = r_hip @ r[k]
    ankle = knee + _mv(r_knee, rest[a] - rest[k])
    return hip, knee, ankle, r_hip, r_knee, r_knee @ r[a]


def _bend_deg(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray) -> np.ndarray:
    """Knee bend in degrees: 0 for a straight leg."""
    t, _ = _unit(knee - hip)
    s, _ = _unit(ankle - knee)
    return np.degrees(np.arccos(np.clip(np.sum(t * s, axis=-1), -1.0, 1.0)))


def _two_bone(hip, knee_in, ankle_in, r_pelvis, r_hip, r_knee_local, target, target_rot,
              thigh_rest, shin_rest, min_bend: float, softness: float):
    """Two-bone IK: new local rotations (hip, knee, ankle) as matrices (N, 3, 3) and the ankle reached."""
    l1, l2 = float(np.linalg.norm(thigh_rest)), float(np.linalg.norm(shin_rest))
    axis, dist = _unit(target - hip)
    cap = np.sqrt(l1 * l1 + l2 * l2 + 2 * l1 * l2 * np.cos(min_bend))
    floor = np.sqrt(l1 * l1 + l2 * l2 + 2 * l1 * l2 * np.cos(np.radians(_MAX_FOLD_DEG)))
    soft = softness * (l1 + l2)
    if soft > 0:
        start = cap - soft
        over = np.maximum(dist - start, 0.0)
        reach = np.where(dist > start, start + soft * (1.0 - np.exp(-over / soft)), dist)
    else:
        reach = np.minimum(dist, cap)
    reach = np.maximum(reach, floor)

    # The knee's side of the leg: where the input knee is relative to the input hip-ankle line.
    leg_axis, _ = _unit(ankle_in - hip)
    pole = _perp(knee_in - hip, leg_axis)
    fwd = _mv(r_hip, _FORWARD)
    pole = np.where(np.linalg.norm(pole, axis=-1, keepdims=True) > 1e-4 * l1, pole, fwd)
    side, size = _unit(_perp(pole, axis))
    side = np.where(size[:, None] > 1e-9, side, _unit(_perp(fwd, axis))[0])

    along = (l1 * l1 - l2 * l2 + reach * reach) / (2 * reach)
    up = np.sqrt(np.maximum(l1 * l1 - along * along, 0.0))
    knee = hip + along[:, None] * axis + up[:, None] * side
    ankle = hip + reach[:, None] * axis

    r_hip_new = _swing(knee_in - hip, knee - hip) @ r_hip
    r_knee_mid = r_hip_new @ r_knee_local
    r_knee_new = _swing(_mv(r_knee_mid, shin_rest), ankle - knee) @ r_knee_mid
    hip_local = np.swapaxes(r_pelvis, -1, -2) @ r_hip_new
    knee_local = np.swapaxes(r_hip_new, -1, -2) @ r_knee_new
    ankle_local = np.swapaxes(r_knee_new, -1, -2) @ target_rot
    return (hip_local, knee_local, ankle_local), ankle


def _run_targets(ankle, r_ankle, heel, toe, run_of, n_runs, offsets):
    """Per run: planted heel and toe positions (S, 2, 3), planted foot orientation (S, 3, 3), and per
    frame the flat frame of its run its roll is measured from (-1: the run has no flat frame)."""
    f = len(ankle)
    rows = np.arange(f)
    both = heel & toe
    has_flat = np.bincount(run_of[both], minlength=n_runs) > 0
    first_flat = np.full(n_runs, f)
    np.minimum.at(first_flat, run_of[both], rows[both])
    q = Rotation.from_matrix(r_ankle[both]).as_quat()
    q_ref = Rotation.from_matrix(r_ankle[np.minimum(first_flat, f - 1)]).as_quat()[run_of[both]]
    q *= np.where(np.sum(q * q_ref, axis=1) < 0, -1.0, 1.0)[:, None]
    q_mean = np.tile([0.0, 0.0, 0.0, 1.0], (n_runs, 1))
    q_mean[has_flat] = 0.0
    np.add.at(q_mean, run_of[both], q)
    r_planted = Rotation.from_quat(q_mean / np.linalg.norm(q_mean, axis=1, keepdims=True)).as_matrix()

    # Flat runs: the ankle that, with the planted orientation, puts heel and toe at their mean places.
    mid = offsets.mean(axis=0)
    ankle_sum = np.zeros((n_runs, 3))
    np.add.at(ankle_sum, run_of[both], ankle[both] + _mv(r_ankle[both], mid))
    n_flat = np.maximum(np.bincount(run_of[both], minlength=n_runs), 1)[:, None]
    planted_ankle = ankle_sum / n_flat - _mv(r_planted, mid)
    anchors = planted_ankle[:, None] + np.einsum("sab,kb->ska", r_planted, offsets)
    # Runs without a flat frame: each point at the mean of where it was while it touched.
    for i, hit in enumerate((heel, toe)):
        hit = hit & ~has_flat[np.maximum(run_of, 0)] & (run_of >= 0)
        sums = np.zeros((n_runs, 3))
        np.add.at(sums, run_of[hit], ankle[hit] + _mv(r_ankle[hit], offsets[i]))
        n = np.bincount(run_of[hit], minlength=n_runs)
        loose = ~has_flat
        anchors[loose, i] = np.where(n[loose, None] > 0, sums[loose] / np.maximum(n[loose, None], 1), np.nan)

    prev_b = np.maximum.accumulate(np.where(both, rows, -1))
    next_b = np.minimum.accumulate(np.where(both, rows, f)[::-1])[::-1]
    ok_p = (prev_b >= 0) & (run_of[np.clip(prev_b, 0, f - 1)] == run_of) & (run_of >= 0)
    ok_n = (next_b < f) & (run_of[np.clip(next_b, 0, f - 1)] == run_of) & (run_of >= 0)
    closer_p = ok_p & (~ok_n | (rows - prev_b <= next_b - rows))
    ref_b = np.where(closer_p, prev_b, np.where(ok_n, next_b, -1))
    return anchors, r_planted, ref_b


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _check(pose, root, rest_joints, contacts, foot_rest_points, frames, blend, orientation, softness, min_bend):
    f = len(pose)
    if pose.shape != (f, 24, 3) or root.shape != (f, 3) or rest_joints.shape != (24, 3):
        raise ValueError("pose must be (F, 24, 3), root (F, 3) and rest_joints (24, 3)")
    if contacts.shape != (f, 4) or foot_rest_points.shape != (4, 3):
        raise ValueError("contacts must be (F, 4) and foot_rest_points (4, 3): L heel, L toe, R heel, R toe")
    if frames.shape != (f,) or (f > 1 and np.any(np.diff(frames) <= 0)):
        raise ValueError("frames must be (F,) strictly increasing frame numbers")
    if not (isinstance(blend, int | np.integer) and 0 <= blend <= 1000):
        raise ValueError(f"blend must be a whole number of frames 0..1000, not {blend!r}")
    if orientation not in ("planted", "input"):
        raise ValueError(f"orientation must be 'planted' or 'input', not {orientation!r}")
    if not (0.0 <= softness <= 0.2) or not (0.0 < min_bend <= 45.0):
        raise ValueError("softness must be in 0..0.2 (of the leg length), min_knee_bend_deg in (0, 45]")


def lock_feet(pose: np.ndarray, root: np.ndarray, rest_joints: np.ndarray, contacts: np.ndarray,
              foot_rest_points: np.ndarray, frames: np.ndarray | None = None, up: np.ndarray | None = None,
              blend: int = 5, orientation: str = "planted", min_knee_bend_deg: float = 4.0,
              softness: float = 0.01) -> FootLockResult:
    """Keep feet in contact fixed with two-bone leg IK; see the module's docstring for the method.

    ``pose`` (F, 24, 3) SMPL axis-angle; ``root`` (F, 3) with posed joints = FK(pose, rest_joints) +
    root, in axes consistent over the frames; ``contacts`` (F, 4) bool (L heel, L toe, R heel, R toe);
    ``foot_rest_points`` (4, 3) those points in the rest pose; ``frames`` (F,) frame numbers (gaps
    split runs; default consecutive); ``up`` the up direction, only for the vertical statistic;
    ``blend`` frames of easing on each side; ``min_knee_bend_deg`` the straightest knee allowed;
    ``softness`` the fraction of the leg's length over which the reach eases into that limit.
    """
    pose_in = np.asarray(pose)
    pose64 = pose_in.astype(np.float64)
    root = np.asarray(root, np.float64)
    rest = np.asarray(rest_joints, np.float64)
    contacts = np.asarray(contacts, bool)
    points = np.asarray(foot_rest_points, np.float64)
    f = len(pose64)
    frames = np.arange(f) if frames is None else np.asarray(frames)
    _check(pose64, root, rest, contacts, points, frames, blend, orientation, softness, min_knee_bend_deg)
    out = pose_in.copy()
    weights = np.zeros((f, 2))
    if f == 0:
        return FootLockResult(out, weights, np.zeros((0, 3), np.int64), np.zeros((0, 2, 3)), 0.0, 0.0, 0.0, 0.0)

    rows = np.arange(f)
    brk = np.r_[True, np.diff(frames) != 1]
    seg_first = np.flatnonzero(brk)[np.cumsum(brk) - 1]
    seg_last = np.r_[np.flatnonzero(brk)[1:] - 1, f - 1][np.cumsum(brk) - 1]
    base = root + rest[0]
    r_all = axis_angle_to_matrix(pose64[:, [0, 1, 2, 4, 5, 7, 8]])
    r = dict(zip((0, 1, 2, 4, 5, 7, 8), np.moveaxis(r_all, 1, 0), strict=True))
    up_dir = None if up is None else _unit(np.asarray(up, np.float64))[0]
    segments, targets, knee_change, ankle_moves, lock_errors, vertical = [], [], [0.0], [0.0], [0.0], [0.0]

    for side, leg in enumerate(LEGS):
        h, k, a = leg
        hip, knee, ankle, r_hip, _, r_ankle = _leg_fk(r, base, rest, leg)
        cols = CONTACT_COLUMNS[side]
        c = contacts[:, cols[0]] | contacts[:, cols[1]]
        if not c.any():
            continue
        start = c & (brk | ~np.r_[False, c[:-1]])
        end = c & (np.r_[brk[1:], True] | ~np.r_[c[1:], False])
        run_of = np.where(c, np.cumsum(start) - 1, -1)
        first, last = np.flatnonzero(start), np.flatnonzero(end)
        n_runs = len(first)

        heel, toe = contacts[:, cols[0]], contacts[:, cols[1]]
        offsets = points[list(cols)] - rest[a]  # heel and toe relative to the ankle, rest pose
        anchors, r_planted, ref_b = _run_targets(ankle, r_ankle, heel, toe, run_of, n_runs, offsets)

        # Lock weights from the nearest run before and after each frame, within its gap-free segment.
        prev_c = np.maximum.accumulate(np.where(c, rows, -1))
        next_c = np.minimum.accumulate(np.where(c, rows, f)[::-1])[::-1]
        ok_prev = prev_c >= seg_first
        ok_next = (next_c <= seg_last) & ~c
        ramp = np.arange(blend + 2)
        ramp = _smoothstep(1.0 - ramp / (blend + 1.0))
        w_prev = np.where(ok_prev, ramp[np.clip(rows - prev_c, 0, blend + 1)], 0.0)
        w_next = np.where(ok_next, ramp[np.clip(next_c - rows, 0, blend + 1)], 0.0)
        total_w = w_prev + w_next
        active = np.flatnonzero(total_w > 0)
        wp, wn, tw = w_prev[active], w_next[active], total_w[active]
        weight = np.minimum(tw, 1.0)
        mix = wn / tw
        run_p = np.where(wp > 0, run_of[np.clip(prev_c[active], 0, f - 1)], -1)
        run_n = np.where(wn > 0, run_of[np.clip(next_c[active], 0, f - 1)], -1)
        run_p = np.where(run_p < 0, run_n, run_p)
        run_n = np.where(run_n < 0, run_p, run_n)
        weights[active, side] = weight

        ik_args = (hip[active], knee[active], ankle[active], r[0][active], r_hip[active], r[k][active])
        locks, reached = [], []
        for run in (run_p, run_n):
            # The run frame whose lock rules this frame: itself, or the end of the run it blends from.
            ref = np.where(c[active], active, np.where(active < first[run], first[run], last[run]))
            target_rot = r_ankle[ref]
            if orientation == "planted":
                tb = ref_b[ref]
                roll = target_rot @ np.swapaxes(r_ankle[np.maximum(tb, 0)], 1, 2)
                target_rot = np.where((tb >= 0)[:, None, None], roll @ r_planted[run], target_rot)
            w_pts = np.stack([heel[ref], toe[ref]], axis=1).astype(np.float64)
            held = anchors[run] - np.einsum("nab,kb->nka", target_rot, offsets)
            target = np.einsum("nk,nka->na", w_pts, np.nan_to_num(held)) / w_pts.sum(axis=1, keepdims=True)
            # Outside the run the correction made at its end carries on (then fades with the weight),
            # so a foot already planted right is left alone on its way in and out.
            target = ankle[active] + target - ankle[ref]
            target_rot = target_rot @ np.swapaxes(r_ankle[ref], 1, 2) @ r_ankle[active]
            local, got = _two_bone(*ik_args, target, target_rot, rest[k] - rest[h], rest[a] - rest[k],
                                   np.radians(min_knee_bend_deg), softness)
            locks.append([Rotation.from_matrix(m).as_quat() for m in local])
            reached.append((got, target))
        planted = c[active]
        if planted.any():
            lock_errors.append(float(np.max(np.linalg.norm(reached[0][0] - reached[0][1], axis=1)[planted])))
        for joint, q_a, q_b in zip(leg, locks[0], locks[1], strict=True):
            q_in = Rotation.from_rotvec(pose64[active, joint]).as_quat()
            q_new = slerp(q_in, slerp(q_a, q_b, mix), weight)
            rotvec = rotvec_near(Rotation.from_quat(q_new).as_rotvec(), pose64[active, joint])
            out[active, joint] = rotvec.astype(out.dtype)

        r_new = dict(r)
        r_new.update({j: axis_angle_to_matrix(out[:, j].astype(np.float64)) for j in leg})
        hip2, knee2, ankle2, *_ = _leg_fk(r_new, base, rest, leg)
        move = ankle2 - ankle
        ankle_moves.append(float(np.max(np.linalg.norm(move, axis=1))))
        knee_change.append(float(np.max(np.abs(_bend_deg(hip2, knee2, ankle2) - _bend_deg(hip, knee, ankle)))))
        if up_dir is not None:
            vertical.append(float(np.max(np.abs(move @ up_dir))))
        segments += [(side, int(s), int(e)) for s, e in zip(first, last, strict=True)]
        targets.append(anchors)

    segs = np.array(segments, np.int64).reshape(-1, 3)
    tgts = np.concatenate(targets) if targets else np.zeros((0, 2, 3))
    return FootLockResult(out, weights, segs, tgts, max(knee_change), max(ankle_moves), max(lock_errors),
                          max(vertical))
