"""Install engine without Blender: pip's output as progress, the swap of the managed engine, and
every way an install ends badly (pip fails, no network, no write permission, cancelled) leaving
the previous engine as it was. A fake interpreter stands in for Python, venv and pip (seconds,
offline); tests/blender/in_blender/test_bpy_engine_install.py runs the real thing."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from staf_blender.engine_install import (
    InstallJob,
    InstallOptions,
    current_engine,
    detect_torch_build,
    managed_python,
    run_install,
)
from staf_blender.errors import AddonError
from staf_blender.pip_progress import TORCH_INDEXES, PipProgress, needs_network, pip_command

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="the fake interpreter is a POSIX "
                                "script and the cancel check reads /proc")

# The fake: as base Python it makes "venvs" (a copy of itself as bin/python); as a venv's Python it
# answers the probe, pip --version, pip install (as FAKE_PIP says) and `core doctor --json`.
FAKE = textwrap.dedent('''\
    #!{python}
    import json, os, shutil, subprocess, sys, time
    args = sys.argv[1:]
    log = os.environ.get("FAKE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(args) + "\\n")
    mode = os.environ.get("FAKE_PIP", "ok")
    if args[:2] == ["-m", "venv"]:
        if mode == "novenv":
            print("Error: ensurepip is not available"); sys.exit(1)
        os.makedirs(os.path.join(args[2], "bin"), exist_ok=True)
        shutil.copy(sys.argv[0], os.path.join(args[2], "bin", "python"))
        sys.exit(0)
    if args[:1] == ["-c"]:
        sys.exit(0)  # the interpreter probe: core and torch "found"
    if args[:3] == ["-m", "pip", "--version"]:
        print("pip 24.2 from somewhere (python 3.11)"); sys.exit(0)
    if args[:3] == ["-m", "pip", "install"]:
        if mode == "offline":
            print("WARNING: Retrying ... NewConnectionError('Failed to establish a new connection: "
                  "[Errno 101] Network is unreachable')")
            print("ERROR: Could not find a version that satisfies the requirement staf-mocap (from versions: none)")
            sys.exit(1)
        if mode == "fail":
            print("Collecting staf-mocap"); print("ERROR: No matching distribution found for mediapipe==0.10.21")
            sys.exit(1)
        for name in ("staf-mocap", "torch==2.13.0", "numpy"):
            print(f"Collecting {{name}}")
        print("Downloading https://x/torch-2.13.0-cp311-none-linux_x86_64.whl (190.4 MB)")
        print("Progress 1048576 of 199229440")
        if mode == "slow":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            with open(os.environ["FAKE_CHILD"], "w") as f:
                f.write(str(child.pid))
            print("Progress 2097152 of 199229440", flush=True)
            time.sleep(60)
        print("Installing collected packages: numpy, torch, staf-mocap")
        print("Successfully installed numpy torch staf-mocap")
        sys.exit(0)
    if args[:4] == ["-m", "core", "doctor", "--json"]:
        if mode == "nodoctor":
            print("ModuleNotFoundError: No module named 'cv2'"); sys.exit(1)
        print(json.dumps({{"ready": False, "exit_code": 3, "assets": [{{"name": "base_model.pt",
              "state": "missing", "required": True}}]}}))
        sys.exit(3)
    print("fake python: unexpected", args); sys.exit(9)
''')


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "base" / "python"
    path.parent.mkdir()
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _install(root: Path, fake: Path, mode: str = "ok", **extra) -> object:
    env = {**os.environ, "FAKE_PIP": mode, **extra}
    return run_install(root, InstallOptions(base_python=str(fake), torch="cpu"), env=env)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for a parent to reap it does not)."""
    for _ in range(20):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True


def _engine_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("engine-"))


# --- pip's output -------------------------------------------------------------------------------


def test_pip_lines_become_progress() -> None:
    parser = PipProgress()
    seen = [parser.feed(line) for line in (
        "Collecting staf-mocap", "  Using cached numpy-1.26.4.whl (18 MB)", "Collecting torch==2.13.0",
        "  Downloading https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-linux_x86_64.whl (190.4 MB)",
        "Progress 10485760 of 199229440", "Processing /tmp/wheels/staf_mocap-0.1.0-py3-none-any.whl",
        "Installing collected packages: numpy, torch, staf-mocap", "Successfully installed numpy-1.26.4")]
    got = [p for p in seen if p is not None]
    assert seen[1] is None and len(got) == 7
    assert got[0].text == "collecting staf-mocap"
    assert got[2].text == "downloading torch-2.13.0%2Bcpu-cp311-linux_x86_64.whl (190.4 MB)"
    assert got[3].text.endswith("10/190 MB") and got[4].text == "processing staf_mocap-0.1.0-py3-none-any.whl"
    assert got[5].text == "installing 3 packages" and got[6].text == "installed"
    fractions = [p.fraction for p in got]
    assert fractions == sorted(fractions) and 0.1 <= fractions[0] and fractions[-1] == pytest.approx(0.9)


def test_pip_failures_in_one_line() -> None:
    offline = PipProgress()
    for line in ("WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(...: "
                 "[Errno -3] Temporary failure in name resolution')'",
                 "ERROR: Could not find a version that satisfies the requirement torch==2.13.0"):
        offline.feed(line)
    assert "no connection to the package index" in offline.failure(1, [])
    bad = PipProgress()
    bad.feed("ERROR: No matching distribution found for mediapipe==0.10.21")
    assert bad.failure(1, []) == ("pip could not install the engine: No matching distribution found for "
                                  "mediapipe==0.10.21")
    assert PipProgress().failure(2, ["", "Killed\n"]) == "pip stopped with exit code 2: Killed"


