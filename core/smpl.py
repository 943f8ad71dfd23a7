"""The SMPL body model (through ``smplx``) and the small SMPL-related asset files.

Everything read here is validated: a wrong file stops with one ``AssetInvalid`` line naming the
file, the key, the shape found and the shape expected. The original SMPL ``.pkl`` is read through
``core.safe_pickle`` (no code from the file runs); an ``.npz`` with the same key names works too.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import AssetInvalid, AssetMissing, BadInput
from core.npz_archive import NpzArchive, read_npy_file
from core.safe_pickle import ASSET_LIMITS
from core.skeleton import SMPL_JOINT_NAMES

__all__ = [
    "NUM_FACES",
    "NUM_JOINTS",
    "NUM_VERTICES",
    "SMPL_JOINT_NAMES",
    "BodyModel",
    "BodyOutput",
    "MeanParams",
    "SmplData",
    "load_body_model",
    "load_downsampling",
    "load_joint_regressor",
    "load_mean_params",
    "load_smpl_data",
    "smpl_file_candidates",
]

NUM_VERTICES = 6890
NUM_FACES = 13776
NUM_JOINTS = 24
NUM_BETAS = 10
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 207
NUM_SAMPLED_VERTICES = 431  # GraphCMR's second downsampling level (6890 -> 1723 -> 431)
NUM_MID_VERTICES = 1723


_GENDERS = ("neutral", "male", "female")
_REPLACE = "replace it with the original download"


def _invalid(path: Path, problem: str) -> AssetInvalid:
    return AssetInvalid(f"{path}: {problem}; {_REPLACE}.")


def _shape_error(path: Path, key: str, found: tuple[int, ...], expected: str) -> AssetInvalid:
    return _invalid(path, f"'{key}' has shape {found}, expected {expected}")


def _numeric(path: Path, key: str, value: Any, *, kinds: str = "biuf") -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise _invalid(path, f"'{key}' is a {type(value).__name__}, not an array")
    if value.dtype.kind not in kinds:
        raise _invalid(path, f"'{key}' holds {value.dtype} values, not numbers")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise _invalid(path, f"'{key}' contains NaN or infinite values")
    return value


# --------------------------------------------------------------------------------------------
# SMPL data


@dataclass(frozen=True, eq=False)
class SmplData:
    """SMPL's arrays, validated (float32 unless noted).

    v_template (6890, 3); faces (13776, 3) int64; shapedirs (6890, 3, 10); posedirs (6890, 3, 207);
    j_regressor (24, 6890) dense; lbs_weights (6890, 24); parents (24,) int64, root -1;
    joint_names: SMPL's 24 joint names in order.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    lbs_weights: np.ndarray
    parents: np.ndarray
    joint_names: tuple[str, ...] = SMPL_JOINT_NAMES


_SMPL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")


def _read_smpl_mapping(path: Path) -> Mapping[str, Any]:
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        from core.safe_pickle import load_pickle

        raw = load_pickle(path)
        if not isinstance(raw, dict):
            raise _invalid(path, f"holds a {type(raw).__name__}, not the dict of arrays of an SMPL model")
        return raw
    if suffix == ".npz":
        if not path.is_file():
            raise AssetMissing(f"{path} does not exist.")
        raw = _load_plain(path)
        if not isinstance(raw, dict):
            raise _invalid(path, "a single array, not an .npz of the SMPL model's arrays")
        return raw
    raise _invalid(path, "an SMPL model must be a .pkl (as downloaded) or an .npz of its arrays")


def _dense(path: Path, key: str, value: Any) -> np.ndarray:
    import scipy.sparse as sp

    if sp.issparse(value):
        value = value.toarray()
    return _numeric(path, key, value)


