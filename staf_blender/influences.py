"""Bone influences per vertex (no bpy): keep the strongest few, and measure what that costs.

SMPL skins a vertex with up to 9 bones; Unity's default is 4 ("Skin Weights: Standard (4 Bones)"),
and the unity and unreal presets keep 4. :func:`keep_strongest` keeps the ``limit`` largest weights of
each vertex and renormalises them to sum 1; :func:`skinning_deviation` is the largest distance
between the mesh skinned with all weights and with the kept ones (linear blend skinning, as
Blender's armature modifier without "Preserve Volume" and as the engines do), frame by frame.
:func:`skinning_matrices` is Blender's pose evaluation of a planned rig, so the deviation of a
motion file can be measured without Blender.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .plan import RigPlan
from .rotations import SMPL_TO_ARMATURE, quaternion_to_matrix

__all__ = ["InfluenceLimit", "influence_counts", "keep_strongest", "rig_deviation", "skinning_deviation",
           "skinning_matrices"]


@dataclass(frozen=True)
class InfluenceLimit:
    """What limiting one mesh's influences did: ``most`` influences a vertex had before,
    ``changed`` vertices that lost some, and the largest deviation (metres) over ``frames``
    sampled frames."""

    mesh: str
    limit: int
    most: int
    changed: int
    vertices: int
    deviation_m: float
    frames: int

    def __str__(self) -> str:
        return (f"{self.mesh}: kept the {self.limit} strongest of up to {self.most} bone influences per vertex "
                f"({self.changed} of {self.vertices} vertices changed); largest mesh deviation "
                f"{self.deviation_m * 1000.0:.2f} mm over {self.frames} frames")


def influence_counts(weights: np.ndarray) -> np.ndarray:
    """Bones with a non-zero weight, per vertex: (V,) from weights (V, J)."""
    return np.count_nonzero(np.asarray(weights) > 0.0, axis=1)


def keep_strongest(weights: np.ndarray, limit: int) -> np.ndarray:
    """Weights (V, J) with only each vertex's ``limit`` largest kept (ties: the lower bone index)
    and renormalised to sum 1; a vertex without any weight stays without. Raises ValueError for
    a limit below 1."""
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"the number of bone influences to keep must be a whole number of at least 1, not {limit!r}")
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be (vertices, bones), not {weights.shape}")
    kept = np.zeros_like(weights)
    if weights.shape[1] > limit:
        order = np.argsort(-weights, axis=1, kind="stable")[:, :limit]
        rows = np.arange(weights.shape[0])[:, None]
        kept[rows, order] = weights[rows, order]
    else:
        kept[:] = weights
    kept[kept < 0.0] = 0.0
    total = kept.sum(axis=1, keepdims=True)
    np.divide(kept, total, out=kept, where=total > 0.0)
    return kept


def skinning_deviation(vertices: np.ndarray, weights: np.ndarray, other: np.ndarray,
                       skins: np.ndarray) -> np.ndarray:
    """Per frame, the largest distance between ``vertices`` (V, 3, rest, in the skeleton's space)
    skinned with ``weights`` and with ``other`` (both (V, J)), for the skinning matrices ``skins``
    (F, J, 4, 4: posed bone times inverse rest bone). Returns (F,)."""
    v = np.concatenate([np.asarray(vertices, np.float64), np.ones((len(vertices), 1))], axis=1)
    diff = np.asarray(weights, np.float64) - np.asarray(other, np.float64)  # (V, J)
    skins = np.asarray(skins, np.float64)[:, :, :3, :]  # (F, J, 3, 4)
    worst = np.empty(skins.shape[0])
    for f, skin in enumerate(skins):
        blended = (diff @ skin.reshape(skin.shape[0], 12)).reshape(-1, 3, 4)  # sum_j dw_j S_j, per vertex
        worst[f] = np.linalg.norm(np.einsum("vab,vb->va", blended, v), axis=1).max(initial=0.0)
    return worst


def skinning_matrices(heads: np.ndarray, parents: tuple[int, ...] | list[int], rotations: np.ndarray,
                      root_location: np.ndarray) -> np.ndarray:
    """Blender's pose evaluation of a planned rig (bones with rest rotation SMPL_TO_ARMATURE at
    ``heads`` (J, 3)): the skinning matrices (F, J, 4, 4) for quaternions ``rotations`` (F, J, 4,
    w first) and the root bone's ``root_location`` (F, 3). Parents must come before children."""
    rotations = np.asarray(rotations, np.float64)
    frames, joints = rotations.shape[:2]
    rest = np.tile(np.eye(4), (joints, 1, 1))
    rest[:, :3, :3] = SMPL_TO_ARMATURE
    rest[:, :3, 3] = heads
    rest_inv = np.linalg.inv(rest)
    local = np.tile(np.eye(4), (frames, joints, 1, 1))
    local[:, :, :3, :3] = quaternion_to_matrix(rotations)
    pose = np.empty_like(local)
    for j, parent in enumerate(parents):
        if parent < 0:
            local[:, j, :3, 3] = root_location
            pose[:, j] = rest[j] @ local[:, j]
        else:
            pose[:, j] = pose[:, parent] @ (rest_inv[parent] @ rest[j]) @ local[:, j]
    return pose @ rest_inv


def rig_deviation(rig: RigPlan, limit: int) -> tuple[float, int]:
    """The largest mesh deviation (metres) over every keyed frame of a planned rig
    (:class:`~staf_blender.plan.RigPlan`) when its weights keep ``limit`` influences; also the
    number of vertices that lose some. As the export, a mesh with nothing to drop is left as it is."""
    weights = np.asarray(rig.weights, np.float64)
    kept = keep_strongest(weights, limit)
    if influence_counts(weights).max(initial=0) <= limit:  # nothing dropped: the export leaves the weights
        return 0.0, 0
    skins = skinning_matrices(rig.bone_heads, rig.bone_parents, rig.rotations, rig.root_location)
    worst = skinning_deviation(rig.vertices, weights, kept, skins)
    return float(worst.max(initial=0.0)), int(np.count_nonzero(influence_counts(weights) > limit))
