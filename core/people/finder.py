"""Every person in a frame: BlazePose's landmark model on the regions the tracker expects people in,
and, now and then, a detector sweep over the whole frame and overlapping tiles to find newcomers.

The detector sees its input at 224 x 224, so on a whole 16:9 frame a person under about a quarter
of the frame's height is too small for it; the sweep therefore also runs it on squares of the
frame's height and of half of it (overlapping, reaching every edge), which keeps people down to
about 1/8 of the frame's height at a size it detects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.people.blazepose import LandmarkModel, PersonDetectorModel, Roi, model_paths

__all__ = ["Observation", "PeopleFinder", "landmark_box", "sweep_tiles"]

_HEAD_MARGIN = 0.12  # the top of the head lies above the eyes by about this share of the body's height
_VISIBLE = 0.3
_TILE_OVERLAP = 0.25
_MIN_HEIGHT = 0.06  # of the frame's height: smaller finds are clutter far more often than people
_NEW_PRESENCE = 0.8  # a person found by the detector alone must be this certain to count
_REJECT_MEMORY = 60  # analysed frames a region the landmark model refused is not tried again


@dataclass(frozen=True)
class Observation:
    """A person seen in one frame: box (cx, cy, w, h) and landmarks (33, 4) (x, y, z, visibility) in
    pixels of the analysed image, world landmarks (33, 3) metres, presence score, and the region
    where to look for the same person in the next frame."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    world: np.ndarray
    next_roi: Roi


def landmark_box(landmarks: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """The person box (cx, cy, w, h) of 33 landmarks: the extent of the visible ones (all, when fewer
    than 4 are visible), clipped to the image and raised to cover the head; None if degenerate."""
    vis = landmarks[:, 3] > _VISIBLE
    pts = landmarks[vis] if vis.sum() >= 4 else landmarks
    x0, x1 = np.clip([pts[:, 0].min(), pts[:, 0].max()], 0, width)
    y0, y1 = np.clip([pts[:, 1].min(), pts[:, 1].max()], 0, height)
    y0 = max(0.0, y0 - _HEAD_MARGIN * (y1 - y0))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])


def _starts(length: int, tile: int) -> list[int]:
    """Tile origins along one axis: overlapping by at least a quarter, the last one flush with the end."""
    if tile >= length:
        return [0]
    count = int(np.ceil((length - tile) / (tile * (1 - _TILE_OVERLAP)))) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def sweep_tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Regions (x0, y0, x1, y1) the detector sweeps: the whole frame, then squares of the shorter
    side and of half of it."""
    tiles = [(0, 0, width, height)]
    short = min(width, height)
    for side in (short, short // 2):
        if side < 64 or (side == short and width == height):
            continue
        tiles += [(x, y, x + side, y + side) for y in _starts(height, side) for x in _starts(width, side)]
    return tiles


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (cx, cy, w, h) boxes."""
    lo = np.maximum(a[:2] - a[2:] / 2, b[:2] - b[2:] / 2)
    hi = np.minimum(a[:2] + a[2:] / 2, b[:2] + b[2:] / 2)
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / max(float(np.prod(a[2:]) + np.prod(b[2:])) - inter, 1e-9)


def _same_person(a: Observation, b: Observation) -> bool:
    """Two observations of one body: boxes overlapping a lot and landmarks nearly on top of each other."""
    if _box_iou(a.box, b.box) < 0.5:
        return False
    both = (a.landmarks[:, 3] > _VISIBLE) & (b.landmarks[:, 3] > _VISIBLE)
    if both.sum() < 4:
        both[:] = True
    gap = np.linalg.norm(a.landmarks[both, :2] - b.landmarks[both, :2], axis=1)
    return float(np.median(gap)) < 0.08 * max(a.box[3], b.box[3])


