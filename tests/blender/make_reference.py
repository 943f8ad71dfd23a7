"""Motion files and the engine's expected results for the Blender-side tests (runs in the main venv).

The Blender virtualenvs have no torch, so the reference is computed here, with the engine's own
code: the SMPL mesh from smplx (``core.smpl.BodyModel`` with the pose correctives zeroed: a rig
cannot reproduce them) for the person's one shape, in camera axes with the root translation, and
the joints' pixels from ``core.camera.project_full``. The Blender tests compare what Blender
evaluates against these arrays.

    .venv/bin/python tests/blender/make_reference.py build/blender-ref

writes ``walk.npz`` (one person, 29.97 fps, 1920x1080, a detection gap), ``crowd.npz`` (two people,
25 fps, 1280x720), ``trio.npz`` (three people on their own frames: a gap, a late start, an early
end; tests/blender/multi_person.py), ``world.npz`` (one person with the clean-up's world frame, a
rotating camera, contacts and a foot-locked pose), ``reference_<name>.npz`` for each (for a file
with a world frame also the mesh and joints in world axes: ``R_cw SMPL(pose_locked) +
world_translation``), and ``bench.npz`` when ``--bench-frames`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

__all__ = ["CLIPS", "gait_motion", "main", "smpl_reference", "world_reference", "write_bundle"]

#: name -> synthetic_motion options (None: multi_person.trio_motion), and the clip frames sampled.
CLIPS = {
    "walk": ({"n_frames": 48, "n_people": 1, "gap": (20, 24), "seed": 3}, (0, 5, 19, 24, 25, 33, 47)),
    "crowd": ({"n_frames": 30, "n_people": 2, "fps": (25, 1), "width": 1280, "height": 720, "seed": 1},
              (0, 11, 29)),
    "trio": (None, (0, 12, 15, 22, 29, 39)),
    "world": ({"n_frames": 40, "n_people": 1, "seed": 7, "world": "rotating"}, (0, 9, 20, 39)),
}


def smpl_reference(smpl, motion, person, frames) -> dict[str, np.ndarray]:
    """The engine's mesh and joints of ``person`` at clip ``frames``: vertices (S, V, 3) and joints
    (S, 24, 3) in camera axes (metres, translation added), joints2d (S, 24, 2) pixels."""
    import torch

    from core.camera import project_full
    from core.smpl import BodyModel

    body = BodyModel(dataclasses.replace(smpl, posedirs=np.zeros_like(smpl.posedirs)))
    rows = np.searchsorted(person.frame, frames)
    if not np.array_equal(person.frame[rows], frames):
        raise ValueError(f"person {person.person_id} has no data at some of the frames {frames}")
    betas = torch.tensor(np.tile(person.shape, (len(rows), 1)), dtype=torch.float32)
    with torch.no_grad():
        out = body.forward_axis_angle(betas, torch.tensor(person.pose[rows]), torch.tensor(person.translation[rows]))
    src, cam = motion.meta["source"], motion.meta["camera"]
    translation = person.translation[rows].astype(np.float64)
    joints = out.joints.numpy().astype(np.float64)
    joints2d = project_full(joints - translation[:, None], translation, src["width"], src["height"],
                            cam["focal_length_px"])
    return {"frames": np.asarray(frames, np.int64), "vertices": out.vertices.numpy().astype(np.float64),
            "joints": joints, "joints2d": joints2d}


def world_reference(smpl, motion, person, frames) -> dict[str, np.ndarray]:
    """The engine's mesh and joints of ``person`` at clip ``frames`` in the file's world frame:
    world_vertices (S, V, 3) and world_joints (S, 24, 3) = R_cw SMPL(pose_locked) + world_translation."""
    import torch

    from core.smpl import BodyModel

    body = BodyModel(dataclasses.replace(smpl, posedirs=np.zeros_like(smpl.posedirs)))
    rows = np.searchsorted(person.frame, frames)
    pose = person.pose_locked if person.pose_locked is not None else person.pose
    betas = torch.tensor(np.tile(person.shape, (len(rows), 1)), dtype=torch.float32)
    with torch.no_grad():
        out = body.forward_axis_angle(betas, torch.tensor(pose[rows]), torch.zeros((len(rows), 3)))
    rot = motion.camera_to_world[np.searchsorted(motion.frame_index, frames), :3, :3]
    shift = person.world_translation[rows].astype(np.float64)[:, None]
    return {"world_vertices": np.einsum("sab,svb->sva", rot, out.vertices.numpy().astype(np.float64)) + shift,
            "world_joints": np.einsum("sab,sjb->sja", rot, out.joints.numpy().astype(np.float64)) + shift}


def gait_motion(seconds: float = 3.0):
    """A walk with a turn, spoiled by STAF-like noise and put through the engine's clean-up (its
    contacts, ground plane and foot lock): a source whose planted feet are really planted."""
    from core.cleanup.evaluate import walk_motion
    from core.cleanup.stage import clean_up
    from core.cleanup.synthetic import add_staf_noise, make_walk

    walk = make_walk(seconds=seconds, turn_deg=60.0, seed=2)
    pose, translation = add_staf_noise(walk.pose, walk.translation, walk.rest_joints, walk.fps, seed=2)
    cleaned, report = clean_up(walk_motion(walk, pose, translation), None)
    if not report.ground or not report.locked_people:
        raise RuntimeError(f"the clean-up found no world frame for the gait clip: {report}")
    return cleaned


def write_bundle(folder: Path, *, bench_frames: int = 0) -> Path:
    """Write every motion file and reference array into ``folder`` (stand-in SMPL, seeded)."""
    from multi_person import trio_motion

    from core.motion import write_motion
    from core.smpl import load_smpl_data
    from core.standins.motion import synthetic_motion
    from core.standins.smpl_files import write_smpl_assets

    folder = Path(folder)
    assets = folder / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    write_smpl_assets(assets, seed=0)
    smpl = load_smpl_data(assets / "SMPL_NEUTRAL.pkl")
    for name, (options, frames) in CLIPS.items():
        motion = trio_motion(smpl) if options is None else synthetic_motion(smpl, **options)
        write_motion(folder / f"{name}.npz", motion)
        arrays: dict[str, np.ndarray] = {}
        for person in motion.people:
            present = np.array([f for f in frames if f in set(person.frame.tolist())], np.int64)
            for key, value in smpl_reference(smpl, motion, person, present).items():
                arrays[f"p{person.person_id}_{key}"] = value
            if motion.camera_to_world is not None and person.world_translation is not None:
                for key, value in world_reference(smpl, motion, person, present).items():
                    arrays[f"p{person.person_id}_{key}"] = value
        np.savez(folder / f"reference_{name}.npz", **arrays)
    write_motion(folder / "gait.npz", gait_motion())
    if bench_frames:
        write_motion(folder / "bench.npz", synthetic_motion(smpl, n_frames=bench_frames))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--bench-frames", type=int, default=0, help="also write bench.npz with this many frames")
    args = parser.parse_args()
    write_bundle(args.folder, bench_frames=args.bench_frames)
    print(f"reference bundle in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
