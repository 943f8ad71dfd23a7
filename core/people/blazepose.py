"""BlazePose's two networks run directly (LiteRT), so that every person in a frame can be found.

mediapipe's legacy Pose solution follows one person; its wheel, though, ships the two models it
chains: a person detector (``pose_detection.tflite``, 224 x 224, SSD anchors, 4 alignment
keypoints) and a landmark model (``pose_landmark_full.tflite``, 256 x 256 crops of a rotated
square region of interest, 33 landmarks + 2 alignment points, world landmarks in metres, a
presence score). Running them ourselves lets us detect on tiles, follow any number of regions and
decide identities in our own tracker. Pre- and post-processing follow the published graph settings
of mediapipe's pose modules (input ranges, anchors, NMS, ROI margins).

Coordinates are continuous pixels of the analysed image: the centre of pixel (i, j) is (i + 0.5, j + 0.5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import AssetMissing

__all__ = ["LandmarkModel", "PersonDetectorModel", "Roi", "RoiLandmarks", "model_paths"]

_DETECTOR_SIZE = 224
_LANDMARK_SIZE = 256
_ROI_MARGIN = 1.25  # the region around the alignment points the landmark model was trained on
_NMS_IOU = 0.3
_PRESENCE_MIN = 0.5


@dataclass(frozen=True)
class Roi:
    """A rotated square region: centre (cx, cy), side ``size`` (pixels), ``rotation`` (radians, the
    person's up direction turned by this much from the image's up)."""

    cx: float
    cy: float
    size: float
    rotation: float

    def corners_box(self) -> np.ndarray:
        """The axis-aligned box (x0, y0, x1, y1) around the rotated square."""
        half = 0.5 * self.size * (abs(np.cos(self.rotation)) + abs(np.sin(self.rotation)))
        return np.array([self.cx - half, self.cy - half, self.cx + half, self.cy + half])


@dataclass(frozen=True)
class RoiLandmarks:
    """The landmark model's answer for one region.

    presence: probability that a person is in the region. landmarks (33, 4): x, y (pixels), z
    (pixels, relative to the hips, towards the camera negative), visibility in [0, 1].
    world (33, 3): metres, origin between the hips, image axes (x right, y down).
    next_roi: the region for the next frame, from the model's two alignment points.
    """

    presence: float
    landmarks: np.ndarray
    world: np.ndarray
    next_roi: Roi


def model_paths() -> tuple[Path, Path]:
    """The detector and landmark model files inside the installed mediapipe wheel."""
    try:
        import mediapipe
    except ImportError:  # pragma: no cover - a broken install
        raise AssetMissing("the mediapipe package is not installed; reinstall the engine (pip install -e .)") from None
    root = Path(mediapipe.__file__).parent / "modules"
    paths = (root / "pose_detection" / "pose_detection.tflite", root / "pose_landmark" / "pose_landmark_full.tflite")
    for p in paths:
        if not p.is_file():
            raise AssetMissing(f"{p}: BlazePose model missing from the mediapipe wheel; mediapipe==0.10.21 ships it")
    return paths


def _interpreter(path: Path, threads: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ai_edge_litert.interpreter import Interpreter

    from core.people.quiet import quiet_stderr

    with quiet_stderr():  # the runtime announces its XNNPACK delegate on stderr (at the first run)
        interp = Interpreter(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
        interp.invoke()
    return interp


def _ssd_anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1] of the detector's input: feature maps 28, 14 and 7 (three
    stride-32 layers merged), 2 anchors per cell per layer; anchor sizes are fixed at 1."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        n = _DETECTOR_SIZE // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box against (K, 4) boxes."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-12)


def _weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                  iou: float = _NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Blend overlapping detections (score-weighted mean of boxes and keypoints; the best score kept)."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou(boxes[i], boxes) > iou)
        group[i] = True
        w = scores[group] / scores[group].sum()
        out.append(((w[:, None] * boxes[group]).sum(0), (w[:, None, None] * keypoints[group]).sum(0),
                    float(scores[i])))
        alive &= ~group
    return out


def roi_from_alignment(centre: np.ndarray, scale_point: np.ndarray) -> Roi:
    """The landmark model's region from two alignment points (hips centre, full-body scale point)."""
    dx, dy = scale_point - centre
    rotation = float(np.pi / 2 - np.arctan2(-dy, dx))
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    return Roi(float(centre[0]), float(centre[1]), float(2 * np.hypot(dx, dy) * _ROI_MARGIN), rotation)


