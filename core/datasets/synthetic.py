"""Tiny synthetic datasets in the real file formats, for tests and for trying the commands.

:func:`make_synthetic_db` writes a ``*_db.pt`` (joblib format) whose labels come from the asset
folder's body model: smooth random SMPL motion, its SPIN-49 3D joints and their projections
through a known crop camera into the person box, and optionally small images to crop.
:func:`write_random_features` fills a feature cache with seeded random maps instead of running the
backbone: with stand-in weights the features carry no meaning anyway, and a fixed random input per
frame makes a learnable task (the network can memorise frame -> labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.camera import CROP_SCALE
from core.datasets.db import Db, dataset_spec
from core.datasets.joblib_format import write_joblib
from core.features_cache import FEATURE_SHAPE, CacheManifest, FeatureCacheWriter
from core.model.geometry import project_to_crop

__all__ = ["make_synthetic_db", "write_random_features"]

def _motion(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth poses (frames, 72) and one shape (10,): sinusoids of small amplitude per joint."""
    t = np.arange(frames)[:, None] / 30.0
    amp = rng.uniform(0.05, 0.4, size=(1, 72))
    freq = rng.uniform(0.3, 1.2, size=(1, 72))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 72))
    pose = amp * np.sin(2 * np.pi * freq * t + phase)
    pose[:, :3] = [np.pi, 0.0, 0.0]  # upright in camera coordinates (y down), facing the camera
    pose[:, 3:] *= 0.5
    return pose.astype(np.float32), rng.normal(scale=0.5, size=10).astype(np.float32)


def make_synthetic_db(path: Path, assets: Path, *, dataset: str = "3dpw", sequences: tuple[int, ...] = (12, 10),
                      seed: int = 0, images: Path | None = None, joints3d: int = 49,
                      invalid_frames: tuple[int, ...] = ()) -> Path:
    """Write a synthetic db of ``dataset``'s kind with one track per entry of ``sequences`` (its
    length). ``images``: also write a small JPEG per row there (paths stored relative to it).
    ``joints3d``: 49 (SPIN layout) or 14 (common joints). Rows in ``invalid_frames`` get valid = 0.
    """
    import cv2

    from core.datasets.joints import COMMON14_IN_SPIN49, SpinJoints
    from core.smpl import load_body_model, load_joint_regressor

    spec = dataset_spec(dataset)
    rng = np.random.default_rng(seed)
    body = load_body_model(Path(assets))
    spin = SpinJoints(load_joint_regressor(Path(assets) / "J_regressor_extra.npy", 9))
    columns: dict[str, list[np.ndarray]] = {k: [] for k in
                                            ("vid_name", "frame_id", "img_name", "bbox", "joints2D", "joints3D",
                                             "pose", "shape")}
    for s, length in enumerate(sequences):
        pose, shape = _motion(rng, length)
        with torch.no_grad():
            out = body.forward_axis_angle(torch.from_numpy(shape).expand(length, 10), torch.from_numpy(pose))
            j49 = spin(out.vertices, out.joints)
            cam = torch.tensor([[0.9, 0.0, 0.1]]).expand(length, 3)
            uv = project_to_crop(j49, cam).numpy()  # crop coordinates in [-1, 1]
        centre = np.array([160.0, 120.0]) + rng.normal(scale=5.0, size=(length, 2))
        side = np.full(length, 200.0) + rng.normal(scale=3.0, size=length)
        pixels = centre[:, None] + uv * (side[:, None, None] / 2)
        name = f"synthetic_{s:02d}_0"
        columns["vid_name"].append(np.array([name] * length))
        columns["frame_id"].append(np.arange(length, dtype=np.int64))
        columns["img_name"].append(np.array([f"imageFiles/{name}/image_{i:05d}.jpg" for i in range(length)]))
        box_side = side / CROP_SCALE
        columns["bbox"].append(np.column_stack([centre, box_side, box_side]).astype(np.float32))
        columns["joints2D"].append(np.concatenate([pixels, np.ones((length, 49, 1))], -1).astype(np.float32))
        j3d = j49.numpy()
        columns["joints3D"].append(j3d if joints3d == 49 else j3d[:, list(COMMON14_IN_SPIN49)])
        columns["pose"].append(pose)
        columns["shape"].append(np.repeat(shape[None], length, 0))
    data = {k: np.concatenate(v) for k, v in columns.items()}
    n = len(data["vid_name"])
    valid = np.ones(n, dtype=np.int64)
    valid[list(invalid_frames)] = 0
    data["valid"] = valid
    if spec.kind == "2d":
        data = {k: data[k] for k in ("vid_name", "frame_id", "img_name", "bbox", "joints2D")}
    elif spec.name != "3dpw":
        data = {k: data[k] for k in ("vid_name", "frame_id", "img_name", "bbox", "joints2D", "joints3D", "valid")}
    if images is not None:
        for row, rel in enumerate(data["img_name"].tolist()):
            target = Path(images) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            picture = np.full((240, 320, 3), 40 + 10 * (row % 7), dtype=np.uint8)
            cx, cy = (int(v) for v in data["bbox"][row, :2])
            cv2.ellipse(picture, (cx, cy), (25, 70), 0, 0, 360, (200, 180, 160), -1)
            cv2.imwrite(str(target), picture)
    return write_joblib(data, Path(path))


def write_random_features(folder: Path, db: Db, *, seed: int = 0, chunk_frames: int = 8,
                          dtype: str = "float32") -> Path:
    """A complete feature cache for ``db`` holding seeded random non-negative maps (like ReLU output)."""
    rng = np.random.default_rng(seed)
    manifest = CacheManifest(db.fingerprint(), len(db), chunk_frames, dtype, CROP_SCALE, "synthetic-random",
                             str(db.path), db.spec.name)
    writer = FeatureCacheWriter.create(Path(folder), manifest, overwrite=True)
    for index in range(manifest.n_chunks):
        rows = manifest.chunk_rows(index)
        writer.write_chunk(index, np.abs(rng.normal(size=(rows, *FEATURE_SHAPE))).astype(np.float32))
    return Path(folder)