def load_smpl_data(path: Path) -> SmplData:
    """Read an SMPL model from the original ``.pkl`` (safely) or an ``.npz`` with the same keys.

    Keys: v_template, f, shapedirs, posedirs, J_regressor (sparse or dense), weights, kintree_table.
    Raises ``AssetInvalid`` naming the key, the shape found and the shape expected.
    """
    path = Path(path)
    raw = _read_smpl_mapping(path)
    missing = [key for key in _SMPL_KEYS if key not in raw]
    if missing:
        raise _invalid(path, f"not an SMPL model: key(s) {', '.join(repr(k) for k in missing)} missing")
    V, F, J = NUM_VERTICES, NUM_FACES, NUM_JOINTS

    v_template = _numeric(path, "v_template", raw["v_template"])
    if v_template.shape != (V, 3):
        raise _shape_error(path, "v_template", v_template.shape, f"({V}, 3)")

    faces = _numeric(path, "f", raw["f"], kinds="iu")
    if faces.shape != (F, 3):
        raise _shape_error(path, "f", faces.shape, f"({F}, 3)")
    if faces.min() < 0 or faces.max() >= V:
        raise _invalid(path, f"'f' has vertex indices outside 0..{V - 1}")

    shapedirs = _numeric(path, "shapedirs", raw["shapedirs"])
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (V, 3) or shapedirs.shape[2] < NUM_BETAS:
        raise _shape_error(path, "shapedirs", shapedirs.shape, f"({V}, 3, >={NUM_BETAS})")
    shapedirs = shapedirs[:, :, :NUM_BETAS]

    posedirs = _numeric(path, "posedirs", raw["posedirs"])
    if posedirs.shape == (NUM_POSE_BASIS, V * 3):  # smplx's flattened, transposed layout
        posedirs = posedirs.reshape(NUM_POSE_BASIS, V, 3).transpose(1, 2, 0)
    elif posedirs.shape != (V, 3, NUM_POSE_BASIS):
        raise _shape_error(
            path, "posedirs", posedirs.shape, f"({V}, 3, {NUM_POSE_BASIS}) or ({NUM_POSE_BASIS}, {V * 3})"
        )

    j_regressor = _dense(path, "J_regressor", raw["J_regressor"])
    if j_regressor.shape != (J, V):
        raise _shape_error(path, "J_regressor", j_regressor.shape, f"({J}, {V})")

    weights = _numeric(path, "weights", raw["weights"])
    if weights.shape != (V, J):
        raise _shape_error(path, "weights", weights.shape, f"({V}, {J})")

    kintree = _numeric(path, "kintree_table", raw["kintree_table"], kinds="iuf")
    if kintree.shape != (2, J):
        raise _shape_error(path, "kintree_table", kintree.shape, f"(2, {J})")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # the original stores 2**32 - 1 for the root
    if any(not 0 <= parents[i] < i for i in range(1, J)):
        raise _invalid(path, "'kintree_table' does not describe a joint tree (a parent after its child)")

    return SmplData(
        v_template=np.ascontiguousarray(v_template, dtype=np.float32),
        faces=np.ascontiguousarray(faces, dtype=np.int64),
        shapedirs=np.ascontiguousarray(shapedirs, dtype=np.float32),
        posedirs=np.ascontiguousarray(posedirs, dtype=np.float32),
        j_regressor=np.ascontiguousarray(j_regressor, dtype=np.float32),
        lbs_weights=np.ascontiguousarray(weights, dtype=np.float32),
        parents=parents,
    )


# --------------------------------------------------------------------------------------------
# Body model


@dataclass
class BodyOutput:
    """vertices (B, 6890, 3) and joints (B, 24, 3), in the model's metres, translated by ``transl``."""

    vertices: torch.Tensor
    joints: torch.Tensor


