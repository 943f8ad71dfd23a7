"""Helpers for the Blender tests: what Blender evaluates, and snapshots of the file's state."""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

#: bpy.data collections compared by the snapshots.
DATA = ("objects", "meshes", "armatures", "actions", "cameras", "collections", "scenes", "movieclips", "images")


def evaluated_vertices(obj: Any, frame: float) -> np.ndarray:
    """World-space vertices (V, 3) of ``obj`` as Blender evaluates it at ``frame`` (may be fractional)."""
    scene = bpy.context.scene
    scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    m = np.array(evaluated.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def bone_heads(arm: Any, names: list[str]) -> np.ndarray:
    """World-space heads (J, 3) of the posed bones ``names`` (after a frame change)."""
    return np.array([list(arm.matrix_world @ arm.pose.bones[n].head) for n in names])


def snapshot() -> dict[str, Any]:
    """The file's state as far as an import or export may touch it."""
    scene = bpy.context.scene
    r = scene.render
    layer = bpy.context.view_layer
    return {
        "data": {name: sorted(b.name for b in getattr(bpy.data, name)) for name in DATA},
        "scene": (r.fps, round(r.fps_base, 6), scene.frame_start, scene.frame_end, scene.frame_current,
                  r.resolution_x, r.resolution_y, r.resolution_percentage,
                  scene.camera.name if scene.camera else None),
        "objects": {o.name: (tuple(round(x, 6) for row in o.matrix_world for x in row), o.select_get(),
                             o.parent.name if o.parent else None) for o in scene.objects},
        "active": layer.objects.active.name if layer.objects.active else None,
        "mode": bpy.context.mode,
    }


def add_user_content() -> None:
    """Objects of the user's own in the scene, one selected and active, to prove they stay as they are."""
    scene = bpy.context.scene
    mesh = bpy.data.meshes.new("user_mesh")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    cube = bpy.data.objects.new("UserObject", mesh)
    cube.location = (3.0, -2.0, 1.0)
    scene.collection.objects.link(cube)
    cam = bpy.data.objects.new("UserCamera", bpy.data.cameras.new("UserCamera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cube.select_set(True)
    bpy.context.view_layer.objects.active = cube
    scene.frame_current = 7
    bpy.context.view_layer.update()  # matrices evaluated now, so later snapshots compare like with like
