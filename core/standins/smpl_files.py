"""Write the stand-in body (``core.standins.body``) as the SMPL-related files a user downloads.

Each file has the real file's format, so loading them runs the same code as the real files and the
real files replace them without code changes:

- ``SMPL_{NEUTRAL,MALE,FEMALE}.pkl``: laid out like the original SMPL v1.0 pickles: a dict whose
  arrays are pickled as chumpy objects (class ``chumpy.ch.Ch``, state dict holding the array under
  ``'x'``) and whose ``J_regressor`` is a scipy sparse matrix under scipy's old module name
  ``scipy.sparse.csc``; pickle protocol 2. chumpy is not installed (it no longer installs): those
  class references are written through stand-in classes registered in ``sys.modules`` only for
  the duration of the dump (see ``_legacy_modules``).
- ``J_regressor_extra.npy`` (9, 6890) and ``J_regressor_h36m.npy`` (17, 6890), float64.
- ``smpl_mean_params.npz``: ``pose`` (144,) as 24 6D rotations, ``shape`` (10,), ``cam`` (3,).
- ``mesh_downsampling.npz``: GraphCMR's object arrays ``A``, ``U``, ``D`` of sparse matrices
  (6890 -> 1723 -> 431 vertices), pickled with scipy's old module names as in the original.

Every file is written atomically (a temporary file in the same folder, then renamed over).
"""

from __future__ import annotations

import contextlib
import copyreg
import dataclasses
import pickle
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from core.atomic import atomic_path
from core.standins.body import NUM_BETAS, NUM_JOINTS, NUM_VERTICES, StandInBody, make_body

__all__ = [
    "DOWNSAMPLED_VERTICES",
    "SMPL_ASSET_NAMES",
    "mean_params",
    "mesh_downsampling",
    "write_mean_params",
    "write_mesh_downsampling",
    "write_smpl_assets",
    "write_smpl_npz",
    "write_smpl_pickle",
]

#: Files ``write_smpl_assets`` writes, in order.
SMPL_ASSET_NAMES: tuple[str, ...] = (
    "SMPL_NEUTRAL.pkl",
    "SMPL_MALE.pkl",
    "SMPL_FEMALE.pkl",
    "J_regressor_extra.npy",
    "J_regressor_h36m.npy",
    "smpl_mean_params.npz",
    "mesh_downsampling.npz",
)

#: Vertex counts of GraphCMR's downsampling levels.
DOWNSAMPLED_VERTICES: tuple[int, ...] = (NUM_VERTICES, 1723, 431)

# The original files store 2**32 - 1 as the root's parent in kintree_table.
_ROOT_PARENT = 4294967295

# Gendered variants: the neutral body moved along its own shape directions (taller and broader /
# shorter with wider hips), like the real models' differing templates.
_GENDER_BETAS = {
    "NEUTRAL": np.zeros(NUM_BETAS),
    "MALE": np.array([0.9, 0.3, 0.9, 0.3, 0.0, -0.3, 0.2, 0.4, 0.3, 0.2]),
    "FEMALE": np.array([-0.9, -0.3, -0.8, -0.2, 0.0, 0.8, -0.3, -0.4, 0.2, -0.2]),
}


# ============================================================================================
# Pickling under module names that are not importable here


class _LegacyObject:
    """An object that pickles (protocol >= 2) as ``NEWOBJ`` of its class, then ``BUILD`` with ``state``.

    Subclasses are made per dump by ``_legacy_modules`` with the foreign module and class name.
    """

    __slots__ = ("state",)

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:
        return (copyreg.__newobj__, (type(self),), self.state)


_LEGACY_LOCK = threading.Lock()
_MISSING = object()


