"""The demo's sample clip: the project's look-alike body walking across a room and waving, rendered
by the project's own renderer (``core.render``), with the truth it was made from.

The motion is ``core.cleanup.synthetic.make_walk``'s walk (diagonally across the view, towards a
fixed camera, a slight turn), with wider arm swing, elbows that bend as the arms swing, a wave of
the right arm in the middle of the clip and a head that turns a little. It is a loop of
:data:`LOOP_SECONDS`: longer clips repeat it (the person jumps back to the start).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from core.atomic import atomic_path
from core.camera import default_focal

if TYPE_CHECKING:
    from core.cleanup.synthetic import SyntheticWalk

__all__ = ["LOOP_SECONDS", "SampleTruth", "photo", "sample_walk", "write_sample_clip"]

#: Length of the walk the clip shows (seconds); longer clips repeat it.
LOOP_SECONDS = 4.0
_SCALE = 2  # supersampling of the renderer
_WAVE = (1.5, 3.2, 0.35)  # the wave's start, end and blend time (s)


def photo() -> np.ndarray:
    """A real photo of a person (600, 512, 3) RGB uint8 shipped with matplotlib (the precision check's crops)."""
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True, eq=False)
class SampleTruth:
    """What the clip shows, per frame (N frames): ``pose`` (N, 24, 3) axis-angle with the root in camera
    axes, ``joints`` (N, 24, 3) SMPL's joints in camera axes (metres), ``joints_2d`` (N, 24, 2) their
    pixels, ``box`` (N, 4) (cx, cy, w, h) pixels around the projected mesh; the camera's ``focal`` (px,
    the engine's default for the frame size), ``fps``, ``width`` and ``height``."""

    pose: np.ndarray
    joints: np.ndarray
    joints_2d: np.ndarray
    box: np.ndarray
    focal: float
    fps: float
    width: int
    height: int


