"""Frames to check (no bpy): where the engine's reconstruction disagrees with the detector.

The motion file's ``reprojection_px`` is the median distance of a person's projected joints from
the detector's 2D landmarks; a frame where it exceeds a tenth of the person's box height is worth a
look (the engine's rule, core/reprojection.py: a wrong limb or swapped sides moves a joint by a
limb's length, a correct frame stays within a few percent).
"""

from __future__ import annotations

import numpy as np

from .motion_io import PersonMotion

__all__ = ["CHECK_FRACTION", "check_note", "frames_to_check"]

CHECK_FRACTION = 0.1


def frames_to_check(person: PersonMotion) -> np.ndarray:
    """The person's clip frame numbers to check (empty when the file has no reprojection errors)."""
    if person.reprojection_px is None:
        return np.zeros(0, np.int64)
    error = person.reprojection_px.astype(np.float64)
    height = np.maximum(person.box[:, 3].astype(np.float64), 1.0)
    bad = np.isfinite(error) & (error > CHECK_FRACTION * height)
    return person.frame[bad].astype(np.int64)


def check_note(person_id: int, frames: np.ndarray, offset: int = 0, shown: int = 8) -> str:
    """One line for the import report: how many frames to check, and the first few (scene frames)."""
    listed = ", ".join(str(int(f) + offset) for f in frames[:shown]) + (", ..." if len(frames) > shown else "")
    return f"person {person_id}: {len(frames)} frames to check (joints far from the detector's landmarks): {listed}"
