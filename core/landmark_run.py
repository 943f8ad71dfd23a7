"""The landmark solver's path through ``reconstruct``: real motion without the licensed STAF weights.

The people pass (which already runs BlazePose) gives every observed frame's 2D and metric 3D
landmarks; ``core.solvers.landmarks`` fits the body's skeleton to them over each track. The body
is SMPL when its file is in the asset folder, else the project's own look-alike body
(``core.standins.body``), so nothing licensed is needed. Frames the solver neither fitted nor
carried over a short gap are left out of the person's frames (gaps, never invented).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.camera import translation_to_cameras
from core.errors import NoPersonFound
from core.motion import build_person, make_meta, motion_from_people, rest_pose
from core.motion_format import Motion
from core.people.stage import PeopleOptions, choose_people, find_people
from core.progress import Progress
from core.smpl import SmplData, load_smpl_data, smpl_file_candidates
from core.solvers.landmarks import fit_landmarks
from core.video import VideoInfo

__all__ = ["LOOK_ALIKE", "body_for", "reconstruct_with_landmarks"]

LOOK_ALIKE = "the project's look-alike body (no SMPL file installed)"


def body_for(assets: Path) -> tuple[SmplData, str]:
    """SMPL from the asset folder when its neutral model is there, else the look-alike body."""
    for path in smpl_file_candidates(assets):
        if path.is_file():
            return load_smpl_data(path), path.name
    from core.standins.body import make_body

    b = make_body(0)
    smpl = SmplData(v_template=b.v_template.astype(np.float32), faces=np.asarray(b.faces, np.int64),
                    shapedirs=b.shapedirs.astype(np.float32), posedirs=b.posedirs.astype(np.float32),
                    j_regressor=b.j_regressor.toarray().astype(np.float32),
                    lbs_weights=b.lbs_weights.astype(np.float32), parents=np.asarray(b.parents, np.int64))
    return smpl, LOOK_ALIKE


def reconstruct_with_landmarks(info: VideoInfo, start: int, end: int | None, people_opts: PeopleOptions,
                               wanted: list[int] | None, max_people: int | None, focal: float, crop_scale: float,
                               assets: Path, options_meta: dict, progress: Progress, nobody: str,
                               where: str, focal_rule: str) -> tuple[Motion, object]:
    """Find people, fit each chosen one's landmarks; returns the motion and the people pass's camera."""
    smpl, body_name = body_for(assets)
    found = find_people(info, start, end, people_opts, progress)
    if not found.people:
        raise NoPersonFound(nobody)
    people = choose_people(found.people, wanted, max_people, where)
    _, rest_joints = rest_pose(smpl, np.zeros(10, np.float32))
    progress.stage("fit", len(people))
    motions = []
    for p in people:
        present = np.flatnonzero(p.track.present)
        rows = p.first + present
        fit = fit_landmarks(p.world_landmarks[present], p.landmarks[present], found.frame_index[rows],
                            float(info.fps), rest_joints, smpl.parents, focal, info.width, info.height)
        keep = fit.valid | fit.carried
        progress.advance()
        if not keep.any():
            continue
        box = p.track.box[present][keep]
        cam_crop, _ = translation_to_cameras(fit.translation[keep], box, info.width, info.height, focal, crop_scale)
        motions.append(build_person(
            p.person_id, frame=found.frame_index[rows][keep], time=found.frame_time[rows][keep],
            pose=fit.pose[keep], betas=np.zeros((int(keep.sum()), 10), np.float32), cam_crop=cam_crop, box=box,
            flags=p.track.flags[present][keep], smpl=smpl, width=info.width, height=info.height, focal=focal,
            crop_scale=crop_scale, score=p.score[present][keep], landmarks=p.landmarks[present][keep]))
    if not motions:
        raise NoPersonFound(f"{nobody} (no frame had landmarks the solver could fit)")
    frame_index, frame_time = found.frame_index, found.frame_time
    meta = make_meta(
        source={**info.as_meta(), "frame_count": max(info.frame_count, int(frame_index[-1]) + 1)},
        frame_range=(start, int(frame_index[-1]) + 1),
        assets={"kind": "real" if body_name != LOOK_ALIKE else "look-alike", "checkpoint_sha256": "",
                "smpl": body_name},
        focal=focal, crop_scale=crop_scale, options=json.loads(json.dumps(options_meta)), focal_rule=focal_rule)
    meta["people_found"] = len(found.people)
    return motion_from_people(meta, frame_index, frame_time, smpl, motions), found.camera
