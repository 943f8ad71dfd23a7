"""The extension zip (no Blender needed): contents, the vendored motion-file reader, the manifest."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_extension", ROOT / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zip_holds_the_package_and_a_byte_identical_motion_format(tmp_path):
    build = load_build_script()
    archive = build.build(tmp_path / "a")
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        for name in ("motion_format.py", "motion_schema.py", "npz_archive.py"):  # the reader and its imports
            assert zf.read(f"vendor/{name}") == (ROOT / "core" / name).read_bytes(), name
        assert zf.read("blender_manifest.toml") == (ROOT / "blender_manifest.toml").read_bytes()
    package = {p.relative_to(ROOT / "staf_blender").as_posix() for p in (ROOT / "staf_blender").glob("*.py")}
    assert package <= names and "__init__.py" in names and "vendor/__init__.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") or n.startswith(".") or "ruff" in n for n in names)
    assert build.build(tmp_path / "b").read_bytes() == archive.read_bytes()  # reproducible


def test_manifest_follows_blenders_rules():
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "license",
                "blender_version_min"):
        assert manifest.get(key), key
    assert manifest["id"] == "staf_blender" and manifest["type"] == "add-on"
    assert len(manifest["tagline"]) <= 64 and re.search(r"[A-Za-z0-9\])]$", manifest["tagline"])
    for reason in manifest["permissions"].values():
        assert len(reason) <= 64 and not reason.endswith(".")


def test_blenders_own_validator_accepts_the_zip(tmp_path):
    build = load_build_script()
    validator = build.find_validator()
    if validator is None:
        pytest.skip("no bpy virtualenv here (make blender-venvs): Blender's validator is not available")
    import subprocess

    archive = build.build(tmp_path)
    proc = subprocess.run([sys.executable, str(validator), "validate", str(archive)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
