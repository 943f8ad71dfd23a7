"""The landmark solver's starting point, found analytically (numpy) before the optimisation refines it.

Each body part's world rotation is aligned with the directions BlazePose's world landmarks give:
the pelvis and the chest from the hip and shoulder lines and the torso's up direction (the chest's
turn relative to the pelvis is split equally over the three spine joints), the head from the ears
and the nose (split over neck and head), thighs and upper arms by the smallest rotation that points
the bone at the next landmark, turned about the bone so that the knee or elbow bends about its hinge
(as far as the limb is bent enough to tell), shins and forearms by the smallest rotation, feet from
heel and toes, hands from index finger and pinky. The root translation then follows from the 2D
landmarks by linear least squares through the pinhole camera.
"""

from __future__ import annotations

import numpy as np

__all__ = ["initial_rotations", "kabsch", "local_fk", "solve_translation"]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def kabsch(a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Rotations (F, 3, 3) minimising sum_k w_k |R a_k - b_fk|^2 for rest vectors a (K, 3), targets b (F, K, 3)."""
    w = np.ones(b.shape[:2]) if w is None else w
    h = np.einsum("fk,fki,kj->fij", w, b, a)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(d), 3))
    fix[:, 2] = np.where(d == 0, 1.0, d)
    return (u * fix[:, None, :]) @ vt


def _about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations (F, 3, 3) by ``angle`` (F,) about unit axes (F, 3) (Rodrigues)."""
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(-1, 3, 3)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (F, 3, 3) taking directions a (F, 3) to directions b (F, 3)."""
    a, b = _unit(a), _unit(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = np.sum(a * b, -1)
    # Opposite directions: any axis perpendicular to a does.
    other = np.where(np.abs(a[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    axis = np.where((s < 1e-9)[:, None], np.cross(a, other), axis)
    return _about(_unit(axis), np.arctan2(s, c))


def _power(r: np.ndarray, share: float) -> np.ndarray:
    """A share of each rotation (F, 3, 3): the same axis, ``share`` of the angle."""
    angle = np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))
    axis = np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], -1)
    near_pi = angle > np.pi - 1e-3
    if np.any(near_pi):  # axis from the symmetric part where the skew part vanishes
        sym = (r[near_pi] + np.eye(3)) / 2
        axis[near_pi] = sym[np.arange(len(sym)), :, np.argmax(np.diagonal(sym, axis1=1, axis2=2), axis=1)]
    return _about(_unit(axis), share * angle)


def _limb(parent: np.ndarray, bone_rest: np.ndarray, bone: np.ndarray, nxt: np.ndarray | None = None,
          hinge: np.ndarray | None = None) -> np.ndarray:
    """World rotation of a limb's upper bone: pointed along ``bone`` (F, 3) from the parent's frame, then
    turned about it so its local ``hinge`` axis lies along bone x next (where the limb is bent)."""
    world = _swing(parent @ bone_rest, bone) @ parent
    if nxt is None or hinge is None:
        return world
    u = _unit(bone)
    normal = np.cross(bone, nxt)
    sin = np.linalg.norm(normal, axis=-1) / np.maximum(np.linalg.norm(bone, axis=-1) * np.linalg.norm(nxt, axis=-1),
                                                      1e-12)
    target = _unit(normal)
    now = world @ hinge
    now_p = now - np.sum(now * u, -1, keepdims=True) * u
    phi = np.arctan2(np.sum(u * np.cross(now_p, target), -1), np.sum(now_p * target, -1))
    weight = np.clip((sin - 0.15) / 0.25, 0.0, 1.0)
    return _about(u, weight * phi) @ world


def initial_rotations(world: np.ndarray, rest_joints: np.ndarray, rest: dict[int, np.ndarray]) -> np.ndarray:
    """Local joint rotations (F, 24, 3, 3) from world landmarks (F, 33, 3) (camera-aligned axes).

    ``rest`` maps BlazePose landmark indices to their model points' rest positions (3,).
    """
    j = np.asarray(rest_joints, np.float64)
    n = len(world)
    local = np.tile(np.eye(3), (n, 24, 1, 1))
    lm = world

    def mid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + b) / 2

    up_rest = mid(j[16], j[17]) - mid(j[1], j[2])
    up = mid(lm[:, 11], lm[:, 12]) - mid(lm[:, 23], lm[:, 24])
    root = kabsch(np.stack([_unit(j[1] - j[2]), _unit(up_rest)]),
                  np.stack([_unit(lm[:, 23] - lm[:, 24]), _unit(up)], 1))
    chest = kabsch(np.stack([_unit(j[16] - j[17]), _unit(up_rest)]),
                   np.stack([_unit(lm[:, 11] - lm[:, 12]), _unit(up)], 1))
    spine = _power(np.swapaxes(root, 1, 2) @ chest, 1 / 3)
    local[:, 0] = root
    local[:, 3] = local[:, 6] = local[:, 9] = spine
    chest = root @ spine @ spine @ spine
    ears_rest = mid(rest[7], rest[8])
    head = kabsch(np.stack([_unit(rest[7] - rest[8]), _unit(rest[0] - ears_rest)]),
                  np.stack([_unit(lm[:, 7] - lm[:, 8]), _unit(lm[:, 0] - mid(lm[:, 7], lm[:, 8]))], 1))
    local[:, 12] = local[:, 15] = _power(np.swapaxes(chest, 1, 2) @ head, 0.5)

    legs = ((1, 4, 7, 23, 25, 27, 29, 31), (2, 5, 8, 24, 26, 28, 30, 32))
    for hip, knee, ankle, l_hip, l_knee, l_ankle, l_heel, l_toe in legs:
        thigh, shin = lm[:, l_knee] - lm[:, l_hip], lm[:, l_ankle] - lm[:, l_knee]
        w_hip = _limb(root, j[knee] - j[hip], thigh, shin, np.array([1.0, 0, 0]))
        w_knee = _limb(w_hip, j[ankle] - j[knee], shin)
        w_foot = kabsch(np.stack([_unit(rest[l_toe] - j[ankle]), _unit(rest[l_heel] - j[ankle])]),
                        np.stack([_unit(lm[:, l_toe] - lm[:, l_ankle]), _unit(lm[:, l_heel] - lm[:, l_ankle])], 1))
        local[:, hip] = np.swapaxes(root, 1, 2) @ w_hip
        local[:, knee] = np.swapaxes(w_hip, 1, 2) @ w_knee
        local[:, ankle] = np.swapaxes(w_knee, 1, 2) @ w_foot
    arms = ((16, 18, 20, 11, 13, 15, 19, 17, -1.0), (17, 19, 21, 12, 14, 16, 20, 18, 1.0))
    for shoulder, elbow, wrist, l_sh, l_el, l_wr, l_index, l_pinky, sign in arms:
        upper, fore = lm[:, l_el] - lm[:, l_sh], lm[:, l_wr] - lm[:, l_el]
        w_sh = _limb(chest, j[elbow] - j[shoulder], upper, fore, np.array([0.0, sign, 0]))
        w_el = _limb(w_sh, j[wrist] - j[elbow], fore)
        hand_rest = mid(rest[l_index], rest[l_pinky]) - j[wrist]
        w_hand = kabsch(np.stack([_unit(hand_rest), _unit(rest[l_index] - rest[l_pinky])]),
                        np.stack([_unit(mid(lm[:, l_index], lm[:, l_pinky]) - lm[:, l_wr]),
                                  _unit(lm[:, l_index] - lm[:, l_pinky])], 1))
        local[:, shoulder] = np.swapaxes(chest, 1, 2) @ w_sh  # collars stay at rest
        local[:, elbow] = np.swapaxes(w_sh, 1, 2) @ w_el
        local[:, wrist] = np.swapaxes(w_el, 1, 2) @ w_hand
    return local


def local_fk(local: np.ndarray, rest_joints: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (F, 24, 3, 3) and joints (F, 24, 3) of local rotations, root at its rest position."""
    j = np.asarray(rest_joints, np.float64)
    world_r = np.empty_like(local)
    world_t = np.empty((*local.shape[:2], 3))
    for i, p in enumerate(np.asarray(parents)):
        if p < 0:
            world_r[:, i], world_t[:, i] = local[:, i], j[i]
        else:
            world_r[:, i] = world_r[:, p] @ local[:, i]
            world_t[:, i] = world_t[:, p] + world_r[:, p] @ (j[i] - j[p])
    return world_r, world_t


def solve_translation(points: np.ndarray, pixels: np.ndarray, weights: np.ndarray, focal: float, width: int,
                      height: int) -> np.ndarray:
    """Translations (F, 3) that best put body points (F, K, 3) (camera axes, without translation) on
    pixels (F, K, 2) through the pinhole camera: per frame, weighted linear least squares of
    f (X + tx) = (u - cx)(Z + tz) and the same for y."""
    du = pixels[..., 0] - width / 2
    dv = pixels[..., 1] - height / 2
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    n, k = weights.shape
    a = np.zeros((n, 2 * k, 3))
    a[:, :k, 0] = focal
    a[:, :k, 2] = -du
    a[:, k:, 1] = focal
    a[:, k:, 2] = -dv
    rhs = np.concatenate([du * z - focal * x, dv * z - focal * y], 1)
    w = np.concatenate([weights, weights], 1)
    ata = np.einsum("fka,fk,fkb->fab", a, w, a) + 1e-9 * np.eye(3)
    atb = np.einsum("fka,fk,fk->fa", a, w, rhs)
    return np.linalg.solve(ata, atb[..., None])[..., 0]