def _smooth_window(t: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    up = np.clip((t - start) / ramp, 0, 1)
    down = np.clip((end - t) / ramp, 0, 1)
    w = np.minimum(up, down)
    return w * w * (3 - 2 * w)


def _arms(t: np.ndarray, period: float) -> np.ndarray:
    """Shoulder and elbow rotations (F, 4, 3) for joints 16, 17, 18, 19: swing, then the right arm waves."""
    phase = 2.0 * np.pi * t / period
    out = np.zeros((len(t), 4, 3))
    zero = np.zeros_like(t)
    for k, side in ((0, 1.0), (1, -1.0)):
        swing = np.radians(32.0) * np.cos(phase)
        shoulder = Rotation.from_rotvec(np.stack([side * swing, zero, zero], -1)) * Rotation.from_euler(
            "z", -side * 72.0, degrees=True)
        flex = np.radians(30.0 - 22.0 * side * np.cos(phase))  # more bent as the arm swings forward
        elbow = Rotation.from_rotvec(np.stack([zero, -side * flex, zero], -1))
        if side < 0:
            w = _smooth_window(t, *_WAVE)
            beat = np.radians(70.0 + 28.0 * np.sin(2.0 * np.pi * 2.2 * t))
            up = Rotation.from_euler("zy", [-15.0, 17.0], degrees=True)  # upper arm out, a little forward
            bend = Rotation.from_rotvec(np.stack([zero, zero, -beat], -1))
            shoulder = shoulder * Rotation.from_rotvec(w[:, None] * (shoulder.inv() * up).as_rotvec())
            elbow = elbow * Rotation.from_rotvec(w[:, None] * (elbow.inv() * bend).as_rotvec())
        out[:, k], out[:, k + 2] = shoulder.as_rotvec(), elbow.as_rotvec()
    return out


def _turn_camera(walk: SyntheticWalk, yaw: float) -> SyntheticWalk:
    """The same walk seen by its camera turned by ``yaw`` (radians) about the world's vertical."""
    up = Rotation.from_rotvec([0.0, 0.0, yaw]).as_matrix()
    rot = walk.camera_to_world[0, :3, :3]
    q = rot.T @ up.T @ rot  # old camera axes -> new camera axes
    root = Rotation.from_matrix(q @ Rotation.from_rotvec(walk.pose[:, 0]).as_matrix()).as_rotvec()
    pelvis = (walk.translation + walk.rest_joints[0]) @ q.T
    to_world = walk.camera_to_world.copy()
    to_world[:, :3, :3] = up @ to_world[:, :3, :3]
    pose = walk.pose.copy()
    pose[:, 0] = root
    return replace(walk, pose=pose, translation=pelvis - walk.rest_joints[0], camera_to_world=to_world)


def sample_walk(n_frames: int, fps: float = 30.0) -> SyntheticWalk:
    """The clip's motion: a :class:`core.cleanup.synthetic.SyntheticWalk` of :data:`LOOP_SECONDS`,
    arms and head changed as the module says, indexed to ``n_frames`` frames (looping)."""
    from core.cleanup.synthetic import make_walk

    period = 1.15
    walk = make_walk(LOOP_SECONDS, fps, step_length=0.45, period=period, direction_deg=-28.0, turn_deg=-25.0,
                     distance=5.2, camera_height=1.5, camera_pitch_deg=8.0)
    walk = _turn_camera(walk, np.radians(-4.0))  # centre the walk in the view
    t = walk.frames / fps
    pose = walk.pose.copy()
    pose[:, [16, 17, 18, 19]] = _arms(t, period)
    pose[:, 12, 1] = np.radians(12.0) * np.sin(2.0 * np.pi * t / LOOP_SECONDS)
    pose[:, 15, 0] = np.radians(6.0) * np.sin(2.0 * np.pi * t / 1.7)
    rows = np.arange(n_frames) % len(walk.frames)
    return replace(walk.subset(rows), pose=pose[rows], frames=np.arange(n_frames))


def write_sample_clip(path: Path, *, seconds: float = 4.0, fps: int = 30, width: int = 640,
                      height: int = 480) -> SampleTruth:
    """Write the sample clip (H.264 MP4, ``seconds`` long) atomically; returns what it shows."""
    import av

    from core.posing import posed_joints_and_vertices
    from core.render.raster import draw_mesh, project
    from core.render.scene import backdrop, clothes, shadow
    from core.standins.body import make_body

    n = max(1, round(seconds * fps))
    loop = min(n, round(LOOP_SECONDS * fps))
    walk = sample_walk(n, fps)
    faces = np.asarray(make_body(0).faces, np.int64)
    albedo = clothes(walk.rest_vertices, walk.rest_joints, faces, walk.skin_weights)
    focal = default_focal(width, height)
    room = backdrop(width * _SCALE, height * _SCALE, focal * _SCALE, walk.camera_to_world[0], wall_y=9.0)
    joints, verts = posed_joints_and_vertices(walk.pose[:loop], walk.rest_vertices, walk.rest_joints,
                                              walk.parents, walk.skin_weights)
    joints, verts = joints + walk.translation[:loop, None], verts + walk.translation[:loop, None]
    rot, origin = walk.camera_to_world[0, :3, :3], walk.camera_to_world[0, :3, 3]
    feet = joints[:, [10, 11, 0]] @ rot.T + origin  # world axes (z up): dropped onto the floor, z = 0
    feet[..., 2] = 0.0
    feet = (feet - origin) @ rot
    frames = []
    for i in range(loop):
        canvas = room.copy()
        shadow(canvas, feet[i], rot[2], focal, _SCALE)
        draw_mesh(canvas, verts[i], faces, albedo, focal, _SCALE)
        frames.append(cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA))
    pixels = project(verts, focal, width, height)
    lo, hi = pixels.min(1), pixels.max(1)
    rows = np.arange(n) % loop
    truth = SampleTruth(pose=walk.pose, joints=joints[rows], joints_2d=project(joints, focal, width, height)[rows],
                        box=np.concatenate([(lo + hi) / 2, hi - lo], 1)[rows], focal=focal, fps=float(fps),
                        width=width, height=height)
    with atomic_path(Path(path)) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in rows:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frames[i], format="rgb24")))
        out.mux(stream.encode(None))
    return truth
