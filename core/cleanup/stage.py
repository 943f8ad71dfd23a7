"""The clean-up stage as the engine runs it: a motion file's contents in, the same with a world.

Order (each step reads the previous one's result):

1. optional filter of pose and translation (``--filter``; off by default: STAF's own output is
   temporally smooth, and a filter after the foot lock would let planted feet slide again);
2. the camera's own motion (``core.cleanup.camera_motion``, measured by the people pass): a
   translating camera gets no world frame (said in the notes), a rotating one is followed;
3. per person, foot contacts, a depth-consistent trajectory and a ground plane candidate
   (``core.cleanup.trajectory``);
4. one ground plane for the clip, the candidate of the person whose plane has the most inlier
   contact points, and from it the world frame of every frame (``camera_to_world``) and each
   person's world translation;
5. foot lock (two-bone leg IK) in the world frame (``core.cleanup.foot_lock``).

``pose`` and ``translation`` stay the network's output (filtered only when asked); the stage
adds ``contacts``, ``world_translation``, ``pose_locked`` and ``camera_to_world`` (motion file
version 2, docs/motion-format.md "World frame").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from core.cleanup.camera_motion import CameraMotion
from core.cleanup.filters import smooth_motion
from core.cleanup.foot_lock import lock_feet
from core.cleanup.ground import camera_to_world_per_frame, motion_to_world
from core.cleanup.trajectory import CleanTrajectory, clean_trajectory
from core.motion_format import Motion

__all__ = ["FILTERS", "CleanupOptions", "CleanupReport", "clean_up", "world_line"]

FILTERS = ("none", "one-euro", "savgol")
_UP = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class CleanupOptions:
    """world: find the ground plane and world frame; foot_lock: keep planted feet fixed (needs the
    world frame); filter: one of FILTERS for pose and translation."""

    world: bool = True
    foot_lock: bool = True
    filter: str = "none"


@dataclass(frozen=True)
class CleanupReport:
    """What the stage found, for the run's output and ``meta.world``."""

    camera_motion: str  # static | rotating | translating | unknown
    ground: bool
    note: str
    camera_height_m: float | None = None
    camera_pitch_deg: float | None = None
    locked_people: int = 0

    def meta(self) -> dict:
        """``meta.world`` of the motion file."""
        out = {"camera_motion": self.camera_motion, "note": self.note}
        if self.ground:
            out |= {"camera_height_m": round(float(self.camera_height_m), 4),
                    "camera_pitch_deg": round(float(self.camera_pitch_deg), 3)}
        return out


def _filtered(motion: Motion, method: str) -> Motion:
    if method == "none":
        return motion
    people = []
    for p in motion.people:
        pose, translation = smooth_motion(p.pose, p.translation, p.frame, motion.fps, method, times=p.time)
        people.append(replace(p, pose=pose.astype(np.float32), translation=translation.astype(np.float32)))
    return replace(motion, people=tuple(people))


def _best(trajectories: list[CleanTrajectory]) -> int | None:
    """The person whose ground plane rests on the most inlier contact points (None: nobody's)."""
    found = [(t.plane.inliers, -i) for i, t in enumerate(trajectories) if t.plane is not None]
    return -max(found)[1] if found else None


def clean_up(motion: Motion, camera: CameraMotion | None, options: CleanupOptions | None = None
             ) -> tuple[Motion, CleanupReport]:
    """``motion`` with the clean-up's arrays added (and pose/translation filtered when asked).

    ``camera`` is the people pass's camera motion over ``motion.frame_index`` (None: not measured,
    taken as static)."""
    opts = options or CleanupOptions()
    if opts.filter not in FILTERS:
        raise ValueError(f"unknown filter {opts.filter!r}: use one of {', '.join(FILTERS)}")
    motion = _filtered(motion, opts.filter)
    kind = camera.verdict if camera is not None else "unknown"
    if not opts.world or not motion.people:
        why = "world frame switched off" if not opts.world else "nobody to put on a ground plane"
        return motion, CleanupReport(kind, False, why)
    if kind == "translating":
        return motion, CleanupReport(kind, False, "the camera moves (it translates, not only turns): no ground "
                                     "plane; root motion stays in the camera's frame")
    n = len(motion.frame_index)
    r_rel = None
    if camera is not None and kind == "rotating":
        if len(camera.R_rel) != n:
            raise ValueError(f"camera motion covers {len(camera.R_rel)} frames, the motion {n}")
        r_rel = np.asarray(camera.R_rel, np.float64)
    fps = motion.fps
    rows = [np.searchsorted(motion.frame_index, p.frame) for p in motion.people]
    trajectories = [
        clean_trajectory(p.pose, p.translation, p.rest_vertices, p.rest_joints, motion.skin_weights, motion.parents,
                         p.frame, fps, None if r_rel is None else r_rel[r])
        for p, r in zip(motion.people, rows, strict=True)]
    best = _best(trajectories)
    if best is None:
        reasons = "; ".join(dict.fromkeys(t.reason for t in trajectories if t.reason))
        people = tuple(replace(p, contacts=t.contacts.astype(np.uint8))
                       for p, t in zip(motion.people, trajectories, strict=True))
        return replace(motion, people=people), CleanupReport(kind, False, reasons or "no ground plane")

    plane = trajectories[best].plane
    world = camera_to_world_per_frame(plane.camera_to_world, r_rel, n)
    people, locked = [], 0
    for p, t, r in zip(motion.people, trajectories, rows, strict=True):
        frame_world = world[r]
        rot, origin = frame_world[:, :3, :3], frame_world[:, :3, 3]
        world_translation = np.einsum("fab,fb->fa", rot, t.translation) + origin  # the file's definition
        pose_locked = None
        if opts.foot_lock and t.contacts.any():
            pose_world, root_world = motion_to_world(p.pose, t.translation, p.rest_joints, frame_world)
            result = lock_feet(pose_world, root_world, p.rest_joints, t.contacts,
                               p.rest_vertices[t.foot_indices], p.frame, up=_UP)
            pose_locked = np.array(result.pose, np.float32)
            pose_locked[:, 0] = p.pose[:, 0]  # the root stays in camera axes, as in ``pose``
            locked += 1
        people.append(replace(p, contacts=t.contacts.astype(np.uint8),
                              world_translation=world_translation.astype(np.float32), pose_locked=pose_locked))
    points = plane.inliers
    note = (f"ground plane from {points} contact points ({plane.inlier_fraction:.0%} inliers) of person "
            f"{motion.people[best].person_id}")
    report = CleanupReport(kind, True, note, plane.camera_height, plane.pitch_deg, locked)
    return replace(motion, people=tuple(people), camera_to_world=world), report



def world_line(world: dict) -> str:
    """The run's one-line account of ``meta.world``."""
    if "camera_height_m" not in world:
        return world.get("note", "no ground plane")
    return (f"ground plane found, {world['camera_motion']} camera {world['camera_height_m']:.2f} m above it, "
            f"pitched {world['camera_pitch_deg']:.1f} deg down ({world['note']})")
