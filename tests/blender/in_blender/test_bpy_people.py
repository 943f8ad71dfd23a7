"""Several people: one rig per person keyed on their own frames, the panel's list of the last
run's people and re-importing all or the checked ones, and the engine's person choice
(``--person``, ``--max-people``) from the panel, against the fake engine."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from blender_checks import add_user_content, snapshot

from staf_blender.compat import action_fcurves
from staf_blender.motion_io import load_motion
from staf_blender.people import PEOPLE_HELP
from staf_blender.plan import ImportOptions
from staf_blender.rig import import_motion_file


def keyed_frames(arm) -> np.ndarray:
    """The frames of the armature's keys, the same on every curve (checked)."""
    curves = list(action_fcurves(arm))
    frames = [tuple(round(p.co.x, 6) for p in c.keyframe_points) for c in curves]
    assert len(set(frames)) == 1, f"{arm.name}: curves keyed on different frames"
    return np.array(frames[0])


def test_each_person_gets_a_rig_keyed_on_their_own_frames(ref):
    motion = load_motion(ref / "trio.npz")
    result = import_motion_file(bpy.context, ref / "trio.npz", ImportOptions())
    assert [a.name for a in result.armatures] == ["trio_p0", "trio_p1", "trio_p2"]
    assert [m.name for m in result.meshes] == ["trio_p0_body", "trio_p1_body", "trio_p2_body"]
    for arm, mesh, person in zip(result.armatures, result.meshes, motion.people, strict=True):
        assert arm["staf_person_id"] == person.person_id and mesh.parent == arm
        assert [m.object for m in mesh.modifiers if m.type == 'ARMATURE'] == [arm]
        assert len(arm.data.bones) == 24
        np.testing.assert_array_equal(keyed_frames(arm), person.frame + 1)  # Blender frame = clip frame + 1
    p0, p1, p2 = (keyed_frames(a) for a in result.armatures)
    assert not set(range(17, 23)) & set(p0.tolist())  # person 0's gap (clip frames 16..21) has no key
    assert p1[0] == 13 and p2[-1] == 30  # a late start, an early end
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1, 40, 25)


@pytest.fixture()
def settings(addon):
    return bpy.context.scene.staf


def test_import_lists_the_people_and_reimports_all_or_the_checked(ref, settings):
    assert len(settings.tracks) == 0
    assert bpy.ops.staf.import_motion(filepath=str(ref / "trio.npz")) == {'FINISHED'}
    assert [(t.person_id, t.frames, t.first, t.last, t.segments) for t in settings.tracks] == [
        (0, 34, 0, 39, 2), (1, 28, 12, 39, 1), (2, 30, 0, 29, 1)]
    assert [t.summary.label() for t in settings.tracks] == [
        "#0  34 frames, 1-40 (2 parts)", "#1  28 frames, 13-40", "#2  30 frames, 1-30"]
    assert Path(settings.tracks_file) == ref / "trio.npz" and settings.tracks_name == "trio"
    assert all(t.use for t in settings.tracks)

    settings.tracks[1].use = False
    assert bpy.ops.staf.import_tracks(only_checked=True) == {'FINISHED'}
    assert {o.name for o in bpy.data.collections["trio_2"].objects} == {
        "trio_2_p0", "trio_2_p0_body", "trio_2_p2", "trio_2_p2_body", "trio_2_camera"}
    assert bpy.ops.staf.import_tracks(only_checked=False) == {'FINISHED'}
    assert {o.name for o in bpy.data.collections["trio_3"].objects if o.type == 'ARMATURE'} == {
        "trio_3_p0", "trio_3_p1", "trio_3_p2"}
    assert "trio_p1" in bpy.data.objects  # the first import is untouched

    before = snapshot()
    for track in settings.tracks:
        track.use = False
    with pytest.raises(RuntimeError, match="no person is checked"):
        bpy.ops.staf.import_tracks(only_checked=True)
    settings.tracks_file = str(ref / "gone.npz")
    with pytest.raises(RuntimeError, match="motion file is gone"):
        bpy.ops.staf.import_tracks(only_checked=False)
    assert snapshot() == before


def test_bad_people_text_in_the_import_operator(ref, addon):
    before = snapshot()
    with pytest.raises(RuntimeError, match=PEOPLE_HELP):
        bpy.ops.staf.import_motion(filepath=str(ref / "trio.npz"), people="zero")
    with pytest.raises(RuntimeError, match=r"no person 7 in the motion file \(people: 0, 1, 2\)"):
        bpy.ops.staf.import_motion(filepath=str(ref / "trio.npz"), people="7")
    assert snapshot() == before and len(bpy.context.scene.staf.tracks) == 0


@pytest.fixture()
def engine(ref, fake_engine):
    """The panel set up to reconstruct a clip whose engine run finds the trio."""
    return fake_engine(ref / "trio.npz")


def engine_args(engine) -> str:
    return " ".join(json.loads(engine.log.read_text()))


