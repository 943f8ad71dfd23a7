"""Posed positions of just the mesh vertices STAF samples at (431 of SMPL's 6890).

Stages 1 and 2 sample the decoder maps where the 431-vertex downsampled mesh projects. The
downsampling matrix (GraphCMR's, 431 x 6890) picks one vertex per row, so skinning only the
vertices it reads gives the same points for a sixteenth of the work; the joints still come from
the whole shaped mesh (their regression is linear in the shape, so it is precomputed). Nine such
meshes are posed per window, which made skinning a large share of STAF's time on a CPU.
"""

from __future__ import annotations

import torch
from smplx.lbs import batch_rigid_transform

__all__ = ["SkinSubset", "support_of"]

_MOST = 0.5  # a downsampling that reads more of the mesh than this gains nothing from a subset


def support_of(dmap: torch.Tensor) -> torch.Tensor | None:
    """The vertex indices a downsampling matrix (P, V) reads, or None when it reads most of them."""
    index = torch.nonzero(dmap.ne(0).any(0)).flatten()
    return index if index.numel() <= _MOST * dmap.shape[1] else None


class SkinSubset:
    """SMPL's linear blend skinning (as ``smplx.lbs`` computes it) for vertices ``index`` only.

    ``layer`` is the ``smplx.SMPLLayer`` of a :class:`core.smpl.BodyModel`.
    """

    def __init__(self, layer, index: torch.Tensor) -> None:
        index = index.to(layer.v_template.device)
        n = layer.v_template.shape[0]
        self.index = index
        self.v_template = layer.v_template[index]  # (S, 3)
        self.shapedirs = layer.shapedirs[index]  # (S, 3, 10)
        posedirs = layer.posedirs.reshape(layer.posedirs.shape[0], n, 3)
        self.posedirs = posedirs[:, index].reshape(posedirs.shape[0], -1)  # (207, S*3)
        self.weights = layer.lbs_weights[index]  # (S, 24)
        jreg = layer.J_regressor  # (24, V)
        self.j_template = jreg @ layer.v_template  # (24, 3)
        self.j_shapedirs = torch.einsum("jv,vck->jck", jreg, layer.shapedirs)  # (24, 3, 10)
        self.parents = layer.parents

    def __call__(self, betas: torch.Tensor, rotmats: torch.Tensor) -> torch.Tensor:
        """betas (B, 10), rotmats (B, 24, 3, 3) -> posed vertices (B, S, 3), no translation."""
        b = betas.shape[0]
        dtype = self.v_template.dtype
        betas, rotmats = betas.to(dtype), rotmats.to(dtype)
        v_shaped = self.v_template + torch.einsum("bk,sck->bsc", betas, self.shapedirs)
        joints = self.j_template + torch.einsum("bk,jck->bjc", betas, self.j_shapedirs)
        eye = torch.eye(3, dtype=dtype, device=betas.device)
        pose_feature = (rotmats[:, 1:] - eye).reshape(b, -1)
        v_posed = v_shaped + (pose_feature @ self.posedirs).reshape(b, -1, 3)
        _, transforms = batch_rigid_transform(rotmats, joints, self.parents, dtype=dtype)
        per_vertex = (self.weights @ transforms.reshape(b, 24, 16)).reshape(b, -1, 4, 4)
        return (per_vertex[..., :3, :3] @ v_posed.unsqueeze(-1)).squeeze(-1) + per_vertex[..., :3, 3]
