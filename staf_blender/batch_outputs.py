"""Which files a batch clip writes: refused before any work where they exist (without bpy), and
staged under temporary names beside their targets (in Blender), published together at the end.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_OUTPUT, AddonError
from .files import check_all_writable, existing_split_files, split_targets, temp_beside

if TYPE_CHECKING:
    from .batch import BatchJob, BatchPlan

__all__ = ["check_outputs_absent", "stage_outputs"]


def _people_written(args: argparse.Namespace, is_video: bool) -> tuple[int, ...] | None:
    """The person ids a clip's characters will have, where the arguments say (None: not known yet)."""
    if args.people is not None:
        return args.people
    return args.person if is_video else None


def check_outputs_absent(key: str, target: Path, args: argparse.Namespace, is_video: bool) -> None:
    """Refuse (before any work) existing files output ``key`` may write: ``target``, the per-person
    files of --split and of a BVH for several people, a .gltf's .bin."""
    people = _people_written(args, is_video)
    splittable = key in ("fbx", "bvh", "gltf")
    several = key == "bvh" and (people is None or len(people) > 1)
    whole = not (splittable and args.split) and not (key == "bvh" and people is not None and len(people) > 1)
    paths = [target] + ([target.with_suffix(".bin")] if key == "gltf" and target.suffix.lower() == ".gltf" else [])
    for path in paths:
        if whole:
            _check_absent(path, split=False, people=people)
        if splittable and (args.split or several):
            _check_absent(path, split=True, people=people)


def _check_absent(target: Path, *, split: bool, people: tuple[int, ...] | None) -> None:
    """Refuse (before any work) an output that exists; with ``split``, the per-person files
    ``OUT_p<ID>.fbx``: those of ``people``, or any such file when the ids are not known yet."""
    if not split:
        found = [target] if target.exists() else []
    elif people is not None:
        found = [p for p in split_targets(target, people).values() if p.exists()]
    else:
        found = existing_split_files(target)
    if found:
        names = ", ".join(str(p) for p in found[:3]) + (" ..." if len(found) > 3 else "")
        raise AddonError(f"{names} {'exists' if len(found) == 1 else 'exist'}: pass --overwrite to replace "
                         f"{'it' if len(found) == 1 else 'them'}", EXIT_OUTPUT)


def stage_outputs(context: Any, job: BatchJob, plan: BatchPlan, rigs: list[Any], staged: list[tuple[Path, Path]],
                  out: Callable[[str], None]) -> None:
    """Write the clip's FBX, BVH, glTF and .blend of ``rigs`` to temporary files, each appended to
    ``staged`` as (temporary file, target) as soon as it exists (the caller publishes or removes them)."""
    import bpy

    from .fbx_export import write_fbx_file
    from .rig import RIG_PROPERTY

    for target in (job.fbx, job.blend, job.bvh, job.gltf):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
    if job.fbx is not None:
        if plan.split:
            targets = split_targets(job.fbx, [int(rig[RIG_PROPERTY]) for rig in rigs])
            check_all_writable(targets.values(), suffix=".fbx", overwrite=plan.overwrite)
            groups = [([rig], targets[int(rig[RIG_PROPERTY])]) for rig in rigs]
        else:
            groups = [(rigs, job.fbx)]
        for group, target in groups:
            staged.append((temp_beside(target), target))
            write_fbx_file(context, group, staged[-1][0], plan.preset, max_influences=plan.max_influences,
                           report=lambda change: out(f"fbx    {job.source.name}: {change}"))
    if job.bvh is not None:
        from .bvh_export import stage_bvh
        stage_bvh(context, rigs, job.bvh, staged, split=plan.split, overwrite=plan.overwrite)
    if job.gltf is not None:
        from .gltf_export import stage_gltf
        stage_gltf(context, rigs, job.gltf, staged, split=plan.split, overwrite=plan.overwrite)
    if job.blend is not None:
        tmp = temp_beside(job.blend, create=False)
        staged.append((tmp, job.blend))
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True, check_existing=False, compress=False)
