"""Per-frame target pose from the source pose, in numpy: full rotation transfer through per-bone
rest offsets, so each mapped limb points where the source limb points, twist included.

Conventions (Blender's): a bone's rest matrix R (3x3, armature space) has the bone's local axes as
columns, +Y along head -> tail, rolled by the bone's roll. A pose bone's armature-space orientation
is ``P_b = P_parent @ R_parent.T @ R_b @ L_b`` with ``L_b`` its local rotation (identity at rest).

For a mapped pair (source joint j, target bone t) the *limb* vector is head -> head of the next
mapped joint along :data:`~.presets.SMPL_AIM_CHILD` (spine1 -> spine2, hip -> knee, ...), taken in
both rigs, so a target's own tail conventions do not matter. ``S_t`` is the smallest rotation that
turns the target's rest limb onto the source's rest limb (A-pose -> T-pose); joints without a mapped
limb child (hands, toes, head) use their nearest aimed ancestor's ``S``. With ``C_t = R_j.T @ S_t @
R_t`` the target pose is ``P_t = P_j @ C_t``: at the source's rest pose the target stands in the
source's rest pose with its own rolls, and every later rotation (swing and twist) carries over.
Where the mapping skips source joints along a limb (spine2 onto a two-bone spine), the skipped
joints' bend is added as a swing per frame, so the limb still ends where the source's does.

Root translation: the source pelvis's displacement from its rest position, times the ratio of hip
heights (target over source, each above its skeleton's lowest point), becomes the target root bone's
pose location. Bones no joint maps to keep L = identity.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import EXIT_BAD_INPUT, AddonError
from ..rotations import continuous_quaternions, matrix_to_quaternion, quaternion_to_matrix
from .presets import SMPL_AIM_CHILD, SMPL_JOINT_NAMES, SMPL_PARENTS

__all__ = ["RestSkeleton", "RetargetResult", "bone_matrix", "retarget", "swing_between", "world_rotations"]


def bone_matrix(heads: np.ndarray, tails: np.ndarray, rolls: np.ndarray) -> np.ndarray:
    """Blender's rest matrices (B, 3, 3) of bones from head, tail (B, 3) and roll (B,) in radians
    (``vec_roll_to_mat3``: the turn taking +Y to head -> tail, then the roll about that axis)."""
    y = np.asarray(tails, np.float64) - np.asarray(heads, np.float64)
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    x, yy, z = y[..., 0], y[..., 1], y[..., 2]
    theta = 1.0 + yy
    flipped = theta < 1e-10  # pointing along -Y: a half turn about Z
    safe = np.where(flipped, 1.0, theta)
    base = np.stack([
        np.stack([1 - x * x / safe, x, -x * z / safe], -1),
        np.stack([-x, yy, -z], -1),
        np.stack([-x * z / safe, z, 1 - z * z / safe], -1),
    ], -2)  # rows; column 1 is the bone's direction
    base = np.where(flipped[..., None, None], np.diag([-1.0, -1.0, 1.0]), base)
    roll = np.asarray(rolls, np.float64)
    c, s = np.cos(roll), np.sin(roll)
    zero, one = np.zeros_like(roll), np.ones_like(roll)
    roll_y = np.stack([np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1),
                       np.stack([-s, zero, c], -1)], -2)
    return base @ roll_y


@dataclass(frozen=True, eq=False)
class RestSkeleton:
    """An armature's rest pose in armature space: names, parents (-1 for roots, any order), heads
    and tails (B, 3) in metres, rest matrices (B, 3, 3) (:func:`bone_matrix`)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: np.ndarray
    tails: np.ndarray
    matrices: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.names)
        if len(set(self.names)) != count:
            raise AddonError("armature: bone names repeat", EXIT_BAD_INPUT)
        if len(self.parents) != count or any(not -1 <= p < count for p in self.parents):
            raise AddonError("armature: a parent index is out of range", EXIT_BAD_INPUT)
        for name, shape in (("heads", (count, 3)), ("tails", (count, 3)), ("matrices", (count, 3, 3))):
            if np.shape(getattr(self, name)) != shape:
                raise AddonError(f"armature: {name} must have shape {shape}", EXIT_BAD_INPUT)
        self.order()  # raises on a cycle

    @classmethod
    def from_bones(cls, names: Sequence[str], parents: Sequence[int], heads: np.ndarray, tails: np.ndarray,
                   rolls: np.ndarray | None = None) -> RestSkeleton:
        """A skeleton from edit-bone data (roll 0 where ``rolls`` is None)."""
        heads = np.asarray(heads, np.float64)
        tails = np.asarray(tails, np.float64)
        rolls = np.zeros(len(names)) if rolls is None else np.asarray(rolls, np.float64)
        return cls(tuple(names), tuple(int(p) for p in parents), heads, tails, bone_matrix(heads, tails, rolls))

    def index(self, name: str) -> int:
        """The bone's index; one line naming it where the armature has none."""
        try:
            return self.names.index(name)
        except ValueError:
            raise AddonError(f"armature: no bone '{name}'", EXIT_BAD_INPUT) from None

    def order(self) -> list[int]:
        """Bone indices with every parent before its children."""
        done: list[int] = []
        seen: set[int] = set()
        for start in range(len(self.names)):
            chain = []
            bone = start
            while bone != -1 and bone not in seen:
                if bone in chain:
                    raise AddonError(f"armature: the parents of '{self.names[bone]}' form a loop", EXIT_BAD_INPUT)
                chain.append(bone)
                bone = self.parents[bone]
            for bone in reversed(chain):
                seen.add(bone)
                done.append(bone)
        return done

    def floor(self) -> float:
        """The lowest point of the rest pose (heads and tails), along armature Z."""
        return float(min(self.heads[:, 2].min(), self.tails[:, 2].min()))


