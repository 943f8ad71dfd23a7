"""The landmark solver's torch pieces: batched forward kinematics, the pose prior, the smoothness operator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

__all__ = ["HINGES", "Kinematics", "PriorTables", "cauchy", "pose_prior", "second_difference_matrix"]

#: Hinges: joint -> (axis, a vector perpendicular to it), in the joint's frame; flexion is a positive
#: rotation about the axis (knees bend the shin backwards about +x, elbows the forearm forwards).
HINGES: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    4: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)), 5: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    18: ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0)), 19: ((0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)),
}
_MAX_FLEX = math.radians(150)
_HYPEREXTENSION = math.radians(3)
#: Joint -> largest plausible rotation away from rest (rad).
_LIMITS = {1: 2.4, 2: 2.4, 3: 0.7, 6: 0.6, 9: 0.6, 7: 1.0, 8: 1.0, 12: 0.9, 13: 0.35, 14: 0.35, 15: 0.9,
           16: 2.8, 17: 2.8, 20: 1.4, 21: 1.4}
#: Joints pulled a little towards rest, so a torso or head turn spreads over the chain.
_RESTFUL = (3, 6, 9, 12, 13, 14, 15)
#: Twist about the bone: joint -> (local axis of the bone, largest twist in rad); hips' bones run along
#: -y, shoulders' along +/-x.
_TWISTS = {1: (1, 0.5), 2: (1, 0.5), 16: (0, 0.9), 17: (0, 0.9)}


def cauchy(e2: torch.Tensor, c: float) -> torch.Tensor:
    """Cauchy's robust cost of squared errors: about e2 for small errors, growing only logarithmically past c."""
    return c * c * torch.log1p(e2 / (c * c))


