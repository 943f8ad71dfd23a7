"""scripts/batch.py end to end, as a user runs it (``python scripts/batch.py ...`` with bpy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "batch.py"


@pytest.fixture(scope="module")
def fake_package(tmp_path_factory):
    from fake_engine import make_fake_engine_package

    return make_fake_engine_package(tmp_path_factory.mktemp("fake_engine"))


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
    ("exists", 5, "exists: pass --overwrite"),
    ("unwritable", 5, "does not exist"),
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
