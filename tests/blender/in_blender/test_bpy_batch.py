"""scripts/batch.py end to end, as a user runs it (``python scripts/batch.py ...`` with bpy)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "batch.py"


def batch(*args, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_ENGINE_", "STAF_"))}
    full_env.pop("PYTHONPATH", None)
    full_env.update(env)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def objects_in(blend: Path) -> set[str]:
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    return {o.name for o in bpy.data.objects}


def test_motion_file_to_fbx_and_blend(ref, tmp_path):
    proc = batch("--motion", ref / "walk.npz", "--fbx", tmp_path / "walk.fbx", "--blend", tmp_path / "walk.blend",
                 "--preset", "unreal", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ok     walk.npz: 1 character" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.blend", "walk.fbx"]  # no temporary leftovers
    assert objects_in(tmp_path / "walk.blend") == {"walk_p0", "walk_p0_body", "walk_camera"}
    assert bpy.context.scene.render.fps == 30 and bpy.context.scene.frame_end == 48


def test_video_through_the_engine_with_progress(ref, tmp_path, fake_package):
    video = tmp_path / "jump.mp4"
    video.write_bytes(b"x")
    proc = batch(video, "--fbx", tmp_path / "jump.fbx", "--keep-motion", tmp_path / "jump.npz", "--device", "cpu",
                 "--python", sys.executable, cwd=tmp_path, PYTHONPATH=str(fake_package),
                 FAKE_ENGINE_MOTION=str(ref / "crowd.npz"), FAKE_ENGINE_DELAY="0.12")
    assert proc.returncode == 0, proc.stderr
    assert "jump.mp4: detect" in proc.stdout and "jump.mp4: staf 4/4" in proc.stdout
    assert "ok     jump.mp4: 2 characters" in proc.stdout
    assert (tmp_path / "jump.npz").read_bytes() == (ref / "crowd.npz").read_bytes()
    assert (tmp_path / "jump.fbx").stat().st_size > 0


def test_folder_reports_each_clip_and_fails_with_the_first_code(ref, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(ref / "walk.npz", clips / "a_walk.npz")
    (clips / "b_broken.npz").write_bytes((ref / "walk.npz").read_bytes()[:5000])
    shutil.copy(ref / "crowd.npz", clips / "c_crowd.npz")
    proc = batch("--motion", clips, "--fbx", tmp_path / "fbx", cwd=tmp_path)
    assert proc.returncode == 5
    assert "ok     a_walk.npz" in proc.stdout and "FAILED b_broken.npz" in proc.stdout
    assert "ok     c_crowd.npz" in proc.stdout and "2 of 3 clips done" in proc.stdout
    assert error_lines(proc) == [line for line in proc.stderr.splitlines() if line.strip()]
    assert sorted(p.name for p in (tmp_path / "fbx").iterdir()) == ["a_walk.fbx", "c_crowd.fbx"]


@pytest.mark.parametrize("case, code, message", [
    ("engine-error", 5, "fake failure with code 5"),
    ("no-engine", 3, "does not exist"),
    ("corrupt", 5, "not a motion file"),
    ("exists", 6, "exists: pass --overwrite"),
    ("unwritable", 6, "does not exist"),
    ("usage", 2, "nothing to write"),
])
def test_failures_are_one_line_nonzero_and_write_nothing(ref, tmp_path, fake_package, case, code, message):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    (tmp_path / "text.npz").write_text("hello")
    (tmp_path / "taken.fbx").write_text("mine")
    out = tmp_path / "out.fbx"
    env = {"PYTHONPATH": str(fake_package), "FAKE_ENGINE_MOTION": str(ref / "walk.npz")}
    args = {
        "engine-error": [video, "--fbx", out, "--blend", tmp_path / "out.blend", "--python", sys.executable],
        "no-engine": [video, "--fbx", out, "--python", tmp_path / "no" / "python"],
        "corrupt": ["--motion", tmp_path / "text.npz", "--fbx", out, "--blend", tmp_path / "out.blend"],
        "exists": ["--motion", ref / "walk.npz", "--fbx", tmp_path / "taken.fbx"],
        "unwritable": ["--motion", ref / "walk.npz", "--fbx", tmp_path / "clip.mp4" / "x.fbx"],
        "usage": ["--motion", ref / "walk.npz"],
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = batch(*args, cwd=tmp_path, FAKE_ENGINE_MODE="error5", **env)
    assert proc.returncode == code, proc.stdout + proc.stderr
    (line,) = error_lines(proc)
    assert message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "taken.fbx").read_text() == "mine"


def armatures_in(fbx: Path) -> list[str]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(fbx))
    return sorted(o.name for o in bpy.data.objects if o.type == 'ARMATURE')


def test_chosen_people_through_the_engine_into_one_fbx_or_one_per_person(ref, tmp_path, fake_package):
    video = tmp_path / "party.mp4"
    video.write_bytes(b"x")
    env = {"PYTHONPATH": str(fake_package), "FAKE_ENGINE_MOTION": str(ref / "trio.npz"),
           "FAKE_ENGINE_LOG": str(tmp_path / "args.json")}
    out = tmp_path / "out"
    out.mkdir()
    proc = batch(video, "--fbx", out / "party.fbx", "--person", "0,2", "--python", sys.executable, cwd=tmp_path,
                 **env)
    assert proc.returncode == 0, proc.stderr
    assert "ok     party.mp4: 2 characters -> " in proc.stdout
    assert "--person 0,2" in " ".join(json.loads((tmp_path / "args.json").read_text()))
    assert sorted(p.name for p in out.iterdir()) == ["party.fbx"]
    assert armatures_in(out / "party.fbx") == ["party_p0", "party_p2"]

    proc = batch(video, "--fbx", out / "party.fbx", "--person", "0,2", "--split", "--max-people", "3",
                 "--python", sys.executable, cwd=tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert "--person 0,2 --max-people 3" in " ".join(json.loads((tmp_path / "args.json").read_text()))
    assert sorted(p.name for p in out.iterdir()) == ["party.fbx", "party_p0.fbx", "party_p2.fbx"]
    assert armatures_in(out / "party_p2.fbx") == ["party_p2"]

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = batch(video, "--fbx", out / "party.fbx", "--split", "--python", sys.executable, cwd=tmp_path, **env)
    assert proc.returncode == 6 and error_lines(proc) == [
        f"error: {out / 'party_p0.fbx'}, {out / 'party_p2.fbx'} exist: pass --overwrite to replace them"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # refused before the engine ran


@pytest.mark.parametrize("args, code, message", [
    (["--person", "zero"], 2, "error: argument --person: People: 'all' or ids like 0, 2, not 'zero' (see --help)"),
    (["--person", "0,2", "--max-people", "0"], 2, "error: argument --max-people: max people must be a whole "
     "number of at least 1, not '0' (see --help)"),
    (["--person", "4"], 5, "error: party.mp4: no person 4 in this clip (ids there are: 0, 1, 2)"),
])
def test_bad_person_choice_is_one_line_and_writes_nothing(ref, tmp_path, fake_package, args, code, message):
    video = tmp_path / "party.mp4"
    video.write_bytes(b"x")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = batch(video, "--fbx", tmp_path / "party.fbx", "--split", "--python", sys.executable, *args, cwd=tmp_path,
                 PYTHONPATH=str(fake_package), FAKE_ENGINE_MOTION=str(ref / "trio.npz"))
    assert proc.returncode == code
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [message]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