class Kinematics:
    """Forward kinematics batched by depth in the tree (9 steps for SMPL instead of 24).

    Joints are kept in ``order`` (by depth; ``position[j]`` is joint j's place in it), so each depth
    is a slice, and so are most depths' parents (for SMPL all but the collars' and neck's level).
    """

    def __init__(self, rest: np.ndarray, parents: np.ndarray, dtype: torch.dtype) -> None:
        parents = np.asarray(parents, np.int64)
        depth = np.zeros(len(parents), np.int64)
        for i, p in enumerate(parents):
            depth[i] = 0 if p < 0 else depth[p] + 1
        levels = [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]
        self.order = np.concatenate(levels)
        self.position = np.argsort(self.order)
        starts = np.cumsum([0] + [len(level) for level in levels])
        self.spans = [(int(a), int(b)) for a, b in itertools.pairwise(starts)]
        self.parent_of: list[slice | torch.Tensor | int] = []
        for k, level in enumerate(levels[1:]):
            pos = self.position[parents[level]] - starts[k]
            if len(levels[k]) == 1:
                self.parent_of.append(0)  # one parent for the whole level: broadcast
            elif np.array_equal(pos, np.arange(pos[0], pos[0] + len(pos))):
                self.parent_of.append(slice(int(pos[0]), int(pos[0]) + len(pos)))
            else:
                self.parent_of.append(torch.as_tensor(pos))
        r = np.asarray(rest, np.float64)
        self.root = torch.tensor(r[levels[0]], dtype=dtype)
        self.bones = [torch.tensor(r[level] - r[parents[level]], dtype=dtype) for level in levels[1:]]

    def __call__(self, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotations (F, J, 3, 3) and joints (F, J, 3), both in ``order``, of local rotations (F, J, 3, 3)
        in ``order``; the root stays at its rest position."""
        a, b = self.spans[0]
        wr = [rot[:, a:b]]
        wt = [self.root.expand(rot.shape[0], -1, -1)]
        for k, parent in enumerate(self.parent_of):
            a, b = self.spans[k + 1]
            if isinstance(parent, int):
                parent_r, parent_t = wr[-1][:, parent:parent + 1], wt[-1][:, parent:parent + 1]
            else:
                parent_r, parent_t = wr[-1][:, parent], wt[-1][:, parent]
            wt.append(parent_t + torch.einsum("fjab,jb->fja", parent_r, self.bones[k]))
            wr.append(parent_r @ rot[:, a:b])
        return torch.cat(wr, 1), torch.cat(wt, 1)


class PriorTables:
    """The prior's constants as tensors; joints at ``position`` (their places in the rotations' order)."""

    def __init__(self, dtype: torch.dtype, position: np.ndarray | None = None) -> None:
        place = np.arange(24) if position is None else np.asarray(position)

        def at(joints) -> torch.Tensor:
            return torch.as_tensor(place[list(joints)])

        self.hinge = at(HINGES)
        self.axes = torch.tensor([HINGES[j][0] for j in HINGES], dtype=dtype)
        self.perps = torch.tensor([HINGES[j][1] for j in HINGES], dtype=dtype)
        self.thirds = torch.linalg.cross(self.axes, self.perps)
        self.limited = at(_LIMITS)
        self.cos_limits = torch.cos(torch.tensor(list(_LIMITS.values()), dtype=dtype))
        self.restful = at(_RESTFUL)
        self.twist = at(_TWISTS)
        # The skew part (R - R^T) / 2 holds sin(angle) x axis: its component along the bone is at (c, b).
        self.twist_b = torch.tensor([(a + 1) % 3 for a, _ in _TWISTS.values()])
        self.twist_c = torch.tensor([(a + 2) % 3 for a, _ in _TWISTS.values()])
        self.sin_twist = torch.sin(torch.tensor([limit for _, limit in _TWISTS.values()], dtype=dtype))
        self.eye = torch.eye(3, dtype=dtype)


def pose_prior(rot: torch.Tensor, tab: PriorTables) -> torch.Tensor:
    """Penalty per frame (F,) of local rotations (F, 24, 3, 3): knees and elbows off their hinge, bent
    backwards or past 150 degrees; joints past their anatomical angle; hips and shoulders twisted past
    their limit; and a weak pull of spine, neck, collars and head towards rest (weights: one typical
    landmark error costs about 1)."""
    r = rot[:, tab.hinge]
    off = (torch.einsum("fjab,jb->fja", r, tab.axes) - tab.axes).square().sum((-2, -1))
    rb = torch.einsum("fjab,jb->fja", r, tab.perps)
    flex = torch.atan2((tab.thirds * rb).sum(-1), (tab.perps * rb).sum(-1))
    bend = (torch.relu(-flex - _HYPEREXTENSION).square() + torch.relu(flex - _MAX_FLEX).square()).sum(-1)
    cos = (torch.diagonal(rot[:, tab.limited], dim1=-2, dim2=-1).sum(-1) - 1) / 2
    limits = torch.relu(tab.cos_limits - cos).square().sum(-1)
    pull = (rot[:, tab.restful] - tab.eye).square().sum((-3, -2, -1))
    t = rot[:, tab.twist]
    k = torch.arange(len(tab.twist))
    twist = (t[:, k, tab.twist_c, tab.twist_b] - t[:, k, tab.twist_b, tab.twist_c]) / 2
    twists = torch.relu(twist.abs() - tab.sin_twist).square().sum(-1)
    return 100.0 * off + 1000.0 * bend + 1000.0 * limits + 0.5 * pull + 200.0 * twists


def second_difference_matrix(frames: np.ndarray, gap: int) -> np.ndarray:
    """The operator (T, R) of second differences in per-frame units over each three consecutive rows
    whose frame numbers are at most ``gap`` + 1 apart (uneven spacing: the three-point formula)."""
    f = np.asarray(frames, np.float64)
    if len(f) < 3:
        return np.zeros((0, len(f)))
    a, b = f[1:-1] - f[:-2], f[2:] - f[1:-1]
    keep = np.flatnonzero((a <= gap + 1) & (b <= gap + 1))
    d = np.zeros((len(keep), len(f)))
    rows = np.arange(len(keep))
    a, b = a[keep], b[keep]
    d[rows, keep] = 2 / (a * (a + b))
    d[rows, keep + 1] = -2 / (a * b)
    d[rows, keep + 2] = 2 / (b * (a + b))
    return d
