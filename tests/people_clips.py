"""Multi-person test clips with exact ground truth of who is where, composed from real single-person clips.

The source clips live outside the project (``../shared/data/videos``: ``dancer.mp4``, ``runner.mp4``) and are
never copied into it. Each person is cut out of a source clip with mediapipe's pose segmentation mask, and
*every* person is pasted onto a person-free background (the runner's sports hall: a median of camera-aligned
frames with the runner masked out). The ground truth therefore comes from the masks that were pasted, not from
any detector, and is exact by construction (see ``PeopleClip``): only pixels under a person's mask are pasted, so
where mediapipe's mask misses a bit of a limb, that bit is simply absent from the clip, not outside the box.
Limits: the soft edge of the paste (alpha below 0.5) may reach a pixel or two beyond the box; H.264 (crf 18)
blurs edges slightly; occlusion counts only people in front (alpha >= 0.5), the background never hides anyone.

Scenarios (``build_people_clip(kind, ...)``; 960 x 540, 30 fps, H.264 yuv420p):

- ``side_by_side`` (3 s): dancer left, runner right (running on the spot), both about 0.6 of the frame height;
  never overlapping, both fully visible in every frame.
- ``crossing`` (4 s): the runner (front, about 340 px tall) runs left to right; a mirrored copy of the runner
  with lifted darks and a warm tint (grey-brown instead of black clothes: "runner_tinted", behind, about 265 px
  tall, feet 70 px higher) runs right to left, 60 source frames out of phase. Their boxes overlap in frames
  51..74 (IoU up to 0.45); the one behind is partly hidden in 22 frames, under half visible in 4 (down to 0.1).
- ``leave_return`` (4 s): the dancer stays at the left; the runner runs out at the right edge, is entirely out
  of the frame in frames 37..91 (55 frames, 1.8 s), and comes back (turned round) from the right.
- ``crowd`` with ``n_people`` in 1..4 (3 s): the first n of: a large dancer (0.6 of the height), a small runner
  (0.14 of the height, 77 px, about 1/7), a mirrored warm-tinted runner (0.37), a mirrored purple-tinted dancer
  (0.31); at different places, never overlapping (for seed 0).

``seed`` 0 gives the layouts above exactly; another seed shifts each person's start in its source clip and
jitters its path by up to 12 px. Same inputs, same seed: the same frames and ground truth.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
WIDTH, HEIGHT = 960, 540
FPS = 30
KINDS = ("side_by_side", "crossing", "leave_return", "crowd")
WORK_WIDTH = 960  # source frames are scaled to this width before segmentation and cut-out
ALPHA_LO, ALPHA_HI = 0.3, 0.7  # segmentation confidence mapped to paste alpha 0..1 (a narrow soft edge)


@dataclass(frozen=True)
class PeopleClip:
    """A written clip and its ground truth.

    ``boxes[p, n]`` is the bounding box (cx, cy, w, h, pixels, edges: x0 = leftmost column, x1 = rightmost + 1)
    of the pixels of person p in frame n whose paste alpha is >= 0.5, clipped to the frame, *including* pixels
    hidden by people in front (the person's full box); NaN where none of its pixels is inside the frame.
    ``visible[p, n]`` is the number of those pixels that are in the frame and not covered (alpha >= 0.5) by a
    person in front, divided by the person's total pixel count (also counting pixels outside the frame): 1 for
    fully visible, 0 when out of frame or fully hidden. ``names`` are unique.
    """

    path: Path
    fps: float
    size: tuple[int, int]
    boxes: np.ndarray
    visible: np.ndarray
    names: tuple[str, ...]


def require_videos() -> Path:
    """The folder of real source clips, or skip the calling test with the reason when it is absent."""
    import pytest

    missing = [n for n in ("dancer.mp4", "runner.mp4") if not (VIDEOS / n).is_file()]
    if missing:
        pytest.skip(f"real test clips not available: {', '.join(missing)} missing in {VIDEOS} "
                    "(the shared test data folder next to the project; see ../shared/data/README.md)")
    return VIDEOS


# --- sources: decoded, segmented, cached per process ------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    name: str
    rgb: np.ndarray  # (N, H, W, 3) uint8
    alpha: np.ndarray  # (N, H, W) float32 paste alpha in [0, 1]
    anchor: np.ndarray  # (N, 2) smoothed (centre x, bottom y) of the person, source pixels
    height: float  # median height of the person's box, source pixels
    person: np.ndarray  # (N, H, W) bool, the person dilated (for masking it out of the background)


_SOURCES: dict[str, _Source] = {}
_BACKGROUND: list[np.ndarray] = []


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w, h = stream.codec_context.width, stream.codec_context.height
        size = (WORK_WIDTH, round(WORK_WIDTH * h / w / 2) * 2)
        frames = [f.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
                  for f in container.decode(stream)]
    return np.stack(frames)


def _segment(rgb: np.ndarray) -> np.ndarray:
    """Per frame the mediapipe pose segmentation confidence (N, H, W) float32; video mode, complexity 1."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import mediapipe as mp

    masks = []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, enable_segmentation=True) as pose:
        for frame in rgb:
            result = pose.process(frame)
            if result.segmentation_mask is None:
                raise RuntimeError("mediapipe found nobody in a frame of a source clip")
            masks.append(np.asarray(result.segmentation_mask, dtype=np.float32).copy())
    return np.stack(masks)