def test_pip_command_and_torch_build(tmp_path: Path) -> None:
    wheel = tmp_path / "staf_mocap-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    cmd = pip_command("py", InstallOptions(package=str(wheel), pip_options=("--no-index", "--no-deps")), "cpu")
    assert cmd[:4] == ["py", "-m", "pip", "install"] and cmd[-3:] == ["--no-index", "--no-deps", str(wheel)]
    assert cmd[cmd.index("--extra-index-url") + 1] == TORCH_INDEXES["cpu"]
    assert "--extra-index-url" not in pip_command("py", InstallOptions(), "none")
    assert pip_command("py", InstallOptions(), "cuda")[-1] == "staf-mocap"
    assert detect_torch_build(lambda name: "/usr/bin/nvidia-smi") == "cuda"
    assert detect_torch_build(lambda name: None) == "cpu"
    assert needs_network(InstallOptions()) and not needs_network(InstallOptions(pip_options=("--no-index",)))
    with pytest.raises(AddonError, match="not a wheel"):
        pip_command("py", InstallOptions(package=str(tmp_path / "missing.whl")), "cpu")
    with pytest.raises(AddonError, match="unknown torch build"):
        InstallOptions(torch="rocm")


# --- installs -----------------------------------------------------------------------------------


def test_install_then_reinstall_swaps_and_removes_the_old_engine(tmp_path: Path, fake_python: Path) -> None:
    root = tmp_path / "managed"
    log = tmp_path / "calls.jsonl"
    first = _install(root, fake_python, FAKE_LOG=str(log))
    assert first.ok, first.message
    assert "Engine installed (CPU torch)" in first.message and "1 required file(s)" in first.message
    assert managed_python(root) == first.python and Path(first.python).is_file()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    pip = next(c for c in calls if c[:3] == ["-m", "pip", "install"])
    assert "raw" in pip and TORCH_INDEXES["cpu"] in pip and pip[-1] == "staf-mocap"
    old = current_engine(root)
    second = _install(root, fake_python)
    assert second.ok and current_engine(root) != old and not old.exists()
    assert _engine_folders(root) == [current_engine(root).name]


@pytest.mark.parametrize(("mode", "words"), [
    ("fail", "pip could not install the engine: No matching distribution found for mediapipe==0.10.21"),
    ("offline", "no connection to the package index"),
    ("novenv", "cannot create a virtual environment"),
    ("nodoctor", "does not run its doctor: ModuleNotFoundError"),
])
def test_a_failed_install_keeps_the_previous_engine(tmp_path: Path, fake_python: Path, mode: str, words: str) -> None:
    root = tmp_path / "managed"
    assert _install(root, fake_python).ok
    before, python = current_engine(root), managed_python(root)
    result = _install(root, fake_python, mode)
    assert not result.ok and not result.cancelled
    assert words in result.message and result.message.endswith("the previous engine is unchanged")
    assert "\n" not in result.message
    assert current_engine(root) == before and managed_python(root) == python and Path(python).is_file()
    assert _engine_folders(root) == [before.name], "the half-made engine is removed"


def test_a_first_install_that_fails_leaves_nothing(tmp_path: Path, fake_python: Path) -> None:
    root = tmp_path / "managed"
    result = _install(root, fake_python, "offline")
    assert not result.ok and result.message.endswith("no engine was installed")
    assert managed_python(root) is None and _engine_folders(root) == []


def test_no_write_permission(tmp_path: Path, fake_python: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = _install(tmp_path / "file" / "managed", fake_python)
    assert not result.ok and result.message.startswith(f"cannot install the engine into {tmp_path / 'file'}")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = _install(locked, fake_python)
        assert not result.ok and "Permission denied" in result.message


def test_cancel_stops_pip_and_its_children(tmp_path: Path, fake_python: Path) -> None:
    root = tmp_path / "managed"
    assert _install(root, fake_python).ok
    before = current_engine(root)
    child = tmp_path / "child.pid"
    env = {**os.environ, "FAKE_PIP": "slow", "FAKE_CHILD": str(child)}
    job = InstallJob(root, InstallOptions(base_python=str(fake_python), torch="cpu"), env=env, grace=1.0)
    deadline = time.monotonic() + 30
    while not child.exists() or "MB" not in job.latest.text:
        assert time.monotonic() < deadline and not job.done(), job.latest
        job.poll()
        time.sleep(0.05)
    assert 0.1 < job.latest.fraction < 0.9 and job.latest.text.startswith("downloading torch")
    started = time.monotonic()
    job.cancel()
    assert job.wait(10) and time.monotonic() - started < 5
    result = job.result()
    assert result.cancelled and not result.ok and result.message == "cancelled; the previous engine is unchanged"
    assert not _running(int(child.read_text())), "pip's child must go with its process group"
    assert current_engine(root) == before and _engine_folders(root) == [before.name]


def test_leftovers_of_a_killed_install_are_removed(tmp_path: Path, fake_python: Path) -> None:
    root = tmp_path / "managed"
    (root / "engine-999999999-dead").mkdir(parents=True)
    (root / "engine.current").write_text("../../etc\n")  # a pointer that leads out is ignored
    assert managed_python(root) is None
    assert _install(root, fake_python).ok
    assert _engine_folders(root) == [current_engine(root).name]
