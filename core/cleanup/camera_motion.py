"""Per-frame camera rotation from the background's motion, for panning and tilting cameras.

Fed one small frame at a time (streaming, as the decoding worker sees them) with the frame's
person boxes, :class:`CameraRotationTracker` follows corners of the background (KLT with a
forward-backward check; every person box, enlarged, is masked out) and fits a pure rotation of
the camera to them with its known focal length, robustly (2-point RANSAC on bearing vectors,
then Kabsch on the inliers). Each tracked corner is a landmark: its direction in camera 0's axes
is the mean of its observations rotated there, and every frame's rotation is fitted to the
landmarks directly rather than chained frame to frame, so the error does not grow per frame, only
when the view has moved on and every corner has been replaced (a long pan).

:meth:`CameraRotationTracker.result` says what the camera did:

- ``"static"``: the optical axis never turned by ``static_deg`` (0.2 deg, about 2.5 px at 640 px
  and the default focal); every rotation is then exactly the identity, so a static camera never
  gets invented motion.
- ``"translating"``: the camera moves, and the parallax of a scene with depth is more than a
  rotation explains. Every ``window`` frames (10) the tracks seen at both ends are fitted by an
  essential matrix (the general model, 1 px) and by a rotation; a window shows parallax when at
  least ``parallax_share`` (30 %) of the essential matrix's inliers are more than
  ``parallax_px`` (2.5 px, about 0.2 deg) off the best rotation. The clip translates when at least
  ``translating_windows`` (30 %, and at least 2 windows where it has them) of the windows show it.
  Root motion should then stay in the camera's frame.
- ``"rotating"``: otherwise; ``R_rel`` holds the rotations.

Pixels in the thresholds are working-image pixels: the frame scaled to a long side of
``work_side`` (640) px, where 1 px is about 0.08 deg at the default focal (the diagonal).

A frame without enough background corners (a blank wall, a person filling the frame, a black
frame) holds the previous rotation with quality 0; the next frame with background looks again
for the corners of the last well-fitted frame (up to ``max_gap`` frames back), so a short
blackout loses no turn. Frame 0 is the reference (identity, quality 1).

Limits: a sideways move in front of one far plane looks like a pan to any camera model (there is
no parallax to see) and is reported as rotating; a turn made while nothing could be followed for
longer than ``max_gap`` frames is lost; an unmasked mover holding about 30 % or more of the
tracked corners can look like parallax (a false "translating", which falls back safely to
camera-frame motion); the focal length is taken as given (a wrong focal scales the angles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["CameraMotion", "CameraMotionOptions", "CameraRotationTracker", "fit_rotation", "optical_axis_angles",
           "rotation_angle_deg"]

_LK = {"winSize": (11, 11), "maxLevel": 3,
       "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 10, 0.03)}


@dataclass(frozen=True)
class CameraMotionOptions:
    """Settings of :class:`CameraRotationTracker`; pixels are working-image pixels (see the module)."""

    work_side: int = 640  # long side of the working image; larger frames are scaled down
    max_features: int = 200  # background corners followed at once
    reseed_below: float = 0.7  # new corners are sought when fewer than this share of max_features remain
    min_distance: int = 10  # px between corners
    box_margin: float = 0.15  # each box grows by this share of its size on every side (limbs, shadows)
    fb_px: float = 0.7  # a corner tracked forward and back must land this close to where it started
    ransac_px: float = 1.0  # inlier band of the per-frame rotation fit
    min_inliers: int = 12  # fewer: the frame holds the previous rotation, quality 0
    static_deg: float = 0.2  # largest turn of a camera called static
    window: int = 10  # frames between the two ends of a parallax window
    essential_px: float = 1.0  # inlier band of the essential matrix in a window
    parallax_px: float = 2.5  # an essential inlier this far off the window's rotation shows parallax
    parallax_share: float = 0.3  # share of essential inliers with parallax for a window to count
    translating_windows: float = 0.3  # share of windows with parallax for the clip to be translating
    max_gap: int = 30  # frames after the last well-fitted one within which lost corners are sought again
    seed: int = 0  # of the RANSAC samples: results are reproducible

    def __post_init__(self) -> None:
        if not (64 <= self.work_side <= 4096 and 3 <= self.min_inliers <= self.max_features <= 5000
                and self.window >= 2 and self.max_gap >= 0 and 0 < self.reseed_below <= 1):
            raise ValueError(f"camera motion: options out of range: {self}")
        bands = (self.fb_px, self.ransac_px, self.static_deg, self.essential_px, self.parallax_px)
        if not all(math.isfinite(v) and v > 0 for v in bands) or not 0 < self.parallax_share <= 1:
            raise ValueError(f"camera motion: thresholds must be positive: {self}")


@dataclass
class CameraMotion:
    """The camera's rotation over a clip and what kind of motion it was.

    ``R_rel[f]`` (3, 3) maps camera f's axes to camera 0's (OpenCV axes: x right, y down, z forward):
    a direction ``p`` in camera f is ``R_rel[f] @ p`` in camera 0. ``quality[f]`` in 0..1 (0: the
    rotation was held from the frame before), ``inliers[f]`` the corners that agreed,
    ``residual_px[f]`` their median distance from the fit (NaN where held); ``parallax_share`` one
    value per evaluated window (see the module). For a "translating" camera the rotations are only
    the best fit, bent by the parallax: not to be used."""

    R_rel: np.ndarray
    verdict: str  # "static" | "rotating" | "translating"
    note: str
    quality: np.ndarray
    inliers: np.ndarray
    residual_px: np.ndarray
    parallax_share: np.ndarray
    max_deg: float  # largest turn of the optical axis from frame 0 as measured (before a static verdict)


def rotation_angle_deg(rot: np.ndarray) -> np.ndarray:
    """Angle in degrees of rotation matrices (..., 3, 3)."""
    c = (np.trace(rot, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def optical_axis_angles(rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pan (yaw, + to the right) and tilt (pitch, + up) in degrees of the optical axis of rotations
    (..., 3, 3) given as camera-f-to-camera-0."""
    z = rot[..., :, 2]
    return (np.degrees(np.arctan2(z[..., 0], z[..., 2])),
            np.degrees(np.arctan2(-z[..., 1], np.hypot(z[..., 0], z[..., 2]))))


