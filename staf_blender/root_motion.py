"""Root motion and the world frame, in numpy (no bpy): where each character's root goes per mode,
the clip camera's pose in the world frame, the ground plane's extent and the world summary.

Derivation of the root keys (A = SMPL_TO_ARMATURE, J0 the rest pelvis in SMPL's frame, R the
pose's root rotation in camera axes). The root bone's rest matrix is [A | A J0] and its pose
local matrix [L | loc], so Blender puts a rest vertex v_s (armature space A v_s) skinned to it at

    A L A^T (A v_s - A J0) + A J0 + A loc = A L (v_s - J0) + A (J0 + loc).

The file says where that vertex is in a frame W with Blender's axes (Z up):
``M R (v_s - J0) + p``, M the rotation from camera axes into W and p the pelvis. Matching the two:
``L = (A^T M) R`` and ``loc = A^T p - J0``. Then:

- "camera": W is the camera-at-origin scene, M = CAMERA_TO_WORLD (constant: A^T M is
  ROOT_CORRECTION, a half turn about X) and p = M (J0 + translation).
- "world": W is the file's world frame, whose axes already are Blender's (z up, ground at z = 0):
  M = R_cw[f], the rotation of ``camera_to_world`` at the frame, and p = R_cw[f] J0 +
  ``world_translation[f]`` (docs/motion-format.md: world vertices = R_cw SMPL(pose) + world_translation).
- "in_place" / "ground": M and p as "camera" (the camera's vertical taken as the world's), or, when
  the person has a world frame, as "world" with the horizontal part of p replaced (kept at the
  rest pose's spot, or moved by the path's horizontal change from the first frame) and its height
  above the ground kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np

from .errors import AddonError
from .motion_io import Motion, PersonMotion
from .rotations import (
    CAMERA_AXES_TO_BLENDER_CAMERA,
    CAMERA_TO_WORLD,
    ROOT_CORRECTION_QUATERNION,
    SMPL_TO_ARMATURE,
    axis_angle_to_quaternion,
    continuous_quaternions,
    matrix_to_quaternion,
    nearest_rotation,
    quaternion_multiply,
)

__all__ = [
    "CONTACT_CHANNELS",
    "GROUND_MARGIN_M",
    "ROOT_MOTION_MODES",
    "CameraMotion",
    "camera_motion",
    "ground_extent",
    "has_world",
    "person_pose",
    "resolve_root_motion",
    "root_keys",
    "world_rotations",
    "world_summary",
]

#: How the character moves: as seen from the camera, on the spot, on the ground plane (horizontal
#: motion only), or placed in the file's world frame ("World (ground)").
ROOT_MOTION_MODES = ("camera", "in_place", "ground", "world")
#: The file's contact columns (left heel, left toe, right heel, right toe): (joint index, property).
CONTACT_CHANNELS = ((7, "staf_heel_contact"), (10, "staf_toe_contact"), (8, "staf_heel_contact"),
                    (11, "staf_toe_contact"))
#: Space added around the motion on every side of the ground plane.
GROUND_MARGIN_M = 1.0
_STATIC_TOLERANCE = 1e-7


@dataclass(frozen=True, eq=False)
class CameraMotion:
    """The clip camera object's pose per clip frame, in the world frame: rotations (N, 4)
    quaternions (w, x, y, z) of the Blender camera object, locations (N, 3); ``animated`` False
    when every frame holds the first one's pose (a static camera: no keys)."""

    frames: np.ndarray
    rotations: np.ndarray
    locations: np.ndarray
    animated: bool


def has_world(motion: Motion, person: PersonMotion) -> bool:
    """Whether ``person`` can be placed in the file's world frame."""
    return motion.camera_to_world is not None and person.world_translation is not None


def resolve_root_motion(motion: Motion, people: list[PersonMotion], requested: str) -> str:
    """The mode to build: ``auto`` is "world" when the file has a world frame for every one of
    ``people``, else "camera"; "world" without one is refused (AddonError, one line)."""
    if requested == "auto":
        return "world" if people and all(has_world(motion, p) for p in people) else "camera"
    if requested == "world":
        if motion.camera_to_world is None:
            note = _world_meta(motion).get("note")
            why = " ".join(note.split()) if isinstance(note, str) and note.strip() else "the clean-up found none"
            raise AddonError(f"this motion file has no ground plane ({why}): use root motion camera, in_place "
                             "or ground")
        lacking = [str(p.person_id) for p in people if p.world_translation is None]
        if lacking:
            raise AddonError(f"person {', '.join(lacking)} has no world translation in this motion file: use "
                             "root motion camera, in_place or ground")
    return requested


def person_pose(person: PersonMotion, foot_lock: bool) -> tuple[np.ndarray, bool]:
    """The joint rotations to key: ``pose_locked`` with foot lock where the file has it, else
    ``pose``; and whether the locked pose was used."""
    if foot_lock and person.pose_locked is not None:
        return person.pose_locked, True
    return person.pose, False


