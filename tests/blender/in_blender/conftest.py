"""Fixtures for the tests that run inside Blender (the bpy module), one virtualenv per Blender line.

    make test-blender          # both lines; or by hand:
    .venv-bpy50/bin/python -m pytest --confcutdir=tests/blender/in_blender tests/blender/in_blender

They need the reference bundle written by the main venv (tests/blender/make_reference.py), found
through STAF_BLENDER_REF (default build/blender-ref). Without bpy (the main venv) these files are
not collected at all.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[3]

if importlib.util.find_spec("bpy") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    for path in (ROOT, ROOT / "tests" / "blender"):  # staf_blender, core.motion_format, fake_engine
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


@pytest.fixture(scope="session")
def ref() -> Path:
    """The reference bundle: walk.npz, crowd.npz and the engine's expected results for them."""
    folder = Path(os.environ.get("STAF_BLENDER_REF", ROOT / "build" / "blender-ref")).resolve()
    if not (folder / "reference_walk.npz").is_file():
        pytest.fail(f"no reference bundle in {folder}: run '.venv/bin/python tests/blender/make_reference.py "
                    f"{folder}' (make test-blender does)")
    return folder


@pytest.fixture(scope="session")
def addon():
    """The add-on registered from the source tree for the whole session."""
    import staf_blender

    staf_blender.register()
    yield staf_blender
    staf_blender.unregister()


@pytest.fixture(autouse=True)
def empty_scene():
    """Every test starts from Blender's empty factory scene."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene


@pytest.fixture(scope="session")
def fake_package(tmp_path_factory) -> Path:
    """A folder that, on PYTHONPATH, makes ``python -m core`` the fake engine (tests/blender/fake_engine.py)."""
    from fake_engine import make_fake_engine_package

    return make_fake_engine_package(tmp_path_factory.mktemp("fake_engine"))


@pytest.fixture()
def fake_engine(addon, fake_package, tmp_path, monkeypatch) -> Callable[[Path], SimpleNamespace]:
    """Set up the panel to reconstruct a clip through the fake engine, which "produces" ``motion``.

    Blender's own Python (this interpreter) finds the fake engine on PYTHONPATH. Returns the clip,
    the file where the engine logs its arguments, the panel's settings and the motion file."""
    import bpy

    def setup(motion: Path) -> SimpleNamespace:
        monkeypatch.setenv("PYTHONPATH", str(fake_package))
        monkeypatch.setenv("FAKE_ENGINE_MOTION", str(motion))
        monkeypatch.setenv("FAKE_ENGINE_LOG", str(tmp_path / "args.json"))
        for key in ("FAKE_ENGINE_MODE", "FAKE_ENGINE_DELAY", "FAKE_ENGINE_STEPS"):
            monkeypatch.delenv(key, raising=False)
        video = tmp_path / "dance.mp4"
        video.write_bytes(b"the fake engine only checks that the clip exists")
        settings = bpy.context.scene.staf
        settings.clip_path, settings.device = str(video), "cpu"
        return SimpleNamespace(video=video, log=tmp_path / "args.json", settings=settings, motion=motion)

    return setup
