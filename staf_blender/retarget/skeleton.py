"""An armature's rest pose as numpy arrays, in Blender's conventions: a bone's rest matrix R (3x3,
armature space) has the bone's local axes as columns, +Y along head -> tail, rolled by the bone's
roll; a pose bone's armature-space orientation is ``P_b = P_parent @ R_parent.T @ R_b @ L_b`` with
``L_b`` its local rotation (identity at rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import EXIT_BAD_INPUT, AddonError
from ..rotations import quaternion_to_matrix

__all__ = ["RestSkeleton", "bone_matrix", "swing_between", "world_rotations"]


def bone_matrix(heads: np.ndarray, tails: np.ndarray, rolls: np.ndarray) -> np.ndarray:
    """Blender's rest matrices (B, 3, 3) of bones from head, tail (B, 3) and roll (B,) in radians
    (``vec_roll_to_mat3``: the turn taking +Y to head -> tail, then the roll about that axis)."""
    y = np.asarray(tails, np.float64) - np.asarray(heads, np.float64)
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    x, yy, z = y[..., 0], y[..., 1], y[..., 2]
    theta = 1.0 + yy
    flipped = theta < 1e-10  # pointing along -Y: a half turn about Z
    safe = np.where(flipped, 1.0, theta)
    base = np.stack([
        np.stack([1 - x * x / safe, x, -x * z / safe], -1),
        np.stack([-x, yy, -z], -1),
        np.stack([-x * z / safe, z, 1 - z * z / safe], -1),
    ], -2)  # rows; column 1 is the bone's direction
    base = np.where(flipped[..., None, None], np.diag([-1.0, -1.0, 1.0]), base)
    roll = np.asarray(rolls, np.float64)
    c, s = np.cos(roll), np.sin(roll)
    zero, one = np.zeros_like(roll), np.ones_like(roll)
    roll_y = np.stack([np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1),
                       np.stack([-s, zero, c], -1)], -2)
    return base @ roll_y


@dataclass(frozen=True, eq=False)
class RestSkeleton:
    """An armature's rest pose in armature space: names, parents (-1 for roots, any order), heads
    and tails (B, 3) in metres, rest matrices (B, 3, 3) (:func:`bone_matrix`)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: np.ndarray
    tails: np.ndarray
    matrices: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.names)
        if len(set(self.names)) != count:
            raise AddonError("armature: bone names repeat", EXIT_BAD_INPUT)
        if len(self.parents) != count or any(not -1 <= p < count for p in self.parents):
            raise AddonError("armature: a parent index is out of range", EXIT_BAD_INPUT)
        for name, shape in (("heads", (count, 3)), ("tails", (count, 3)), ("matrices", (count, 3, 3))):
            if np.shape(getattr(self, name)) != shape:
                raise AddonError(f"armature: {name} must have shape {shape}", EXIT_BAD_INPUT)
        self.order()  # raises on a cycle

    @classmethod
    def from_bones(cls, names: Sequence[str], parents: Sequence[int], heads: np.ndarray, tails: np.ndarray,
                   rolls: np.ndarray | None = None) -> RestSkeleton:
        """A skeleton from edit-bone data (roll 0 where ``rolls`` is None)."""
        heads = np.asarray(heads, np.float64)
        tails = np.asarray(tails, np.float64)
        rolls = np.zeros(len(names)) if rolls is None else np.asarray(rolls, np.float64)
        return cls(tuple(names), tuple(int(p) for p in parents), heads, tails, bone_matrix(heads, tails, rolls))

    def index(self, name: str) -> int:
        """The bone's index; one line naming it where the armature has none."""
        try:
            return self.names.index(name)
        except ValueError:
            raise AddonError(f"armature: no bone '{name}'", EXIT_BAD_INPUT) from None

    def order(self) -> list[int]:
        """Bone indices with every parent before its children."""
        done: list[int] = []
        seen: set[int] = set()
        for start in range(len(self.names)):
            chain = []
            bone = start
            while bone != -1 and bone not in seen:
                if bone in chain:
                    raise AddonError(f"armature: the parents of '{self.names[bone]}' form a loop", EXIT_BAD_INPUT)
                chain.append(bone)
                bone = self.parents[bone]
            for bone in reversed(chain):
                seen.add(bone)
                done.append(bone)
        return done

    def floor(self, up: np.ndarray | None = None) -> float:
        """The lowest bone head of the rest pose along ``up`` (None: armature Z). Heads only: a leaf
        bone's tail is a convention (Blender's FBX importer guesses it), its head a joint."""
        up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, np.float64)
        return float((self.heads @ up).min())


def world_rotations(skeleton: RestSkeleton, local: np.ndarray) -> np.ndarray:
    """Armature-space orientations P (F, B, 3, 3) from local pose quaternions (F, B, 4) (w, x, y, z)."""
    local_m = quaternion_to_matrix(local)
    out = np.empty_like(local_m)
    rest = skeleton.matrices
    for bone in skeleton.order():
        parent = skeleton.parents[bone]
        frame = rest[bone] if parent < 0 else out[:, parent] @ (rest[parent].T @ rest[bone])
        out[:, bone] = frame @ local_m[:, bone]
    return out


def swing_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) turning directions a (..., 3) onto b (..., 3); a half turn
    goes about an axis perpendicular to a."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a, b = np.broadcast_arrays(a / np.linalg.norm(a, axis=-1, keepdims=True),
                               b / np.linalg.norm(b, axis=-1, keepdims=True))
    cos = np.sum(a * b, axis=-1)
    opposite = cos < -1.0 + 1e-9
    axis = np.cross(a, b)
    # Opposite directions: any axis perpendicular to a, from the unit axis a is least along.
    other = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
    perpendicular = np.cross(a, other)
    perpendicular /= np.linalg.norm(perpendicular, axis=-1, keepdims=True)
    zero = np.zeros_like(cos)
    k = np.stack([np.stack([zero, -axis[..., 2], axis[..., 1]], -1),
                  np.stack([axis[..., 2], zero, -axis[..., 0]], -1),
                  np.stack([-axis[..., 1], axis[..., 0], zero], -1)], -2)
    eye = np.broadcast_to(np.eye(3), k.shape)
    turn = eye + k + k @ k / np.where(opposite, 1.0, 1.0 + cos)[..., None, None]
    half = 2.0 * perpendicular[..., :, None] * perpendicular[..., None, :] - eye
    return np.where(opposite[..., None, None], half, turn)
