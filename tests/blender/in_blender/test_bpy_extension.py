"""The extension zip: Blender's own validator, then an offline install into a fresh bpy (temporary
user resources, never the real profile) that enables it and imports a motion file without core."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parents[3]


def build_zip(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("build_extension", ROOT / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(folder)


def test_blenders_validator_accepts_the_extension(tmp_path):
    archive = build_zip(tmp_path)
    validator = Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    proc = subprocess.run([sys.executable, str(validator), "validate", str(archive)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_offline_install_enables_and_works_without_core(ref, tmp_path):
    archive = build_zip(tmp_path / "dist")
    resources = tmp_path / "user"
    resources.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(resources)
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "extension_check.py"), str(archive),
                           str(ref / "walk.npz")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["install"] == ["FINISHED"] and found["enabled"] and found["prefs"]
    assert found["import"] == ["FINISHED"]
    assert found["objects"] == ["installed_camera", "installed_p0", "installed_p0_body"]
    assert not found["core_imported"]
    assert found["motion_format"] == "bl_ext.user_default.staf_blender.vendor.motion_format"
    assert found["disabled"] and found["unregistered"]
    assert (resources / "extensions" / "user_default" / "staf_blender" / "blender_manifest.toml").is_file()