def _kabsch(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Rotations R (..., 3, 3) minimising sum |p - R q|^2 over point sets (..., N, 3)."""
    U, _, Vt = np.linalg.svd(np.einsum("...ni,...nj->...ij", q, p))
    V = np.swapaxes(Vt, -1, -2).copy()
    V[..., :, 2] *= np.sign(np.linalg.det(V @ np.swapaxes(U, -1, -2)))[..., None]
    return V @ np.swapaxes(U, -1, -2)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross products of (M, 3) rows (np.cross costs more than the arithmetic at these sizes)."""
    a0, a1, a2, b0, b1, b2 = a[:, 0], a[:, 1], a[:, 2], b[:, 0], b[:, 1], b[:, 2]
    return np.column_stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def _triad(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Rotations R (M, 3, 3) taking the pairs q (M, 2, 3) onto p (M, 2, 3): the first vector exactly, the
    second's plane with it (TRIAD; an SVD-free minimal solver). Parallel pairs give the identity."""
    def frame(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t2 = _cross(v[:, 0], v[:, 1])
        norm = np.linalg.norm(t2, axis=1, keepdims=True)
        t2 = t2 / np.maximum(norm, 1e-12)
        return np.stack([v[:, 0], t2, _cross(v[:, 0], t2)], axis=2), norm[:, 0] > 1e-9

    fp, okp = frame(p)
    fq, okq = frame(q)
    R = fp @ np.swapaxes(fq, 1, 2)
    R[~(okp & okq)] = np.eye(3)
    return R


def fit_rotation(p: np.ndarray, q: np.ndarray, thresh: float, rng: np.random.Generator, iters: int = 64,
                 guesses: tuple[np.ndarray, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust rotation R with p ≈ R q for unit vectors (N >= 2, 3): 2-point RANSAC scored by MSAC (plus
    the ``guesses``), refined by Kabsch on the inliers. ``thresh`` is the inlier band in radians.
    Returns R, the inlier mask and every pair's distance |p - R q| (about the angle, radians)."""
    P, Q = p, q
    n = len(P)
    if n < 2:
        raise ValueError("fit_rotation needs at least 2 pairs")
    i = rng.integers(0, n, iters)
    j = (i + rng.integers(1, n, iters)) % n
    Rs = _triad(np.stack([P[i], P[j]], 1), np.stack([Q[i], Q[j]], 1))
    if guesses:
        Rs = np.concatenate([Rs, np.stack(guesses)])
    # |p - R q|^2 = 2 - 2 p.(R q) for unit vectors, and p.(R q) = sum_ij R_ij p_i q_j: one product for all.
    r2 = 2.0 - 2.0 * (Rs.reshape(-1, 9) @ (P[:, :, None] * Q[:, None, :]).reshape(n, 9).T)
    R = Rs[int(np.argmin(np.minimum(r2, thresh ** 2).sum(axis=1)))]
    for _ in range(3):
        inl = np.sum((P - Q @ R.T) ** 2, axis=1) < thresh ** 2
        if inl.sum() < 3:
            break
        R = _kabsch(P[inl], Q[inl])
    r = np.linalg.norm(P - Q @ R.T, axis=1)
    return R, r < thresh, r


class CameraRotationTracker:
    """Streaming estimate of the camera's rotation: :meth:`add` each frame in order, :meth:`result` at the end.

    ``width``, ``height``: the full frame in pixels; ``focal_px``: its focal length in full-frame pixels
    (principal point at the image centre). Costs a few ms per frame at 640 x 360."""

    def __init__(self, width: int, height: int, focal_px: float, options: CameraMotionOptions | None = None):
        if width < 1 or height < 1 or not (math.isfinite(focal_px) and focal_px > 0):
            raise ValueError(f"camera motion: need a positive frame size and focal, got {width}x{height}, {focal_px}")
        self.width, self.height, self.focal_px = int(width), int(height), float(focal_px)
        self.opts = options or CameraMotionOptions()
        self._rng = np.random.default_rng(self.opts.seed)
        self._rows = np.zeros((64, 12))  # per frame: R (9), quality, inliers, residual; grows by doubling
        self._n = 0
        self._prev: np.ndarray | None = None  # working gray image of the frame before
        self._key: tuple | None = None  # the last well-fitted frame: index, image, corners, landmarks, ids
        self._size: tuple[int, int] | None = None
        self._f = 1.0  # focal in working pixels
        self._breaks = 0
        self._next_id = 0
        self._clear_tracks()
        self._snap: tuple[np.ndarray, np.ndarray] | None = None  # ids and bearings at the window's start
        self._shares: list[float] = []

    def _clear_tracks(self) -> None:
        self._pts = np.zeros((0, 2), np.float32)  # working pixels
        self._anchor = np.zeros((0, 3))  # sum of the observed directions in camera 0's axes
        self._ids = np.zeros(0, np.int64)

    @property
    def frames(self) -> int:
        """Frames added so far."""
        return self._n

    def add(self, image: np.ndarray, boxes: np.ndarray | None = None, scale: float | None = None) -> None:
        """Add the next frame: ``image`` (H, W) gray or (H, W, 3|4) RGB uint8, the whole frame at any
        size; ``boxes`` (n, 4) person boxes (cx, cy, w, h) in full-frame pixels (None: nobody);
        ``scale`` full-frame pixels per pixel of ``image`` (None: ``width`` / the image's width)."""
        o = self.opts
        gray, to_work = self._prepare(image, scale)
        f = self._n
        R_prev = self._rows[f - 1, :9].reshape(3, 3) if f else np.eye(3)
        R, quality, n_in, resid = R_prev, 0.0, 0, math.nan
        if gray is None:
            self._break()
        else:
            if gray.shape != self._size:
                if self._size is not None:
                    self._break()
                self._size = gray.shape
            self._f = self.focal_px * to_work
            mask = self._background_mask(gray.shape, boxes, to_work)
            if self._prev is not None and len(self._pts):
                self._track(self._prev, gray, mask)
            key = self._key
            if (len(self._pts) < o.min_inliers and key is not None and key[1].shape == gray.shape
                    and f - key[0] <= o.max_gap):
                # Corners lost (a black frame, a cut of a few frames): look for the last good frame's again.
                self._pts, self._anchor, self._ids = key[2], key[3].copy(), key[4]
                self._track(key[1], gray, mask)
            if len(self._pts) >= o.min_inliers:
                R, quality, n_in, resid = self._fit(R_prev)
                if quality > 0:
                    self._key = (f, gray, self._pts, self._anchor.copy(), self._ids)
        if f == 0:
            R, quality = np.eye(3), 1.0  # frame 0 is the reference by definition
        if f == len(self._rows):
            self._rows = np.concatenate([self._rows, np.zeros_like(self._rows)])
        self._rows[f, :9], self._rows[f, 9:] = R.ravel(), (quality, n_in, resid)
        self._n = f + 1
        if gray is not None:
            if len(self._pts) < o.reseed_below * o.max_features:
                self._seed(gray, mask, R)
            if f % o.window == 0:
                self._close_window()
        self._prev = gray

    def _prepare(self, image: np.ndarray, scale: float | None) -> tuple[np.ndarray | None, float]:
        """The working gray image (None if unusable) and working pixels per full-frame pixel."""
        img = np.asarray(image)
        if img.ndim not in (2, 3) or img.shape[0] < 16 or img.shape[1] < 16:
            return None, 1.0
        if img.dtype != np.uint8:
            img = np.clip(np.nan_to_num(img.astype(np.float32)), 0, 255).astype(np.uint8)
        if img.ndim == 3:
            img = (cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY) if img.shape[2] >= 3
                   else np.ascontiguousarray(img[..., 0]))
        h, w = img.shape
        to_image = 1.0 / scale if scale else w / self.width
        k = min(1.0, self.opts.work_side / max(h, w))
        if k < 1.0:
            img = cv2.resize(img, (max(16, round(w * k)), max(16, round(h * k))), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img), to_image * img.shape[1] / w

    def _break(self) -> None:
        """Forget the tracks (an unusable frame or a new frame size): the next frame seeds afresh."""
        if len(self._pts):
            self._breaks += 1
        self._clear_tracks()
        self._snap = None

    def _background_mask(self, shape: tuple[int, int], boxes: np.ndarray | None, to_work: float) -> np.ndarray:
        """255 where corners may be, 0 on the enlarged person boxes."""
        mask = np.full(shape, 255, np.uint8)
        if boxes is None:
            return mask
        b = np.asarray(boxes, np.float64).reshape(-1, 4) * to_work
        b = b[np.all(np.isfinite(b), axis=1)]
        half = b[:, 2:] * (0.5 + self.opts.box_margin) + 2.0
        lo = np.floor(b[:, :2] - half).astype(np.int64)
        hi = np.ceil(b[:, :2] + half).astype(np.int64)
        h, w = shape
        for (x0, y0), (x1, y1) in zip(lo, hi, strict=True):
            mask[max(0, y0):max(0, min(h, y1)), max(0, x0):max(0, min(w, x1))] = 0
        return mask

    def _track(self, prev: np.ndarray, gray: np.ndarray, mask: np.ndarray) -> None:
        """Follow the corners from ``prev`` into ``gray``; keep those that come back and lie on the background."""
        p0 = self._pts.reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, gray, p0, None, **_LK)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev, p1, None, **_LK)
        p1 = p1.reshape(-1, 2)
        h, w = gray.shape
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & np.all(np.isfinite(p1), axis=1)
        ok &= np.linalg.norm(back.reshape(-1, 2) - self._pts, axis=1) < self.opts.fb_px
        ok &= (p1[:, 0] >= 0) & (p1[:, 1] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] <= h - 1)
        xi = np.clip(np.round(p1[:, 0]).astype(np.int64), 0, w - 1)
        yi = np.clip(np.round(p1[:, 1]).astype(np.int64), 0, h - 1)
        ok &= mask[yi, xi] > 0
        self._pts, self._anchor, self._ids = p1[ok], self._anchor[ok], self._ids[ok]

    def _bearings(self, pts: np.ndarray) -> np.ndarray:
        """Unit directions in the camera's axes of working-image pixels (N, 2)."""
        h, w = self._size
        v = np.column_stack([(pts[:, 0] - (w - 1) / 2) / self._f, (pts[:, 1] - (h - 1) / 2) / self._f,
                             np.ones(len(pts))])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def _fit(self, r_prev: np.ndarray) -> tuple[np.ndarray, float, int, float]:
        """This frame's rotation from the landmarks; updates them. Returns R, quality, inliers, residual px."""
        o = self.opts
        Q = self._bearings(self._pts)
        P = self._anchor / np.linalg.norm(self._anchor, axis=1, keepdims=True)
        R, inl, r = fit_rotation(P, Q, o.ransac_px / self._f, self._rng, guesses=(r_prev,))
        n_in = int(inl.sum())
        if n_in < o.min_inliers:
            return r_prev, 0.0, n_in, math.nan
        seen = Q @ R.T
        self._anchor[inl] += seen[inl]
        self._anchor[~inl] = seen[~inl]  # a corner that disagrees starts over as a new landmark
        quality = min(1.0, n_in / (4 * o.min_inliers)) * n_in / len(Q)
        return R, quality, n_in, float(np.median(r[inl]) * self._f)

    def _seed(self, gray: np.ndarray, mask: np.ndarray, rot: np.ndarray) -> None:
        """Add corners on the background, away from the ones already followed."""
        o = self.opts
        m = mask.copy()
        edge = 8
        m[:edge], m[-edge:], m[:, :edge], m[:, -edge:] = 0, 0, 0, 0
        for x, y in np.round(self._pts).astype(np.int64):
            cv2.circle(m, (int(x), int(y)), o.min_distance, 0, -1)
        need = o.max_features - len(self._pts)
        if need <= 0 or not m.any():
            return
        new = cv2.goodFeaturesToTrack(gray, need, 0.01, o.min_distance, mask=m, blockSize=5)
        if new is None:
            return
        new = new.reshape(-1, 2).astype(np.float32)
        self._pts = np.concatenate([self._pts, new])
        self._anchor = np.concatenate([self._anchor, self._bearings(new) @ rot.T])
        self._ids = np.concatenate([self._ids, np.arange(self._next_id, self._next_id + len(new))])
        self._next_id += len(new)

    def _close_window(self) -> None:
        """End the parallax window begun ``window`` frames ago and begin the next one here."""
        ids, B = self._ids.copy(), self._bearings(self._pts)
        if self._snap is not None:
            share = self._parallax(*self._snap, ids, B)
            if share is not None:
                self._shares.append(share)
        self._snap = (ids, B)

    def _parallax(self, ids_a: np.ndarray, ba: np.ndarray, ids_b: np.ndarray, bb: np.ndarray) -> float | None:
        """Share of the essential matrix's inliers that no rotation explains, between two frames' bearings."""
        o = self.opts
        _, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
        if len(ia) < 20:
            return None
        Ba, Bb = ba[ia], bb[ib]
        pa = np.ascontiguousarray(Ba[:, :2] / Ba[:, 2:])
        pb = np.ascontiguousarray(Bb[:, :2] / Bb[:, 2:])
        E, m = cv2.findEssentialMat(pa, pb, focal=1.0, pp=(0.0, 0.0), method=cv2.RANSAC, prob=0.999,
                                    threshold=o.essential_px / self._f)
        if E is None or m is None:
            return None
        e_in = m.ravel().astype(bool)
        if e_in.sum() < 20:
            return None
        _, _, r = fit_rotation(Ba[e_in], Bb[e_in], 1.5 * o.ransac_px / self._f, self._rng)
        return float(np.mean(r * self._f > o.parallax_px))

    def result(self) -> CameraMotion:
        """The rotations and the verdict over every frame added (see :class:`CameraMotion`)."""
        o = self.opts
        n = self._n
        rows = self._rows[:n]
        R = rows[:, :9].reshape(n, 3, 3).copy()
        quality = rows[:, 9].copy()
        held = int(np.sum(quality[1:] == 0.0))
        shares = np.asarray(self._shares, np.float64)
        max_deg = float(rotation_angle_deg(R).max()) if n else 0.0
        n_par = int(np.sum(shares >= o.parallax_share))
        lost = f"; {held} of {n} frames held the previous rotation (too little background)" if held else ""
        if len(shares) and n_par >= max(min(2, len(shares)), o.translating_windows * len(shares)):
            verdict = "translating"
            note = (f"the camera moves: {n_par} of {len(shares)} windows show parallax no rotation explains; "
                    "root motion stays in the camera's frame")
        elif max_deg < o.static_deg:
            verdict, R = "static", np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
            note = (f"static camera (turns at most {max_deg:.2f} deg)" if n > held + 1 else
                    "no background to follow: camera taken as static") + lost
        else:
            verdict = "rotating"
            yaw, pitch = optical_axis_angles(R)
            note = (f"the camera turns: pan {yaw.min():+.1f}..{yaw.max():+.1f} deg, tilt {pitch.min():+.1f}.."
                    f"{pitch.max():+.1f} deg, at most {max_deg:.1f} deg from frame 0") + lost
        if self._breaks:
            note += f"; tracking restarted {self._breaks} times"
        return CameraMotion(R, verdict, note, quality, rows[:, 10].astype(np.int64), rows[:, 11].copy(), shares,
                            max_deg)