def _clean_alpha(conf: np.ndarray) -> np.ndarray:
    """Paste alpha from segmentation confidence: a narrow ramp, stray blobs away from the person removed."""
    import cv2

    core = (conf >= 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if count <= 1:
        raise RuntimeError("empty segmentation mask in a source clip")
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.isin(labels, 1 + np.flatnonzero(areas >= 0.05 * areas.max())).astype(np.uint8)
    near = cv2.dilate(keep, np.ones((7, 7), np.uint8)) > 0
    alpha = np.clip((conf - ALPHA_LO) / (ALPHA_HI - ALPHA_LO), 0.0, 1.0)
    return np.where(near, alpha, 0.0).astype(np.float32)


def _smooth(x: np.ndarray, window: int = 15) -> np.ndarray:
    pad = window // 2
    padded = np.pad(x, (pad, pad), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def _source(name: str) -> _Source:
    if name in _SOURCES:
        return _SOURCES[name]
    import cv2

    rgb = _decode(VIDEOS / f"{name}.mp4")
    conf = _segment(rgb)
    alpha = np.stack([_clean_alpha(c) for c in conf])
    boxes = []
    for a in alpha:
        ys, xs = np.nonzero(a >= 0.5)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, xs.mean()))
    b = np.array(boxes, dtype=np.float64)
    anchor = np.stack([_smooth(b[:, 4]), _smooth(b[:, 3])], axis=1)
    kernel = np.ones((41, 41), np.uint8)
    person = np.stack([cv2.dilate((c >= 0.1).astype(np.uint8), kernel) > 0 for c in conf])
    src = _Source(name, rgb, alpha, anchor, float(np.median(b[:, 3] - b[:, 1])), person)
    _SOURCES[name] = src
    return src


