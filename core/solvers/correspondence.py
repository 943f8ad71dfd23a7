"""Which point of the SMPL skeleton stands for each BlazePose landmark the landmark solver fits.

Each used landmark is a point fixed in one SMPL joint's frame: ``joint`` carries it (the point moves
rigidly with that joint's world transform), its rest position is the rest position of ``anchor`` plus
``offset`` (metres, SMPL's rest axes: +x the person's left, +y up, +z forward), scaled with the body.
BlazePose's "left" is the person's left, as is SMPL's: left landmarks go to left joints, never mirrored.
The offsets are those of an adult head, foot and hand (about 1.7 m tall); they are scaled by the
body's head-to-ankle height over the stand-in's 1.435 m.

| BlazePose | SMPL joint (carrier) | rest point |
|---|---|---|
| 0 nose | 15 head | head + (0, 0.03, 0.10) |
| 2 / 5 left / right eye | 15 head | head + (+/-0.032, 0.065, 0.085) |
| 7 / 8 left / right ear | 15 head | head + (+/-0.075, 0.04, -0.005) |
| 11 / 12 shoulders | 16 / 17 shoulders | the joint |
| 13 / 14 elbows | 18 / 19 elbows | the joint |
| 15 / 16 wrists | 20 / 21 wrists | the joint |
| 17 / 18 pinkies | 20 / 21 wrists | hand + 0.3 (hand - wrist) + (0, 0, -0.025) |
| 19 / 20 index fingers | 20 / 21 wrists | hand + 0.5 (hand - wrist) + (0, 0, 0.02) |
| 23 / 24 hips | 1 / 2 hips | the joint |
| 25 / 26 knees | 4 / 5 knees | the joint |
| 27 / 28 ankles | 7 / 8 ankles | the joint |
| 29 / 30 heels | 7 / 8 ankles | ankle + (0, -0.07, -0.045) |
| 31 / 32 foot index (toes) | 7 / 8 ankles | foot + (0, -0.01, 0.055) |

Toes and fingers (SMPL joints 10, 11, 22, 23) are carried rigidly by the ankle and wrist: their own
rotations stay zero. Eye corners (1, 3, 4, 6), the mouth (9, 10) and thumbs (21, 22) are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BLAZEPOSE_NAMES", "CORRESPONDENCE", "FIXED_JOINTS", "LandmarkPoint", "body_scale", "rest_points"]

BLAZEPOSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)

#: SMPL joints whose rotation the solver keeps at zero (toes and hands: nothing measures them).
FIXED_JOINTS: tuple[int, ...] = (10, 11, 22, 23)

_DESIGN_HEIGHT = 1.435  # head joint above the ankles on the stand-in body (its offsets' scale)


@dataclass(frozen=True)
class LandmarkPoint:
    """One BlazePose landmark's model point: carried by ``joint``; rest position = ``anchor`` joint +
    ``offset`` (+ ``along`` x (anchor - parent of anchor), for points beyond a bone's end); ``weight``
    scales its share of the fit."""

    landmark: int
    joint: int
    anchor: int
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    along: float = 0.0
    weight: float = 1.0


def _pair(left: int, right: int, l_joint: int, r_joint: int, l_anchor: int, r_anchor: int,
          offset: tuple[float, float, float] = (0.0, 0.0, 0.0), along: float = 0.0,
          weight: float = 1.0) -> tuple[LandmarkPoint, LandmarkPoint]:
    """A left landmark and its mirror image (x of the offset negated) on the right."""
    mirrored = (-offset[0], offset[1], offset[2])
    return (LandmarkPoint(left, l_joint, l_anchor, offset, along, weight),
            LandmarkPoint(right, r_joint, r_anchor, mirrored, along, weight))


CORRESPONDENCE: tuple[LandmarkPoint, ...] = (
    LandmarkPoint(0, 15, 15, (0.0, 0.03, 0.10), weight=0.5),
    *_pair(2, 5, 15, 15, 15, 15, (0.032, 0.065, 0.085), weight=0.3),
    *_pair(7, 8, 15, 15, 15, 15, (0.075, 0.04, -0.005), weight=0.5),
    *_pair(11, 12, 16, 17, 16, 17),
    *_pair(13, 14, 18, 19, 18, 19),
    *_pair(15, 16, 20, 21, 20, 21),
    *_pair(17, 18, 20, 21, 22, 23, (0.0, 0.0, -0.025), along=0.3, weight=0.3),
    *_pair(19, 20, 20, 21, 22, 23, (0.0, 0.0, 0.02), along=0.5, weight=0.3),
    *_pair(23, 24, 1, 2, 1, 2),
    *_pair(25, 26, 4, 5, 4, 5),
    *_pair(27, 28, 7, 8, 7, 8),
    *_pair(29, 30, 7, 8, 7, 8, (0.0, -0.07, -0.045), weight=0.7),
    *_pair(31, 32, 7, 8, 10, 11, (0.0, -0.01, 0.055), weight=0.7),
)


def body_scale(rest_joints: np.ndarray) -> float:
    """The body's size relative to the stand-in's design (head joint above the mean ankle height)."""
    j = np.asarray(rest_joints, np.float64)
    return float((j[15, 1] - 0.5 * (j[7, 1] + j[8, 1])) / _DESIGN_HEIGHT)


def rest_points(rest_joints: np.ndarray, parents: np.ndarray,
                table: tuple[LandmarkPoint, ...] = CORRESPONDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``table``: landmark indices (K,), carrying joints (K,) and rest positions (K, 3) of the points."""
    j = np.asarray(rest_joints, np.float64)
    s = body_scale(j)
    points = []
    for p in table:
        point = j[p.anchor] + s * np.asarray(p.offset)
        if p.along:
            point = point + p.along * (j[p.anchor] - j[int(parents[p.anchor])])
        points.append(point)
    return (np.array([p.landmark for p in table], np.int64), np.array([p.joint for p in table], np.int64),
            np.array(points, np.float64))