def _contained(a: np.ndarray, b: np.ndarray) -> float:
    """Share of box a's area (cx, cy, w, h) that lies inside box b."""
    lo = np.maximum(a[:2] - a[2:] / 2, b[:2] - b[2:] / 2)
    hi = np.minimum(a[:2] + a[2:] / 2, b[:2] + b[2:] / 2)
    return float(np.prod(np.clip(hi - lo, 0, None))) / max(float(np.prod(a[2:])), 1e-9)


def _roi_box(roi: Roi) -> np.ndarray:
    x0, y0, x1, y1 = roi.corners_box()
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])


def _covered(roi: Roi, seen: list[Observation]) -> bool:
    """Whether a detector region is (part of) a person already observed in this frame."""
    return any(np.hypot(roi.cx - o.box[0], roi.cy - o.box[1]) < 0.35 * o.box[3]
               or _contained(o.box, _roi_box(roi)) > 0.6 for o in seen)


class PeopleFinder:
    """Finds people in one analysed frame (RGB uint8) given the regions tracked people are expected in."""

    def __init__(self, *, threads: int = 1, min_score: float = 0.5) -> None:
        det_path, lm_path = model_paths()
        self._detector = PersonDetectorModel(det_path, threads=threads, min_score=min_score)
        self._landmarks = LandmarkModel(lm_path, threads=threads)
        self.detector_runs = 0
        self.landmark_runs = 0
        self._refused: list[tuple[int, np.ndarray]] = []  # (frame, box) of regions found empty
        self._frame = 0

    def observe(self, rgb: np.ndarray, roi: Roi, min_presence: float = 0.0) -> Observation | None:
        """The person in one region, or None (nobody, unsure, or smaller than people are found)."""
        return self._observe(rgb, roi, min_presence)

    def _observe(self, rgb: np.ndarray, roi: Roi, min_presence: float = 0.0) -> Observation | None:
        self.landmark_runs += 1
        res = self._landmarks(rgb, roi)
        if res is None or res.presence < min_presence:
            return None
        box = landmark_box(res.landmarks, rgb.shape[1], rgb.shape[0])
        if box is None or box[3] < _MIN_HEIGHT * rgb.shape[0]:
            return None
        return Observation(box, res.presence, res.landmarks, res.world, res.next_roi)

    def _refused_before(self, roi: Roi) -> bool:
        self._refused = [(f, b) for f, b in self._refused if self._frame - f <= _REJECT_MEMORY]
        box = _roi_box(roi)
        return any(_box_iou(box, b) > 0.5 for _, b in self._refused)

    def __call__(self, rgb: np.ndarray, expected: list[Roi], *, sweep: str = "none") -> list[Observation]:
        """People in ``rgb``: first looked for in the ``expected`` regions, then, for ``sweep`` "full"
        (whole frame and tiles) or "coarse" (whole frame only), among the detector's finds.

        Observations of one body reached from two regions are merged (the more confident one kept).
        """
        self._frame += 1
        found: list[Observation] = []
        for roi in expected:
            obs = self._observe(rgb, roi)
            if obs is not None:
                found.append(obs)
        if sweep != "none":
            h, w = rgb.shape[:2]
            regions = sweep_tiles(w, h) if sweep == "full" else [(0, 0, w, h)]
            candidates: list[tuple[Roi, float]] = []
            for x0, y0, x1, y1 in regions:
                self.detector_runs += 1
                candidates += self._detector(rgb[y0:y1, x0:x1], offset=(x0, y0))
            for roi, _score in sorted(candidates, key=lambda c: -c[1]):
                if roi.size < 8 or _covered(roi, found) or self._refused_before(roi):
                    continue
                obs = self._observe(rgb, roi, _NEW_PRESENCE)
                if obs is None:
                    self._refused.append((self._frame, _roi_box(roi)))
                else:
                    found.append(obs)
        unique: list[Observation] = []
        for obs in sorted(found, key=lambda o: (-o.score, -o.box[3])):
            if not any(_same_person(obs, kept) or _contained(obs.box, kept.box) > 0.7 for kept in unique):
                unique.append(obs)
        return unique