class PersonDetectorModel:
    """BlazePose's person detector on one image (or tile): regions of every person it sees."""

    def __init__(self, path: Path, *, threads: int = 1, min_score: float = 0.5) -> None:
        self._interp = _interpreter(path, threads)
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: d["shape"][-1], reverse=True)
        self._raw, self._logits = outputs[0]["index"], outputs[1]["index"]
        self._anchors = _ssd_anchors()
        self.min_score = min_score

    def __call__(self, rgb: np.ndarray, offset: tuple[float, float] = (0.0, 0.0)) -> list[tuple[Roi, float]]:
        """Regions (with detection scores) of the people in an RGB image (H, W, 3) uint8; ``offset``
        is added to every coordinate (for tiles cut out of a larger frame)."""
        h, w = rgb.shape[:2]
        scale = _DETECTOR_SIZE / max(h, w)
        pad_x, pad_y = (_DETECTOR_SIZE - w * scale) / 2, (_DETECTOR_SIZE - h * scale) / 2
        m = np.array([[scale, 0, pad_x + 0.5 * scale - 0.5], [0, scale, pad_y + 0.5 * scale - 0.5]])
        inp = cv2.warpAffine(rgb, m, (_DETECTOR_SIZE, _DETECTOR_SIZE), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        x = inp.astype(np.float32)[None] * (2 / 255) - 1
        self._interp.set_tensor(self._input, x)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._raw)[0]
        logits = np.clip(self._interp.get_tensor(self._logits)[0, :, 0].astype(np.float64), -100, 100)
        scores = 1 / (1 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        raw, scores, anchors = raw[keep].astype(np.float64), scores[keep], self._anchors[keep]
        centre = raw[:, 0:2] / _DETECTOR_SIZE + anchors
        half = raw[:, 2:4] / _DETECTOR_SIZE / 2
        boxes = np.concatenate([centre - half, centre + half], 1)
        keypoints = raw[:, 4:12].reshape(-1, 4, 2) / _DETECTOR_SIZE + anchors[:, None]
        found = []
        for _box, kps, score in _weighted_nms(boxes, keypoints, scores):
            px = (kps * _DETECTOR_SIZE - [pad_x, pad_y]) / scale + offset  # input pixels -> image pixels
            found.append((roi_from_alignment(px[0], px[1]), score))
        return found


class LandmarkModel:
    """BlazePose's landmark model (full) on a region of interest of an image."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        self._interp = _interpreter(path, threads)
        self._input = self._interp.get_input_details()[0]["index"]
        by_size = {int(np.prod(d["shape"])): d["index"] for d in self._interp.get_output_details()}
        self._landmarks, self._presence, self._world = by_size[195], by_size[1], by_size[117]

    def __call__(self, rgb: np.ndarray, roi: Roi) -> RoiLandmarks | None:
        """Landmarks of the person in ``roi`` of an RGB image, or None when the model sees nobody."""
        c, s = np.cos(roi.rotation), np.sin(roi.rotation)
        a = np.array([[c, -s], [s, c]]) * (roi.size / _LANDMARK_SIZE)  # crop pixels -> image pixels
        b = np.array([roi.cx, roi.cy]) - a @ np.full(2, _LANDMARK_SIZE / 2)
        # warpAffine works on pixel indices (centres at integers): shift both sides by half a pixel.
        inv = np.concatenate([a, (b + a @ np.full(2, 0.5) - 0.5)[:, None]], 1)
        crop = cv2.warpAffine(rgb, inv, (_LANDMARK_SIZE, _LANDMARK_SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        self._interp.set_tensor(self._input, crop.astype(np.float32)[None] * (1 / 255))
        self._interp.invoke()
        presence = float(self._interp.get_tensor(self._presence).ravel()[0])
        if presence < _PRESENCE_MIN:
            return None
        raw = self._interp.get_tensor(self._landmarks).reshape(39, 5).astype(np.float64)
        xy = raw[:, :2] @ a.T + b
        z = raw[:, 2] * (roi.size / _LANDMARK_SIZE)
        visibility = 1 / (1 + np.exp(-np.clip(raw[:, 3], -50, 50)))
        world = self._interp.get_tensor(self._world).reshape(39, 3).astype(np.float64)
        world[:, :2] = world[:, :2] @ np.array([[c, -s], [s, c]]).T
        landmarks = np.concatenate([xy, z[:, None], visibility[:, None]], 1)
        return RoiLandmarks(presence, landmarks[:33], world[:33], roi_from_alignment(xy[33], xy[34]))
