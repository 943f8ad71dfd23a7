"""Per-frame target pose from the source pose, in numpy: full rotation transfer through per-bone
rest offsets, so each mapped limb points where the source limb points, twist included.

Conventions: :mod:`.skeleton`'s (Blender's rest matrices R and local rotations L).

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
heights (target over source, each above its skeleton's lowest joint), becomes the target root bone's
pose location. Bones no joint maps to keep L = identity.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import EXIT_BAD_INPUT, AddonError
from ..rotations import continuous_quaternions, matrix_to_quaternion, quaternion_to_matrix
from .plant import plant_feet, posed_heads
from .presets import SMPL_AIM_CHILD, SMPL_JOINT_NAMES, SMPL_PARENTS
from .skeleton import RestSkeleton, swing_between

__all__ = ["RetargetResult", "retarget", "source_ankles", "target_orientations"]


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
             source_root: np.ndarray | None = None, align: np.ndarray | None = None,
             planted: Mapping[str, np.ndarray] | None = None,
             corrections: Mapping[str, np.ndarray] | None = None, root_bone: str | None = None) -> RetargetResult:
    """The target's keys for every source frame.

    source: the SMPL rig (bones named after SMPL's joints, Z up, facing -Y); target: the armature to
    drive; mapping: {SMPL joint: target bone} (:mod:`.mapping`); source_pose: the source bones'
    armature-space orientations per frame, (F, Bs, 3, 3) or quaternions (F, Bs, 4)
    (:func:`~.skeleton.world_rotations` of the source's local keys); source_root (F, 3): the source
    pelvis head's armature-space position per frame (None: no translation); align (3, 3): rotation
    from the source's armature space into the target's (None: identity, both facing the same way);
    planted: {"left"/"right": (F,) bool}, where the source's foot is on the ground, to hold the
    target's ankle there (:mod:`.plant`; needs hip, knee and ankle mapped on that side);
    corrections: {target bone: (F, 3, 3)} armature-space turns applied to those bones' orientations
    last, mapped or not (for rigs whose constraints move the deforming bones away from their
    controls; a corrected unmapped bone is keyed too); root_bone:
    the bone taking the translation where it is not the pelvis's (an unmapped bone above it).
    """
    wanted, pelvis_bone, offset, scale = _orientations(source, target, mapping, source_pose, source_root, align,
                                                       planted)
    root_bone = root_bone or pelvis_bone
    frames = offset.shape[0]
    root = target.index(root_bone) if root_bone else -1
    turns = {target.index(bone): np.asarray(turn, np.float64) for bone, turn in (corrections or {}).items()}
    for t in list(turns):
        if t in wanted:
            wanted[t] = turns.pop(t) @ wanted[t]
    rest = target.matrices
    posed: dict[int, np.ndarray] = {}
    local: dict[int, np.ndarray] = {}
    location = np.zeros((frames, 3))
    for bone in target.order():
        parent = target.parents[bone]
        frame = rest[bone][None] if parent < 0 else posed[parent] @ (rest[parent].T @ rest[bone])
        if bone == root:
            location = np.einsum("fji,fj->fi", np.broadcast_to(frame, (frames, 3, 3)), offset)
        if bone in turns:  # an unmapped bone turned by a correction
            wanted[bone] = turns[bone] @ frame
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
    return RetargetResult(tuple(target.names[bone] for bone in bones), rotations, root_bone, location, offset,
                          scale)


def target_orientations(source: RestSkeleton, target: RestSkeleton, mapping: Mapping[str, str],
                        source_pose: np.ndarray, source_root: np.ndarray | None = None,
                        align: np.ndarray | None = None, planted: Mapping[str, np.ndarray] | None = None
                        ) -> dict[str, np.ndarray]:
    """The armature-space orientations (F, 3, 3) :func:`retarget` gives each mapped target bone,
    by name (arguments as there): what a rig's deforming bones should reach."""
    wanted, *_ = _orientations(source, target, mapping, source_pose, source_root, align, planted)
    return {target.names[t]: np.broadcast_to(value, (value.shape[0], 3, 3)) for t, value in wanted.items()}


def _orientations(source: RestSkeleton, target: RestSkeleton, mapping: Mapping[str, str], source_pose: np.ndarray,
                  source_root: np.ndarray | None, align: np.ndarray | None, planted: Mapping[str, np.ndarray] | None
                  ) -> tuple[dict[int, np.ndarray], str, np.ndarray, float]:
    """(wanted armature-space orientation per mapped target bone index, root bone, its offset, scale)."""
    pose = _pose_matrices(source, source_pose)
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
    root_bone, offset, scale = _root_offset(source, target, mapping, source_root, align, frames)
    root = target.index(root_bone) if root_bone else -1
    if planted:
        legs = {side: tuple(mapping[f"{side}_{part}"] for part in ("hip", "knee", "ankle"))
                for side in ("left", "right") if all(f"{side}_{part}" in mapping for part in ("hip", "knee", "ankle"))}
        flags = {side: _flags(planted[side], frames, side) for side in planted if side in legs}
        follow = _source_ankles(source, pose, source_root, align, scale, frames)
        plant_feet(target, legs, wanted, root, offset, flags, align @ np.array([0.0, -1.0, 0.0]), follow)
    return wanted, root_bone, offset, scale


def _pose_matrices(source: RestSkeleton, source_pose: np.ndarray) -> np.ndarray:
    """The source pose as orientation matrices (F, Bs, 3, 3), from matrices or quaternions (F, Bs, 4)."""
    pose = np.asarray(source_pose, np.float64)
    if pose.ndim == 3 and pose.shape[-1] == 4:
        pose = quaternion_to_matrix(pose)
    if pose.ndim != 4 or pose.shape[1:] != (len(source.names), 3, 3):
        raise AddonError(f"source pose: expected (frames, {len(source.names)}, 3, 3) or (frames, "
                         f"{len(source.names)}, 4), got {np.shape(source_pose)}", EXIT_BAD_INPUT)
    return pose


def _root_offset(source: RestSkeleton, target: RestSkeleton, mapping: Mapping[str, str],
                 source_root: np.ndarray | None, align: np.ndarray, frames: int) -> tuple[str, np.ndarray, float]:
    """(the target bone taking the translation or "", its head's armature-space offset (F, 3), the
    hip-height ratio): the source pelvis's displacement, scaled by target over source hip height,
    each above its skeleton's lowest joint along its own up (source Z; in the target, ``align @ Z``)."""
    if "pelvis" not in mapping:
        return "", np.zeros((frames, 3)), 1.0
    s, t = source.index("pelvis"), target.index(mapping["pelvis"])
    up = align @ np.array([0.0, 0.0, 1.0])
    src_height = source.heads[s, 2] - source.floor()
    tgt_height = target.heads[t] @ up - target.floor(up)
    if src_height <= 1e-6 or tgt_height <= 1e-6:
        raise AddonError("retarget: a hip height is not above the skeleton's lowest joint; is the armature "
                         "upright (its object's rotation included)?", EXIT_BAD_INPUT)
    scale = float(tgt_height / src_height)
    if source_root is None:
        return mapping["pelvis"], np.zeros((frames, 3)), scale
    root = np.asarray(source_root, np.float64)
    if root.shape != (frames, 3):
        raise AddonError(f"source root: expected ({frames}, 3), got {root.shape}", EXIT_BAD_INPUT)
    return mapping["pelvis"], scale * (root - source.heads[s]) @ align.T, scale


def _source_ankles(source: RestSkeleton, pose: np.ndarray, source_root: np.ndarray | None, align: np.ndarray,
                   scale: float, frames: int) -> dict[str, np.ndarray]:
    """The source's ankles per frame in the target's space and scale: {side: (F, 3)}."""
    pelvis = source.index("pelvis")
    shift = np.zeros((frames, 3)) if source_root is None else np.asarray(source_root, np.float64) - source.heads[pelvis]
    heads = posed_heads(source, {i: pose[:, i] for i in range(len(source.names))}, pelvis, shift)
    return {side: scale * heads[:, source.index(f"{side}_ankle")] @ align.T for side in ("left", "right")}


def source_ankles(source: RestSkeleton, target: RestSkeleton, mapping: Mapping[str, str], source_pose: np.ndarray,
                  source_root: np.ndarray | None = None, align: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The source's ankles per frame {side: (F, 3)} in the target's armature space, scaled by the
    hip heights as the translation is: what a planted target ankle follows."""
    pose = _pose_matrices(source, source_pose)
    align = np.eye(3) if align is None else np.asarray(align, np.float64)
    _, _, scale = _root_offset(source, target, mapping, source_root, align, pose.shape[0])
    return _source_ankles(source, pose, source_root, align, scale, pose.shape[0])


def _flags(values: np.ndarray, frames: int, side: str) -> np.ndarray:
    """A side's contact flags as (F,) bool; one line where their length is not the clip's."""
    flags = np.asarray(values).astype(bool).reshape(-1)
    if flags.shape != (frames,):
        raise AddonError(f"{side} foot contacts: expected {frames} frames, got {np.shape(values)}", EXIT_BAD_INPUT)
    return flags
