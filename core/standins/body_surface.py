"""The closed surface of the stand-in body: exactly 6890 vertices and 13776 triangles, one
outward-oriented genus-0 mesh, with a body-part label per vertex.

How the surface is made (box modelling, all hand-written): the torso is the surface of a
subdivided box whose lattice is mapped onto rounded, tapering cross-sections. Five rectangular
patches of that box (under each leg, at each shoulder, around the neck) are removed; from each
patch's boundary loop a tube of rings grows along the limb's joint chain (hip -> knee -> ankle,
shoulder -> elbow -> wrist -> hand, neck -> head), each ring an elliptical cross-section that
follows human proportions; feet, hands and the top of the head are closed by caps. Consecutive
rings may have different vertex counts (they are stitched by angle), which lets the builder hit
exactly 6890 vertices. Removing a disk and gluing on a capped tube keeps the surface a sphere
topologically, so F = 2V - 4 holds by construction.

This module stitches the torso (``core.standins.body_torso``) and the tubes
(``core.standins.body_tubes``) together, then smooths the result and adds a few features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.standins.body_geometry import smoothstep, wrap
from core.standins.body_spec import HEAD, LEFT_ARM, NUM_FACES, NUM_VERTICES, RIGHT_ARM, TORSO
from core.standins.body_torso import boundary_loop, cube_surface, patch_masks, torso_positions
from core.standins.body_tubes import Tube, arm_tube, head_tube, leg_tube

__all__ = [
    "Surface",
    "adjacency",
    "build_surface",
]


_SMOOTHING_STEPS = 12  # Taubin smoothing passes over the assembled surface


# ============================================================================================
# Stitching rings


def _ring_angles(offsets: np.ndarray, theta0: float) -> tuple[np.ndarray, np.ndarray]:
    """Roll a ring so that its first vertex is the one nearest to polar angle theta0 and return
    (roll order, unwrapped increasing angles); raises if the ring does not turn once, anticlockwise."""
    raw = np.arctan2(offsets[:, 1], offsets[:, 0])
    first = int(np.argmin(np.abs(wrap(raw - theta0))))
    order = np.roll(np.arange(len(raw)), -first)
    raw = raw[order]
    steps = np.mod(np.diff(raw), 2.0 * math.pi)
    total = steps.sum() + np.mod(raw[0] - raw[-1], 2.0 * math.pi)
    if abs(total - 2.0 * math.pi) > 1e-6 or np.any(steps > math.pi):
        raise RuntimeError("a ring does not wind once counter-clockwise around its centre")
    angles = theta0 + wrap(raw[0] - theta0) + np.concatenate([[0.0], np.cumsum(steps)])
    return order, angles


def _stitch(a_idx: np.ndarray, a_ang: np.ndarray, b_idx: np.ndarray, b_ang: np.ndarray) -> np.ndarray:
    """Triangles joining ring a to the next ring b (both turning the same way, first vertices
    roughly aligned), oriented like the quads (a_i, a_i+1, b_i+1, b_i) of a tube growing a -> b."""
    n, m = len(a_idx), len(b_idx)
    a_next = np.append(a_ang[1:], a_ang[0] + 2.0 * math.pi)
    b_next = np.append(b_ang[1:], b_ang[0] + 2.0 * math.pi)
    tris = np.empty((n + m, 3), dtype=np.int64)
    i = j = 0
    for k in range(n + m):
        if j == m or (i < n and a_next[i] <= b_next[j]):
            tris[k] = (a_idx[i], a_idx[(i + 1) % n], b_idx[j % m])
            i += 1
        else:
            tris[k] = (a_idx[i % n], b_idx[(j + 1) % m], b_idx[j])
            j += 1
    return tris


# ============================================================================================
# Whole surface


@dataclass(frozen=True)
class Surface:
    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    parts: np.ndarray  # (V,) int8


def _plan(joints: np.ndarray) -> list[Tube]:
    return [
        leg_tube(1.0, joints),
        leg_tube(-1.0, joints),
        arm_tube(1.0, joints),
        arm_tube(-1.0, joints),
        head_tube(),
    ]


def _ring_counts(perimeters: np.ndarray, min_counts: np.ndarray, budget: int) -> np.ndarray:
    """Vertices per ring (about evenly spaced around each ring) adding up to exactly ``budget``.

    The spacing h is bisected so the rings take ``budget`` vertices or just fewer; the few missing
    ones go to the coarsest rings (consecutive rings may differ in count: they are stitched by angle).
    """

    def counts(h: float) -> np.ndarray:
        return np.maximum(min_counts, np.round(perimeters / h)).astype(np.int64)

    lo, hi = 1e-3, 1.0
    if counts(lo).sum() < budget or counts(hi).sum() > budget:
        raise RuntimeError("the planned rings cannot take the vertex budget")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if counts(mid).sum() > budget:
            lo = mid
        else:
            hi = mid
    out = counts(hi)
    missing = budget - int(out.sum())
    coarsest = np.argsort(-perimeters / out, kind="stable")[:missing]
    out[coarsest] += 1
    return out


def build_surface(joints: np.ndarray) -> Surface:
    """The canonical closed surface with exactly NUM_VERTICES vertices (see the module docstring)."""
    lattice, quads, tags = cube_surface()
    torso = torso_positions(lattice)
    masks = patch_masks(tags)
    removed = np.zeros(len(quads), dtype=bool)
    loops = {}
    for name, mask in masks.items():
        removed |= mask
        loops[name] = boundary_loop(quads[mask])
    kept = quads[~removed]
    tubes = _plan(joints)
    rings = [r for t in tubes for r in t.rings]
    budget = NUM_VERTICES - len(np.unique(kept)) - len(tubes)  # one tip vertex per tube
    flat_counts = _ring_counts(np.array([r.perimeter for r in rings]), np.array([r.min_count for r in rings]),
                               budget)
    bounds = np.cumsum([0] + [len(t.rings) for t in tubes])
    counts = [flat_counts[bounds[i]:bounds[i + 1]].tolist() for i in range(len(tubes))]

    positions = [torso]
    parts = [np.full(len(torso), TORSO, dtype=np.int8)]
    tris = [_split_quads(kept, torso)]
    n_vertices = len(torso)
    for tube, tube_counts in zip(tubes, counts, strict=True):
        loop = loops[tube.name]
        first = tube.rings[0]
        loop_pos = torso[loop]
        rel = loop_pos - loop_pos.mean(axis=0)
        loop_off = np.stack([rel @ first.e1, rel @ first.e2], axis=1)
        theta0 = float(np.arctan2(loop_off[0, 1], loop_off[0, 0]))
        order, prev_ang = _ring_angles(loop_off, theta0)
        if order[0] != 0:
            raise RuntimeError("patch loop misaligned")
        loop_radius, loop_ang = np.linalg.norm(loop_off, axis=1), prev_ang
        loop_center = loop_pos.mean(axis=0)
        prev_idx = loop
        for ring, count in zip(tube.rings, tube_counts, strict=True):
            offsets = ring.outline(count, theta0)
            order, ang = _ring_angles(offsets, theta0)
            offsets = offsets[order]
            center = ring.center
            tangent = np.cross(ring.e1, ring.e2)
            morph = float(smoothstep(abs(np.dot(center - loop_center, tangent)), 0.0, tube.blend))
            if morph < 1.0:
                # Near the torso the ring keeps the patch's outline and centre, turning into its own.
                radius = np.interp(ang, loop_ang, loop_radius, period=2 * math.pi)
                patch = radius[:, None] * np.stack([np.cos(ang), np.sin(ang)], axis=1)
                offsets = morph * offsets + (1.0 - morph) * patch
                shift = loop_center - center
                center = center + (1.0 - morph) * (shift - np.dot(shift, tangent) * tangent)
            pts = center + offsets[:, :1] * ring.e1 + offsets[:, 1:] * ring.e2
            idx = np.arange(n_vertices, n_vertices + count)
            n_vertices += count
            positions.append(pts)
            parts.append(np.full(count, tube.part, dtype=np.int8))
            tris.append(_stitch(prev_idx, prev_ang, idx, ang))
            prev_idx, prev_ang = idx, ang
        positions.append(tube.tip[None])
        parts.append(np.array([tube.part], dtype=np.int8))
        tip = n_vertices
        n_vertices += 1
        tris.append(np.stack([prev_idx, np.roll(prev_idx, -1), np.full_like(prev_idx, tip)], axis=1))

    vertices = np.concatenate(positions)
    faces = np.concatenate(tris)
    part = np.concatenate(parts)
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    vertices, part, faces = vertices[used], part[used], remap[faces]
    if len(vertices) != NUM_VERTICES or len(faces) != NUM_FACES:
        raise RuntimeError(f"built {len(vertices)} vertices / {len(faces)} faces")
    vertices = _taubin_smooth(vertices, faces, _SMOOTHING_STEPS)
    vertices = _add_features(vertices, part)
    return Surface(vertices, faces, part)


def adjacency(faces: np.ndarray, n: int) -> sp.csr_matrix:
    """Symmetric 0/1 vertex adjacency (n, n) of a triangle mesh."""
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    return sp.csr_matrix(adj)


def _taubin_smooth(vertices: np.ndarray, faces: np.ndarray, steps: int) -> np.ndarray:
    """Taubin's lambda/mu smoothing: rounds the box's creases and the tube junctions without
    shrinking the body (each shrinking step is followed by an inflating one)."""
    adj = adjacency(faces, len(vertices))
    mean = sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    v = vertices.copy()
    for _ in range(steps):
        v = v + 0.5 * (mean @ v - v)
        v = v - 0.53 * (mean @ v - v)
    return v


def _split_quads(quads: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Two triangles per quad, split along the shorter diagonal."""
    a, b, c, d = quads.T
    ac = np.linalg.norm(pos[a] - pos[c], axis=1)
    bd = np.linalg.norm(pos[b] - pos[d], axis=1)
    use_ac = ac <= bd
    t1 = np.where(use_ac[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    t2 = np.where(use_ac[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.concatenate([t1, t2])


def _bump(values: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.exp(-(((values - center) / width) ** 2))


def _add_features(vertices: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Nose, ears and a hint of a thumb: small smooth bumps that make the front and sides legible."""
    v = vertices.copy()
    x, y, z = v.T
    head = part == HEAD
    nose = head * _bump(x, 0.0, 0.016) * _bump(y, 0.425, 0.022) * smoothstep(z, 0.05, 0.1)
    v[:, 2] += 0.017 * nose
    for sign in (1.0, -1.0):
        ear = head * _bump(y, 0.44, 0.022) * _bump(z, -0.005, 0.016) * smoothstep(sign * x, 0.045, 0.075)
        v[:, 0] += sign * 0.012 * ear
        arm = part == (LEFT_ARM if sign > 0 else RIGHT_ARM)
        thumb = arm * _bump(sign * x, 0.71, 0.02) * _bump(y, 0.205, 0.02) * smoothstep(z, -0.03, 0.0)
        v[:, 2] += 0.018 * thumb
    return v
