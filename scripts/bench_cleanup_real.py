"""Benchmark: the clean-up on real clips, from motion files ``reconstruct`` wrote.

Without ground truth, contacts are the stage's own: foot skate (mm/frame while in contact, WHAM's
definition) of the network's raw output placed in the found world frame, after the depth fix alone,
and after the foot lock; jitter (m/s^3) of the joints before and after. Files without a world
frame (no floor found, a moving camera) are reported as such.

    .venv/bin/python -m core reconstruct clip.mp4 -o clip.npz --solver landmarks
    .venv/bin/python scripts/bench_cleanup_real.py clip.npz [more.npz ...]
"""

from __future__ import annotations

import sys

import numpy as np

from core.cleanup import metrics
from core.cleanup.evaluate import world_points
from core.cleanup.feet import foot_points, foot_vertex_indices, joint_positions
from core.motion_format import MotionFormatError, read_motion


def _to_world(c2w: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.einsum("fab,fkb->fka", c2w[:, :3, :3], points) + c2w[:, None, :3, 3]


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    for path in paths:
        try:
            motion = read_motion(path)
        except MotionFormatError as err:
            print(f"error: {err}", file=sys.stderr)
            return 5
        world = motion.meta.get("world", {})
        if motion.camera_to_world is None:
            print(f"{path}: no world frame ({world.get('note', 'no clean-up')})")
            continue
        for p in motion.people:
            if p.contacts is None or p.world_translation is None:
                continue
            idx = foot_vertex_indices(p.rest_vertices, motion.skin_weights)
            c2w = motion.camera_to_world[np.searchsorted(motion.frame_index, p.frame)]
            args = (p.rest_joints, motion.skin_weights, motion.parents, idx)
            raw_feet = _to_world(c2w, foot_points(p.pose, p.translation, p.rest_vertices, *args))
            raw_joints = _to_world(c2w, joint_positions(p.pose, p.translation, p.rest_joints, motion.parents))
            _, fixed_feet = world_points(motion, p, idx, locked=False)
            locked_joints, locked_feet = world_points(motion, p, idx, locked=True)
            c = p.contacts.astype(bool)
            skate = [metrics.foot_skate(f, c, p.frame) for f in (raw_feet, fixed_feet, locked_feet)]
            jitter = [metrics.jitter(j, motion.fps, p.frame) for j in (raw_joints, locked_joints)]
            print(f"{path} person {p.person_id} ({motion.meta['options'].get('solver', 'staf')}): "
                  f"{len(p)} frames, a foot down in {c.any(1).mean():.0%}; foot skate raw {skate[0]:.1f}, "
                  f"depth fix {skate[1]:.1f}, foot lock {skate[2]:.2f} mm/frame "
                  f"({100 * (1 - skate[2] / skate[0]):.0f} % cut); jitter {jitter[0]:.0f} -> {jitter[1]:.0f} m/s^3; "
                  f"camera {world.get('camera_motion')}, {world.get('camera_height_m', float('nan')):.2f} m up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
