"""An independent reader's view of an FBX file (ufbx, not Blender): run in the main venv.

    .venv/bin/python tests/blender/fbx_tree.py FILE.fbx     # prints one JSON object

prints the take's time range (s), the file's unit and frame rate, every top-level node with its
bone count (an armature is a null node with a tree of bones under it) and every mesh with the
armatures its skin clusters bind it to. The in-Blender tests run it on the files they export and
skip where no interpreter has ufbx. ufbx 0.0.5's objects do not keep their scene alive, so every
object read is held in ``_keep`` until the end (reading a list twice can crash it otherwise).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import ufbx

_keep: list[Any] = []


def _held(value: Any) -> Any:
    _keep.append(value)
    return value


def _items(container: Any) -> list[Any]:
    container = _held(container)
    return [_held(container[i]) for i in range(len(container))]


def _bones_under(node: Any) -> int:
    bones = [c for c in _items(node.children) if c.attrib_type == ufbx.ElementType.BONE]
    return len(bones) + sum(_bones_under(b) for b in bones)


def _owner(bone: Any) -> str | None:
    """The name of the non-bone node above ``bone`` (its armature)."""
    node = bone
    while node is not None and node.attrib_type == ufbx.ElementType.BONE:
        node = _held(node.parent)
    return None if node is None else node.name


def describe(path: str) -> dict[str, Any]:
    """The JSON-ready summary of the FBX at ``path``."""
    scene = _held(ufbx.load_file(path))
    stack = _items(scene.anim_stacks)[0]
    settings = _held(scene.settings)
    nodes = _items(_held(scene.root_node).children)
    rigs = {n.name: _bones_under(n) for n in nodes if n.attrib_type == ufbx.ElementType.EMPTY}
    meshes = {}
    for mesh in _items(scene.meshes):
        owners = {_owner(_held(c.bone_node)) for d in _items(mesh.skin_deformers) for c in _items(d.clusters)}
        meshes[_items(mesh.instances)[0].name] = {"vertices": int(mesh.num_vertices), "skinned_to": sorted(owners)}
    return {"take": [float(stack.time_begin), float(stack.time_end)], "fps": float(settings.frames_per_second),
            "unit_meters": float(settings.unit_meters), "rigs": rigs, "meshes": meshes}


if __name__ == "__main__":
    print(json.dumps(describe(sys.argv[1])), flush=True)
