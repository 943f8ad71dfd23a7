"""Identities over time: each frame's observations are assigned to tracks (Hungarian assignment).

Cost of giving observation o to track t: (1 - IoU of o's box with t's box predicted at constant
velocity) + the appearance distance (Bhattacharyya distance of colour histograms of the torso and
thighs), gated by distance and size. A track that finds no match coasts on its velocity for up to
``coast`` frames (the finder keeps looking where it should be: crossings, short occlusions); after
that it is lost, and for up to ``remember`` frames a newcomer of matching look and size takes its id
back (leaving and re-entering the frame). Only a bounded number of lost tracks is remembered, so
memory does not grow with how often people come and go.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from core.people.blazepose import Roi
from core.people.finder import Observation

__all__ = ["IdentityTracker", "RawTrack", "appearance"]

_LIMBS = ((11, 12, 24, 23), (23, 24, 26, 25))  # torso, thighs: clothing, steady in colour
_HIST_BINS = (12, 4, 4)  # hue, saturation, value
_MAX_REMEMBERED = 32
_MATCH_COST = 1.35
_REID_DISTANCE = 0.45  # other people measured 0.7-0.8 away; the same person after leaving, 0.3-0.4
_CONFIRM_HITS = 3  # a new track needs this many matches before it counts, and is dropped if it misses first


def appearance(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """A normalised HSV histogram of the torso and thighs outlined by ``landmarks`` (33, >=2), or None
    when they cover too few pixels."""
    mask = np.zeros(rgb.shape[:2], np.uint8)
    for quad in _LIMBS:
        cv2.fillConvexPoly(mask, np.round(landmarks[list(quad), :2]).astype(np.int32), 255)
    if int(np.count_nonzero(mask)) < 30:
        return None
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], mask, list(_HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    return hist / max(float(hist.sum()), 1e-9)


def _distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Bhattacharyya distance in [0, 1] (0: the same colours); 0.5 when either is unknown."""
    if a is None or b is None:
        return 0.5
    return float(np.sqrt(max(0.0, 1.0 - float(np.sqrt(a * b).sum()))))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lo = np.maximum(a[:2] - a[2:] / 2, b[:2] - b[2:] / 2)
    hi = np.minimum(a[:2] + a[2:] / 2, b[:2] + b[2:] / 2)
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / max(float(np.prod(a[2:]) + np.prod(b[2:])) - inter, 1e-9)


@dataclass
class RawTrack:
    """One identity's observations: analysed frame numbers (``frames``, local to the pass), boxes
    (cx, cy, w, h), presence scores, landmarks (33, 3) (x, y, visibility) and world landmarks (33, 3)."""

    key: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    world: list[np.ndarray] = field(default_factory=list)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    look: np.ndarray | None = None
    next_roi: Roi | None = None

    @property
    def confirmed(self) -> bool:
        return len(self.frames) >= _CONFIRM_HITS

    @property
    def last(self) -> int:
        return self.frames[-1]

    def predicted(self, frame: int) -> np.ndarray:
        box = self.boxes[-1].copy()
        box[:2] += self.velocity * (frame - self.last)
        return box

    def insert(self, frame: int, obs: Observation) -> None:
        """An observation before the latest one (found by looking back once the person was found)."""
        at = int(np.searchsorted(self.frames[:-1], frame))
        self.frames.insert(at, frame)
        self.boxes.insert(at, obs.box)
        self.scores.insert(at, obs.score)
        self.landmarks.insert(at, obs.landmarks[:, [0, 1, 3]].astype(np.float32))
        self.world.insert(at, obs.world.astype(np.float32))

    def box_at(self, frame: int) -> np.ndarray | None:
        """The observed box in ``frame``, if any."""
        for f, box in zip(reversed(self.frames), reversed(self.boxes), strict=True):
            if f == frame:
                return box
            if f < frame:
                break
        return None

    def add(self, frame: int, obs: Observation, look: np.ndarray | None) -> None:
        if self.frames:
            step = (obs.box[:2] - self.boxes[-1][:2]) / max(frame - self.last, 1)
            self.velocity = 0.5 * self.velocity + 0.5 * step if len(self.frames) > 1 else step
        self.frames.append(frame)
        self.boxes.append(obs.box)
        self.scores.append(obs.score)
        self.landmarks.append(obs.landmarks[:, [0, 1, 3]].astype(np.float32))
        self.world.append(obs.world.astype(np.float32))
        self.next_roi = obs.next_roi
        if look is not None:
            self.look = look if self.look is None else 0.8 * self.look + 0.2 * look


