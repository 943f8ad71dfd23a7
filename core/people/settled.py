"""Boxes that later frames can no longer change, handed out while the people pass is still running.

A person's cleaned box in frame k depends only on the frames around k: gaps up to ``max_gap`` are
filled between the detections on either side, the median and Gaussian filters reach a few frames,
and a newly found person is followed back through the last sweep period. So once the pass is
``lag`` frames beyond k, frame k's boxes are what the whole-clip clean-up would give, and its crops
can be cut while decoding goes on (one decoding pass, a bounded buffer of frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.people.stage import PeoplePass, clean_boxes, observed_range

__all__ = ["SettledBoxes", "SettledFrame"]

_MEDIAN_REACH = 2  # the 5-frame median filter
_CONFIRM_FRAMES = 3  # analysed frames before a new track counts


@dataclass(frozen=True)
class SettledFrame:
    """The people in range-local frame ``k``: their tracker keys, boxes (n, 4) and flags (n,)."""

    k: int
    keys: list[int]
    boxes: np.ndarray
    flags: np.ndarray


class SettledBoxes:
    """Hands out each frame's final boxes, ``lag`` frames behind what the people pass has seen."""

    def __init__(self, people: PeoplePass) -> None:
        self.people = people
        opts, fps, every = people.opts, people.fps, people.every
        sigma = opts.smooth * fps
        gauss_reach = int(4.0 * sigma + 0.5) if sigma > 0 else 0  # scipy's default truncation
        # Far enough on either side of a frame that a range cut there cannot change the frame's box.
        self.margin = max(0, round(opts.max_gap * fps)) + 2 * every + _MEDIAN_REACH + gauss_reach + 2
        self.lag = people.look_back + self.margin + _CONFIRM_FRAMES * every
        self.next = 0

    def ready(self, *, final: bool = False) -> list[SettledFrame]:
        """Frames whose boxes are settled and not yet handed out (all remaining ones when ``final``)."""
        seen = len(self.people.ran)
        upto = seen if final else seen - self.lag
        lo, hi = self.next, upto
        if hi <= lo:
            return []
        self.next = hi
        # Only the frames a range may reach: converting the whole list each time would grow with the clip.
        ran_from = max(0, lo - self.margin)
        ran = np.array(self.people.ran[ran_from:hi + self.margin])
        per_frame: list[list[tuple[int, np.ndarray, int]]] = [[] for _ in range(hi - lo)]
        for raw in self.people.tracker.tracks():
            first, end = observed_range(raw, seen, self.people.every)
            a, b = max(first, lo - self.margin), min(end, hi + self.margin)
            if max(a, lo) >= min(b, hi):
                continue
            track = clean_boxes(raw, ran, a, b, self.people.scale, self.people.opts, self.people.fps, ran_from)
            for k in range(max(a, lo), min(b, hi)):
                flag = int(track.flags[k - a])
                if flag:
                    per_frame[k - lo].append((raw.key, track.box[k - a], flag))
        out = []
        for i, rows in enumerate(per_frame):
            boxes = np.array([r[1] for r in rows], np.float64).reshape(-1, 4)
            out.append(SettledFrame(lo + i, [r[0] for r in rows], boxes, np.array([r[2] for r in rows], np.uint8)))
        return out
