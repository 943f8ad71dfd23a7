"""Bad-input suite, motion files and the stand-in folder (issue 12, classes 1, 2 and 7).

Each case drives a command as a user would (``python -m core.motion_format FILE``, the engine's
reader; ``python -m core standins DIR``) or the add-on's reader and planner as the extension ships
them, and asserts the exit code, exactly one line on stderr naming the problem, nothing written or
changed (every file hashed before and after) and nothing executed (a pickled payload would create
a marker file). The in-Blender side (scripts/batch.py) is tests/blender/in_blender/test_bpy_bad_motion.py.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_motion_cases import BAD_FILES
from motion_samples import npz_bytes, sample_arrays, shipped_addon, with_meta

from core.errors import EXIT_ASSET_INVALID, EXIT_BAD_INPUT, EXIT_OUTPUT, AssetInvalid, OutputError
from core.standins import STANDIN_MARKER, check_standin_folder

ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` -> sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    """(motion_io, plan, people) of the add-on as the extension zip ships it."""
    return shipped_addon(tmp_path_factory.mktemp("shipped"))


def test_the_sample_file_is_good(tmp_path, addon):
    """The control: the unmutated sample passes both readers and the planner."""
    good = tmp_path / "good.npz"
    good.write_bytes(npz_bytes(sample_arrays()))
    proc = run("-m", "core.motion_format", str(good), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "" and "people 0, 1" in proc.stdout
    motion_io, plan, _people = addon
    assert len(plan.plan_import(motion_io.load_motion(good), plan.ImportOptions()).rigs) == 2


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_engine_reader_refuses_with_one_line(name, tmp_path):
    build, words = BAD_FILES[name]
    marker = tmp_path / "payload_ran.txt"
    bad = tmp_path / f"{name}.npz"
    bad.write_bytes(build(marker))
    before = snapshot(tmp_path)
    proc = run("-m", "core.motion_format", str(bad), cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    line = one_error_line(proc)
    assert words in line and bad.name in line, line
    assert proc.stdout == "" and snapshot(tmp_path) == before and not marker.exists()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_addon_reader_refuses_with_one_line(name, tmp_path, addon):
    motion_io = addon[0]
    build, words = BAD_FILES[name]
    marker = tmp_path / "payload_ran.txt"
    bad = tmp_path / f"{name}.npz"
    bad.write_bytes(build(marker))
    before = snapshot(tmp_path)
    with pytest.raises(motion_io.AddonError) as err:
        motion_io.load_motion(bad)
    assert err.value.exit_code == EXIT_BAD_INPUT and words in str(err.value) and "\n" not in str(err.value)
    assert snapshot(tmp_path) == before and not marker.exists()


def _motion(addon, tmp_path: Path, **meta):
    path = tmp_path / "m.npz"
    path.write_bytes(npz_bytes(with_meta(sample_arrays(), **meta)))
    return addon[0].load_motion(path)


def test_planner_refuses_frames_blender_cannot_hold(tmp_path, addon):
    plan = addon[1]
    motion = _motion(addon, tmp_path)
    with pytest.raises(plan.AddonError, match=r"outside Blender's 0\.\.1048574"):
        plan.plan_import(motion, plan.ImportOptions(frame_offset=plan.BLENDER_MAX_FRAME - 5))
    with pytest.raises(plan.AddonError, match="outside Blender's"):
        plan.plan_import(motion, plan.ImportOptions(frame_offset=-10))
    for offset in (1.5, "1", True, 10**7):
        with pytest.raises(plan.AddonError, match="frame offset"):
            plan.ImportOptions(frame_offset=offset)


def test_planner_notes_what_blender_would_clamp(tmp_path, addon):
    plan = addon[1]
    tiny_lens = plan.plan_import(_motion(addon, tmp_path, camera__focal_length_px=1.0), plan.ImportOptions())
    assert tiny_lens.camera is None and any("lens under" in n for n in tiny_lens.notes)
    narrow = plan.plan_import(_motion(addon, tmp_path, source__width=2), plan.ImportOptions())
    assert narrow.scene.width is None and narrow.camera is None and any("2x360" in n for n in narrow.notes)
    half = plan.plan_import(_motion(addon, tmp_path, source__height=None), plan.ImportOptions())
    assert half.scene.width is half.scene.height is None
    no_camera = plan.plan_import(_motion(addon, tmp_path, camera=None), plan.ImportOptions())  # JSON null
    assert no_camera.camera is None and any("focal length" in n for n in no_camera.notes)


# --- class 7: `standins DIR` never replaces what is not a stand-in ------------------------------


def _downloads(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SMPL_NEUTRAL.pkl").write_bytes(np.arange(1000).tobytes())
    (folder / "3dpw_model_best.pth.tar").write_bytes(b"the user's real checkpoint" * 100)


@pytest.mark.parametrize("case", ["real_downloads", "one_hidden_file", "a_file", "marker_is_a_folder"])
def test_standins_refuse_a_folder_that_is_not_theirs(case, tmp_path):
    target = tmp_path / "assets"
    if case == "real_downloads":
        _downloads(target)
    elif case == "one_hidden_file":
        target.mkdir()
        (target / ".DS_Store").write_bytes(b"\0\1")
    elif case == "a_file":
        target.write_bytes(b"not a folder")
    else:
        _downloads(target)
        (target / STANDIN_MARKER).mkdir()
    before = snapshot(tmp_path)
    proc = run("-m", "core", "standins", str(target), cwd=tmp_path)
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    line = one_error_line(proc)
    assert str(target) in line and ("new or empty folder" in line), line
    assert snapshot(tmp_path) == before and proc.stdout == ""


def test_standins_accept_new_empty_and_stand_in_folders(tmp_path, standin_assets):
    check_standin_folder(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_standin_folder(tmp_path / "empty")
    check_standin_folder(standin_assets)  # holds the marker: rewritten or reused
    _downloads(tmp_path / "real")
    with pytest.raises(OutputError, match=r"SMPL_NEUTRAL\.pkl"):
        check_standin_folder(tmp_path / "real")


# --- class 2 in the asset files: sizes declared beyond the data or far beyond the compressed bytes -


def _asset_attacks(folder: Path) -> None:
    """A stand-in folder whose mean parameters hold a deflated 64 MB of zeros (ratio > 1000), and
    whose regressor's header declares 10^12 elements."""
    np.savez_compressed(folder / "smpl_mean_params.npz", pose=np.zeros(144), shape=np.zeros(10), cam=np.zeros(3),
                        junk=np.zeros(8_000_000))
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    (folder / "J_regressor_h36m.npy").write_bytes(head.getvalue() + bytes(64))


def test_asset_archives_declaring_too_much_are_invalid_before_inflating(tmp_path, standin_assets):
    from core.smpl import load_joint_regressor, load_mean_params

    folder = tmp_path / "assets"
    shutil.copytree(standin_assets, folder)
    _asset_attacks(folder)
    before = snapshot(tmp_path)
    proc = run("-m", "core", "doctor", "--assets", str(folder), cwd=tmp_path)
    assert proc.returncode == EXIT_ASSET_INVALID, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if "invalid (" in line}
    assert "zip bomb" in lines["smpl_mean_params.npz"]
    assert "declares shape (1000000000000,)" in lines["J_regressor_h36m.npy"]
    assert snapshot(tmp_path) == before
    for load in (lambda: load_mean_params(folder / "smpl_mean_params.npz"),
                 lambda: load_joint_regressor(folder / "J_regressor_h36m.npy", 17)):
        with pytest.raises(AssetInvalid) as err:
            load()
        assert "\n" not in str(err.value) and str(folder) in str(err.value)