@contextlib.contextmanager
def _legacy_modules(*names: tuple[str, str]) -> Iterator[dict[tuple[str, str], type[_LegacyObject]]]:
    """Register classes ``module.name`` (e.g. ``chumpy.ch.Ch``) for the duration of a dump.

    Pickle writes a class as a reference to its module and name, and checks the reference by
    looking the module up in ``sys.modules``. This installs throwaway modules holding stand-in
    classes (parents too, where absent), yields ``{(module, name): class}``, and afterwards puts
    ``sys.modules`` back exactly as it was (entries replaced are restored, added ones removed),
    also when the dump fails.
    """
    with _LEGACY_LOCK:
        saved: dict[str, Any] = {}
        try:
            modules: dict[str, types.ModuleType] = {}
            classes: dict[tuple[str, str], type[_LegacyObject]] = {}
            for module_name, class_name in names:
                parts = module_name.split(".")
                for depth in range(1, len(parts) + 1):
                    name = ".".join(parts[:depth])
                    leaf = depth == len(parts)
                    if name in modules or (not leaf and name in sys.modules):
                        continue
                    module = types.ModuleType(name, "stand-in module used while writing a legacy pickle")
                    if not leaf:
                        module.__path__ = []
                    saved.setdefault(name, sys.modules.get(name, _MISSING))
                    sys.modules[name] = modules[name] = module
                cls = type(class_name, (_LegacyObject,), {"__module__": module_name, "__qualname__": class_name,
                                                          "__slots__": ()})
                setattr(modules[module_name], class_name, cls)
                classes[(module_name, class_name)] = cls
            yield classes
        finally:
            for name, previous in saved.items():
                if previous is _MISSING:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = previous


_CHUMPY = ("chumpy.ch", "Ch")
_CSC = ("scipy.sparse.csc", "csc_matrix")
_COO = ("scipy.sparse.coo", "coo_matrix")


def _chumpy(classes: dict[tuple[str, str], type[_LegacyObject]], array: np.ndarray) -> _LegacyObject:
    """A ``chumpy.ch.Ch`` holding ``array``, with the state a pickled chumpy array has."""
    return classes[_CHUMPY]({
        "x": np.ascontiguousarray(array, dtype=np.float64),
        "_dirty_vars": {"x"},
        "_itr": None,
        "_make_dense": False,
        "_make_sparse": False,
        "_depends_on_deps": {},
    })


def _legacy_csc(classes: dict[tuple[str, str], type[_LegacyObject]], matrix: Any) -> _LegacyObject:
    """A ``scipy.sparse.csc.csc_matrix`` with the fields old scipy pickled."""
    m = sp.csc_matrix(matrix)
    m.sort_indices()
    return classes[_CSC]({
        "_shape": (int(m.shape[0]), int(m.shape[1])),
        "maxprint": 50,
        "indptr": m.indptr.astype(np.int32),
        "indices": m.indices.astype(np.int32),
        "data": m.data.astype(np.float64),
    })


def _legacy_coo(classes: dict[tuple[str, str], type[_LegacyObject]], matrix: Any) -> _LegacyObject:
    """A ``scipy.sparse.coo.coo_matrix`` with the fields old scipy pickled (``row``/``col``)."""
    m = sp.coo_matrix(matrix)
    m.sum_duplicates()
    return classes[_COO]({
        "_shape": (int(m.shape[0]), int(m.shape[1])),
        "maxprint": 50,
        "row": m.row.astype(np.int32),
        "col": m.col.astype(np.int32),
        "data": m.data.astype(np.float64),
        "has_canonical_format": True,
    })


# ============================================================================================
# SMPL model files


def _gendered(body: StandInBody, gender: str) -> StandInBody:
    """The body with its template moved along its shape directions for ``gender``."""
    v_template = body.v_template + body.shapedirs @ _GENDER_BETAS[gender]
    v_template.setflags(write=False)
    joints = body.j_regressor @ v_template
    joints.setflags(write=False)
    return dataclasses.replace(body, v_template=v_template, joints=joints)


def _kintree_table(body: StandInBody) -> np.ndarray:
    parents = body.parents.astype(np.int64)
    parents[0] = _ROOT_PARENT
    return np.stack([parents, np.arange(NUM_JOINTS, dtype=np.int64)])


