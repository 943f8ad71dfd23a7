"""Batch mode's argument checks (no Blender): everything is refused before any work starts."""

from __future__ import annotations

import pytest

from staf_blender.batch import build_parser, interpreter_candidates, main, plan_batch
from staf_blender.errors import AddonError
from staf_blender.fbx_presets import PRESET_NAMES, PRESETS, get_preset


def plan(*argv: str):
    return plan_batch(build_parser().parse_args([str(a) for a in argv]))


def test_single_clip_and_options(tmp_path):
    video = tmp_path / "walk.mp4"
    video.write_bytes(b"x")
    p = plan(video, "--fbx", tmp_path / "walk.fbx", "--blend", tmp_path / "walk.blend", "--preset", "unreal",
             "--root", "ground", "--people", "0,2", "--person", "1", "--device", "cpu", "--start", "5")
    (job,) = p.jobs
    assert job.is_video and job.fbx == tmp_path / "walk.fbx" and job.blend == tmp_path / "walk.blend"
    assert p.preset == "unreal" and p.engine.people == (1,) and p.engine.start == 5 and p.engine.device == "cpu"
    assert p.import_options.people == (0, 2) and p.import_options.root_motion == "ground"
    assert not p.import_options.camera  # the overlay camera needs root motion "camera"


def test_root_motion_foot_lock_and_ground_plane_options(tmp_path):
    motion = tmp_path / "walk.npz"
    motion.write_bytes(b"x")
    default = plan("--motion", motion, "--fbx", tmp_path / "a.fbx").import_options
    assert default.root_motion == "auto" and default.camera and default.foot_lock and default.ground_plane
    world = plan("--motion", motion, "--fbx", tmp_path / "a.fbx", "--root", "world", "--no-foot-lock",
                 "--no-ground-plane").import_options
    assert world.root_motion == "world" and world.camera and not world.foot_lock and not world.ground_plane


def test_folder_input_gives_one_job_per_clip(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("b.mp4", "a.MOV", "notes.txt"):
        (clips / name).write_bytes(b"x")
    p = plan(clips, "--fbx", tmp_path / "fbx", "--keep-motion", tmp_path / "motion")
    assert [j.source.name for j in p.jobs] == ["a.MOV", "b.mp4"]
    assert [j.fbx.name for j in p.jobs] == ["a.fbx", "b.fbx"] and p.jobs[0].keep_motion.name == "a.npz"
    assert not (tmp_path / "fbx").exists()  # created only when a clip succeeds


@pytest.mark.parametrize("make_args, message", [
    (lambda t: [], "give either a video"),
    (lambda t: [t / "in.mp4"], "nothing to write"),
    (lambda t: [t / "in.mp4", "--motion", t / "m.npz", "--fbx", t / "o.fbx"], "give either"),
    (lambda t: [t / "absent.mp4", "--fbx", t / "o.fbx"], "no such file"),
    (lambda t: [t / "in.mp4", "--fbx", t / "o.obj"], r"must end in \.fbx"),
    (lambda t: [t / "in.mp4", "--fbx", t / "missing" / "o.fbx"], "does not exist"),
    (lambda t: [t / "in.mp4", "--fbx", t / "taken.fbx"], "exists: pass --overwrite"),
    (lambda t: [t / "in.mp4", "--fbx", t / "in.mp4" / "o.fbx"], "does not exist"),
    (lambda t: [t / "empty", "--fbx", t / "out"], "no videos"),
    (lambda t: ["--motion", t / "m.npz", "--fbx", t / "o.fbx", "--keep-motion", t / "k.npz"], "only applies"),
    (lambda t: [t / "in.mp4", "--fbx", t / "o.fbx", "--device", "tpu"], "unknown device"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, make_args, message):
    (tmp_path / "in.mp4").write_bytes(b"x")
    (tmp_path / "m.npz").write_bytes(b"x")
    (tmp_path / "taken.fbx").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(AddonError, match=message):
        plan(*make_args(tmp_path))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_usage_errors_are_one_line_with_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "godot"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "godot" in err
    assert main(["--motion", str(tmp_path / "absent.npz"), "--fbx", str(tmp_path / "o.fbx")]) == 5
    assert capsys.readouterr().err.count("\n") == 1


def test_interpreter_candidates_honour_staf_python(monkeypatch):
    monkeypatch.setenv("STAF_PYTHON", "/opt/engine/bin/python")
    found = interpreter_candidates()
    assert found[0] == "/opt/engine/bin/python" and found[-1].endswith(".venv/bin/python")


def test_fbx_presets_set_the_same_options_explicitly():
    keys = {name: set(p.operator_settings) for name, p in PRESETS.items()}
    assert set(PRESET_NAMES) == {"unity", "unreal", "generic"}
    assert keys["unity"] == keys["unreal"] == keys["generic"] and "filepath" not in keys["unity"]
    for preset in PRESETS.values():
        s = preset.operator_settings
        assert s["add_leaf_bones"] is False and s["bake_anim_simplify_factor"] == 0.0
        assert s["bake_anim_use_all_actions"] is False and s["bake_anim_use_nla_strips"] is False
    assert get_preset("unreal").data_scale == 100.0 and get_preset("unreal").root_bone == "root"
    with pytest.raises(ValueError, match="unknown FBX preset"):
        get_preset("godot")


def test_retarget_options_are_checked_before_any_work(tmp_path):
    motion = tmp_path / "walk.npz"
    motion.write_bytes(b"x")
    hero = tmp_path / "hero.fbx"
    hero.write_bytes(b"x")
    mapping = tmp_path / "map.json"
    mapping.write_text("{}")
    out = tmp_path / "out.fbx"
    assert plan("--motion", motion, "--fbx", out).retarget is None
    r = plan("--motion", motion, "--fbx", out, "--retarget", hero).retarget
    assert r.target == hero and r.mapping == "auto" and r.plant_feet
    r = plan("--motion", motion, "--fbx", out, "--retarget", hero, "--mapping", mapping, "--no-plant-feet").retarget
    assert r.mapping == str(mapping) and not r.plant_feet
    assert plan("--motion", motion, "--fbx", out, "--retarget", hero, "--mapping", "ue5").retarget.mapping == "ue5"
    cases = [
        (["--mapping", "mixamo"], "--mapping and --no-plant-feet need --retarget", 2),
        (["--retarget", tmp_path / "hero.obj"], "give the character as .fbx or .blend", 2),
        (["--retarget", tmp_path / "gone.blend"], "gone.blend: no such file", 5),
        (["--retarget", hero, "--mapping", "maya"], "--mapping 'maya': give auto, one of mixamo", 2),
        (["--retarget", hero, "--mapping", tmp_path / "gone.json"], "gone.json: no such file", 5),
    ]
    for extra, message, code in cases:
        with pytest.raises(AddonError, match=message) as excinfo:
            plan("--motion", motion, "--fbx", out, *extra)
        assert excinfo.value.exit_code == code and "\n" not in str(excinfo.value)
    assert not out.exists()
