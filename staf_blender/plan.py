"""Plan a character import in plain numpy (no bpy): what the Blender side then writes in bulk.

:func:`plan_import` turns a validated :class:`~staf_blender.motion_io.Motion` and
:class:`ImportOptions` into an :class:`ImportPlan`: names, bone positions, the rest mesh, skin
weights, every frame's bone quaternions and root location, the camera, the ground plane and the scene settings. The
axis conventions are in :mod:`staf_blender.rotations` and docs/blender.md; where the root goes per
root motion mode (and the world frame) in :mod:`staf_blender.root_motion`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_note, frames_to_check
from .errors import AddonError
from .motion_io import Motion, PersonMotion
from .root_motion import (
    ROOT_MOTION_MODES,
    CameraMotion,
    camera_motion,
    ground_extent,
    has_world,
    person_pose,
    resolve_root_motion,
    root_keys,
    world_summary,
)
from .rotations import SMPL_TO_ARMATURE

__all__ = [
    "BLENDER_MAX_FRAME",
    "ROOT_MOTION_CHOICES",
    "ROOT_MOTION_MODES",
    "SENSOR_WIDTH_MM",
    "CameraPlan",
    "GroundPlan",
    "ImportOptions",
    "ImportPlan",
    "RigPlan",
    "ScenePlan",
    "camera_lens_mm",
    "frame_rate",
    "plan_import",
    "sanitize_name",
]

#: What ImportOptions.root_motion takes: a mode, or "auto" ("world" where the file has a world
#: frame for every imported person, else "camera"), resolved per file.
ROOT_MOTION_CHOICES = ("auto", *ROOT_MOTION_MODES)
#: The created camera's sensor width; its lens follows from the clip's focal length in pixels.
SENSOR_WIDTH_MM = 36.0
#: Blender's scene frame range (scene.frame_start/frame_end clamp silently outside it).
BLENDER_MAX_FRAME = 1_048_574
#: Blender's render resolution range and smallest lens (its setters clamp silently outside them).
BLENDER_RESOLUTION = (4, 65_536)
BLENDER_MIN_LENS_MM = 1.0
_MAX_BASE = 40  # room for the suffixes within Blender's 63-byte names
_LEAF_BONE_LENGTH = 0.05


@dataclass(frozen=True)
class ImportOptions:
    """What to build from a motion file.

    root_motion: one of :data:`ROOT_MOTION_CHOICES`; people: person ids to import (None: all);
    shape_keys: add one shape key per beta; camera: add the clip's camera (root motion "camera"
    or "world" only); match_scene: set the scene's frame rate, range, resolution and camera from
    the clip; name: base name of the new objects ("" = the clip's name); frame_offset: Blender
    frame of the clip's frame 0 (1 lines up with a Movie Clip's default start); foot_lock: key the
    file's foot-locked pose where it has one; ground_plane: add a plane at z = 0 where the
    characters stand in the file's world frame.
    """

    root_motion: str = "auto"
    people: tuple[int, ...] | None = None
    shape_keys: bool = False
    camera: bool = True
    match_scene: bool = True
    name: str = ""
    frame_offset: int = 1
    foot_lock: bool = True
    ground_plane: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.frame_offset, bool) or not isinstance(self.frame_offset, int) \
                or abs(self.frame_offset) > BLENDER_MAX_FRAME:
            raise AddonError(f"frame offset {self.frame_offset!r}: give a whole number of frames within "
                             f"+-{BLENDER_MAX_FRAME}")
        if self.root_motion not in ROOT_MOTION_CHOICES:
            raise AddonError(f"unknown root motion '{self.root_motion}': use one of {', '.join(ROOT_MOTION_CHOICES)}")


@dataclass(frozen=True, eq=False)
class RigPlan:
    """One person's armature, mesh and animation, in armature space (metres, Z up).

    bone_heads, bone_tails (24, 3); bone_parents (24,) with -1 for the root; vertices (V, 3) the
    rest mesh; faces (T, 3); weights (V, 24); frames (F,) Blender frame numbers; rotations
    (F, 24, 4) pose-bone quaternions (w, x, y, z), continuous in time; root_location (F, 3) the
    root bone's pose location; shape_keys: (name, (V, 3) absolute coordinates) per beta;
    contacts (F, 4) uint8 the file's foot contacts or None; foot_locked: whether the rotations
    come from the file's foot-locked pose; in_world: whether the root follows the world frame;
    check_frames: Blender frames to check (joints far from the detector's landmarks, checks.py).
    """

    person_id: int
    armature_name: str
    mesh_name: str
    action_name: str
    bone_names: tuple[str, ...]
    bone_parents: tuple[int, ...]
    bone_heads: np.ndarray
    bone_tails: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    frames: np.ndarray
    rotations: np.ndarray
    root_location: np.ndarray
    shape_keys: tuple[tuple[str, np.ndarray], ...] = ()
    contacts: np.ndarray | None = None
    foot_locked: bool = False
    in_world: bool = False
    check_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def pelvis_positions(self) -> np.ndarray:
        """Where the pelvis is at each keyed frame (F, 3), in the scene (the armature at the origin)."""
        root = self.bone_parents.index(-1)
        return self.bone_heads[root] + self.root_location @ SMPL_TO_ARMATURE.T


@dataclass(frozen=True)
class CameraPlan:
    """A pinhole camera matching the engine's projection: at the world origin looking along +Y,
    or (``motion``, root motion "world") posed per frame from the file's ``camera_to_world``."""

    name: str
    lens_mm: float
    sensor_width_mm: float
    width: int
    height: int
    location: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_euler: tuple[float, float, float] = (math.pi / 2, 0.0, 0.0)
    clip_path: str | None = None
    motion: CameraMotion | None = None


@dataclass(frozen=True)
class GroundPlan:
    """A rectangle at z = 0 (the file's ground plane): centre (x, y) and size (x, y) in metres."""

    name: str
    centre: tuple[float, float]
    size: tuple[float, float]


@dataclass(frozen=True)
class ScenePlan:
    """Scene settings from the clip: frame rate fps / fps_base, inclusive frame range, resolution."""

    fps: int
    fps_base: float
    frame_start: int
    frame_end: int
    width: int | None
    height: int | None


@dataclass(frozen=True, eq=False)
class ImportPlan:
    """Everything an import creates; ``options`` with the root motion resolved ("auto" -> the mode
    built); ``notes`` are non-fatal messages for the user, ``world`` a line on the file's world frame
    (None: the file says nothing about one)."""

    collection_name: str
    rigs: tuple[RigPlan, ...]
    camera: CameraPlan | None
    scene: ScenePlan
    options: ImportOptions
    source: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    ground: GroundPlan | None = None
    world: str | None = None

    def object_names(self) -> list[str]:
        """Names of every object the import creates."""
        names = [n for rig in self.rigs for n in (rig.armature_name, rig.mesh_name)]
        if self.camera is not None:
            names.append(self.camera.name)
        if self.ground is not None:
            names.append(self.ground.name)
        return names


def sanitize_name(text: str) -> str:
    """A base name for new objects: printable, no dots (Blender's duplicate suffix), short."""
    name = re.sub(r"[^\w\- ]+", "_", text.strip()).strip("_ ") or "staf"
    return name[:_MAX_BASE]


def frame_rate(fps_num: int, fps_den: int) -> tuple[int, float]:
    """Blender's (fps, fps_base) for the exact rate fps_num / fps_den: 30000/1001 -> (30, 1.001)."""
    if fps_num <= 0 or fps_den <= 0:
        raise AddonError(f"invalid frame rate {fps_num}/{fps_den}")
    fps = max(1, round(fps_num / fps_den))
    return fps, fps * fps_den / fps_num


def camera_lens_mm(focal_px: float, width: int, sensor_width_mm: float = SENSOR_WIDTH_MM) -> float:
    """Lens (mm) of a camera whose horizontal sensor spans ``width`` pixels at ``focal_px``."""
    return float(focal_px) * sensor_width_mm / float(width)


def plan_import(motion: Motion, options: ImportOptions, *, fallback_name: str = "motion") -> ImportPlan:
    """Plan the objects, keys and scene settings for ``motion``; raises AddonError on unusable input."""
    if not motion.people:
        raise AddonError("the motion file holds no people (nobody was found in the clip)")
    if motion.frame_index.shape[0] == 0:
        raise AddonError("the motion file holds no frames")
    people = _select_people(motion, options.people)
    source = dict(motion.meta.get("source") or {})
    base = sanitize_name(options.name or Path(str(source.get("name") or "")).stem or fallback_name)
    notes: list[str] = []
    present = [person for person in people if len(person)]
    mode = resolve_root_motion(motion, present, options.root_motion)
    if options.root_motion == "auto" and mode == "camera" and motion.camera_to_world is not None and present:
        lacking = ", ".join(str(p.person_id) for p in present if not has_world(motion, p))
        notes.append(f"root motion 'camera': person {lacking} has no world translation")
    options = replace(options, root_motion=mode)

    rigs = []
    for person in people:
        if len(person) == 0:
            notes.append(f"person {person.person_id} has no frames: skipped")
            continue
        rigs.append(_plan_rig(motion, person, base, options))
    if not rigs:
        raise AddonError("none of the selected people has any frame")
    notes += [check_note(r.person_id, r.check_frames) for r in rigs if len(r.check_frames)]

    fps, fps_base = frame_rate(int(source["fps_num"]), int(source["fps_den"]))
    width, height = _int_or_none(source.get("width")), _int_or_none(source.get("height"))
    low, high = BLENDER_RESOLUTION
    if not (width and height):
        width = height = None
    elif not (low <= width <= high and low <= height <= high):
        notes.append(f"the clip's size {width}x{height} is outside Blender's {low}..{high}: resolution not set")
        width = height = None
    scene = ScenePlan(
        fps=fps,
        fps_base=fps_base,
        frame_start=int(motion.frame_index[0]) + options.frame_offset,
        frame_end=int(motion.frame_index[-1]) + options.frame_offset,
        width=width,
        height=height,
    )
    if scene.frame_start < 0 or scene.frame_end > BLENDER_MAX_FRAME:
        raise AddonError(f"the clip's frames {scene.frame_start}..{scene.frame_end} (with the frame offset) "
                         f"fall outside Blender's 0..{BLENDER_MAX_FRAME}: use a smaller frame offset")

    camera = None
    if options.camera:
        focal = (motion.meta.get("camera") or {}).get("focal_length_px")  # JSON null: absent
        if mode not in ("camera", "world"):
            notes.append("no camera: the clip overlay needs root motion 'camera' or 'world'")
        elif not width or not height or not focal:
            notes.append("no camera: the motion file does not give the clip's size and focal length")
        elif camera_lens_mm(float(focal), width) < BLENDER_MIN_LENS_MM:
            notes.append(f"no camera: a focal length of {float(focal):g} px for {width} px gives a lens under "
                         f"Blender's {BLENDER_MIN_LENS_MM:g} mm")
        else:
            clip = str(source.get("path") or "")
            camera = CameraPlan(
                name=f"{base}_camera",
                lens_mm=camera_lens_mm(float(focal), width),
                sensor_width_mm=SENSOR_WIDTH_MM,
                width=width,
                height=height,
                clip_path=clip or None,
                motion=camera_motion(motion, options.frame_offset) if mode == "world" else None,
            )
    ground = _plan_ground(motion, rigs, camera, base, options, notes)
    return ImportPlan(collection_name=base, rigs=tuple(rigs), camera=camera, scene=scene, options=options,
                      source=source, notes=tuple(notes), ground=ground, world=world_summary(motion))


def _plan_ground(motion: Motion, rigs: list[RigPlan], camera: CameraPlan | None, base: str,
                 options: ImportOptions, notes: list[str]) -> GroundPlan | None:
    """The ground plane under the characters placed in the world frame (None: no world frame,
    root motion "camera", or not asked for)."""
    if not options.ground_plane or motion.camera_to_world is None:
        return None
    placed = [rig for rig in rigs if rig.in_world]
    if not placed:
        why = ("root motion 'camera' keeps the camera's axes" if options.root_motion == "camera"
               else "no imported person has a world translation")
        notes.append(f"no ground plane: {why}")
        return None
    points = [rig.pelvis_positions() for rig in placed]
    if camera is not None and camera.motion is not None:
        points.append(camera.motion.locations)
    return GroundPlan(f"{base}_ground", *ground_extent(points))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None


def _select_people(motion: Motion, wanted: tuple[int, ...] | None) -> list[PersonMotion]:
    if wanted is None:
        return list(motion.people)
    present = {p.person_id: p for p in motion.people}
    missing = [pid for pid in wanted if pid not in present]
    if missing:
        have = ", ".join(str(p) for p in present)
        raise AddonError(f"no person {', '.join(map(str, missing))} in the motion file (people: {have})")
    return [present[pid] for pid in dict.fromkeys(wanted)]


def _bone_tails(heads: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Every bone points along +Z (its frame must equal SMPL's); its length only affects display."""
    lengths = np.full(len(heads), _LEAF_BONE_LENGTH)
    for j in range(len(heads)):
        children = np.nonzero(parents == j)[0]
        if children.size:
            reach = np.linalg.norm(heads[children] - heads[j], axis=1).mean()
            lengths[j] = float(np.clip(0.5 * reach, 0.02, 0.2))
    tails = heads.copy()
    tails[:, 2] += lengths
    return tails


def _plan_rig(motion: Motion, person: PersonMotion, base: str, options: ImportOptions) -> RigPlan:
    rest_joints = person.rest_joints.astype(np.float64)
    rest_vertices = person.rest_vertices.astype(np.float64)
    parents = np.asarray(motion.parents, np.int64)
    heads = rest_joints @ SMPL_TO_ARMATURE.T
    vertices = rest_vertices @ SMPL_TO_ARMATURE.T

    # Joints 1..23 apply unchanged; the root turns from camera axes into armature space and its
    # location puts the pelvis where the root motion mode says (root_motion.py).
    pose, locked = person_pose(person, options.foot_lock)
    quats, root_location = root_keys(motion, person, pose, options.root_motion)

    shape_keys: tuple[tuple[str, np.ndarray], ...] = ()
    if options.shape_keys:
        dirs = motion.shape_dirs.astype(np.float64)
        shape_keys = tuple(
            (f"beta_{k:02d}", ((rest_vertices + dirs[:, :, k]) @ SMPL_TO_ARMATURE.T).astype(np.float32))
            for k in range(dirs.shape[2])
        )

    name = f"{base}_p{person.person_id}"
    return RigPlan(
        person_id=person.person_id,
        armature_name=name,
        mesh_name=f"{name}_body",
        action_name=f"{name}_motion",
        bone_names=tuple(motion.joint_names),
        bone_parents=tuple(int(p) for p in parents),
        bone_heads=heads,
        bone_tails=_bone_tails(heads, parents),
        vertices=vertices.astype(np.float32),
        faces=np.asarray(motion.faces, np.int32),
        weights=np.asarray(motion.skin_weights, np.float32),
        frames=person.frame.astype(np.float64) + options.frame_offset,
        rotations=quats,
        root_location=root_location,
        shape_keys=shape_keys,
        contacts=None if person.contacts is None else np.asarray(person.contacts, np.uint8),
        foot_locked=locked,
        in_world=options.root_motion != "camera" and has_world(motion, person),
        check_frames=frames_to_check(person) + options.frame_offset,
    )
