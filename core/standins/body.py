"""A seeded, person-shaped stand-in for the SMPL body model: mesh, skeleton, skinning, blend shapes.

The licensed SMPL files cannot be bundled, yet tests and the demo must run the real loading and
posing code. ``make_body`` builds a body with exactly SMPL's sizes and conventions so the same
code paths run on it:

- 6890 vertices / 13776 triangles forming one closed, outward-oriented, genus-0 surface;
- SMPL's rest-pose coordinates: metres, y up, +x the person's left, +z forward (the face),
  pelvis near the origin, arms out sideways (T-pose), feet pointing forward;
- SMPL's 24 joints in SMPL's order and kinematic tree, linear-blend-skinning weights,
  shape directions (6890, 3, 10), pose-corrective directions (6890, 3, 207), and joint
  regressors (SMPL's 24 joints, SPIN's 9 extra joints, Human3.6M's 17 joints).

The geometry (faces included) is the same for every seed; the seed varies the body's shape a
little (through its own shape directions), the strength of the shape directions and the
pose-corrective fields, so different seeds give different but equally valid people.

The surface is built in ``core.standins.body_surface`` (from the torso of ``body_torso`` and the
tubes of ``body_tubes``), the skinning, blend shapes and regressors in ``core.standins.body_rig``;
the sizes and names shared with SMPL live in ``core.standins.body_spec`` and are re-exported here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.standins.body_joints import design_joints
from core.standins.body_rig import (
    extra_targets,
    h36m_targets,
    pose_directions,
    regressor_rows,
    shape_directions,
    skinning_weights,
)
from core.standins.body_spec import (
    EXTRA_JOINT_NAMES,
    H36M_JOINT_NAMES,
    JOINT_NAMES,
    NUM_BETAS,
    NUM_FACES,
    NUM_JOINTS,
    NUM_POSE_BASIS,
    NUM_VERTICES,
    PARENTS,
    PART_NAMES,
)
from core.standins.body_surface import Surface, build_surface

__all__ = [
    "EXTRA_JOINT_NAMES",
    "H36M_JOINT_NAMES",
    "JOINT_NAMES",
    "NUM_BETAS",
    "NUM_FACES",
    "NUM_JOINTS",
    "NUM_POSE_BASIS",
    "NUM_VERTICES",
    "PARENTS",
    "PART_NAMES",
    "StandInBody",
    "make_body",
]


@dataclass(frozen=True, eq=False)
class StandInBody:
    """A SMPL-sized body in SMPL's rest pose (metres; float64 unless noted; arrays read-only).

    v_template (6890, 3); faces (13776, 3) int64, counter-clockwise seen from outside;
    joints (24, 3) rest joints, equal to ``j_regressor @ v_template``; parents (24,) int64;
    lbs_weights (6890, 24), rows sum to 1; shapedirs (6890, 3, 10); posedirs (6890, 3, 207)
    (SMPL's pickle layout); j_regressor (24, 6890) ``scipy.sparse.csc_matrix``;
    j_regressor_extra (9, 6890) and j_regressor_h36m (17, 6890) dense (rows: ``EXTRA_JOINT_NAMES``,
    ``H36M_JOINT_NAMES``); part_labels (6890,) int8 indexing ``PART_NAMES``.
    """

    v_template: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    parents: np.ndarray
    lbs_weights: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: sp.csc_matrix
    j_regressor_extra: np.ndarray
    j_regressor_h36m: np.ndarray
    part_labels: np.ndarray


# ============================================================================================
# Public API


@dataclass(frozen=True, eq=False)
class _Canonical:
    surface: Surface
    joints: np.ndarray
    weights: np.ndarray
    shapedirs: np.ndarray
    j_regressor: np.ndarray
    j_regressor_extra: np.ndarray
    j_regressor_h36m: np.ndarray


@functools.lru_cache(maxsize=1)
def _canonical() -> _Canonical:
    """The seed-independent body (built once per process; its arrays are never handed out)."""
    joints = design_joints()
    surface = build_surface(joints)
    weights = skinning_weights(surface.vertices, surface.faces, surface.parts, joints)
    return _Canonical(
        surface=surface,
        joints=joints,
        weights=weights,
        shapedirs=shape_directions(surface.vertices, joints, weights),
        j_regressor=regressor_rows(surface.vertices, joints),
        j_regressor_extra=regressor_rows(surface.vertices, extra_targets(joints)),
        j_regressor_h36m=regressor_rows(surface.vertices, h36m_targets(joints)),
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def make_body(seed: int = 0) -> StandInBody:
    """A person-like SMPL-sized body in rest pose, deterministic for ``seed`` (bitwise).

    The mesh topology, skinning weights and regressors are the same for every seed; the seed picks
    a slightly different body shape (a small random combination of the shape directions), scales
    each shape direction by 0.85-1.15 and draws the pose-corrective fields.
    """
    base = _canonical()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5AF1B0D7]))
    shapedirs = base.shapedirs * rng.uniform(0.85, 1.15, size=NUM_BETAS)
    betas = np.clip(rng.normal(0.0, 0.35, size=NUM_BETAS), -1.0, 1.0)
    v_template = base.surface.vertices + shapedirs @ betas
    posedirs = pose_directions(base.surface.vertices, base.joints, base.weights, rng)
    j_regressor = sp.csc_matrix(base.j_regressor)
    j_regressor.sort_indices()
    return StandInBody(
        v_template=_frozen(v_template),
        faces=_frozen(base.surface.faces.astype(np.int64)),
        joints=_frozen(j_regressor @ v_template),
        parents=_frozen(np.array(PARENTS, dtype=np.int64)),
        lbs_weights=_frozen(base.weights),
        shapedirs=_frozen(shapedirs),
        posedirs=_frozen(posedirs),
        j_regressor=j_regressor,
        j_regressor_extra=_frozen(base.j_regressor_extra),
        j_regressor_h36m=_frozen(base.j_regressor_h36m),
        part_labels=_frozen(base.surface.parts),
    )
