"""Training data: db files with their feature caches (stage 2) or images (stage 1), as batches.

Labels are converted once per source: 2D keypoints from pixels to the crop's coordinates [-1, 1]
(the square of side ``crop_scale * max(w, h)`` around the box centre, as the features were
cropped), joints to SPIN's 49 layout with a confidence column, and flags for which label kinds a
source has (2D-only datasets: no 3D joints and no SMPL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.datasets.db import Db, read_db
from core.datasets.joints import N_SPIN, to_spin49
from core.datasets.sampling import Pick
from core.errors import BadInput
from core.features_cache import FeatureCache, ImageLocator, crop_box, crop_image
from core.training.losses import Targets

__all__ = ["Batch", "BatchLoader", "Labels", "SourceSpec", "TrainSource", "open_source"]


@dataclass(frozen=True)
class SourceSpec:
    """A dataset as named on the command line: its name, db file, and feature cache (stage 2) or
    image folder (stage 1)."""

    dataset: str
    db: Path
    location: Path


@dataclass(frozen=True, eq=False)
class Labels:
    """Per-row labels of a source: kp2d (N, 49, 3) crop coordinates + confidence, kp3d (N, 49, 4)
    metres + confidence, pose (N, 72), shape (N, 10), has_3d, has_smpl (N,) bool."""

    kp2d: np.ndarray
    kp3d: np.ndarray
    pose: np.ndarray
    shape: np.ndarray
    has_3d: np.ndarray
    has_smpl: np.ndarray


@dataclass(frozen=True, eq=False)
class TrainSource:
    """One opened training dataset."""

    db: Db
    labels: Labels
    cache: FeatureCache | None
    images: ImageLocator | None
    crop_scale: float

    @property
    def is_2d(self) -> bool:
        return self.db.spec.kind == "2d"


def _labels(db: Db, crop_scale: float) -> Labels:
    n = len(db)
    kp2d = np.zeros((n, N_SPIN, 3), dtype=np.float32)
    if db.joints2d is not None:
        joints = to_spin49(db.joints2d, what=f"{db.path}: 'joints2D'")
        boxes = np.array([crop_box(b, crop_scale) for b in db.bbox], dtype=np.float32).reshape(n, 3)
        kp2d[..., :2] = (joints[..., :2] - boxes[:, None, :2]) / (boxes[:, None, 2:] / 2)
        kp2d[..., 2] = joints[..., 2]
    kp3d = np.zeros((n, N_SPIN, 4), dtype=np.float32)
    has_3d = np.zeros(n, dtype=bool)
    if db.spec.kind == "3d" and db.joints3d is not None:
        joints = to_spin49(db.joints3d, what=f"{db.path}: 'joints3D'")
        kp3d[..., :3] = joints[..., :3]
        kp3d[..., 3] = joints[..., 3] if joints.shape[-1] == 4 else np.abs(joints).sum(-1) > 0
        has_3d[:] = True
    has_smpl = np.full(n, db.has_smpl and db.spec.kind == "3d")
    pose = db.pose if db.pose is not None else np.zeros((n, 72), dtype=np.float32)
    shape = db.shape if db.shape is not None else np.zeros((n, 10), dtype=np.float32)
    return Labels(kp2d, kp3d, pose.astype(np.float32), shape.astype(np.float32), has_3d, has_smpl)


def open_source(spec: SourceSpec, *, stage: int, crop_scale: float) -> TrainSource:
    """Read the db and open its feature cache (stage 2: checked against the db) or image folder.

    In stage 2 the crop scale is the one the features were computed with.
    """
    db = read_db(spec.db, spec.dataset)
    if stage == 2:
        cache = FeatureCache.open(spec.location, db)
        return TrainSource(db, _labels(db, cache.manifest.crop_scale), cache, None, cache.manifest.crop_scale)
    if db.img_name is None:
        raise BadInput(f"{db.path}: no 'img_name' key: stage 1 needs the image of each row")
    if not Path(spec.location).is_dir():
        raise BadInput(f"{spec.location}: image folder not found")
    return TrainSource(db, _labels(db, crop_scale), None, ImageLocator(spec.location), crop_scale)


@dataclass(frozen=True, eq=False)
class Batch:
    """Network inputs -- stage 2: features (B, T, 2048, 7, 7); stage 1: crops (B, 3, 224, 224) --
    and the labels of each sample's supervised frame."""

    inputs: torch.Tensor
    targets: Targets


class BatchLoader:
    """Loads the windows a sampler picked: ``length`` rows each, supervised at row ``start + offset``.

    Args:
        sources: the opened datasets.
        length: rows per window (9 in stage 2, 1 in stage 1).
        workers: threads decoding images (stage 1).
    """

    def __init__(self, sources: list[TrainSource], *, length: int, workers: int = 4) -> None:
        self.sources = sources
        self.length = length
        self.offset = length // 2
        self._pool = ThreadPoolExecutor(max(1, workers)) if any(s.cache is None for s in sources) else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def _image(self, source: TrainSource, row: int) -> np.ndarray:
        name = str(source.db.img_name[row])
        path = source.images.find(name)
        if path is None:
            raise BadInput(f"{source.db.path}: image of row {row} ('{name}') not found under {source.images.root}")
        return crop_image(path, source.db.bbox[row], source.crop_scale)

    def load(self, picks: list[Pick]) -> Batch:
        """The batch of ``picks`` (inputs as float32 on the CPU)."""
        targets = [(self.sources[p.source], p.start + self.offset) for p in picks]
        if self.sources[picks[0].source].cache is not None:
            inputs = np.stack([self.sources[p.source].cache.gather(np.arange(p.start, p.start + self.length))
                               for p in picks])
        else:
            inputs = np.stack(list(self._pool.map(lambda t: self._image(*t), targets)))
        return Batch(torch.from_numpy(inputs), _stack(targets))


def _stack(rows: list[tuple[TrainSource, int]]) -> Targets:
    def take(field: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(source.labels, field)[row] for source, row in rows]))

    return Targets(take("kp2d"), take("kp3d"), take("pose"), take("shape"), take("has_3d"), take("has_smpl"))
