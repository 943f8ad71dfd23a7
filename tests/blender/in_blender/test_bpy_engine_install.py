"""Issue 11, item 6: the extension zip installed into a fresh bpy runs Install Engine against a
wheel of the engine built here (offline: the new environment also sees the main venv's packages,
torch and the rest, which cannot be downloaded), then reconstructs a real clip through the
installed engine with stand-in assets; a second, impossible install leaves the first in place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_bpy_extension import build_zip

ROOT = Path(__file__).resolve().parents[3]
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
VIDEO = ROOT.parent / "shared" / "data" / "videos" / "runner.mp4"
FRAMES = 12
SMALL = ("J_regressor_extra.npy", "J_regressor_h36m.npy", "smpl_mean_params.npz")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"
    return proc


def build_wheel(folder: Path) -> Path:
    """A wheel of the engine from a copy of the sources (the build writes nothing into the checkout)."""
    src = folder / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("core", "staf_blender"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([str(MAIN_PYTHON), "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(folder / "dist")], cwd=src, timeout=300)
    return next((folder / "dist").glob("staf_mocap-*.whl"))


def test_install_engine_from_the_extension_and_reconstruct(tmp_path: Path) -> None:
    if not MAIN_PYTHON.is_file():
        pytest.skip(f"no engine venv at {MAIN_PYTHON}: run 'make' first (it builds the wheel and lends torch)")
    if not VIDEO.is_file():
        pytest.skip(f"the shared clip {VIDEO} is absent (../shared/data is not part of the project)")
    site = _run([str(MAIN_PYTHON), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    wheel = build_wheel(tmp_path / "wheel")
    assets = tmp_path / "assets"
    _run([str(MAIN_PYTHON), "-m", "core", "standins", str(assets)], cwd=tmp_path, timeout=300)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for name in SMALL:
        shutil.copy(assets / name, downloads / name)
    out = tmp_path / "out"
    out.mkdir()
    config = {"zip": str(build_zip(tmp_path / "dist")), "wheel": str(wheel), "site": site, "assets": str(assets),
              "video": str(VIDEO), "frames": FRAMES, "out": str(out), "downloads": str(downloads)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    resources = tmp_path / "user"
    resources.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STAF_ASSETS", "STAF_PYTHON")}
    env["BLENDER_USER_RESOURCES"] = str(resources)
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "engine_install_check.py"),
                           str(tmp_path / "config.json")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["install"] == ["FINISHED"] and found["enabled"]

    root = Path(found["root"])
    assert resources in root.parents, "the engine lives in the extension's user folder"
    assert found["engine"] == ["FINISHED"], found["engine_message"]
    assert found["engine_message"].startswith("Engine installed") and "assets ready" in found["engine_message"]
    python = Path(found["python"])
    assert root in python.parents and found["candidates"][0] == str(python)
    assert root in Path(found["core_file"]).parents, "the engine runs from the installed wheel, not the checkout"

    assert found["bad_engine"] == ["CANCELLED"]
    assert "staf-mocap" in found["bad_message"] and found["bad_message"].endswith("the previous engine is unchanged")
    assert found["python_after_bad"] == str(python) and python.is_file()
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("engine-")) == [python.parents[1].name]

    assert found["refresh"] == ["FINISHED"] and set(found["assets"].values()) == {"found"}
    assert found["add"] == ["FINISHED"]
    assert all(found["added"][name] == "found" for name in SMALL) and found["added"]["base_model.pt"] == "missing"

    assert found["reconstruct"] == ["FINISHED"], proc.stderr[-2000:]
    motion = out / "motion.npz"
    assert motion.is_file() and found["armatures"]
    check = _run([str(MAIN_PYTHON), "-m", "core.motion_format", str(motion)], cwd=tmp_path)
    assert check.returncode == 0
    print(f"install {found['engine_s']} s, reconstruct {FRAMES} frames {found['reconstruct_s']} s")


class _Layout:
    """Records what a draw function asks for (labels, operators, progress bars)."""

    def __init__(self, drawn: list[str]) -> None:
        self.drawn = drawn

    def _child(self, *args, **kwargs) -> _Layout:
        return _Layout(self.drawn)

    row = column = box = _child

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.drawn.append(f"label {icon} {text}")

    def operator(self, idname: str, **kwargs) -> None:
        self.drawn.append(f"operator {idname}")

    def prop(self, data, name: str, **kwargs) -> None:
        self.drawn.append(f"prop {name}")

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        self.drawn.append(f"progress {factor:.2f} {text}")


def test_preferences_draw_the_install_and_each_verdict(addon, monkeypatch) -> None:
    import bpy

    from staf_blender import install_operators
    from staf_blender.preferences import STAF_AddonPreferences

    state = install_operators.SetupState(assets=[
        {"name": "base_model.pt", "state": "found", "required": True, "detail": "ResNet-50", "source": "STAF"},
        {"name": "SMPL_NEUTRAL.pkl", "state": "invalid", "required": True, "detail": "not an SMPL model",
         "source": "the SMPL website"},
        {"name": "SMPL_MALE.pkl", "state": "missing", "required": False, "detail": "", "source": "SMPL"},
    ], assets_message="Not ready: 1 file missing or invalid", assets_folder="/assets",
        lines=[('WARNING', "SMPL_NEUTRAL.pkl: invalid")])
    monkeypatch.setattr(install_operators, "STATE", state)
    drawn: list[str] = []
    STAF_AddonPreferences.draw(SimpleNamespace(layout=_Layout(drawn)), bpy.context)
    assert "operator staf.install_engine" in drawn and "operator staf.add_asset_files" in drawn
    assert "label CHECKMARK base_model.pt: found" in drawn and "label CANCEL SMPL_NEUTRAL.pkl: invalid" in drawn
    assert "label DOT SMPL_MALE.pkl: missing (optional)" in drawn
    assert "label NONE     get it from the SMPL website" in drawn and "label ERROR SMPL_NEUTRAL.pkl: invalid" in drawn
    state.job = SimpleNamespace()  # an install running
    state.progress, state.text = 0.42, "downloading torch"
    drawn.clear()
    STAF_AddonPreferences.draw(SimpleNamespace(layout=_Layout(drawn)), bpy.context)
    assert "progress 0.42 downloading torch" in drawn and "operator staf.cancel_install" in drawn
    assert "operator staf.install_engine" not in drawn
