"""Backbone features of a dataset's frames, cached on disk in chunks.

STAF trains and evaluates on frozen ResNet-50 ``layer4`` maps, (2048, 7, 7) per frame (200 KB in
float16). ``build_features`` crops every db row's person box from its image, runs the backbone and
writes the maps in chunks of ``chunk_frames`` rows: ``chunk_000000.npy``, ... Each chunk is written
atomically, so an interrupted run leaves only whole chunks and a rerun computes just the missing
ones; memory holds one chunk at most. ``manifest.json`` records what the features are of (the db's
fingerprint and row count, the backbone file's digest, crop scale, dtype, chunking): a cache opened
for another db, or resumed with other settings, is refused with one line.

Reading (:class:`FeatureCache`) memory-maps the chunks (``allow_pickle=False``), so random access
to windows costs only the frames read.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_path
from core.camera import CROP_SCALE
from core.datasets.db import Db
from core.errors import BadInput

__all__ = [
    "FEATURE_SHAPE",
    "MANIFEST",
    "CacheManifest",
    "FeatureCache",
    "FeatureCacheWriter",
    "ImageLocator",
    "build_features",
    "crop_box",
    "crop_image",
    "file_digest",
]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
FEATURE_SHAPE = (2048, 7, 7)


@dataclass(frozen=True)
class CacheManifest:
    """What a cache holds: features of ``n_frames`` rows of the db with ``db_fingerprint``."""

    db_fingerprint: str
    n_frames: int
    chunk_frames: int
    dtype: str
    crop_scale: float
    backbone_digest: str
    db_path: str = ""
    dataset: str = ""
    version: int = FORMAT_VERSION

    @property
    def n_chunks(self) -> int:
        return -(-self.n_frames // self.chunk_frames)

    def chunk_rows(self, index: int) -> int:
        return min(self.chunk_frames, self.n_frames - index * self.chunk_frames)

    def differences(self, other: CacheManifest) -> list[str]:
        """Names of the settings that differ (the db's path and name are informative only)."""
        skip = {"db_path", "dataset"}
        mine, theirs = asdict(self), asdict(other)
        return [k for k in mine if k not in skip and mine[k] != theirs[k]]


def file_digest(path: Path) -> str:
    """SHA-256 (first 32 hex digits) of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


def _chunk_name(index: int) -> str:
    return f"chunk_{index:06d}.npy"


def _read_manifest(folder: Path) -> CacheManifest | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        fields = json.loads(path.read_text())
        return CacheManifest(**fields)
    except (OSError, ValueError, TypeError) as err:
        raise BadInput(f"{path}: not a feature-cache manifest ({type(err).__name__}); remove the folder and "
                       "rerun 'python -m core features'") from None


def _chunk_ok(path: Path, rows: int, dtype: str) -> bool:
    """Whether a chunk file exists with the header a complete chunk has (cheap: header only)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dt = read(fh)
            body = path.stat().st_size - fh.tell()
    except (OSError, ValueError):
        return False
    return shape == (rows, *FEATURE_SHAPE) and dt == np.dtype(dtype) and body == rows * dt.itemsize * 2048 * 49


class FeatureCacheWriter:
    """Writes a cache's chunks; knows which are still missing (for resuming)."""

    def __init__(self, folder: Path, manifest: CacheManifest) -> None:
        self.folder = Path(folder)
        self.manifest = manifest

    @classmethod
    def create(cls, folder: Path, manifest: CacheManifest, *, overwrite: bool = False) -> FeatureCacheWriter:
        """Start or resume a cache in ``folder``. An existing cache with other settings is refused
        (BadInput) unless ``overwrite``, which removes its chunks first."""
        folder = Path(folder)
        existing = _read_manifest(folder)
        if existing is not None and existing.differences(manifest):
            if not overwrite:
                raise BadInput(
                    f"{folder} holds features computed with other settings (differs in: "
                    f"{', '.join(existing.differences(manifest))}; made for {existing.db_path or 'another db'}); "
                    "choose another output folder or pass --overwrite"
                )
            for old in folder.glob("chunk_*.npy"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps(asdict(manifest), indent=1) + "\n")
        return cls(folder, manifest)

    def missing_chunks(self) -> list[int]:
        """Chunk numbers not yet written completely."""
        m = self.manifest
        return [i for i in range(m.n_chunks) if not _chunk_ok(self.folder / _chunk_name(i), m.chunk_rows(i), m.dtype)]

    def write_chunk(self, index: int, features: np.ndarray) -> None:
        """Write chunk ``index``: (rows, 2048, 7, 7), converted to the cache's dtype, atomically."""
        rows = self.manifest.chunk_rows(index)
        if features.shape != (rows, *FEATURE_SHAPE):
            raise ValueError(f"chunk {index} must be {(rows, *FEATURE_SHAPE)}, got {features.shape}")
        with atomic_path(self.folder / _chunk_name(index)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(features, dtype=self.manifest.dtype), allow_pickle=False)


class FeatureCache:
    """A complete cache, opened for reading (chunks memory-mapped)."""

    def __init__(self, folder: Path, manifest: CacheManifest) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        self._chunks: dict[int, np.ndarray] = {}

    @classmethod
    def open(cls, folder: Path, db: Db | None = None) -> FeatureCache:
        """Open ``folder``; with ``db``, check the cache was computed for exactly that db's rows.

        BadInput (one line) if the folder is not a cache, is incomplete, or belongs to another db.
        """
        folder = Path(folder)
        manifest = _read_manifest(folder)
        if manifest is None:
            raise BadInput(f"{folder}: no feature cache here ({MANIFEST} missing); compute it with "
                           "'python -m core features'")
        if manifest.version != FORMAT_VERSION:
            raise BadInput(f"{folder}: feature cache format {manifest.version}, expected {FORMAT_VERSION}; "
                           "recompute it")
        if db is not None and (manifest.db_fingerprint != db.fingerprint() or manifest.n_frames != len(db)):
            raise BadInput(
                f"{folder}: these features were computed for another db ({manifest.db_path or '?'}, "
                f"{manifest.n_frames} rows), not for {db.path} ({len(db)} rows); compute features for this db "
                "with 'python -m core features'"
            )
        missing = FeatureCacheWriter(folder, manifest).missing_chunks()
        if missing:
            raise BadInput(f"{folder}: feature cache incomplete ({len(missing)} of {manifest.n_chunks} chunks "
                           "missing); rerun 'python -m core features' with the same arguments to finish it")
        return cls(folder, manifest)

    def __len__(self) -> int:
        return self.manifest.n_frames

    def _chunk(self, index: int) -> np.ndarray:
        chunk = self._chunks.get(index)
        if chunk is None:
            chunk = np.load(self.folder / _chunk_name(index), mmap_mode="r", allow_pickle=False)
            self._chunks[index] = chunk
        return chunk

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Features of the given rows (K,) -> (K, 2048, 7, 7) float32."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside 0..{len(self) - 1}")
        out = np.empty((len(rows), *FEATURE_SHAPE), dtype=np.float32)
        size = self.manifest.chunk_frames
        for k, row in enumerate(rows.tolist()):
            out[k] = self._chunk(row // size)[row % size]
        return out

    def iter_rows(self, start: int, stop: int, step: int) -> Iterator[np.ndarray]:
        """Rows ``start .. stop - 1`` in blocks of at most ``step`` rows, float32 (n, 2048, 7, 7)."""
        size = self.manifest.chunk_frames
        row = start
        while row < stop:
            index, offset = divmod(row, size)
            n = min(step, stop - row, size - offset)
            yield np.array(self._chunk(index)[offset:offset + n], dtype=np.float32)
            row += n


# --------------------------------------------------------------------------------------------
# Computing features


class ImageLocator:
    """Finds a db row's image: the path as stored if it exists, else below ``root``.

    Preprocessed dbs store image paths of the machine that made them. Below ``root`` the locator
    tries the stored path's trailing components, longest first, and then keeps the number of
    components that worked.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self._keep: int | None = None

    def find(self, name: str) -> Path | None:
        stored = Path(name)
        if stored.is_absolute() and stored.is_file():
            return stored
        if self.root is None:
            return stored if stored.is_file() else None
        parts = stored.parts[1:] if stored.is_absolute() else stored.parts
        if self._keep is not None and self._keep <= len(parts):
            candidate = self.root.joinpath(*parts[len(parts) - self._keep:])
            if candidate.is_file():
                return candidate
        for keep in range(len(parts), 0, -1):
            candidate = self.root.joinpath(*parts[len(parts) - keep:])
            if candidate.is_file():
                self._keep = keep
                return candidate
        return None


def crop_box(box: np.ndarray, crop_scale: float) -> tuple[float, float, float]:
    """(cx, cy, w, h) -> the square crop (cx, cy, side), side = crop_scale * max(w, h)."""
    cx, cy, w, h = (float(v) for v in box)
    return cx, cy, crop_scale * max(w, h)


def crop_image(path: Path, box: np.ndarray, crop_scale: float) -> np.ndarray:
    """The network input (3, 224, 224) float32 for a box in an image file: the engine's crop
    (:func:`core.crops.crop_person`) and normalisation, so training and inference see the same."""
    import cv2

    from core.crops import crop_person, normalise

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadInput(f"{path}: not a readable image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return normalise(crop_person(rgb, np.asarray(box, dtype=np.float64), crop_scale=crop_scale)[None])[0].numpy()


def build_features(db: Db, out: Path, *, backbone: torch.nn.Module, backbone_digest: str, images: Path | None,
                   device: torch.device, crop_scale: float = CROP_SCALE, chunk_frames: int = 256, batch_size: int = 32,
                   dtype: str = "float16", workers: int = 4, overwrite: bool = False, progress: bool = True,
                   on_chunk: Callable[[int], None] | None = None) -> FeatureCache:
    """Compute (or finish) the feature cache of ``db`` in ``out``; returns it opened.

    Only chunks not already complete are computed. ``on_chunk(index)`` is called after each chunk
    is written (tests use it to interrupt a run).
    """
    if db.img_name is None:
        raise BadInput(f"{db.path}: no 'img_name' key: this db does not say which image each row is from")
    if chunk_frames < 1 or batch_size < 1:
        raise BadInput("--chunk-frames and --batch-size must be positive")
    if dtype not in ("float16", "float32"):
        raise BadInput(f"unknown feature dtype '{dtype}': use float16 or float32")
    manifest = CacheManifest(db.fingerprint(), len(db), chunk_frames, dtype, float(crop_scale), backbone_digest,
                             str(db.path), db.spec.name)
    writer = FeatureCacheWriter.create(out, manifest, overwrite=overwrite)
    todo = writer.missing_chunks()
    locator = ImageLocator(images)

    def load(row: int) -> np.ndarray:
        name = str(db.img_name[row])
        path = locator.find(name)
        if path is None:
            where = f"under {images}" if images is not None else "(pass --images DIR, the dataset's image folder)"
            raise BadInput(f"{db.path}: image of row {row} ('{name}') not found {where}")
        return crop_image(path, db.bbox[row], crop_scale)

    from tqdm import tqdm

    backbone = backbone.to(device).eval()
    bar = tqdm(total=len(db), initial=len(db) - sum(manifest.chunk_rows(i) for i in todo), unit="frame",
               desc="features", disable=None if progress else True, file=sys.stderr, dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool, torch.inference_mode():
            for index in todo:
                first = index * chunk_frames
                rows = range(first, first + manifest.chunk_rows(index))
                parts = []
                for b in range(0, len(rows), batch_size):
                    crops = np.stack(list(pool.map(load, rows[b:b + batch_size])))
                    feats = backbone(torch.from_numpy(crops).to(device))
                    parts.append(feats.to("cpu", torch.float32).numpy().astype(dtype))
                    bar.update(len(crops))
                writer.write_chunk(index, np.concatenate(parts))
                if on_chunk is not None:
                    on_chunk(index)
    finally:
        bar.close()
    return FeatureCache.open(out, db)
