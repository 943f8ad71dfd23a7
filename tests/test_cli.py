"""The command line: exit codes, one-line errors, the demo end to end on stand-ins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.cli import main
from core.motion_format import read_motion

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("STAF_ASSETS", None)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_doctor_on_a_missing_folder_exits_3(tmp_path, capsys):
    assert main(["doctor", "--assets", str(tmp_path / "nowhere")]) == 3
    assert "does not exist" in capsys.readouterr().out


def test_doctor_on_stand_ins_exits_0(standin_assets, capsys):
    assert main(["doctor", "--assets", str(standin_assets)]) == 0
    out = capsys.readouterr().out
    assert "3dpw_model_best.pth.tar" in out and "stand-in" in out.lower()


def test_missing_weights_give_one_line_and_exit_3(standin_assets, tmp_path):
    from core.errors import AssetMissing
    from core.model.load import load_models

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "SMPL_NEUTRAL.pkl").symlink_to(standin_assets / "SMPL_NEUTRAL.pkl")
    try:
        load_models(partial)
    except AssetMissing as err:
        assert "\n" not in str(err)
        assert "3dpw_model_best.pth.tar" in str(err) and "base_model.pt" in str(err)
        assert err.exit_code == 3
    else:
        raise AssertionError("load_models accepted a folder without weights")


def test_demo_without_weights_runs_the_landmark_solver(tmp_path):
    proc = run_cli("demo", "--seconds", "1", "--assets", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
                   "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "landmark solver" in proc.stdout
    motion = read_motion(tmp_path / "out" / "sample_motion.npz")
    assert len(motion.frame_index) == 30 and len(motion.people[0]) >= 24
    assert motion.meta["options"]["solver"] == "landmarks" and motion.meta["assets"]["kind"] == "look-alike"
    assert (tmp_path / "out" / "sample_preview.png").stat().st_size > 10_000
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_bad_device_is_one_line_exit_5(standin_assets, tmp_path):
    proc = run_cli("demo", "--seconds", "0.2", "--assets", str(standin_assets), "--device", "tpu",
                   "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 5
    assert proc.stderr.strip().count("\n") == 0 and "unknown device 'tpu'" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_usage_errors_are_one_line_with_a_hint(tmp_path, capsys):
    """Every command's usage error: exit 2, one line on stderr naming the command and its --help."""
    import pytest

    cases = [
        ([], "python -m core"),
        (["nosuch"], "python -m core"),
        (["reconstruct"], "python -m core reconstruct"),
        (["reconstruct", "a.mp4", "-o", "x.npz", "--batch-size", "x"], "python -m core reconstruct"),
        (["reconstruct", "a.mp4", "-o", "x.npz", "--precision", "fp8"], "python -m core reconstruct"),
        (["tracks"], "python -m core tracks"),
        (["batch"], "python -m core batch"),
        (["doctor", "--nosuch"], "python -m core doctor"),
        (["train", "--nosuch"], "python -m core train"),
    ]
    for argv, prog in cases:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2, argv
        assert err.count("\n") == 1 and err.startswith(f"error: {prog}: ") and f"(see {prog} --help)" in err, err
    assert not list(tmp_path.iterdir())