def world_rotations(motion: Motion, frames: np.ndarray) -> np.ndarray:
    """R_cw (len(frames), 3, 3): the rotation of ``camera_to_world`` at each clip frame (made
    exactly orthonormal)."""
    rows = np.searchsorted(motion.frame_index, frames)
    return nearest_rotation(np.asarray(motion.camera_to_world, np.float64)[rows, :3, :3])


def root_keys(motion: Motion, person: PersonMotion, pose: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Pose-bone quaternions (F, 24, 4), continuous in time, and the root bone's location (F, 3)
    that place ``person`` (joint rotations ``pose``) as ``mode`` says (see the module's derivation)."""
    rest_joints = person.rest_joints.astype(np.float64)
    j0 = rest_joints[0]
    world = mode != "camera" and has_world(motion, person)
    quats = axis_angle_to_quaternion(pose)
    if world:
        axes = world_rotations(motion, person.frame)
        correction = matrix_to_quaternion(np.einsum("ba,fbc->fac", SMPL_TO_ARMATURE, axes))  # A^T R_cw
        path = axes @ j0 + person.world_translation.astype(np.float64)
    else:
        correction = ROOT_CORRECTION_QUATERNION
        path = (j0 + person.translation.astype(np.float64)) @ CAMERA_TO_WORLD.T
    quats[:, 0] = quaternion_multiply(correction, quats[:, 0])
    quats = continuous_quaternions(quats)

    if mode in ("camera", "world"):
        pelvis = path
    else:
        standing = SMPL_TO_ARMATURE @ j0 + np.array([0.0, 0.0, -person.rest_vertices[:, 1].min()])
        pelvis = np.tile(standing, (len(person), 1))
        if world:
            pelvis[:, 2] = path[:, 2]  # the pelvis's height above the found ground
        if mode == "ground":
            pelvis[:, :2] += path[:, :2] - path[:1, :2]
    return quats, pelvis @ SMPL_TO_ARMATURE - j0  # A^T p - J0, row-wise


def camera_motion(motion: Motion, frame_offset: int) -> CameraMotion:
    """The clip camera's pose at every frame of the file, from ``camera_to_world``: the Blender
    camera object's rotation is R_cw diag(1, -1, -1) (it looks along its -Z), its location the
    transform's translation."""
    transforms = np.asarray(motion.camera_to_world, np.float64)
    rotations = nearest_rotation(transforms[:, :3, :3]) @ CAMERA_AXES_TO_BLENDER_CAMERA
    quats = continuous_quaternions(matrix_to_quaternion(rotations))
    locations = transforms[:, :3, 3].copy()
    animated = bool(np.abs(rotations - rotations[:1]).max() > _STATIC_TOLERANCE
                    or np.abs(locations - locations[:1]).max() > _STATIC_TOLERANCE)
    return CameraMotion(motion.frame_index.astype(np.float64) + frame_offset, quats, locations, animated)


def ground_extent(points: list[np.ndarray], margin: float = GROUND_MARGIN_M) -> tuple[tuple[float, float],
                                                                                      tuple[float, float]]:
    """Centre (x, y) and size (x, y) of a ground rectangle holding every point's (..., 3) horizontal
    position with ``margin`` metres on each side."""
    xy = np.concatenate([np.asarray(p, np.float64).reshape(-1, 3)[:, :2] for p in points])
    low, high = xy.min(0) - margin, xy.max(0) + margin
    centre, size = (low + high) / 2.0, high - low
    return (float(centre[0]), float(centre[1])), (float(size[0]), float(size[1]))


def world_summary(motion: Motion) -> str | None:
    """One line on the world frame for the user (``meta.world`` and whether there is a ground
    plane), or None when the file says nothing about one."""
    world = _world_meta(motion)
    found = motion.camera_to_world is not None
    if not world and not found:
        return None
    parts = []
    kind = world.get("camera_motion")
    if isinstance(kind, str) and kind.strip():
        parts.append(f"{' '.join(kind.split())} camera")
    height = world.get("camera_height_m")
    if isinstance(height, Real) and not isinstance(height, bool):
        parts.append(f"{float(height):.2f} m above the ground")
    pitch = world.get("camera_pitch_deg")
    if isinstance(pitch, Real) and not isinstance(pitch, bool):
        parts.append(f"pitched {abs(float(pitch)):.1f} deg {'down' if pitch >= 0 else 'up'}")
    text = ("ground plane" if found else "no ground plane") + (f": {', '.join(parts)}" if parts else "")
    note = world.get("note")
    if isinstance(note, str) and note.strip():
        text += f" ({' '.join(note.split())})"
    return text


def _world_meta(motion: Motion) -> dict:
    world = motion.meta.get("world")
    return world if isinstance(world, dict) else {}
