"""Joint layouts of the preprocessed datasets and how to get them from an SMPL mesh.

Facts carried over from SPIN/VIBE/TCMR (whose preprocessed ``*_db.pt`` files we read):

- **SPIN's 49 joints**: 25 OpenPose BODY_25 joints, then 24 "ground-truth" joints whose entries
  25..38 are the 14 LSP/"common" joints (right ankle, right knee, right hip, left hip, left knee,
  left ankle, right wrist, right elbow, right shoulder, left shoulder, left elbow, left wrist,
  neck, head top). The training sets' ``joints2D``/``joints3D`` use it.
- **The 14 evaluation joints**: ``J_regressor_h36m`` (17 Human3.6M joints) applied to the mesh,
  rows :data:`H36M_TO_J14` -- the same 14 joints in the same order.
- From a mesh, SPIN's 49 come from SMPL's 24 joints, 11 mesh vertices (nose, eyes, ears, toes,
  heels; ids as in smplx's ``vertex_ids['smplh']``) and the 9 joints of ``J_regressor_extra``
  (right hip, left hip, neck, head top, pelvis, thorax, spine, jaw, head), mapped by
  :data:`SPIN49_FROM_BASE`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.errors import BadInput

__all__ = [
    "COMMON14_IN_SPIN49",
    "H36M_TO_J14",
    "N_COMMON",
    "N_SPIN",
    "SPIN49_FROM_BASE",
    "SpinJoints",
    "joints14_from_vertices",
    "to_common14",
    "to_spin49",
]

N_SPIN = 49
N_COMMON = 14
#: Rows of the 17 ``J_regressor_h36m`` joints that give the 14 evaluation joints.
H36M_TO_J14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
#: Where the 14 common joints sit among SPIN's 49.
COMMON14_IN_SPIN49 = tuple(range(25, 39))
#: Mesh vertices giving nose, right eye, left eye, right ear, left ear, left big toe, left small
#: toe, left heel, right big toe, right small toe, right heel (smplx's ``vertex_ids['smplh']``).
VERTEX_JOINTS = (332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787)
#: SPIN's 49 joints as rows of [SMPL's 24 joints, the 11 vertex joints, J_regressor_extra's 9].
SPIN49_FROM_BASE = (
    # OpenPose BODY_25
    24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
    # ground-truth joints: the 14 common ones, then pelvis, thorax, spine, jaw, head, nose, eyes, ears
    8, 5, 35, 36, 4, 7, 21, 19, 17, 16, 18, 20, 37, 38, 39, 40, 41, 42, 43, 24, 26, 25, 28, 27,
)


def to_spin49(joints: np.ndarray, *, what: str) -> np.ndarray:
    """A dataset's joints (N, J, C) in SPIN's 49 layout (N, 49, C); missing joints are zero.

    J = 49: unchanged; J = 14: the common joints; J = 17: Human3.6M's regressor order.
    ``what`` names the array in the error raised for any other J.
    """
    n, j, c = joints.shape
    if j == N_SPIN:
        return joints
    out = np.zeros((n, N_SPIN, c), dtype=joints.dtype)
    if j == N_COMMON:
        out[:, list(COMMON14_IN_SPIN49)] = joints
    elif j == 17:
        out[:, list(COMMON14_IN_SPIN49)] = joints[:, list(H36M_TO_J14)]
    else:
        raise BadInput(f"{what}: {j} joints per frame; expected 49 (SPIN), 17 (Human3.6M) or 14 (common)")
    return out


def to_common14(joints: np.ndarray, *, what: str) -> np.ndarray:
    """A dataset's joints (N, J, C), J in 49 / 17 / 14 -> the 14 evaluation joints (N, 14, C)."""
    return to_spin49(joints, what=what)[:, list(COMMON14_IN_SPIN49)]


def joints14_from_vertices(vertices: torch.Tensor, regressor_h36m: torch.Tensor) -> torch.Tensor:
    """The protocol's 14 joints of meshes: vertices (B, 6890, 3), regressor (17, 6890) -> (B, 14, 3)."""
    joints17 = torch.einsum("jv,bvc->bjc", regressor_h36m.to(vertices.dtype), vertices)
    return joints17[:, list(H36M_TO_J14)]


class SpinJoints(nn.Module):
    """SPIN's 49 joints of posed SMPL meshes, the layout the training labels use.

    Args:
        regressor_extra: ``J_regressor_extra.npy`` (9, 6890).
    """

    def __init__(self, regressor_extra: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        extra = torch.as_tensor(np.asarray(regressor_extra), dtype=torch.float32)
        if extra.shape != (9, 6890):
            raise ValueError(f"J_regressor_extra must be (9, 6890), got {tuple(extra.shape)}")
        self.register_buffer("regressor_extra", extra, persistent=False)
        self.register_buffer("vertex_ids", torch.tensor(VERTEX_JOINTS), persistent=False)
        self.register_buffer("index", torch.tensor(SPIN49_FROM_BASE), persistent=False)

    def forward(self, vertices: torch.Tensor, smpl_joints: torch.Tensor) -> torch.Tensor:
        """vertices (B, 6890, 3), SMPL joints (B, 24, 3) -> (B, 49, 3)."""
        extra = torch.einsum("jv,bvc->bjc", self.regressor_extra.to(vertices.dtype), vertices)
        base = torch.cat((smpl_joints, vertices[:, self.vertex_ids], extra), dim=1)
        return base[:, self.index]