class BodyModel(torch.nn.Module):
    """SMPL as a torch module: a thin wrapper over ``smplx.SMPLLayer`` built from ``SmplData``.

    ``joints`` are smplx's first 24 joints: the joint locations regressed (``J_regressor``) from the
    shaped rest mesh and carried through the posed kinematic chain, i.e. the skeleton the mesh is
    skinned to (at zero pose: ``J_regressor @ v_template``).
    """

    def __init__(self, data: SmplData) -> None:
        super().__init__()
        import smplx
        from smplx.utils import Struct

        kintree = np.stack([data.parents, np.arange(NUM_JOINTS, dtype=np.int64)])
        struct = Struct(
            v_template=data.v_template,
            f=data.faces,
            shapedirs=data.shapedirs,
            posedirs=data.posedirs,
            J_regressor=data.j_regressor,
            weights=data.lbs_weights,
            kintree_table=kintree,
        )
        # smplx prints a warning about the 10 shape components on stdout: keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            self.layer = smplx.SMPLLayer(model_path="", data_struct=struct, num_betas=NUM_BETAS)
        self.faces: np.ndarray = data.faces
        self.parents: np.ndarray = data.parents
        self.joint_names: tuple[str, ...] = data.joint_names

    def forward(self, betas: torch.Tensor, rotmats: torch.Tensor, transl: torch.Tensor | None = None) -> BodyOutput:
        """betas (B, 10), rotmats (B, 24, 3, 3) (root first), transl (B, 3) or None -> BodyOutput."""
        if betas.ndim != 2 or betas.shape[1] != NUM_BETAS:
            raise ValueError(f"betas must be (B, {NUM_BETAS}), got {tuple(betas.shape)}")
        batch = betas.shape[0]
        if tuple(rotmats.shape) != (batch, NUM_JOINTS, 3, 3):
            raise ValueError(f"rotmats must be ({batch}, {NUM_JOINTS}, 3, 3), got {tuple(rotmats.shape)}")
        if transl is not None and tuple(transl.shape) != (batch, 3):
            raise ValueError(f"transl must be ({batch}, 3), got {tuple(transl.shape)}")
        # The body is evaluated in the model's own precision, also under mixed-precision autocast:
        # half precision would move vertices by millimetres.
        dtype = self.layer.v_template.dtype
        with torch.autocast(device_type=betas.device.type, enabled=False):
            out = self.layer(
                betas=betas.to(dtype),
                global_orient=rotmats[:, :1].to(dtype),
                body_pose=rotmats[:, 1:].to(dtype),
                transl=None if transl is None else transl.to(dtype),
            )
        return BodyOutput(vertices=out.vertices, joints=out.joints[:, :NUM_JOINTS])

    def posed_subset(self, betas: torch.Tensor, rotmats: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Posed vertices (B, len(index), 3) of the vertices ``index`` only, as :meth:`forward` poses them."""
        from core.model.mesh_points import SkinSubset

        # Like forward(): in the model's own precision, also under mixed-precision autocast.
        with torch.autocast(device_type=betas.device.type, enabled=False):
            subset = getattr(self, "_subset", None)
            if subset is None or subset.index.shape != index.shape or not torch.equal(subset.index, index.to(
                    subset.index.device)) or subset.v_template.dtype != self.layer.v_template.dtype:
                subset = self._subset = SkinSubset(self.layer, index)
            return subset(betas, rotmats)

    def forward_axis_angle(
        self, betas: torch.Tensor, pose_aa: torch.Tensor, transl: torch.Tensor | None = None
    ) -> BodyOutput:
        """betas (B, 10), pose_aa (B, 24, 3) axis-angle (or (B, 72)), transl (B, 3) or None."""
        from smplx.lbs import batch_rodrigues

        batch = pose_aa.shape[0]
        if pose_aa.numel() != batch * NUM_JOINTS * 3:
            raise ValueError(f"pose_aa must be (B, {NUM_JOINTS}, 3), got {tuple(pose_aa.shape)}")
        rotmats = batch_rodrigues(pose_aa.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
        return self.forward(betas, rotmats, transl)


def smpl_file_candidates(folder: Path, gender: str = "neutral") -> tuple[Path, Path]:
    """The files an SMPL model of ``gender`` may be in, in order: ``SMPL_<GENDER>.pkl``, ``.npz``."""
    stem = f"SMPL_{gender.upper()}"
    return Path(folder) / f"{stem}.pkl", Path(folder) / f"{stem}.npz"


def load_body_model(folder: Path, gender: str = "neutral") -> BodyModel:
    """Build the ``BodyModel`` of ``gender`` from ``folder/SMPL_<GENDER>.pkl`` (or ``.npz``)."""
    gender = gender.lower()
    if gender not in _GENDERS:
        raise BadInput(f"unknown body model gender '{gender}': use one of {', '.join(_GENDERS)}.")
    for path in smpl_file_candidates(folder, gender):
        if path.is_file():
            return BodyModel(load_smpl_data(path))
    pkl, npz = smpl_file_candidates(folder, gender)
    raise AssetMissing(
        f"{pkl} is missing (nor is there {npz.name}): download SMPL from https://smpl.is.tue.mpg.de "
        f"(see 'staf doctor' for which file) and save it there."
    )


# --------------------------------------------------------------------------------------------
# Small asset files


@dataclass(frozen=True, eq=False)
class MeanParams:
    """The regressors' starting point: pose (144,) as 24 6D rotations, shape (10,), cam (3,); float32."""

    pose: np.ndarray
    shape: np.ndarray
    cam: np.ndarray


def _load_plain(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    """An ``.npz`` (every array, as a dict) or a single ``.npy``, without pickles and with memory
    bounded by ``core.safe_pickle.ASSET_LIMITS`` whatever sizes the file declares."""
    path = Path(path)
    if not path.is_file():
        raise AssetMissing(f"{path} does not exist.")

    def fail(problem: str) -> AssetInvalid:
        return _invalid(path, f"not a readable numpy file of plain arrays ({problem})")

    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise fail(err.strerror or str(err)) from None
    if not is_zip:
        return read_npy_file(path, fail, ASSET_LIMITS.max_total_bytes)
    with NpzArchive(path, ASSET_LIMITS, fail) as archive:
        return {key: archive.read(key) for key in archive.arrays}


def load_mean_params(path: Path) -> MeanParams:
    """Read ``smpl_mean_params.npz``: keys pose (144,), shape (10,), cam (3,) -> float32 MeanParams."""
    path = Path(path)
    npz = _load_plain(path)
    if not isinstance(npz, dict):
        raise _invalid(path, "a single array, not an .npz with keys pose, shape, cam")
    expected = {"pose": (NUM_JOINTS * 6,), "shape": (NUM_BETAS,), "cam": (3,)}
    values: dict[str, np.ndarray] = {}
    for key, shape in expected.items():
        if key not in npz:
            raise _invalid(path, f"key '{key}' is missing (expected pose, shape, cam)")
        value = _numeric(path, key, npz[key], kinds="f")
        if value.shape != shape:
            raise _shape_error(path, key, value.shape, str(shape))
        values[key] = value.astype(np.float32)
    return MeanParams(**values)


def load_downsampling(path: Path) -> np.ndarray:
    """Read GraphCMR's ``mesh_downsampling.npz`` (safely) -> dense float32 ``D[1] @ D[0]`` (431, 6890)."""
    import scipy.sparse as sp

    from core.safe_pickle import load_npz_with_objects

    path = Path(path)
    arrays = load_npz_with_objects(path)
    if "D" not in arrays:
        raise _invalid(path, f"key 'D' is missing (found: {', '.join(sorted(arrays)) or 'nothing'})")
    levels = arrays["D"]
    if levels.dtype != object or levels.ndim != 1 or levels.shape[0] < 2:
        raise _invalid(path, f"'D' is a {levels.dtype} array of shape {levels.shape}, expected >= 2 sparse matrices")
    first, second = levels[0], levels[1]
    for i, (matrix, shape) in enumerate(
        ((first, (NUM_MID_VERTICES, NUM_VERTICES)), (second, (NUM_SAMPLED_VERTICES, NUM_MID_VERTICES)))
    ):
        if not sp.issparse(matrix) and not isinstance(matrix, np.ndarray):
            raise _invalid(path, f"'D[{i}]' is a {type(matrix).__name__}, not a matrix")
        if matrix.shape != shape:
            raise _shape_error(path, f"D[{i}]", tuple(matrix.shape), str(shape))
    dense = np.asarray((sp.csr_matrix(second) @ sp.csr_matrix(first)).toarray(), dtype=np.float32)
    if not np.isfinite(dense).all():
        raise _invalid(path, "'D' contains NaN or infinite values")
    return dense


def load_joint_regressor(path: Path, rows: int) -> np.ndarray:
    """Read a ``J_regressor_*.npy`` -> float32 (rows, 6890), loaded with ``allow_pickle=False``."""
    path = Path(path)
    value = _load_plain(path)
    if not isinstance(value, np.ndarray):
        raise _invalid(path, "an .npz archive, expected a single .npy array")
    value = _numeric(path, path.stem, value, kinds="f")
    if value.shape != (rows, NUM_VERTICES):
        raise _shape_error(path, path.stem, value.shape, f"({rows}, {NUM_VERTICES})")
    return value.astype(np.float32)
