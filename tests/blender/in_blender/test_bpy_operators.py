"""Operators: registration, "Import motion file", and "Reconstruct from video" against the fake
engine (tests/blender/fake_engine.py run as ``python -m core``): blocking, modal with progress,
ESC and the Cancel button, engine errors; the scene is untouched unless the engine succeeded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import bpy
import pytest
from blender_checks import add_user_content, snapshot

from staf_blender.operators import STAF_OT_reconstruct_video
from staf_blender.session import Reconstruction


@pytest.fixture()
def engine(ref, fake_engine):
    """The panel set up to reconstruct a clip whose engine run produces the walk."""
    return fake_engine(ref / "walk.npz")


def test_registration_in_order_and_back(addon):
    import staf_blender.addon as registered

    names = [cls.__name__ for cls in registered.classes]
    assert names[0] == "STAF_AddonPreferences" and all(cls.is_registered for cls in registered.classes)
    assert hasattr(bpy.types.Scene, "staf") and hasattr(bpy.types.WindowManager, "staf_job")
    assert STAF_OT_reconstruct_video.bl_idname == "staf.reconstruct_video"
    assert 'UNDO' in STAF_OT_reconstruct_video.bl_options  # the import is one undo step
    assert 'UNDO' in bpy.types.STAF_OT_import_motion.bl_options
    registered.unregister()
    assert not hasattr(bpy.types.Scene, "staf") and not any(cls.is_registered for cls in registered.classes)
    registered.register()
    assert hasattr(bpy.types.Scene, "staf")


def test_import_operator(addon, ref):
    assert bpy.ops.staf.import_motion(filepath=str(ref / "crowd.npz"), people="1", root_motion='ground',
                                      shape_keys=True) == {'FINISHED'}
    assert {o.name for o in bpy.data.objects} == {"crowd_p1", "crowd_p1_body"}
    before = snapshot()
    with pytest.raises(RuntimeError, match="names already taken"):
        bpy.ops.staf.import_motion(filepath=str(ref / "crowd.npz"), people="1")
    with pytest.raises(RuntimeError, match="People: 'all' or ids like 0, 2, not 'one'"):
        bpy.ops.staf.import_motion(filepath=str(ref / "crowd.npz"), people="one")
    assert snapshot() == before


def test_reconstruct_runs_the_engine_and_imports(engine):
    engine.settings.use_range, engine.settings.frame_start, engine.settings.frame_end = True, 3, 40
    engine.settings.batch_size = 4
    engine.settings.keep_motion = str(engine.video.with_suffix(".npz"))
    assert bpy.ops.staf.reconstruct_video() == {'FINISHED'}
    assert {o.name for o in bpy.data.objects} == {"dance_p0", "dance_p0_body", "dance_camera"}
    assert engine.video.with_suffix(".npz").read_bytes() == engine.motion.read_bytes()  # kept as asked
    args = json.loads(engine.log.read_text())
    assert args[:2] == ["reconstruct", str(engine.video)]
    for flag in ("--progress json", "--device cpu", "--start 3", "--end 40", "--person all", "--batch-size 4"):
        assert flag in " ".join(args)


@pytest.mark.parametrize("mode, message", [("error5", "Engine: fake failure with code 5"),
                                           ("crash", "RuntimeError: fake crash")])
def test_engine_errors_are_shown_and_change_nothing(engine, monkeypatch, mode, message):
    monkeypatch.setenv("FAKE_ENGINE_MODE", mode)
    add_user_content()
    before = snapshot()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.staf.reconstruct_video()
    assert snapshot() == before
    assert message.replace("Engine: ", "") in bpy.context.window_manager.staf_job.message


def test_missing_clip_or_engine(engine, monkeypatch, tmp_path):
    engine.settings.clip_path = str(tmp_path / "absent.mp4")
    with pytest.raises(RuntimeError, match="no such video file"):
        bpy.ops.staf.reconstruct_video()
    engine.settings.clip_source = 'MOVIECLIP'
    with pytest.raises(RuntimeError, match="no active Movie Clip"):
        bpy.ops.staf.reconstruct_video()
    engine.settings.clip_source, engine.settings.clip_path = 'FILE', str(engine.video)
    monkeypatch.setenv("PYTHONPATH", "")  # this interpreter has no engine then
    before = snapshot()
    with pytest.raises(RuntimeError, match="no Python interpreter with the engine"):
        bpy.ops.staf.reconstruct_video()
    with pytest.raises(RuntimeError, match="no Python interpreter with the engine"):
        bpy.ops.staf.check_engine()
    assert snapshot() == before


class Event:
    def __init__(self, kind: str) -> None:
        self.type = kind
        self.value = 'PRESS'


def modal_operator():
    """The modal operator's methods on a stand-in instance: Blender only runs modal handlers in its
    event loop, which headless bpy has not, so the test plays the timer and key events itself."""
    from staf_blender.operators import reconstruct_request

    op = SimpleNamespace(_timer=None, reports=[])
    op.report = lambda kind, text: op.reports.append((next(iter(kind)), text))
    op._stop = lambda context: STAF_OT_reconstruct_video._stop(op, context)
    op._run = Reconstruction(reconstruct_request(bpy.context))
    job = bpy.context.window_manager.staf_job
    job.running, job.message, job.cancel_requested = True, "", False

    def step(kind: str = 'TIMER'):
        return STAF_OT_reconstruct_video.modal(op, bpy.context, Event(kind))

    return op, step


def run_until_done(step, first: set[str] | None = None, limit: float = 20.0):
    import time

    deadline = time.monotonic() + limit
    state = first or step()
    while state == {'PASS_THROUGH'} or state == {'RUNNING_MODAL'}:
        assert time.monotonic() < deadline, "the modal operator never finished"
        time.sleep(0.05)
        state = step()
    return state


def test_modal_run_shows_progress_then_imports(engine, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_DELAY", "0.05")
    op, step = modal_operator()
    job = bpy.context.window_manager.staf_job
    stages = set()
    state = step()
    while state == {'PASS_THROUGH'}:
        if job.stage:
            stages.add(job.stage.split()[0])
        state = step()
    assert state == {'FINISHED'}
    assert len(stages) >= 2 and stages <= {"decode", "detect", "backbone", "staf"}
    assert not job.running and job.stage == ""
    assert "dance_p0" in bpy.data.objects and op.reports[-1][0] == 'INFO'


@pytest.mark.parametrize("how", ["ESC", "button"])
def test_modal_cancel_leaves_the_scene_untouched(engine, monkeypatch, how):
    import time

    monkeypatch.setenv("FAKE_ENGINE_DELAY", "0.2")
    add_user_content()
    before = snapshot()
    op, step = modal_operator()
    workdir = op._run.job.output.parent
    while bpy.context.window_manager.staf_job.progress == 0.0:  # running, past its first stage line
        assert step() == {'PASS_THROUGH'}
        time.sleep(0.05)
    started = time.monotonic()
    if how == "ESC":
        assert step('ESC') == {'RUNNING_MODAL'}
    else:
        assert bpy.ops.staf.cancel_reconstruct() == {'FINISHED'}
    assert run_until_done(step) == {'CANCELLED'}
    assert time.monotonic() - started < 3.0
    assert op.reports[-1] == ('WARNING', "Reconstruction cancelled")
    assert snapshot() == before and not workdir.exists()
    assert not bpy.context.window_manager.staf_job.running


def test_engine_runs_where_a_core_folder_cannot_shadow_it(engine, tmp_path, monkeypatch):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__main__.py").write_text("raise SystemExit('wrong engine')\n")
    monkeypatch.chdir(tmp_path)
    assert bpy.ops.staf.reconstruct_video() == {'FINISHED'}  # the interpreter check and the engine
    assert "dance_p0" in bpy.data.objects                      # both ran outside this folder
