"""The people stage of a run: one streaming pass over a clip that finds, follows and cleans up every
person, and hands over their tracks ordered by prominence (id 0 = the most on screen)."""

from __future__ import annotations

import bisect
import os
import re
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from core.cleanup.camera_motion import CameraMotion, CameraRotationTracker
from core.errors import BadInput
from core.people.finder import PeopleFinder
from core.people.smoothing import Track, build_track
from core.people.tracker import IdentityTracker, RawTrack
from core.progress import Progress
from core.video import VideoInfo, iter_frames

__all__ = ["PeopleOptions", "PeoplePass", "PeopleResult", "PersonTrack", "choose_people", "clean_boxes", "find_people",
           "observed_range", "parse_person_spec"]


@dataclass(frozen=True)
class PeopleOptions:
    """How people are found and followed. Times in seconds.

    detect_every: analyse every k-th frame (boxes in between interpolated); detect_max_side: the
    analysed image's longer side; sweep: how often the detector looks for newcomers; max_gap:
    longest detection gap filled in; smooth: box smoothing; min_track: shorter tracks are dropped;
    remember: how long a person who left can come back with the same id; camera_focal: when set
    (pixels), the pass also measures the camera's own rotation from the background (for the
    clean-up's world frame).
    """

    detect_every: int = 2
    detect_max_side: int = 640
    sweep: float = 1.0
    max_gap: float = 0.5
    smooth: float = 0.05
    min_track: float = 1.0
    remember: float = 10.0
    camera_focal: float | None = None


@dataclass(frozen=True)
class PersonTrack:
    """One person over the frames ``first .. first + len(track.box) - 1`` (numbered from the start
    of the analysed range): the cleaned box track, and where the person was observed, the presence
    score (NaN elsewhere), 2D landmarks (33, 3) (x, y pixels, visibility; NaN elsewhere) and BlazePose's
    world landmarks (33, 3) (metres, hip-centred, camera-aligned axes; NaN elsewhere; None when not kept)."""

    person_id: int
    first: int
    track: Track
    score: np.ndarray
    landmarks: np.ndarray
    share: float  # mean share of the frame's area the box covers, over the frames with the person
    key: int = -1  # the tracker's key of the identity (order of creation)
    world_landmarks: np.ndarray | None = None

    @property
    def segments(self) -> list[tuple[int, int]]:
        """Runs [start, end) of consecutive frames with the person, in range-local frame numbers."""
        return [(self.first + s, self.first + e) for s, e in self.track.segments]

    @property
    def frames_seen(self) -> int:
        return int(self.track.present.sum())


@dataclass(frozen=True)
class PeopleResult:
    """Frame numbers (N,) and times (N,) of the analysed range, the people in it by id, and the
    camera's own motion over those frames (None when not measured)."""

    frame_index: np.ndarray
    frame_time: np.ndarray
    people: list[PersonTrack]
    camera: CameraMotion | None = None