def world_rotations(skeleton: RestSkeleton, local: np.ndarray) -> np.ndarray:
    """Armature-space orientations P (F, B, 3, 3) from local pose quaternions (F, B, 4) (w, x, y, z)."""
    local_m = quaternion_to_matrix(local)
    out = np.empty_like(local_m)
    rest = skeleton.matrices
    for bone in skeleton.order():
        parent = skeleton.parents[bone]
        frame = rest[bone] if parent < 0 else out[:, parent] @ (rest[parent].T @ rest[bone])
        out[:, bone] = frame @ local_m[:, bone]
    return out


def swing_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) turning directions a (..., 3) onto b (..., 3); a half turn
    goes about an axis perpendicular to a."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a, b = np.broadcast_arrays(a / np.linalg.norm(a, axis=-1, keepdims=True),
                               b / np.linalg.norm(b, axis=-1, keepdims=True))
    cos = np.sum(a * b, axis=-1)
    opposite = cos < -1.0 + 1e-9
    axis = np.cross(a, b)
    # Opposite directions: any axis perpendicular to a, from the unit axis a is least along.
    other = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
    perpendicular = np.cross(a, other)
    perpendicular /= np.linalg.norm(perpendicular, axis=-1, keepdims=True)
    zero = np.zeros_like(cos)
    k = np.stack([np.stack([zero, -axis[..., 2], axis[..., 1]], -1),
                  np.stack([axis[..., 2], zero, -axis[..., 0]], -1),
                  np.stack([-axis[..., 1], axis[..., 0], zero], -1)], -2)
    eye = np.broadcast_to(np.eye(3), k.shape)
    turn = eye + k + k @ k / np.where(opposite, 1.0, 1.0 + cos)[..., None, None]
    half = 2.0 * perpendicular[..., :, None] * perpendicular[..., None, :] - eye
    return np.where(opposite[..., None, None], half, turn)


@dataclass(frozen=True, eq=False)
class RetargetResult:
    """What to key on the target: bones (M,) the mapped target bones in the armature's order,
    rotations (F, M, 4) their local pose quaternions (w, x, y, z), continuous in time; root_bone
    the bone that takes the root translation ("" when the pelvis is unmapped); root_location (F, 3)
    its pose location (bone-local, as ``pose_bone.location``); root_offset (F, 3) the same in
    armature space; scale the hip height ratio applied to the translation."""

    bones: tuple[str, ...]
    rotations: np.ndarray
    root_bone: str
    root_location: np.ndarray
    root_offset: np.ndarray
    scale: float


def _aim(joint: str, mapping: Mapping[str, str]) -> str | None:
    """The next mapped joint along the limb from ``joint``, or None for a limb's end."""
    return _chain(joint, mapping)[-1]


def _chain(joint: str, mapping: Mapping[str, str]) -> list[str | None]:
    """The joints from ``joint`` along its limb up to the next mapped one (None last: no mapped one)."""
    chain: list[str | None] = [joint]
    child = SMPL_AIM_CHILD.get(joint)
    while child is not None and child not in mapping:
        chain.append(child)
        child = SMPL_AIM_CHILD.get(child)
    return [*chain, child]


def _skipped_swing(source: RestSkeleton, pose: np.ndarray, chain: list[str]) -> np.ndarray:
    """Where the mapping skips source joints (spine2 on a two-bone spine), the turn (F, 3, 3) from
    the limb the first joint's rotation alone gives onto the source's whole posed limb."""
    index = [source.index(joint) for joint in chain]
    rest = source.matrices
    whole = np.zeros((pose.shape[0], 3))
    for k, k_next in itertools.pairwise(index):
        whole += pose[:, k] @ (rest[k].T @ (source.heads[k_next] - source.heads[k]))
    alone = pose[:, index[0]] @ (rest[index[0]].T @ (source.heads[index[-1]] - source.heads[index[0]]))
    return swing_between(alone, whole)


