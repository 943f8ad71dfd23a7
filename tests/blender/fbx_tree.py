"""An independent reader's view of an FBX file (ufbx, not Blender), printed as one JSON object.

    PYTHON tests/blender/fbx_tree.py FILE.fbx [--bones a,b --times 0,0.5]

PYTHON is any interpreter with ``ufbx`` (the Blender venvs install it, so does the main venv's
``dev`` extra). It prints the take (name, time range, the first curve's key times), the file's unit
and frame rate (ufbx's rounded value, the declared time mode and custom rate), every top-level node
with its bone count and the bones right under it, every mesh with its geometry's name, the
armatures its skin clusters bind it to, the most bone influences a vertex has and how far a
vertex's weights are from summing to 1, and with ``--bones``/``--times`` the world positions of
those bones at those times, in metres, Blender's axes (Z up). The in-Blender tests run it in a
subprocess on the files they export. ufbx 0.0.5's objects do not keep their scene alive, so every
object read is held in ``_keep`` until the end (reading a list twice can crash it otherwise), and
released newest first (a scene freed before its objects crashes the interpreter on exit).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import ufbx

_keep: list[Any] = []


def _held(value: Any) -> Any:
    _keep.append(value)
    return value


def _items(container: Any) -> list[Any]:
    container = _held(container)
    return [_held(container[i]) for i in range(len(container))]


def _is_bone(node: Any) -> bool:
    return node.attrib_type == ufbx.ElementType.BONE


def _bones_under(node: Any) -> int:
    bones = [c for c in _items(node.children) if _is_bone(c)]
    return len(bones) + sum(_bones_under(b) for b in bones)


def _owner(bone: Any) -> str | None:
    """The name of the non-bone node above ``bone`` (its armature)."""
    node = bone
    while node is not None and _is_bone(node):
        node = _held(node.parent)
    return None if node is None else node.name


def _skin(mesh: Any) -> dict[str, Any]:
    owners: set[str | None] = set()
    most, error = 0, 0.0
    for deformer in _items(mesh.skin_deformers):
        owners |= {_owner(_held(c.bone_node)) for c in _items(deformer.clusters)}
        weights = [w.weight for w in _items(deformer.weights)]
        for vertex in _items(deformer.vertices):
            most = max(most, int(vertex.num_weights))
            total = sum(weights[vertex.weight_begin:vertex.weight_begin + vertex.num_weights])
            error = max(error, abs(total - 1.0))
    return {"skinned_to": sorted(o or "" for o in owners), "max_influences": most, "weight_sum_error": error}


def _positions(path: str, bones: list[str], times: list[float]) -> dict[str, list[list[float]]]:
    """World positions of ``bones`` at ``times`` (s), converted by ufbx to metres and Z up."""
    scene = _held(ufbx.load_file(path, target_axes=ufbx.axes_right_handed_z_up, target_unit_meters=1.0))
    anim = _held(_items(scene.anim_stacks)[0].anim)
    found: dict[str, list[list[float]]] = {b: [] for b in bones}
    for time in times:
        posed = _held(ufbx.evaluate_scene(scene, anim, time))
        for bone in bones:
            node = _held(posed.find_node(bone))
            if node is None:
                raise SystemExit(f"no node named {bone!r} in {path}")
            moved = _held(node.node_to_world)
            found[bone].append([float(moved.c3.x), float(moved.c3.y), float(moved.c3.z)])
    return found


def describe(path: str, bones: list[str] | None = None, times: list[float] | None = None) -> dict[str, Any]:
    """The JSON-ready summary of the FBX at ``path``."""
    scene = _held(ufbx.load_file(path))
    stacks = _items(scene.anim_stacks)
    stack = stacks[0]
    settings = _held(scene.settings)
    props = _held(settings.props)
    curves = _items(scene.anim_curves)
    keys = [float(k.time) for k in _items(curves[0].keyframes)] if curves else []
    nodes = _items(_held(scene.root_node).children)
    empties = [n for n in nodes if n.attrib_type == ufbx.ElementType.EMPTY]
    meshes = {}
    for mesh in _items(scene.meshes):
        meshes[_items(mesh.instances)[0].name] = {"geometry": mesh.name, "vertices": int(mesh.num_vertices),
                                                  **_skin(mesh)}
    summary = {
        "take": [float(stack.time_begin), float(stack.time_end)], "take_name": stack.name, "takes": len(stacks),
        "keys": keys, "key_range": [min((float(c.min_time) for c in curves), default=0.0),
                                    max((float(c.max_time) for c in curves), default=0.0)],
        "fps": float(settings.frames_per_second), "time_mode": int(settings.time_mode),
        "frame_rate": float(props.find_real("CustomFrameRate", 0.0)), "unit_meters": float(settings.unit_meters),
        "top_nodes": sorted(n.name for n in nodes),
        "rigs": {n.name: _bones_under(n) for n in empties},
        "rig_roots": {n.name: sorted(c.name for c in _items(n.children) if _is_bone(c)) for n in empties},
        "meshes": meshes,
    }
    if bones and times:
        summary["positions"] = _positions(path, bones, times)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--bones", default="", help="comma-separated bone names")
    parser.add_argument("--times", default="", help="comma-separated times in seconds")
    args = parser.parse_args()
    bones = [b for b in args.bones.split(",") if b]
    times = [float(t) for t in args.times.split(",") if t]
    print(json.dumps(describe(args.file, bones, times)), flush=True)
    while _keep:  # newest first: every object before the scene it came from
        _keep.pop()


if __name__ == "__main__":
    main()
