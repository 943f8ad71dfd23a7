"""Generated motion files: plausible, seeded motion in the real format, for add-on tests and
benchmarks before (or without) running the video pipeline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from core.camera import default_focal
from core.motion import build_person, make_meta, motion_from_people, write_motion
from core.motion_format import FLAG_DETECTED, FLAG_INTERPOLATED, Motion
from core.smpl import SmplData

__all__ = ["synthetic_motion", "write_synthetic_motion"]

# Joints animated by the walk cycle: (joint index, axis, amplitude rad, phase).
_WALK = (
    (1, 0, 0.45, 0.0), (2, 0, 0.45, np.pi),  # hips swing in opposition
    (4, 0, 0.6, 0.5), (5, 0, 0.6, np.pi + 0.5),  # knees bend (added to a rest bend below)
    (16, 2, 0.25, np.pi), (17, 2, 0.25, 0.0),  # shoulders swing
    (18, 1, 0.3, 0.0), (19, 1, 0.3, np.pi),  # elbows
    (3, 1, 0.08, 0.0), (12, 1, 0.05, np.pi),  # spine and neck twist
)


def synthetic_motion(smpl: SmplData, *, n_frames: int = 120, fps: tuple[int, int] = (30000, 1001),
                     width: int = 1920, height: int = 1080, n_people: int = 1, seed: int = 0,
                     gap: tuple[int, int] | None = None, world: str | None = None) -> Motion:
    """A person (or several) walking and turning in front of a static camera.

    ``gap=(a, b)`` removes frames a..b-1 of person 0 (as if nobody was detected there) and marks
    frames b and b+1 as interpolated (a short detection gap filled in), to exercise both cases.
    ``world="static"`` or ``"rotating"`` adds the clean-up stage's arrays (see :func:`_with_world`);
    the default adds none.
    """
    rng = np.random.default_rng(seed)
    frames = np.arange(n_frames, dtype=np.int64)
    times = frames * fps[1] / fps[0]
    people = []
    for pid in range(n_people):
        phase = 2 * np.pi * 1.0 * times + pid
        pose = np.zeros((n_frames, 24, 3), np.float32)
        # Root: upright in camera axes (180 degrees about x), slowly turning about the vertical.
        turn = 0.6 * np.sin(2 * np.pi * times / max(times[-1], 1e-6)) if n_frames > 1 else np.zeros(1)
        rot = _compose_x180_then_y(turn)
        pose[:, 0] = rot
        for joint, axis, amp, ph in _WALK:
            pose[:, joint, axis] += amp * np.sin(phase + ph)
        pose[:, 4, 0] += 0.35
        pose[:, 5, 0] += 0.35
        pose[:, 16, 2] += -1.1  # arms down from the T-pose
        pose[:, 17, 2] += 1.1
        pose += rng.normal(0, 0.01, pose.shape).astype(np.float32)
        betas = np.tile(rng.normal(0, 0.8, 10), (n_frames, 1)) + rng.normal(0, 0.05, (n_frames, 10))
        # A person about 1/2 of the image tall, drifting sideways.
        box_h = 0.55 * height * (1 + 0.1 * np.sin(times))
        cx = width * (0.35 + 0.3 * pid / max(n_people, 1) + 0.1 * np.sin(0.5 * times))
        cy = np.full(n_frames, 0.55 * height)
        box = np.stack([cx, cy, 0.4 * box_h, box_h], 1)
        cam = np.stack([np.full(n_frames, 0.9), 0.02 * np.sin(times), 0.1 + 0.01 * np.cos(times)], 1)
        flags = np.full(n_frames, FLAG_DETECTED, np.uint8)
        keep = np.ones(n_frames, bool)
        if gap is not None and pid == 0:
            keep[gap[0]:gap[1]] = False
            flags[gap[1]:gap[1] + 2] = FLAG_INTERPOLATED
        people.append(build_person(pid, frame=frames[keep], time=times[keep], pose=pose[keep], betas=betas[keep],
                                   cam_crop=cam[keep], box=box[keep], flags=flags[keep], smpl=smpl, width=width,
                                   height=height, focal=default_focal(width, height)))
    meta = make_meta(
        source={"path": "synthetic", "name": "synthetic", "width": width, "height": height, "fps_num": fps[0],
                   "fps_den": fps[1], "frame_count": n_frames, "duration": float(n_frames * fps[1] / fps[0]),
                "rotation": 0},
        frame_range=(0, n_frames),
        assets={"kind": "stand-in", "checkpoint_sha256": "", "smpl": "generated"},
        focal=default_focal(width, height),
        options={"generator": "core.standins.motion", "seed": seed},
    )
    motion = motion_from_people(meta, frames, times, smpl, people)
    return motion if world is None else _with_world(motion, world)


#: The synthetic world frame's camera: height above the ground (m), pitch (degrees, down).
_WORLD_CAMERA_HEIGHT, _WORLD_CAMERA_PITCH = 1.6, 10.0
_LEGS = (1, 2, 4, 5, 7, 8)


def _with_world(motion: Motion, kind: str) -> Motion:
    """``motion`` with a world frame and, per person, contacts, a world translation and a foot-locked pose.

    The camera stands 1.6 m above the ground pitched 10 degrees down, looking along +y at the first
    frame; "rotating" pans it by 0.3 rad about the vertical over the clip. World translations
    follow the camera-space ones (R_cw t + camera position) with the height set so the rest pose's
    feet would touch the ground; contacts follow the walk cycle; the locked pose nudges the legs.
    """
    if kind not in ("static", "rotating"):
        raise ValueError(f"world must be 'static' or 'rotating', not {kind!r}")
    n = len(motion.frame_index)
    yaw = np.linspace(0.0, 0.3, n) if kind == "rotating" else np.zeros(n)
    pitch = np.radians(_WORLD_CAMERA_PITCH)
    level = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # camera axes -> z up, along +y
    down = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(pitch), np.sin(pitch)], [0.0, -np.sin(pitch), np.cos(pitch)]])
    c, s = np.cos(yaw), np.sin(yaw)
    pan = np.zeros((n, 3, 3))
    pan[:, 0, 0], pan[:, 0, 1], pan[:, 1, 0], pan[:, 1, 1], pan[:, 2, 2] = c, -s, s, c, 1.0
    camera_to_world = np.tile(np.eye(4), (n, 1, 1))
    camera_to_world[:, :3, :3] = pan @ down @ level
    camera_to_world[:, 2, 3] = _WORLD_CAMERA_HEIGHT
    people = []
    for person in motion.people:
        rows = np.searchsorted(motion.frame_index, person.frame)
        rot, position = camera_to_world[rows, :3, :3], camera_to_world[rows, :3, 3]
        world = np.einsum("fab,fb->fa", rot, person.translation.astype(np.float64)) + position
        pelvis = np.einsum("fab,b->fa", rot, person.rest_joints[0].astype(np.float64))
        world[:, 2] = person.rest_joints[0, 1] - person.rest_vertices[:, 1].min() - pelvis[:, 2]
        phase = np.sin(2 * np.pi * person.time + person.person_id)
        contacts = np.stack([phase > 0.2, phase > -0.2, phase < -0.2, phase < 0.2], 1).astype(np.uint8)
        locked = person.pose.copy()
        locked[:, _LEGS, 0] += (0.05 * np.cos(2 * np.pi * person.time)[:, None]).astype(np.float32)
        people.append(dataclasses.replace(person, contacts=contacts, world_translation=world.astype(np.float32),
                                          pose_locked=locked))
    meta = {**motion.meta, "world": {"camera_motion": kind, "camera_height_m": _WORLD_CAMERA_HEIGHT,
                                     "camera_pitch_deg": _WORLD_CAMERA_PITCH,
                                     "note": "synthetic ground plane from core.standins.motion"}}
    return dataclasses.replace(motion, meta=meta, people=tuple(people), camera_to_world=camera_to_world)


def _compose_x180_then_y(angles: np.ndarray) -> np.ndarray:
    """Axis-angle (F, 3) of R_x(pi) @ R_y(angle): upright in camera axes, turned about the body's axis.

    As quaternions q_x(pi) q_y(a) = (0, cos(a/2), 0, sin(a/2)): a half turn about that unit axis.
    """
    return (np.pi * np.stack([np.cos(angles / 2), np.zeros_like(angles), np.sin(angles / 2)], 1)).astype(np.float32)


def write_synthetic_motion(path: Path, smpl: SmplData, **options) -> Motion:
    """Generate a motion (options as :func:`synthetic_motion`) and write it to ``path``."""
    motion = synthetic_motion(smpl, **options)
    write_motion(path, motion)
    return motion