def _swings(source: RestSkeleton, target: RestSkeleton, mapping: Mapping[str, str],
            align: np.ndarray) -> dict[str, np.ndarray]:
    """Per mapped joint, the rest-to-rest swing S (target rest limb -> source rest limb, in target space)."""
    swings: dict[str, np.ndarray] = {}
    for joint in SMPL_JOINT_NAMES:  # parents come first
        if joint not in mapping:
            continue
        child = _aim(joint, mapping)
        if child is not None:
            src = source.heads[source.index(child)] - source.heads[source.index(joint)]
            tgt = target.heads[target.index(mapping[child])] - target.heads[target.index(mapping[joint])]
            if np.linalg.norm(src) > 1e-9 and np.linalg.norm(tgt) > 1e-9:
                swings[joint] = swing_between(tgt, align @ src)
                continue
        parent = SMPL_PARENTS[SMPL_JOINT_NAMES.index(joint)]
        while parent >= 0 and SMPL_JOINT_NAMES[parent] not in swings:
            parent = SMPL_PARENTS[parent]
        swings[joint] = swings[SMPL_JOINT_NAMES[parent]] if parent >= 0 else np.eye(3)
    return swings


def retarget(source: RestSkeleton, target: RestSkeleton, mapping: Mapping[str, str], source_pose: np.ndarray,
             source_root: np.ndarray | None = None, align: np.ndarray | None = None) -> RetargetResult:
    """The target's keys for every source frame.

    source: the SMPL rig (bones named after SMPL's joints); target: the armature to drive;
    mapping: {SMPL joint: target bone} (:mod:`.mapping`); source_pose: the source bones'
    armature-space orientations per frame, (F, Bs, 3, 3) or quaternions (F, Bs, 4)
    (:func:`world_rotations` of the source's local keys); source_root (F, 3): the source pelvis
    head's armature-space position per frame (None: no translation); align (3, 3): rotation from the
    source's armature space into the target's (None: identity, both facing the same way).
    """
    pose = np.asarray(source_pose, np.float64)
    if pose.ndim == 3 and pose.shape[-1] == 4:
        pose = quaternion_to_matrix(pose)
    if pose.ndim != 4 or pose.shape[1:] != (len(source.names), 3, 3):
        raise AddonError(f"source pose: expected (frames, {len(source.names)}, 3, 3) or (frames, "
                         f"{len(source.names)}, 4), got {np.shape(source_pose)}", EXIT_BAD_INPUT)
    frames = pose.shape[0]
    align = np.eye(3) if align is None else np.asarray(align, np.float64)
    unknown = [joint for joint in mapping if joint not in SMPL_JOINT_NAMES]
    if unknown:
        raise AddonError(f"mapping: '{unknown[0]}' is not an SMPL joint", EXIT_BAD_INPUT)
    swings = _swings(source, target, mapping, align)
    wanted: dict[int, np.ndarray] = {}  # target bone -> its armature-space orientation per frame
    for joint, bone in mapping.items():
        s = source.index(joint)
        t = target.index(bone)
        offset = (align @ source.matrices[s]).T @ swings[joint] @ target.matrices[t]
        chain = _chain(joint, mapping)
        turned = pose[:, s]
        if len(chain) > 2 and chain[-1] is not None:
            turned = _skipped_swing(source, pose, chain) @ turned  # type: ignore[arg-type]
        wanted[t] = align @ turned @ offset
    rest = target.matrices
    posed: dict[int, np.ndarray] = {}
    local: dict[int, np.ndarray] = {}
    for bone in target.order():
        parent = target.parents[bone]
        frame = rest[bone][None] if parent < 0 else posed[parent] @ (rest[parent].T @ rest[bone])
        if bone in wanted:
            local[bone] = np.swapaxes(frame, -1, -2) @ wanted[bone]
            posed[bone] = wanted[bone]
        else:
            posed[bone] = frame
    bones = [bone for bone in range(len(target.names)) if bone in local]
    rotations = np.zeros((frames, len(bones), 4))
    if bones:
        stacked = np.stack([np.broadcast_to(local[bone], (frames, 3, 3)) for bone in bones], axis=1)
        rotations = continuous_quaternions(matrix_to_quaternion(stacked))
    root_bone, location, offset, scale = "", np.zeros((frames, 3)), np.zeros((frames, 3)), 1.0
    if "pelvis" in mapping:
        s, t = source.index("pelvis"), target.index(mapping["pelvis"])
        src_height = source.heads[s, 2] - source.floor()
        tgt_height = target.heads[t, 2] - target.floor()
        if src_height <= 1e-6 or tgt_height <= 1e-6:
            raise AddonError("retarget: a hip height is not above the skeleton's lowest point; "
                             "is the armature Z up?", EXIT_BAD_INPUT)
        scale = float(tgt_height / src_height)
        root_bone = mapping["pelvis"]
        if source_root is not None:
            root = np.asarray(source_root, np.float64)
            if root.shape != (frames, 3):
                raise AddonError(f"source root: expected ({frames}, 3), got {root.shape}", EXIT_BAD_INPUT)
            offset = scale * (root - source.heads[s]) @ align.T
            parent = target.parents[t]
            frame = rest[t][None] if parent < 0 else posed[parent] @ (rest[parent].T @ rest[t])
            location = np.einsum("fji,fj->fi", np.broadcast_to(frame, (frames, 3, 3)), offset)
    return RetargetResult(tuple(target.names[bone] for bone in bones), rotations, root_bone, location, offset,
                          scale)