def write_smpl_pickle(path: Path, body: StandInBody) -> Path:
    """Write ``body`` as an original-style SMPL pickle (protocol 2; see the module docstring).

    Keys: v_template, weights, posedirs, shapedirs, J (chumpy objects); J_regressor and
    J_regressor_prior (``scipy.sparse.csc.csc_matrix``); kintree_table (2, 24) int64 with
    4294967295 as the root's parent; f (13776, 3) uint32; weights_prior; bs_type 'lrotmin';
    bs_style 'lbs'.
    """
    path = Path(path)
    with _legacy_modules(_CHUMPY, _CSC) as classes:
        model = {
            "J_regressor_prior": _legacy_csc(classes, body.j_regressor),
            "f": body.faces.astype(np.uint32),
            "J_regressor": _legacy_csc(classes, body.j_regressor),
            "kintree_table": _kintree_table(body),
            "J": _chumpy(classes, body.joints),
            "weights_prior": np.array(body.lbs_weights, dtype=np.float64),
            "weights": _chumpy(classes, body.lbs_weights),
            "posedirs": _chumpy(classes, body.posedirs),
            "bs_style": "lbs",
            "v_template": _chumpy(classes, body.v_template),
            "shapedirs": _chumpy(classes, body.shapedirs),
            "bs_type": "lrotmin",
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(model, fh, protocol=2)
    return path


def write_smpl_npz(path: Path, body: StandInBody) -> Path:
    """Write ``body`` as an ``.npz`` of plain arrays with the pickle's key names (readable with
    ``allow_pickle=False``): v_template, weights, posedirs, shapedirs, J_regressor (dense), J,
    kintree_table, f, bs_type, bs_style."""
    path = Path(path)
    arrays = {
        "v_template": np.asarray(body.v_template, dtype=np.float64),
        "weights": np.asarray(body.lbs_weights, dtype=np.float64),
        "posedirs": np.asarray(body.posedirs, dtype=np.float64),
        "shapedirs": np.asarray(body.shapedirs, dtype=np.float64),
        "J_regressor": body.j_regressor.toarray(),
        "J": np.asarray(body.joints, dtype=np.float64),
        "kintree_table": _kintree_table(body),
        "f": body.faces.astype(np.uint32),
        "bs_type": np.array("lrotmin"),
        "bs_style": np.array("lbs"),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


# ============================================================================================
# Mean parameters


def _rotation_matrices(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: (N, 3) axis-angle -> (N, 3, 3) rotation matrices."""
    angle = np.linalg.norm(axis_angle, axis=1)
    axis = axis_angle / np.where(angle > 0, angle, 1.0)[:, None]
    x, y, z = axis.T
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3)[None] + s * k + (1.0 - c) * (k @ k)


def mean_params(seed: int = 0) -> dict[str, np.ndarray]:
    """The regressors' starting point, as in ``smpl_mean_params.npz`` (float64).

    pose (144,): 24 rotations in the 6D representation, per joint the first two columns of its
    rotation matrix as the 3x2 matrix flattened row by row [r00, r01, r10, r11, r20, r21]; the root
    is a half turn about x (image-based methods' camera space has y down), the other joints are
    within a few degrees of identity (seeded). shape (10,): small seeded values. cam (3,):
    [0.9, 0, 0].
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3EA9]))
    axis_angle = rng.normal(0.0, 0.05, size=(NUM_JOINTS, 3))
    rotations = _rotation_matrices(axis_angle)
    rotations[0] = np.diag([1.0, -1.0, -1.0])  # half turn about x
    return {
        "pose": rotations[:, :, :2].reshape(-1).astype(np.float64),
        "shape": rng.normal(0.0, 0.1, size=NUM_BETAS),
        "cam": np.array([0.9, 0.0, 0.0]),
    }


def write_mean_params(path: Path, seed: int = 0) -> Path:
    """Write ``mean_params(seed)`` as ``smpl_mean_params.npz`` (keys pose, shape, cam)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **mean_params(seed))
    return path


# ============================================================================================
# Mesh downsampling


def _farthest_points(points: np.ndarray, count: int, start: int) -> np.ndarray:
    """Indices of ``count`` well-spread points: greedy farthest-point sampling from ``start``."""
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = start
    dist = np.linalg.norm(points - points[start], axis=1)
    for k in range(1, count):
        chosen[k] = int(np.argmax(dist))
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[k]], axis=1))
    return chosen


def _selection(rows: np.ndarray, n_cols: int) -> sp.csc_matrix:
    """(len(rows), n_cols) matrix whose row i picks column rows[i]."""
    n = len(rows)
    return sp.csc_matrix((np.ones(n), (np.arange(n), rows)), shape=(n, n_cols))


def _nearest_copy(fine: np.ndarray, coarse: np.ndarray) -> sp.csc_matrix:
    """(len(fine), len(coarse)) upsampling: each fine point copies its nearest coarse point."""
    _, nearest = cKDTree(coarse).query(fine)
    return _selection(np.asarray(nearest, dtype=np.int64), len(coarse))


def _knn_adjacency(points: np.ndarray, k: int = 8) -> sp.coo_matrix:
    """Symmetric 0/1 adjacency linking each point to its k nearest neighbours."""
    _, nbr = cKDTree(points).query(points, k=k + 1)
    rows = np.repeat(np.arange(len(points)), k)
    adj = sp.coo_matrix((np.ones(rows.size), (rows, nbr[:, 1:].ravel())), shape=(len(points),) * 2).tocsr()
    return sp.coo_matrix((adj + adj.T > 0).astype(np.float64))


def _mesh_adjacency(faces: np.ndarray, n: int) -> sp.coo_matrix:
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adj = sp.coo_matrix((np.ones(i.size), (i, j)), shape=(n, n)).tocsr()
    return sp.coo_matrix((adj + adj.T > 0).astype(np.float64))


def mesh_downsampling(body: StandInBody, seed: int = 0) -> dict[str, list[Any]]:
    """GraphCMR-style sampling matrices for ``body`` (scipy sparse).

    D: [(1723, 6890), (431, 1723)] one-hot rows picking farthest-point-sampled vertices, so
    ``D[1] @ D[0]`` picks 431 vertices spread over the whole body; U: [(6890, 1723), (1723, 431)],
    each finer vertex copying its nearest coarser one; A: adjacency of the three levels (the mesh's
    edges, then 8-nearest-neighbour graphs).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD0A5]))
    levels = [np.asarray(body.v_template)]
    down, up = [], []
    for count in DOWNSAMPLED_VERTICES[1:]:
        points = levels[-1]
        picked = _farthest_points(points, count, start=int(rng.integers(len(points))))
        down.append(_selection(picked, len(points)))
        up.append(_nearest_copy(points, points[picked]))
        levels.append(points[picked])
    adjacency = [_mesh_adjacency(body.faces, NUM_VERTICES)] + [_knn_adjacency(p) for p in levels[1:]]
    return {"A": adjacency, "U": up, "D": down}