def _background() -> np.ndarray:
    """The runner's sports hall without the runner, (HEIGHT, WIDTH, 3) float32.

    The camera pans, so frames are aligned to the middle frame by a homography (ORB features off the person)
    and the per-pixel median of the aligned frames is taken over pixels where the runner is not; the few pixels
    never free of her are inpainted.
    """
    if _BACKGROUND:
        return _BACKGROUND[0]
    import cv2

    src = _source("runner")
    n = len(src.rgb)
    ref = n // 2
    orb = cv2.ORB_create(3000)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in src.rgb]
    free = [(~p).astype(np.uint8) * 255 for p in src.person]
    kp_ref, des_ref = orb.detectAndCompute(grey[ref], free[ref])
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    h, w = grey[ref].shape
    stack = []
    for i in range(0, n, 6):
        if i == ref:
            warped = src.rgb[i].astype(np.float32)
            valid = ~src.person[i]
        else:
            kp, des = orb.detectAndCompute(grey[i], free[i])
            matches = matcher.match(des, des_ref)
            pts = np.float32([kp[m.queryIdx].pt for m in matches])
            pts_ref = np.float32([kp_ref[m.trainIdx].pt for m in matches])
            hom, inliers = cv2.findHomography(pts, pts_ref, cv2.RANSAC, 2.0)
            if hom is None or inliers.sum() < 40:
                continue
            warped = cv2.warpPerspective(src.rgb[i], hom, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
            ok = cv2.warpPerspective((~src.person[i]).astype(np.uint8), hom, (w, h), flags=cv2.INTER_NEAREST)
            inside = cv2.warpPerspective(np.ones((h, w), np.uint8), hom, (w, h), flags=cv2.INTER_NEAREST)
            valid = cv2.erode(ok & inside, np.ones((5, 5), np.uint8)) > 0
        stack.append(np.where(valid[..., None], warped, np.nan))
    data = np.sort(np.stack(stack), axis=0)  # NaN sorts last
    count = np.isfinite(data[..., 0]).sum(axis=0)
    mid = np.maximum(count - 1, 0) // 2
    median = np.take_along_axis(data, mid[None, ..., None].repeat(3, axis=-1), axis=0)[0]
    hole = (count == 0).astype(np.uint8)
    image = np.clip(np.nan_to_num(median), 0, 255).round().astype(np.uint8)
    if hole.any():
        image = cv2.inpaint(image, hole, 5, cv2.INPAINT_TELEA)
    top = (h - HEIGHT) // 2
    bg = cv2.resize(image, (WIDTH, h * WIDTH // w))[top:top + HEIGHT].astype(np.float32)
    _BACKGROUND.append(bg)
    return bg


# --- people and their paths ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Actor:
    name: str
    source: str
    height: float  # target height of the person's box in output pixels (the source's median, scaled)
    x: Callable[[np.ndarray], np.ndarray]  # frame index -> anchor centre x in the output
    bottom: float  # anchor bottom y in the output (feet)
    depth: float  # larger is nearer the camera (drawn later, in front)
    offset: int = 0  # first source frame
    mirror: Callable[[np.ndarray], np.ndarray] | None = None  # frame index -> bool, flip horizontally
    tint: tuple[float, float, float] | None = None  # lift the darks (gamma 0.55), then this per-channel gain


def _linear(*keys: tuple[float, float]) -> Callable[[np.ndarray], np.ndarray]:
    ts, xs = zip(*keys, strict=True)
    return lambda t: np.interp(t, ts, np.asarray(xs) * WIDTH)


def _scenario(kind: str, n_people: int) -> tuple[int, list[_Actor]]:
    if kind != "crowd" and n_people != 2:
        raise ValueError(f"{kind} has exactly 2 people (n_people={n_people})")
    warm, cool = (1.15, 1.0, 0.8), (1.0, 0.85, 1.2)
    if kind == "side_by_side":
        return 90, [
            _Actor("dancer", "dancer", 320, _linear((0, 0.30)), 480, 1.0),
            _Actor("runner", "runner", 320, _linear((0, 0.70), (89, 0.74)), 490, 2.0),
        ]
    if kind == "crossing":
        return 120, [
            _Actor("runner", "runner", 330, _linear((0, 0.12), (119, 0.88)), 505, 2.0),
            _Actor("runner_tinted", "runner", 270, _linear((0, 0.88), (119, 0.12)), 435, 1.0, offset=60,
                   mirror=lambda t: np.ones_like(t, dtype=bool), tint=warm),
        ]
    if kind == "leave_return":
        return 120, [
            _Actor("dancer", "dancer", 320, _linear((0, 0.28)), 485, 1.0),
            _Actor("runner", "runner", 320, _linear((0, 0.70), (40, 1.125), (85, 1.125), (119, 0.80)), 495, 2.0,
                   mirror=lambda t: t >= 60),
        ]
    if kind == "crowd":
        if not 1 <= n_people <= 4:
            raise ValueError(f"crowd has 1 to 4 people (n_people={n_people})")
        actors = [
            _Actor("dancer", "dancer", 0.60 * HEIGHT, _linear((0, 0.17)), 505, 4.0),
            _Actor("runner_small", "runner", 0.14 * HEIGHT, _linear((0, 0.63), (89, 0.95)), 320, 1.0, offset=20),
            _Actor("runner_tinted", "runner", 0.38 * HEIGHT, _linear((0, 0.50), (89, 0.44)), 470, 3.0, offset=90,
                   mirror=lambda t: np.ones_like(t, dtype=bool), tint=warm),
            _Actor("dancer_tinted", "dancer", 0.30 * HEIGHT, _linear((0, 0.80)), 528, 2.0, offset=40,
                   mirror=lambda t: np.ones_like(t, dtype=bool), tint=cool),
        ]
        return 90, actors[:n_people]
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def _pingpong(i: np.ndarray, n: int) -> np.ndarray:
    period = 2 * (n - 1)
    j = i % period
    return np.where(j < n, j, period - j)


def _sprite(src: _Source, i: int, scale: float, mirror: bool, tint: tuple[float, float, float] | None):
    """One person's cut-out: rgb (h, w, 3) float32, alpha (h, w) float32, anchor (x, y) in the cut-out."""
    import cv2

    a = src.alpha[i]
    ys, xs = np.nonzero(a > 0)
    x0, y0 = max(xs.min() - 2, 0), max(ys.min() - 2, 0)
    x1, y1 = min(xs.max() + 3, a.shape[1]), min(ys.max() + 3, a.shape[0])
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(src.rgb[i, y0:y1, x0:x1], size, interpolation=interp).astype(np.float32)
    alpha = np.clip(cv2.resize(a[y0:y1, x0:x1], size, interpolation=interp), 0.0, 1.0)
    ax, ay = (src.anchor[i, 0] - x0) * size[0] / (x1 - x0), (src.anchor[i, 1] - y0) * size[1] / (y1 - y0)
    if mirror:
        rgb, alpha, ax = rgb[:, ::-1], alpha[:, ::-1], size[0] - ax
    if tint is not None:
        rgb = np.clip(255 * (rgb / 255) ** 0.55 * np.float32(tint), 0, 255)
    return rgb, alpha, (ax, ay)


def _render(kind: str, n_people: int, seed: int):
    """Frames (N, H, W, 3) uint8 and ground truth boxes (P, N, 4), visible (P, N), names."""
    n_frames, actors = _scenario(kind, n_people)
    rng = np.random.default_rng(seed)
    jitter = np.zeros((len(actors), 2)) if seed == 0 else rng.uniform(-12, 12, (len(actors), 2))
    shifts = np.zeros(len(actors), int) if seed == 0 else rng.integers(0, 60, len(actors))
    bg = _background()
    t = np.arange(n_frames)
    order = sorted(range(len(actors)), key=lambda p: actors[p].depth)  # back to front
    tracks = []
    for p, actor in enumerate(actors):
        src = _source(actor.source)
        mirror = actor.mirror(t) if actor.mirror else np.zeros(n_frames, bool)
        tracks.append((src, _pingpong(t + actor.offset + shifts[p], len(src.rgb)), actor.x(t) + jitter[p, 0],
                       actor.bottom + jitter[p, 1], actor.height / src.height, mirror))
    frames = np.empty((n_frames, HEIGHT, WIDTH, 3), np.uint8)
    boxes = np.full((len(actors), n_frames, 4), np.nan)
    visible = np.zeros((len(actors), n_frames))
    for n in range(n_frames):
        canvas = bg.copy()
        masks = np.zeros((len(actors), HEIGHT, WIDTH), bool)
        totals = np.zeros(len(actors))
        for p in order:
            src, idx, xs, bottom, scale, mirror = tracks[p]
            rgb, alpha, (ax, ay) = _sprite(src, int(idx[n]), scale, bool(mirror[n]), actors[p].tint)
            ox, oy = round(xs[n] - ax), round(bottom - ay)
            totals[p] = np.count_nonzero(alpha >= 0.5)
            h, w = alpha.shape
            cx0, cy0, cx1, cy1 = max(ox, 0), max(oy, 0), min(ox + w, WIDTH), min(oy + h, HEIGHT)
            if cx0 >= cx1 or cy0 >= cy1:
                continue
            a = alpha[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox]
            region = canvas[cy0:cy1, cx0:cx1]
            region += a[..., None] * (rgb[cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox] - region)
            masks[p, cy0:cy1, cx0:cx1] = a >= 0.5
        frames[n] = np.clip(canvas, 0, 255).round().astype(np.uint8)
        in_front = np.zeros((HEIGHT, WIDTH), bool)
        for p in reversed(order):  # front to back
            ys, xs_ = np.nonzero(masks[p])
            if len(xs_):
                x0, x1, y0, y1 = xs_.min(), xs_.max() + 1, ys.min(), ys.max() + 1
                boxes[p, n] = ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
                visible[p, n] = np.count_nonzero(masks[p] & ~in_front) / totals[p]
            in_front |= masks[p]
    return frames, boxes, visible, tuple(a.name for a in actors)


def _write(path: Path, frames: np.ndarray) -> None:
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode(None))


def build_people_clip(kind: str, folder: Path, *, n_people: int = 2, seed: int = 0) -> PeopleClip:
    """Compose a clip of ``kind`` (see the module docstring) into ``folder`` and return it with its ground truth.

    Writes ``{kind}_{n_people}p_seed{seed}.mp4`` and the ground truth beside it as ``.npz`` (boxes, visible,
    names, fps, size). ``n_people`` matters for ``crowd`` only (1..4); the other kinds have exactly 2.
    Needs the real source clips (``require_videos``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    frames, boxes, visible, names = _render(kind, n_people, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}_{n_people}p_seed{seed}.mp4"
    _write(path, frames)
    np.savez(path.with_suffix(".npz"), boxes=boxes, visible=visible, names=np.array(names), fps=float(FPS),
             size=np.array([WIDTH, HEIGHT]))
    return PeopleClip(path, float(FPS), (WIDTH, HEIGHT), boxes, visible, names)
