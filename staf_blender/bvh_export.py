"""Export characters to BVH (Biovision hierarchy), the motion-capture interchange format.

One skeleton per file: one character goes to ``OUT.bvh``; several (or ``split``) to one file per
person beside it, ``OUT_p<ID>.bvh``. The joints are the rig's bones with their names (SMPL's
``pelvis``, ``left_hip``, ...), in metres times ``scale``, Y up (-Z forward: Blender's Z up
turned as glTF and FBX turn it), the root with position channels, every joint with three rotation
channels in ``rotation_order`` (default ZXY, Biovision's "Zrotation Xrotation Yrotation"), one
row per frame from the character's first to last key (gaps interpolated as Blender shows them).

Why not Blender's bundled exporter (``export_anim.bvh``): it writes the frame time with six
decimals (29.97 fps becomes 0.033367 s, 29.9697 fps: 3 ms of drift per 10,000 frames), writes
Blender's Z-up axes as they are (readers expecting Y up see the character lying on its back),
gives the root an OFFSET that readers adding OFFSET to the position channels count twice, and
exports the context's active object. This writer samples the same evaluated pose (a copy of the
rig in a scratch scene, so the user's scene and its current frame are never touched) and writes
the frame time from the clip's exact rate (30000/1001 -> 0.03336666667), the root OFFSET zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Euler, Matrix

from .errors import AddonError
from .fbx_export import frame_range
from .files import check_all_writable, check_writable, split_targets, temp_beside, write_staged
from .gltf_export import clip_rate, scratch_copies
from .rig import RIG_PROPERTY

__all__ = ["ROTATION_ORDERS", "Y_UP", "bvh_targets", "export_bvh", "stage_bvh", "write_bvh_file"]

#: Channel orders ("ZXY": Zrotation Xrotation Yrotation, the parent-side rotation first).
ROTATION_ORDERS = ("ZXY", "ZYX", "XYZ", "XZY", "YXZ", "YZX")
#: Blender's world (Z up, -Y forward) to BVH axes (Y up, +Z forward): (x, y, z) -> (x, z, -y).
Y_UP = np.array(((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)))


def bvh_targets(path: str | Path, rigs: list[Any], *, split: bool = False) -> list[tuple[Any, Path]]:
    """Each character with its file: ``path`` for one character, else (or with ``split``) one
    file per person beside it, ``OUT_p<ID>.bvh``; raises AddonError if two share a person id."""
    if len(rigs) == 1 and not split:
        return [(rigs[0], Path(path))]
    targets = split_targets(path, [int(rig[RIG_PROPERTY]) for rig in rigs])
    return [(rig, targets[int(rig[RIG_PROPERTY])]) for rig in rigs]


def _hierarchy(bones: Iterable[Any]) -> list[Any]:
    """The bones parents first, depth first from the one root (BVH has one root per skeleton)."""
    bones = list(bones)
    roots = [b for b in bones if b.parent is None]
    if len(roots) != 1:
        raise AddonError(f"BVH needs a skeleton with one root bone, this one has {len(roots)}")
    bad = [b.name for b in bones if not b.name or any(c.isspace() for c in b.name)]
    if bad:
        raise AddonError(f"bone names with spaces cannot be written to BVH: {', '.join(bad)}")
    order, todo = [], [roots[0]]
    while todo:
        bone = todo.pop()
        order.append(bone)
        todo.extend(reversed(bone.children))
    return order


def _rotation_part(matrix: np.ndarray) -> np.ndarray:
    """The rotation of 3x3 ``matrix`` (a rotation times a uniform scale): columns made unit length."""
    return matrix / np.linalg.norm(matrix, axis=-2, keepdims=True)


def _sample(context: Any, rig: Any, names: list[str], start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Evaluated pose matrices (F, J, 4, 4) of ``names`` and the object's world matrix (F, 4, 4) for
    frames ``start``..``end``, from a copy of ``rig`` in a scratch scene."""
    frames = end - start + 1
    with scratch_copies(context, [rig], name=".staf_bvh_export", meshes=False) as (scratch, copies):
        arm = copies[0][1]
        index = [arm.pose.bones.find(name) for name in names]
        buffer = np.empty(len(arm.pose.bones) * 16, np.float32)
        poses = np.empty((frames, len(names), 4, 4))
        world = np.empty((frames, 4, 4))
        with context.temp_override(scene=scratch, view_layer=scratch.view_layers[0]):
            for i, frame in enumerate(range(start, end + 1)):
                scratch.frame_set(frame)
                evaluated = arm.evaluated_get(bpy.context.evaluated_depsgraph_get())
                evaluated.pose.bones.foreach_get("matrix", buffer)
                poses[i] = buffer.reshape(-1, 4, 4).transpose(0, 2, 1)[index]  # stored column by column
                world[i] = np.array(evaluated.matrix_world)
    return poses, world


