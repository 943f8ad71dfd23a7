"""The add-on's engine side without Blender: command line, progress lines, the subprocess job,
cancel, and every way the engine can fail; run against tests/blender/fake_engine.py."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from staf_blender.engine import (
    EngineJob,
    EngineOptions,
    check_interpreter,
    reconstruct_command,
    resolve_interpreter,
    run_engine,
)
from staf_blender.errors import AddonError
from staf_blender.progress import Progress, engine_failure_message, parse_progress_line
from staf_blender.session import Reconstruction, ReconstructRequest

HERE = Path(__file__).resolve().parent
FAKE = HERE / "fake_engine.py"


@pytest.fixture(scope="module")
def motion_file(standin_assets, tmp_path_factory):
    from core.smpl import load_smpl_data
    from core.standins.motion import write_synthetic_motion

    path = tmp_path_factory.mktemp("motion") / "clip.npz"
    write_synthetic_motion(path, load_smpl_data(standin_assets / "SMPL_NEUTRAL.pkl"), n_frames=12)
    return path


@pytest.fixture(scope="module")
def fake_package(tmp_path_factory):
    """A folder whose ``core`` package runs the fake engine (``python -m core reconstruct ...``)."""
    from fake_engine import make_fake_engine_package

    return make_fake_engine_package(tmp_path_factory.mktemp("fake_engine"))


@pytest.fixture()
def video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not really a video: the fake engine only checks that it exists")
    return path


def fake_env(motion_file: Path, fake_package: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_ENGINE_")}
    env["FAKE_ENGINE_MOTION"] = str(motion_file)
    if fake_package is not None:
        env["PYTHONPATH"] = str(fake_package)
    env.update(extra)
    return env


def no_site_python(folder: Path) -> str:
    """An interpreter that exists but has no site-packages: no torch, no engine."""
    path = folder / "bare-python"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_command_line_follows_the_engine_contract():
    options = EngineOptions(assets="/a", device="cuda:1", start=10, end=50, people=(0, 2), max_people=3,
                            batch_size=8, precision="fp16")
    cmd = reconstruct_command("/py", "/v.mp4", "/o.npz", options)
    assert cmd[:8] == ["/py", "-m", "core", "reconstruct", "/v.mp4", "-o", "/o.npz", "--progress"]
    assert cmd[8] == "json" and cmd[-1] == "--overwrite"
    joined = " ".join(cmd)
    for part in ("--device cuda:1", "--assets /a", "--start 10", "--end 50", "--person 0,2", "--max-people 3",
                 "--batch-size 8", "--precision fp16"):
        assert part in joined
    bare = reconstruct_command("py", "v", "o", EngineOptions())
    assert bare == ["py", "-m", "core", "reconstruct", "v", "-o", "o", "--progress", "json", "--device", "auto",
                    "--person", "all", "--overwrite"]  # no limit: --max-people left out
    for bad, message in (({"device": "tpu"}, "unknown device"), ({"device": "cuda:x"}, "unknown device"),
                         ({"precision": "fp8"}, "unknown precision"), ({"start": 5, "end": 5}, "empty frame range"),
                         ({"batch_size": 0}, "batch size"), ({"people": (-1,)}, "People: 'all' or ids"),
                         ({"people": ()}, "People: 'all' or ids"), ({"max_people": 0}, "max people")):
        with pytest.raises(AddonError, match=message):
            EngineOptions(**bad)


def test_progress_lines():
    p = parse_progress_line('{"stage": "detect", "done": 30, "total": 120, "fps": 24.5, "eta": 3.7}\n')
    assert p == Progress("detect", 30, 120, 24.5, 3.7)
    assert p.fraction == 0.25 and p.describe() == "detect 30/120, 24.5 fps, 4 s left"
    assert parse_progress_line('{"stage": "decode", "done": 3, "total": 0}').fraction == 0.0
    assert parse_progress_line('{"stage": "x", "done": 1, "total": 2, "fps": NaN, "eta": null}').fps is None
    for junk in ("", "hello", "{not json", "[1, 2]", '{"done": 1, "total": 2}',
                 '{"stage": "x", "done": true, "total": 2}', '{"stage": "x", "done": "1", "total": 2}'):
        assert parse_progress_line(junk) is None


def test_failure_messages():
    lines = ["warning: x", "error: the video has no frames"]
    assert engine_failure_message(5, lines, "py") == "the video has no frames"
    assert engine_failure_message(130, [], "py") == "cancelled"
    message = engine_failure_message(1, ["Traceback...", "ModuleNotFoundError: No module named 'core'"], "/usr/bin/py")
    assert "/usr/bin/py cannot run the engine (no module 'core')" in message
    assert engine_failure_message(1, ["boom"], "py") == "the engine stopped with exit code 1: boom"


def test_interpreter_checks(tmp_path):
    assert check_interpreter(sys.executable) == sys.executable  # the main venv has the engine
    with pytest.raises(AddonError, match="does not exist") as err:
        check_interpreter(str(tmp_path / "nowhere" / "python"))
    assert err.value.exit_code == 3
    with pytest.raises(AddonError, match=r"cannot run the engine \(missing: core torch\)"):
        check_interpreter(no_site_python(tmp_path))
    with pytest.raises(AddonError, match="no Python interpreter with the engine"):
        resolve_interpreter("", [no_site_python(tmp_path), str(tmp_path / "absent")])
    assert resolve_interpreter("", ["", str(tmp_path / "absent"), sys.executable]) == sys.executable


def test_job_reports_progress_and_produces_the_motion_file(motion_file, fake_package, video, tmp_path):
    log = tmp_path / "args.json"
    out = tmp_path / "out.npz"
    cmd = reconstruct_command(sys.executable, video, out, EngineOptions(device="cpu"))
    env = fake_env(motion_file, fake_package, FAKE_ENGINE_LOG=str(log))
    seen: list[Progress] = []
    assert run_engine(cmd, out, on_progress=seen.append, env=env, cwd=tmp_path, poll_interval=0.01) == out
    assert out.read_bytes() == motion_file.read_bytes()
    assert {p.stage for p in seen} <= {"decode", "detect", "backbone", "staf"} and seen[-1].stage == "staf"
    args = json.loads(log.read_text())
    assert args[:2] == ["reconstruct", str(video)] and "--progress" in args and "json" in args


@pytest.mark.parametrize("mode, code, message", [
    ("error5", 5, "fake failure with code 5"),
    ("error3", 3, "fake failure with code 3"),
    ("crash", 1, "exit code 1: RuntimeError: fake crash"),
    ("no-output", 1, "wrote no motion file"),
])
def test_job_failures_carry_the_engines_message_and_code(motion_file, video, tmp_path, mode, code, message):
    out = tmp_path / "out.npz"
    cmd = [sys.executable, str(FAKE), "reconstruct", str(video), "-o", str(out), "--progress", "json"]
    with pytest.raises(AddonError) as err:
        run_engine(cmd, out, env=fake_env(motion_file, FAKE_ENGINE_MODE=mode), poll_interval=0.01)
    assert message in str(err.value) and err.value.exit_code == code and "\n" not in str(err.value)
    assert not out.exists()


def test_cancel_stops_the_engine_quickly(motion_file, video, tmp_path):
    out = tmp_path / "out.npz"
    cmd = [sys.executable, str(FAKE), "reconstruct", str(video), "-o", str(out), "--progress", "json"]
    job = EngineJob(cmd, out, env=fake_env(motion_file, FAKE_ENGINE_DELAY="0.2"))
    while job.latest is None:
        job.poll()
        time.sleep(0.01)
    start = time.monotonic()
    job.cancel()
    assert job.wait(5.0)
    assert time.monotonic() - start < 2.0
    result = job.result()
    assert result.cancelled and not result.ok and result.message == "cancelled" and result.returncode == 130
    assert not out.exists()


def test_an_engine_ignoring_cancel_is_killed(motion_file, video, tmp_path):
    out = tmp_path / "out.npz"
    cmd = [sys.executable, str(FAKE), "reconstruct", str(video), "-o", str(out), "--progress", "json"]
    job = EngineJob(cmd, out, env=fake_env(motion_file, FAKE_ENGINE_MODE="stubborn", FAKE_ENGINE_DELAY="0.5"),
                    grace=0.5)
    while job.latest is None:
        job.poll()
        time.sleep(0.01)
    job.cancel()
    assert job.wait(5.0)
    assert job.result().cancelled


def test_missing_interpreter_or_engine(motion_file, video, tmp_path):
    with pytest.raises(AddonError, match="cannot start the engine") as err:
        EngineJob([str(tmp_path / "no-python"), "-m", "core"], tmp_path / "o.npz")
    assert err.value.exit_code == 3
    out = tmp_path / "o.npz"
    with pytest.raises(AddonError, match="cannot run the engine"):  # it starts, but has no 'core'
        run_engine(reconstruct_command(no_site_python(tmp_path), video, out, EngineOptions()), out,
                   env=fake_env(motion_file), poll_interval=0.01)


def test_reconstruction_keeps_the_motion_file_only_when_asked(motion_file, fake_package, video, tmp_path):
    keep = tmp_path / "kept" / "clip.npz"
    keep.parent.mkdir()
    request = ReconstructRequest(video=video, python=sys.executable, engine=EngineOptions(), keep_motion=keep)
    run = Reconstruction(request, env=fake_env(motion_file, fake_package))
    workdir = run.job.output.parent
    assert run.job.wait(30)
    assert run.result().ok and not keep.exists()
    assert run.keep() == keep and np.load(keep)["format"] == "staf-motion"
    assert oct(keep.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    run.close()
    assert not workdir.exists()
    with pytest.raises(AddonError, match="no such video"):
        Reconstruction(ReconstructRequest(tmp_path / "absent.mp4", sys.executable, EngineOptions()))
    with pytest.raises(AddonError, match=r"must end in \.npz"):
        Reconstruction(ReconstructRequest(video, sys.executable, EngineOptions(), keep_motion=tmp_path / "x.txt"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