def _object_array(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def write_mesh_downsampling(path: Path, body: StandInBody, seed: int = 0) -> Path:
    """Write ``mesh_downsampling(body, seed)`` as ``mesh_downsampling.npz``: object arrays A (coo
    matrices), U and D (csc matrices), pickled under scipy's old module names like the original."""
    path = Path(path)
    matrices = mesh_downsampling(body, seed)
    with _legacy_modules(_CSC, _COO) as classes:
        arrays = {
            "A": _object_array([_legacy_coo(classes, m) for m in matrices["A"]]),
            "U": _object_array([_legacy_csc(classes, m) for m in matrices["U"]]),
            "D": _object_array([_legacy_csc(classes, m) for m in matrices["D"]]),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


# ============================================================================================
# Everything


def _write_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path


def write_smpl_assets(folder: Path, seed: int = 0) -> list[Path]:
    """Write every SMPL-related stand-in file (``SMPL_ASSET_NAMES``) into ``folder`` (created if
    needed) for ``make_body(seed)``; returns their paths in that order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    body = make_body(seed)
    paths = [write_smpl_pickle(folder / f"SMPL_{gender}.pkl", _gendered(body, gender))
             for gender in ("NEUTRAL", "MALE", "FEMALE")]
    paths.append(_write_npy(folder / "J_regressor_extra.npy", np.asarray(body.j_regressor_extra, dtype=np.float64)))
    paths.append(_write_npy(folder / "J_regressor_h36m.npy", np.asarray(body.j_regressor_h36m, dtype=np.float64)))
    paths.append(write_mean_params(folder / "smpl_mean_params.npz", seed))
    paths.append(write_mesh_downsampling(folder / "mesh_downsampling.npz", body, seed))
    return paths