def write_bvh_file(context: Any, rig: Any, file: str | Path, *, rotation_order: str = "ZXY",
                   scale: float = 1.0) -> Path:
    """Write ``rig``'s skeleton and motion to exactly ``file`` (the caller's temporary name: no
    checks, no rename); raises AddonError for a rig BVH cannot hold."""
    if rotation_order not in ROTATION_ORDERS:
        raise AddonError(f"unknown BVH rotation order '{rotation_order}': use one of {', '.join(ROTATION_ORDERS)}")
    bones = _hierarchy(rig.data.bones)
    names = [b.name for b in bones]
    parent = [names.index(b.parent.name) if b.parent else -1 for b in bones]
    start, end = frame_range([rig])
    rate = clip_rate([rig], context.scene)
    poses, world = _sample(context, rig, names, start, end)

    heads = np.array([list(b.head_local) for b in bones])
    tails = np.array([list(b.tail_local) for b in bones])
    rest_rot = np.array([[list(row)[:3] for row in b.matrix_local[:3]] for b in bones])
    to_bvh = Y_UP @ world[0, :3, :3] * scale  # rest offsets are taken at the first frame's placement
    # Rotation taking each bone from rest to pose, in world axes, then in BVH axes.
    turn = _rotation_part(world[:, None, :3, :3]) @ poses[..., :3, :3] @ rest_rot.transpose(0, 2, 1)
    turn = Y_UP @ turn @ _rotation_part(world[0, :3, :3]).T @ Y_UP.T
    local = turn.copy()
    for j, p in enumerate(parent):
        if p >= 0:
            local[:, j] = turn[:, p].transpose(0, 2, 1) @ turn[:, j]
    root_head = world[:, :3, :3] @ poses[:, 0, :3, 3, None] + world[:, :3, 3, None]
    root_position = (Y_UP @ root_head)[..., 0] * scale

    blender_order = rotation_order[::-1]  # Euler 'YXZ' is the matrix Rz Rx Ry: channels Z X Y
    pick = ["XYZ".index(axis) for axis in rotation_order]
    angles = np.empty((len(local), len(names), 3))
    for j in range(len(names)):
        previous = Euler((0.0, 0.0, 0.0), blender_order)
        for i, matrix in enumerate(local[:, j]):
            previous = Matrix(matrix.tolist()).to_euler(blender_order, previous)
            angles[i, j] = [previous[k] for k in pick]
    table = np.concatenate([root_position, np.degrees(angles).reshape(len(local), -1)], axis=1)

    rotations = " ".join(f"{axis}rotation" for axis in rotation_order)
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "\t" * depth
        offset = np.zeros(3) if parent[j] < 0 else to_bvh @ (heads[j] - heads[parent[j]])
        lines.append(f"{pad}{'ROOT' if parent[j] < 0 else 'JOINT'} {names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "6 Xposition Yposition Zposition" if parent[j] < 0 else "3"
        lines.append(f"{pad}\tCHANNELS {channels} {rotations}")
        children = [c for c in range(len(names)) if parent[c] == j]
        for c in children:
            joint(c, depth + 1)
        if not children:
            end_site = to_bvh @ (tails[j] - heads[j])
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                          f"{pad}\t\tOFFSET {end_site[0]:.6f} {end_site[1]:.6f} {end_site[2]:.6f}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    lines += ["MOTION", f"Frames: {len(table)}", f"Frame Time: {float(Fraction(1) / rate):.10g}"]
    file = Path(file)
    with open(file, "w", encoding="utf-8", newline="\n") as out:
        out.write("\n".join(lines) + "\n")
        np.savetxt(out, table, fmt="%.6f", delimiter=" ")
    return file


def stage_bvh(context: Any, rigs: list[Any], target: str | Path, staged: list[tuple[Path, Path]], *,
              split: bool = False, overwrite: bool = True, rotation_order: str = "ZXY", scale: float = 1.0) -> None:
    """Check every file for ``target`` (see :func:`bvh_targets`), then write them under temporary
    names, appending each ``(temporary, target)`` pair to ``staged`` for the caller to rename."""
    targets = bvh_targets(target, rigs, split=split)
    check_all_writable([path for _, path in targets], suffix=".bvh", overwrite=overwrite)
    for rig, path in targets:
        staged.append((temp_beside(path), path))
        write_bvh_file(context, rig, staged[-1][0], rotation_order=rotation_order, scale=scale)


def export_bvh(context: Any, rigs: list[Any], path: str | Path, *, split: bool = False, overwrite: bool = True,
               rotation_order: str = "ZXY", scale: float = 1.0) -> list[Path]:
    """Write each of ``rigs`` to BVH: ``path`` for one, ``OUT_p<ID>.bvh`` beside it for several (or
    with ``split``); returns the files written. Every target is checked before anything is
    written, and a failure leaves every target as it was."""
    if str(path).startswith("//"):
        path = bpy.path.abspath(str(path))
    if not rigs:
        raise AddonError("nothing to export")
    path = check_writable(path, suffix=".bvh")  # the name, folder and permission the split names share
    return write_staged([lambda staged: stage_bvh(context, rigs, path, staged, split=split, overwrite=overwrite,
                                                  rotation_order=rotation_order, scale=scale)])