class IdentityTracker:
    """Assigns each analysed frame's observations to identities.

    Args:
        coast: frames a track without a match is still looked for where it should be.
        remember: frames a lost track can be re-identified by its look.
    """

    def __init__(self, *, coast: int, remember: int) -> None:
        self.coast, self.remember = coast, remember
        self.active: list[RawTrack] = []  # seen within ``coast`` frames
        self.lost: list[RawTrack] = []  # kept for re-identification, newest last
        self.finished: list[RawTrack] = []
        self._next_key = 0
        self.started: list[RawTrack] = []  # tracks begun by the latest update
        self.revived: list[RawTrack] = []  # lost tracks the latest update re-identified

    def expected_regions(self, frame: int) -> list[Roi]:
        """Where the active tracks' people should be in ``frame`` (their last region, moved on)."""
        out = []
        for t in self.active:
            shift = t.velocity * (frame - t.last)
            r = t.next_roi
            out.append(Roi(r.cx + float(shift[0]), r.cy + float(shift[1]), r.size, r.rotation))
        return out

    def update(self, frame: int, rgb: np.ndarray, observations: list[Observation]) -> None:
        """Assign ``observations`` of analysed frame ``frame`` (increasing) in image ``rgb``."""
        looks = [self._clean_look(rgb, o, observations) for o in observations]
        free = list(range(len(observations)))
        if self.active and observations:
            cost = np.full((len(self.active), len(observations)), 1e6)
            for i, t in enumerate(self.active):
                pred = t.predicted(frame)
                for j, o in enumerate(observations):
                    iou = _iou(pred, o.box)
                    near = np.hypot(*(pred[:2] - o.box[:2])) < 0.75 * pred[3]
                    ratio = o.box[3] / pred[3]
                    if (iou > 0.05 or near) and 0.5 < ratio < 2.0:
                        cost[i, j] = (1 - iou) + _distance(t.look, looks[j] if looks[j] is not None else None)
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] < _MATCH_COST:
                    self.active[i].add(frame, observations[j], looks[j])
                    free.remove(j)
        self.started, self.revived = [], []
        self._reidentify(frame, observations, looks, free)
        for j in free:
            track = RawTrack(self._next_key)
            self._next_key += 1
            track.add(frame, observations[j], looks[j])
            self.active.append(track)
            self.started.append(track)
        self._age(frame)

    def _clean_look(self, rgb: np.ndarray, obs: Observation, others: list[Observation]) -> np.ndarray | None:
        # A look taken while someone overlaps the person would mix two people's colours, and one at
        # the frame's edge sees only part of them.
        if any(o is not obs and _iou(o.box, obs.box) > 0.05 for o in others):
            return None
        h, w = rgb.shape[:2]
        cx, cy, bw, bh = obs.box
        if cx - bw / 2 < 2 or cy - bh / 2 < 2 or cx + bw / 2 > w - 2 or cy + bh / 2 > h - 2:
            return None
        return appearance(rgb, obs.landmarks)

    def _reidentify(self, frame: int, observations: list[Observation], looks: list, free: list[int]) -> None:
        candidates = [t for t in self.lost if frame - t.last <= self.remember and t.look is not None]
        pending = [j for j in free if looks[j] is not None]
        if not candidates or not pending:
            return
        cost = np.full((len(candidates), len(pending)), 1e6)
        for i, t in enumerate(candidates):
            for k, j in enumerate(pending):
                ratio = observations[j].box[3] / float(np.median([b[3] for b in t.boxes[-30:]]))
                d = _distance(t.look, looks[j])
                if 0.6 < ratio < 1.6 and d < _REID_DISTANCE:
                    cost[i, k] = d
        rows, cols = linear_sum_assignment(cost)
        for i, k in zip(rows, cols, strict=True):
            if cost[i, k] < 1e6:
                track, j = candidates[i], pending[k]
                track.velocity = np.zeros(2)
                track.add(frame, observations[j], looks[j])
                self.lost.remove(track)
                self.active.append(track)
                self.revived.append(track)
                free.remove(j)

    def _age(self, frame: int) -> None:
        # A tentative track that missed a frame was clutter: forget it (no memory, no output).
        self.active = [t for t in self.active if t.confirmed or t.last == frame]
        for t in [t for t in self.active if frame - t.last > self.coast]:
            self.active.remove(t)
            self.lost.append(t)
        for t in [t for t in self.lost if frame - t.last > self.remember]:
            self.lost.remove(t)
            self.finished.append(t)
        while len(self.lost) > _MAX_REMEMBERED:
            self.finished.append(self.lost.pop(0))

    def occupied(self, frame: int, box: np.ndarray, besides: RawTrack) -> bool:
        """Whether another track was observed overlapping ``box`` in ``frame``."""
        for t in self.active + self.lost:
            if t is not besides:
                other = t.box_at(frame)
                if other is not None and _iou(other, box) > 0.3:
                    return True
        return False

    def tracks(self) -> list[RawTrack]:
        """Every track so far (finished, lost and active), in order of creation."""
        return sorted(self.finished + self.lost + self.active, key=lambda t: t.key)