def parse_person_spec(spec: str | int | None) -> list[int] | None:
    """``--person``: "all" (or None) -> None; "0" or "0,2" -> [0, 2]. Raises BadInput on bad syntax."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return None
    text = str(spec).strip()
    if not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        raise BadInput(f"--person '{spec}': give 'all', one id (0) or ids separated by commas (0,2)")
    return sorted({int(p) for p in text.split(",")})


def choose_people(people: list[PersonTrack], wanted: list[int] | None, max_people: int | None,
                  source: str) -> list[PersonTrack]:
    """The people a run keeps: the ``wanted`` ids (all when None), at most ``max_people`` of the most
    prominent. An id the clip does not have is a BadInput naming the ids there are."""
    pool = people[:max_people] if max_people else people
    if wanted is None:
        return pool
    have = {p.person_id for p in pool}
    missing = [i for i in wanted if i not in have]
    if missing:
        there = f"people {min(have)}-{max(have)}" if len(have) > 1 else "one person (id 0)"
        limit = f" within --max-people {max_people}" if max_people and len(people) > len(pool) else ""
        raise BadInput(f"--person {','.join(map(str, missing))}: {source} has {there}{limit}; "
                       "list them with 'python -m core tracks VIDEO'")
    return [p for p in pool if p.person_id in wanted]


def observed_range(raw: RawTrack, n_frames: int, every: int) -> tuple[int, int]:
    """Frames [first, end) a raw track's cleaned boxes cover: from its first observation to the
    analysed frame after its last (clamped to the frames decoded so far)."""
    return raw.frames[0], min(n_frames, raw.frames[-1] + every)


def clean_boxes(raw: RawTrack, ran: np.ndarray, first: int, end: int, scale: float, opts: PeopleOptions,
                fps: float, ran_from: int = 0) -> Track:
    """The cleaned box track of ``raw`` over frames [first, end), from its observations in that range
    (``ran[i]``: whether frame ``ran_from + i`` was analysed). Gap filling and smoothing are local, so
    a range that extends far enough around a frame gives that frame the same box as the whole track
    does (what lets boxes be final while decoding goes on)."""
    lo, hi = bisect.bisect_left(raw.frames, first), bisect.bisect_left(raw.frames, end)
    boxes: list[np.ndarray | None] = [None] * (end - first)
    for f, box in zip(raw.frames[lo:hi], raw.boxes[lo:hi], strict=True):
        boxes[f - first] = box * scale
    return build_track(boxes, ran[first - ran_from:end - ran_from], max_gap=max(0, round(opts.max_gap * fps)),
                       smooth_sigma=opts.smooth * fps)


def _clean(raw: RawTrack, ran: np.ndarray, every: int, scale: float, opts: PeopleOptions,
           fps: float) -> tuple[int, Track, np.ndarray, np.ndarray, np.ndarray]:
    first, end = observed_range(raw, len(ran), every)
    score = np.full(end - first, np.nan, np.float32)
    marks = np.full((end - first, 33, 3), np.nan, np.float32)
    world = np.full((end - first, 33, 3), np.nan, np.float32)
    for f, s, lm, w in zip(raw.frames, raw.scores, raw.landmarks, raw.world, strict=True):
        score[f - first] = s
        marks[f - first] = lm * np.array([scale, scale, 1], np.float32)
        world[f - first] = w
    return first, clean_boxes(raw, ran, first, end, scale, opts, fps), score, marks, world


def _look_back(finder: PeopleFinder, tracker: IdentityTracker, track: RawTrack,
               recent: deque[tuple[int, np.ndarray]]) -> None:
    """A person first found now was often there already (the detector sweeps only now and then):
    follow them backwards through the recent analysed frames while the landmark model still sees
    them and nobody else was observed there."""
    roi = track.next_roi
    before = track.frames[-2] if len(track.frames) > 1 else -1
    for k, rgb in reversed(recent):
        if k <= before:
            return
        obs = finder.observe(rgb, roi)
        if obs is None or tracker.occupied(k, obs.box, track):
            return
        track.insert(k, obs)
        roi = obs.next_roi


class PeoplePass:
    """The people stage fed one decoded frame at a time (its small copy): finds, follows and, at the
    end, cleans up everybody. ``find_people`` drives it over a clip; the one-pass pipeline feeds it
    from the same decoding that cuts the crops."""

    def __init__(self, info: VideoInfo, start: int, opts: PeopleOptions, threads: int | None = None) -> None:
        self.info, self.start, self.opts = info, start, opts
        self.fps = float(info.fps)
        self.every = opts.detect_every
        self.sweep_every = max(1, round(opts.sweep * self.fps / self.every))
        self.tracker = IdentityTracker(coast=max(self.every, round(self.fps)),
                                       remember=max(self.every, round(opts.remember * self.fps)))
        self.finder = PeopleFinder(threads=threads or min(2, os.cpu_count() or 1))
        self.indices: list[int] = []
        self.times: list[float] = []
        self.ran: list[bool] = []
        self.scale = 1.0
        self._analysed = 0
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=self.sweep_every)  # for looking back
        self.camera = None if opts.camera_focal is None else \
            CameraRotationTracker(info.width, info.height, opts.camera_focal)
        self._boxes = np.zeros((0, 4))  # the last analysed frame's people (small-image pixels)

    @property
    def look_back(self) -> int:
        """How many frames back a newly found person's track may still be extended."""
        return self.sweep_every * self.every

    def add(self, index: int, time: float, small: np.ndarray) -> None:
        """Analyse (every ``detect_every``-th) frame ``index`` of the clip, given its small copy."""
        k = index - self.start
        run = k % self.every == 0
        if run:
            # Tiles (small people) once per sweep period; the whole frame every other analysed frame.
            sweep = ("full" if self._analysed % self.sweep_every == 0
                     else "coarse" if self._analysed % 2 == 0 else "none")
            observations = self.finder(small, self.tracker.expected_regions(k), sweep=sweep)
            self._boxes = np.array([o.box for o in observations], np.float64).reshape(-1, 4)
            self.tracker.update(k, small, observations)
            for track in self.tracker.started + self.tracker.revived:
                _look_back(self.finder, self.tracker, track, self._recent)
            self._recent.append((k, small))
            self._analysed += 1
        self.scale = self.info.width / small.shape[1]
        if self.camera is not None:  # people are masked out; between analysed frames they moved little
            self.camera.add(small, self._boxes * self.scale, self.scale)
        self.indices.append(index)
        self.times.append(time)
        self.ran.append(run)

    def result(self) -> PeopleResult:
        """Everyone kept (tracks of at least ``min_track``), ordered by prominence."""
        if not self.indices:
            where = f"from frame {self.start}" if self.start else "in this clip"
            raise BadInput(f"{self.info.path}: no frames {where} (the clip has {self.info.frame_count}); "
                           "check --start/--end")
        n, fps = len(self.indices), self.fps
        ran_arr = np.array(self.ran)
        min_frames = max(1, min(round(self.opts.min_track * fps), n // 2))
        area = float(self.info.width * self.info.height)
        kept: list[tuple[float, int, int, PersonTrack]] = []  # (prominence, first frame, creation order, person)
        for raw in self.tracker.tracks():
            first, track, score, marks, world = _clean(raw, ran_arr, self.every, self.scale, self.opts, fps)
            seen = int(track.present.sum())
            if seen < min_frames:
                continue
            boxes = track.box[track.present]
            share = float(np.mean(boxes[:, 2] * boxes[:, 3]) / area)
            kept.append((share * seen, first, raw.key,
                         PersonTrack(-1, first, track, score, marks, share, key=raw.key, world_landmarks=world)))
        kept.sort(key=lambda row: (-row[0], row[1], row[2]))
        people = [replace(row[3], person_id=pid) for pid, row in enumerate(kept)]
        camera = self.camera.result() if self.camera is not None else None
        return PeopleResult(np.array(self.indices, np.int64), np.array(self.times, np.float64), people, camera)


def find_people(info: VideoInfo, start: int, end: int | None, opts: PeopleOptions, progress: Progress,
                threads: int | None = None) -> PeopleResult:
    """Pass 1 over frames [start, end): everyone found, followed and cleaned up, ordered by prominence."""
    expected = (end if end is not None else info.frame_count) - start
    progress.stage("detect", max(expected, 0))
    people = PeoplePass(info, start, opts, threads)
    for frame in iter_frames(info, start=start, end=end, max_side=opts.detect_max_side):
        people.add(frame.index, frame.time, frame.rgb)
        progress.advance()
    return people.result()