def test_reconstruct_chosen_people_lists_them_and_keeps_the_file_for_reimports(engine):
    settings = engine.settings
    assert settings.people == "all" and settings.max_people == 0
    assert bpy.ops.staf.reconstruct_video() == {'FINISHED'}
    assert "--person all" in engine_args(engine) and "--max-people" not in engine_args(engine)
    assert [t.person_id for t in settings.tracks] == [0, 1, 2]
    first_copy = Path(settings.tracks_file)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    settings = bpy.context.scene.staf
    settings.clip_path, settings.device, settings.people = str(engine.video), 'cpu', "0, 2"
    assert bpy.ops.staf.reconstruct_video() == {'FINISHED'}
    assert "--person 0,2" in engine_args(engine)
    assert {o.name for o in bpy.data.objects if o.type == 'ARMATURE'} == {"dance_p0", "dance_p2"}
    assert [t.person_id for t in settings.tracks] == [0, 2] and settings.tracks_name == "dance"
    kept = Path(settings.tracks_file)  # no "keep motion file" asked: a private copy of this run
    assert kept == first_copy and kept.parent.name.startswith("staf-last-run-")
    assert [p.person_id for p in load_motion(kept).people] == [0, 2]  # this run's file replaced the last one

    settings.tracks[0].use = False
    assert bpy.ops.staf.import_tracks(only_checked=True) == {'FINISHED'}
    assert {o.name for o in bpy.data.collections["dance_2"].objects if o.type == 'ARMATURE'} == {"dance_2_p2"}

    settings.people, settings.max_people = "all", 2
    bpy.data.collections["dance"].name = "first_run"  # free the name: a reconstruct never renames
    for obj in list(bpy.data.collections["first_run"].objects):
        obj.name = f"old_{obj.name}"
    assert bpy.ops.staf.reconstruct_video() == {'FINISHED'}
    assert "--person all --max-people 2" in engine_args(engine)
    assert [t.person_id for t in settings.tracks] == [0, 1]


def test_kept_motion_file_is_the_one_listed(engine):
    engine.settings.keep_motion = str(engine.video.with_suffix(".npz"))
    assert bpy.ops.staf.reconstruct_video() == {'FINISHED'}
    assert Path(engine.settings.tracks_file) == engine.video.with_suffix(".npz")


@pytest.mark.parametrize("people, max_people, message, started", [
    ("zero", 0, PEOPLE_HELP + ", not 'zero'", False),
    ("0;2", 0, PEOPLE_HELP, False),
    ("5", 0, r"Engine: no person 5 in this clip \(ids there are: 0, 1, 2\)", True),
    ("2", 2, r"no person 2 in this clip \(ids there are: 0, 1\)", True),
])
def test_bad_people_choice_is_one_line_and_changes_nothing(engine, people, max_people, message, started):
    engine.settings.people, engine.settings.max_people = people, max_people
    add_user_content()
    before = snapshot()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.staf.reconstruct_video()
    assert snapshot() == before and len(engine.settings.tracks) == 0
    assert engine.log.exists() == started  # a bad text never starts the engine


class Layout:
    """Records what a panel draws (headless bpy has no UI to draw into)."""

    def __init__(self, lines: list) -> None:
        self.lines, self.enabled, self.alert = lines, True, False

    def _child(self, *args, **kwargs) -> Layout:
        return Layout(self.lines)

    row = column = box = _child

    def prop(self, data, name, text=None, **kwargs) -> None:
        self.lines.append(("prop", name, text, self.enabled, self.alert))

    def label(self, text="", icon="NONE") -> None:
        self.lines.append(("label", text, icon))

    def operator(self, idname, text=None, icon="NONE") -> SimpleNamespace:
        self.lines.append(("operator", idname, text, self.enabled))
        return SimpleNamespace()

    def progress(self, **kwargs) -> None:
        self.lines.append(("progress",))


def draw(panel) -> list:
    lines: list = []
    panel.draw(SimpleNamespace(layout=Layout(lines)), bpy.context)
    return lines


def test_panels_show_the_people_choice_and_the_list(ref, settings):
    from staf_blender.ui import STAF_PT_export, STAF_PT_people, STAF_PT_reconstruct

    assert ("label", "Reconstruct or import a motion file", 'INFO') in draw(STAF_PT_people)
    assert ("prop", "people", None, True, False) in draw(STAF_PT_reconstruct)
    settings.people = "0;2"
    lines = draw(STAF_PT_reconstruct)
    assert ("prop", "people", None, True, True) in lines and ("label", PEOPLE_HELP, 'ERROR') in lines
    assert ("prop", "max_people", None, True, False) in lines
    assert ("prop", "export_split", None, True, False) in draw(STAF_PT_export)

    assert bpy.ops.staf.import_motion(filepath=str(ref / "trio.npz")) == {'FINISHED'}
    lines = draw(STAF_PT_people)
    assert ("label", "trio.npz", 'FILE') in lines
    assert [line[2] for line in lines if line[:2] == ("prop", "use")] == [
        "#0  34 frames, 1-40 (2 parts)", "#1  28 frames, 13-40", "#2  30 frames, 1-30"]
    assert ("operator", "staf.import_tracks", "Import Checked", True) in lines
    settings.tracks_file = str(ref / "gone.npz")
    lines = draw(STAF_PT_people)
    assert ("label", "motion file gone", 'ERROR') in lines
    assert ("operator", "staf.import_tracks", "Import All", False) in lines
