"""``scripts/batch.py --retarget CHARACTER.fbx|.blend [--mapping NAME|FILE.json]``: every person's
motion onto the user's own character, which the outputs then hold instead of the SMPL body.

The options are checked without bpy before any work (:func:`retarget_options`); loading the
character and retargeting run in Blender (:func:`retarget_characters`). Each person gets their
own copy of the character (armature and the meshes it deforms).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EXIT_BAD_INPUT, EXIT_USAGE, AddonError
from .retarget import PRESETS

__all__ = ["TARGET_SUFFIXES", "RetargetOptions", "add_retarget_args", "retarget_characters", "retarget_options"]

TARGET_SUFFIXES = (".fbx", ".blend")


@dataclass(frozen=True)
class RetargetOptions:
    """target: the character file; mapping: "auto", a preset name or a .json path; plant_feet."""

    target: Path
    mapping: str = "auto"
    plant_feet: bool = True


def add_retarget_args(parser: argparse.ArgumentParser) -> None:
    """The retarget options of the batch command line."""
    g = parser.add_argument_group("retarget (your own character)")
    g.add_argument("--retarget", type=Path, metavar="CHARACTER", help="put the motion onto this character (.fbx or "
                   ".blend with a humanoid armature); the outputs then hold it instead of the SMPL body")
    g.add_argument("--mapping", default="auto", metavar="NAME|FILE.json", help="which bone each SMPL joint drives: "
                   f"auto, one of {', '.join(PRESETS)}, or a JSON file {{\"pelvis\": \"Hips\", ...}} "
                   "(default: %(default)s)")
    g.add_argument("--no-plant-feet", action="store_true", help="copy rotations only, without holding the "
                   "character's ankles still where the person's feet are planted")


def retarget_options(args: argparse.Namespace) -> RetargetOptions | None:
    """The checked retarget options (None: no --retarget); raises AddonError with one line."""
    mapping = str(args.mapping).strip()
    if args.retarget is None:
        if mapping != "auto" or args.no_plant_feet:
            raise AddonError("--mapping and --no-plant-feet need --retarget CHARACTER", EXIT_USAGE)
        return None
    target = Path(args.retarget).expanduser().absolute()
    if target.suffix.lower() not in TARGET_SUFFIXES:
        raise AddonError(f"--retarget {target}: give the character as .fbx or .blend", EXIT_USAGE)
    if not target.is_file():
        raise AddonError(f"--retarget {target}: no such file", EXIT_BAD_INPUT)
    if mapping.lower().endswith(".json"):
        path = Path(mapping).expanduser().absolute()
        if not path.is_file():
            raise AddonError(f"--mapping {path}: no such file", EXIT_BAD_INPUT)
        mapping = str(path)
    elif mapping not in ("auto", *PRESETS):
        raise AddonError(f"--mapping '{mapping}': give auto, one of {', '.join(PRESETS)}, or a .json file",
                         EXIT_USAGE)
    return RetargetOptions(target, mapping, not args.no_plant_feet)


def _load(context: Any, path: Path, collection: Any) -> list[Any]:
    """Bring the file's objects into ``collection``; returns its armatures (with their meshes linked too)."""
    import bpy

    if path.suffix.lower() == ".fbx":
        before = set(bpy.data.objects)
        try:
            result = bpy.ops.import_scene.fbx(filepath=str(path), use_anim=False)
        except RuntimeError as err:
            raise AddonError(f"cannot read {path}: {' '.join(str(err).split())}", EXIT_BAD_INPUT) from None
        if result != {'FINISHED'}:
            raise AddonError(f"cannot read {path}: Blender's FBX importer gave up", EXIT_BAD_INPUT)
        new = [o for o in bpy.data.objects if o not in before]
        for obj in new:
            for owner in list(obj.users_collection):
                owner.objects.unlink(obj)
            collection.objects.link(obj)
        return [o for o in new if o.type == 'ARMATURE']
    try:
        with bpy.data.libraries.load(str(path), link=False) as (source, loaded):
            loaded.objects = list(source.objects)
    except OSError as err:
        raise AddonError(f"cannot read {path}: {' '.join(str(err).split())}", EXIT_BAD_INPUT) from None
    objects = [o for o in loaded.objects if o is not None]
    armatures = [o for o in objects if o.type == 'ARMATURE']
    keep = set(armatures) | {o for o in objects if o.type == 'MESH' and _deformer(o) in armatures}
    for obj in objects:
        if obj in keep:
            collection.objects.link(obj)
        else:
            bpy.data.objects.remove(obj)
    return armatures


def _deformer(mesh: Any) -> Any:
    """The armature object deforming ``mesh`` (its armature modifier's), or None."""
    return next((m.object for m in mesh.modifiers if m.type == 'ARMATURE' and m.object is not None), None)


def _pick(armatures: list[Any], mapping: str, path: Path) -> Any:
    """The humanoid armature of the file (the one mapping the most joints)."""
    from .retarget import choose_mapping

    if not armatures:
        raise AddonError(f"{path} has no armature to retarget onto", EXIT_BAD_INPUT)
    scored, last_error = [], None
    for arm in armatures:
        try:
            _, table = choose_mapping(mapping, [b.name for b in arm.data.bones], arm.name)
        except AddonError as err:
            last_error = err
            continue
        scored.append((len(table), arm))
    if not scored:
        raise AddonError(f"{path}: {last_error}", EXIT_BAD_INPUT)
    scored.sort(key=lambda item: -item[0])
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise AddonError(f"{path} has several humanoid armatures ({scored[0][1].name}, {scored[1][1].name}): "
                         "keep one character per file", EXIT_BAD_INPUT)
    return scored[0][1]


def _copy_character(arm: Any, collection: Any, name: str) -> Any:
    """A copy of armature object ``arm`` and the meshes it deforms, linked into ``collection``."""
    copy = arm.copy()
    copy.name = name
    if copy.animation_data is not None:
        copy.animation_data.action = None
    collection.objects.link(copy)
    for child in arm.children:
        if child.type == 'MESH' and _deformer(child) == arm:
            mesh = child.copy()
            mesh.parent = copy
            for modifier in mesh.modifiers:
                if modifier.type == 'ARMATURE' and modifier.object == arm:
                    modifier.object = copy
            collection.objects.link(mesh)
    return copy


def retarget_characters(context: Any, rigs: list[Any], options: RetargetOptions,
                        out: Callable[[str], None] = print) -> list[Any]:
    """Load the character once, give each STAF rig of ``rigs`` its own copy, retarget; returns the
    characters in ``rigs``' order (each carries its person's id, so the exporters take it)."""
    import bpy

    from .retarget_scene import retarget_armature
    from .rig import RIG_PROPERTY

    collection = bpy.data.collections.new(options.target.stem)
    context.scene.collection.children.link(collection)
    scene = context.scene
    keep = (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end)
    character = _pick(_load(context, options.target, collection), options.mapping, options.target)
    scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end = keep
    base = character.name
    targets = [character] + [_copy_character(character, collection, base) for _ in rigs[1:]]
    for rig, target in zip(rigs, targets, strict=True):
        target.name = base if len(rigs) == 1 else f"{base}_p{int(rig[RIG_PROPERTY])}"
        report = retarget_armature(context, rig, target, options.mapping, plant_feet=options.plant_feet,
                                   action_name=f"{rig.name} on {target.name}")
        out(f"{rig.name}: {report.summary()}")
    return targets
