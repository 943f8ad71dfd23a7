"""Measuring the whole clean-up stage on synthetic walks: a walk as the motion the engine would
hand over, and the world positions a rig would show (what tests and scripts/bench_cleanup.py use).
"""

from __future__ import annotations

import numpy as np

from core.cleanup.camera_motion import CameraMotion
from core.cleanup.feet import foot_points, joint_positions
from core.cleanup.synthetic import SyntheticWalk
from core.motion_format import FLAG_DETECTED, Motion, PersonMotion
from core.skeleton import SMPL_JOINT_NAMES

__all__ = ["exact_camera", "walk_motion", "world_points"]


def walk_motion(walk: SyntheticWalk, pose: np.ndarray | None = None, translation: np.ndarray | None = None) -> Motion:
    """The walk (or a noisy ``pose``/``translation`` of it) as a one-person motion file's contents."""
    pose = walk.pose if pose is None else pose
    translation = walk.translation if translation is None else translation
    n = len(walk.frames)
    num, den = (round(walk.fps * 1000), 1000) if walk.fps != round(walk.fps) else (round(walk.fps), 1)
    time = walk.frames / walk.fps
    person = PersonMotion(
        person_id=0, frame=walk.frames.astype(np.int64), time=time, pose=np.asarray(pose, np.float32),
        betas=np.zeros((n, 10), np.float32), cam_crop=np.zeros((n, 3), np.float32),
        cam_full=np.zeros((n, 4), np.float32), translation=np.asarray(translation, np.float32),
        box=np.tile(np.float32([320, 240, 100, 300]), (n, 1)), flags=np.full(n, FLAG_DETECTED, np.uint8),
        shape=np.zeros(10, np.float32), rest_vertices=walk.rest_vertices.astype(np.float32),
        rest_joints=walk.rest_joints.astype(np.float32))
    meta = {"source": {"fps_num": num, "fps_den": den, "width": 640, "height": 480, "name": "walk"},
            "options": {}, "assets": {"kind": "stand-in"}}
    faces = np.zeros((0, 3), np.int32)
    return Motion(meta, walk.frames.astype(np.int64), time, SMPL_JOINT_NAMES, np.asarray(walk.parents, np.int32),
                  faces, walk.skin_weights.astype(np.float32), np.zeros((len(walk.rest_vertices), 3, 10), np.float32),
                  (person,))


def exact_camera(walk: SyntheticWalk, verdict: str = "rotating") -> CameraMotion:
    """The walk's true camera rotation as the people pass would report it (a perfect measurement)."""
    n = len(walk.frames)
    return CameraMotion(R_rel=walk.r_rel.copy(), verdict=verdict, note="exact", quality=np.ones(n),
                        inliers=np.full(n, 100), residual_px=np.zeros(n), parallax_share=np.zeros(1), max_deg=0.0)


def world_points(motion: Motion, person: PersonMotion, foot_indices: np.ndarray, *, locked: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """World joints (F, 24, 3) and foot points (F, 4, 3) of a cleaned person as a rig in world mode
    shows them: R_f . LBS(pose) + world_translation (``pose_locked`` when ``locked``)."""
    pose = person.pose_locked if locked and person.pose_locked is not None else person.pose
    rows = np.searchsorted(motion.frame_index, person.frame)
    rot = motion.camera_to_world[rows, :3, :3]
    zero = np.zeros((len(person), 3))
    args = (person.rest_joints.astype(np.float64), motion.parents)
    joints = joint_positions(pose, zero, *args)
    feet = foot_points(pose, zero, person.rest_vertices.astype(np.float64), person.rest_joints.astype(np.float64),
                       motion.skin_weights.astype(np.float64), motion.parents, foot_indices)
    shift = person.world_translation.astype(np.float64)[:, None, :]
    return (np.einsum("fab,fjb->fja", rot, joints) + shift, np.einsum("fab,fjb->fja", rot, feet) + shift)
