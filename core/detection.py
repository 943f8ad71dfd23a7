"""Finding the person: mediapipe BlazePose (models shipped in the wheel, fully offline) per frame.

BlazePose tracks one person (the most prominent) through a clip. The box is the extent of its 33
landmarks, grown upwards to cover the top of the head, which the landmarks stop short of.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Detection", "PoseDetector"]

# The head's top lies above the eyes by about a fifth of the landmarks' vertical extent.
_HEAD_MARGIN = 0.12


@dataclass(frozen=True)
class Detection:
    """A person box (cx, cy, w, h) in pixels of the analysed image, with the landmarks' mean visibility."""

    box: np.ndarray
    score: float


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (mediapipe's C++ start-up chatter bypasses Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class PoseDetector:
    """mediapipe's legacy Pose solution in video (tracking) mode, model complexity 1.

    Complexity 1 is the only one whose model ships inside ``mediapipe==0.10.21``; 0 and 2 would
    download theirs at run time, which fails offline.
    """

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging: warnings and up only
        import mediapipe as mp

        self._warm = False
        with _silenced_stderr():
            self._pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                                smooth_landmarks=True, enable_segmentation=False,
                                                min_detection_confidence=min_confidence,
                                                min_tracking_confidence=min_confidence)

    def __call__(self, rgb: np.ndarray) -> Detection | None:
        """The person in an RGB image (H, W, 3) uint8, or None when nobody is found."""
        if self._warm:
            result = self._pose.process(rgb)
        else:  # the graph starts on the first image and logs warnings that mean nothing to a user
            with _silenced_stderr():
                result = self._pose.process(rgb)
            self._warm = True
        if result.pose_landmarks is None:
            return None
        h, w = rgb.shape[:2]
        pts = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], np.float64)
        seen = pts[pts[:, 2] > 0.3] if (pts[:, 2] > 0.3).sum() >= 4 else pts
        x0, x1 = np.clip(seen[:, 0].min(), 0, 1) * w, np.clip(seen[:, 0].max(), 0, 1) * w
        y0, y1 = np.clip(seen[:, 1].min(), 0, 1) * h, np.clip(seen[:, 1].max(), 0, 1) * h
        y0 = max(0.0, y0 - _HEAD_MARGIN * (y1 - y0))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        box = np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
        return Detection(box, float(pts[:, 2].mean()))

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
