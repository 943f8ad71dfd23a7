"""A multi-person motion for the add-on's tests (main venv: it needs ``core``'s generators).

:func:`trio_motion` is three people walking, each with their own frames, as a multi-person engine
writes them: person 0 has a detection gap, person 1 starts late, person 2 leaves early. Each
person's arrays hold only their own frames (``PersonMotion.frame``), the file's ``frame_index``
every frame of the range.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["TRIO_FRAMES", "TRIO_SPANS", "subset_person", "trio_motion"]

#: Frames of the trio clip and, per person, the clip frames (first, end exclusive) kept.
TRIO_FRAMES = 40
TRIO_SPANS = {0: (0, 40), 1: (12, 40), 2: (0, 30)}
TRIO_GAP = (16, 22)  # person 0: no frames 16..21


def subset_person(person, keep: np.ndarray):
    """``person`` with only the frames where ``keep`` is true (shape and rest mesh unchanged)."""
    per_frame = ("frame", "time", "pose", "betas", "cam_crop", "cam_full", "translation", "box", "flags")
    return dataclasses.replace(person, **{name: getattr(person, name)[keep] for name in per_frame})


def trio_motion(smpl, *, seed: int = 5):
    """Three people (ids 0, 1, 2) over :data:`TRIO_FRAMES` frames at 25 fps, 1280 x 720."""
    from core.standins.motion import synthetic_motion

    motion = synthetic_motion(smpl, n_frames=TRIO_FRAMES, n_people=3, fps=(25, 1), width=1280, height=720,
                              gap=TRIO_GAP, seed=seed)
    people = []
    for person in motion.people:
        start, end = TRIO_SPANS[person.person_id]
        people.append(subset_person(person, (person.frame >= start) & (person.frame < end)))
    return dataclasses.replace(motion, people=tuple(people))
