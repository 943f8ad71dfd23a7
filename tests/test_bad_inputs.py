"""The bad-input suite (issue 12): careless and hostile inputs to every engine command.

Each case runs the command line in-process (``core.cli.main``; file-descriptor-level capture, so
native libraries' chatter would count) inside a sandbox folder, and asserts: the documented exit
code, exactly one line on stderr (naming the problem), nothing written or changed (every file
in the sandbox and in the asset folder fingerprinted before and after) and nothing executed (a
pickled payload would create a marker file). The motion-file readers have their own suite
(tests/test_bad_motion_files.py, engine and add-on readers) and fuzzer; signals are at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.sample_clip import write_sample_clip

ROOT = Path(__file__).resolve().parents[1]
LONG = "n" * 300


class _Touch:
    """Unpickling this creates the file ``path``: the proof that a reader ran code from a file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short clip made by the project's own code (a person moved across a background)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_sample_clip(path, seconds=0.5, width=320, height=240)
    return path


def _fingerprint(*folders: Path) -> dict[str, tuple]:
    """Every file below ``folders``: size, modification time and, for small files, their hash."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                out[str(path)] = ("link", os.readlink(path))
                continue
            if not path.is_file():
                out[str(path)] = ("dir",)
                continue
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if st.st_size < 4 << 20 else ""
            out[str(path)] = (st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture
def sandbox(tmp_path: Path, clip: Path, standin_assets: Path) -> Path:
    """The working folder of a case: the clip, a copy-free asset folder (links to the stand-ins,
    so one file can be replaced by a bad one), an existing output, a text file posing as a video."""
    (tmp_path / "clip.mp4").symlink_to(clip)
    assets = tmp_path / "assets"
    assets.mkdir()
    for f in standin_assets.iterdir():
        (assets / f.name).symlink_to(f)
    (tmp_path / "assets_src").symlink_to(standin_assets)
    (tmp_path / "exists.npz").write_bytes(b"the user's own file")
    (tmp_path / "notes.txt").write_text("not a video\n")
    (tmp_path / "truncated.mp4").write_bytes(clip.read_bytes()[:2000])
    return tmp_path


def _replace_asset(sandbox: Path, name: str, data: bytes) -> None:
    (sandbox / "assets" / name).unlink()
    (sandbox / "assets" / name).write_bytes(data)


def _pickle_bomb(sandbox: Path) -> bytes:
    return pickle.dumps({"v_template": _Touch(sandbox / "EXECUTED")})


def _zip_bomb_checkpoint(sandbox: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (64 << 20))
    return buffer.getvalue()


def _torch_pickle_with_code(sandbox: Path) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"state_dict": _Touch(sandbox / "EXECUTED")}, buffer)
    return buffer.getvalue()


def _empty_room(sandbox: Path) -> None:
    """A clip of a plain wall: nobody to find (the detector runs, and must not chatter on stderr)."""
    import av

    with av.open(str(sandbox / "room.mp4"), mode="w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for k in range(10):
            frame = np.full((240, 320, 3), 90 + k, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


def _manifest(sandbox: Path, rows: str) -> None:
    (sandbox / "clips.csv").write_text(rows)


def _db_with_code(sandbox: Path) -> None:
    import torch

    torch.save({"vid_name": _Touch(sandbox / "EXECUTED")}, sandbox / "evil_db.pt")


#: name: (argv with {s} for the sandbox and {a} for its asset folder, exit code, words of the
#: one line, optional set-up of the sandbox).
CASES: dict[str, tuple[list[str], int, str, Callable[[Path], None] | None]] = {
    # reconstruct: the clip
    "video_missing": (["reconstruct", "{s}/nope.mp4", "-o", "{s}/o.npz"], 5, "not found", None),
    "video_is_folder": (["reconstruct", "{s}/assets", "-o", "{s}/o.npz"], 5, "assets", None),
    "video_is_text": (["reconstruct", "{s}/notes.txt", "-o", "{s}/o.npz"], 5, "notes.txt", None),
    "video_truncated": (["reconstruct", "{s}/truncated.mp4", "-o", "{s}/o.npz"], 5, "truncated.mp4", None),
    "video_name_too_long": (["reconstruct", f"{{s}}/{LONG}.mp4", "-o", "{s}/o.npz"], 2, "255", None),
    # reconstruct: outputs
    "output_exists": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/exists.npz"], 6, "--overwrite", None),
    "output_is_the_video": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/clip.mp4", "--overwrite"], 6, "clip.mp4", None),
    "output_wrong_suffix": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.json"], 6, ".npz", None),
    "output_folder_missing": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/no/such/o.npz"], 6, "no/such", None),
    "output_is_folder": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/assets", "--overwrite"], 6, "assets", None),
    "output_name_too_long": (["reconstruct", "{s}/clip.mp4", "-o", f"{{s}}/{LONG}.npz"], 2, "255", None),
    "preview_gif": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--preview", "{s}/p.gif"], 6, ".mp4", None),
    "preview_exists": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--preview", "{s}/notes.txt"], 6,
                       "notes.txt", None),
    "preview_is_output": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--preview", "{s}/o.npz"], 6,
                          "preview", None),
    # reconstruct: options
    "focal_nan": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--focal", "nan"], 5, "--focal", None),
    "focal_negative": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--focal", "-3"], 5, "--focal", None),
    "focal_text": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--focal", "wide"], 2, "--focal", None),
    "batch_size_zero": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--batch-size", "0"], 5, "--batch-size",
                        None),
    "batch_size_absurd": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--batch-size", "10000000"], 5,
                          "--batch-size", None),
    "smooth_negative": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--smooth", "-1"], 5, "--smooth", None),
    "max_gap_negative": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--max-gap", "-1"], 5, "--max-gap", None),
    "person_garbage": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--person", "bob"], 5, "--person", None),
    "start_after_end": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--start", "10", "--end", "5"], 5,
                        "start", None),
    "start_past_the_clip": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--start", "999"], 5, "999", None),
    "start_garbage": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--start", "soon"], 5, "soon", None),
    "nobody_in_the_clip": (["reconstruct", "{s}/room.mp4", "-o", "{s}/o.npz"], 7, "room.mp4", _empty_room),
    "device_cuda_absent": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--device", "cuda"], 5, "cuda", None),
    "precision_unknown": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--precision", "fp8"], 2,
                          "--precision", None),
    "filter_unknown": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--filter", "kalman"], 2, "--filter",
                       None),
    "device_unknown": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--device", "tpu"], 5, "tpu", None),
    "unknown_option": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--fast"], 2, "--fast", None),
    "missing_output_option": (["reconstruct", "{s}/clip.mp4"], 2, "--output", None),
    # asset files
    "assets_missing": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--assets", "{s}/none"], 3, "none", None),
    "assets_is_a_file": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz", "--assets", "{s}/notes.txt"], 3,
                         "notes.txt", None),
    "smpl_pickle_runs_code": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz"], 4, "SMPL_NEUTRAL.pkl",
                              lambda s: _replace_asset(s, "SMPL_NEUTRAL.pkl", _pickle_bomb(s))),
    "smpl_truncated": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz"], 4, "SMPL_NEUTRAL.pkl",
                       lambda s: _replace_asset(s, "SMPL_NEUTRAL.pkl", b"\x80\x02}q\x00(X")),
    "checkpoint_zip_bomb": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz"], 4, "3dpw_model_best.pth.tar",
                            lambda s: _replace_asset(s, "3dpw_model_best.pth.tar", _zip_bomb_checkpoint(s))),
    "checkpoint_runs_code": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz"], 4, "3dpw_model_best.pth.tar",
                             lambda s: _replace_asset(s, "3dpw_model_best.pth.tar", _torch_pickle_with_code(s))),
    "checkpoint_empty": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz"], 4, "3dpw_model_best.pth.tar",
                         lambda s: _replace_asset(s, "3dpw_model_best.pth.tar", b"")),
    "backbone_is_text": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz"], 4, "base_model.pt",
                         lambda s: _replace_asset(s, "base_model.pt", b"hello")),
    "backbone_truncated": (["reconstruct", "{s}/clip.mp4", "-o", "{s}/o.npz"], 4, "base_model.pt",
                           lambda s: _replace_asset(s, "base_model.pt", (s / "assets_src" / "base_model.pt")
                                                    .read_bytes()[:4096])),
    "doctor_assets_too_long": (["doctor", "--assets", f"{{s}}/{LONG}"], 2, "255", None),
    "standins_over_real_files": (["standins", "{s}/mine"], 6, "mine",
                                 lambda s: (s / "mine").mkdir() or (s / "mine" / "SMPL_NEUTRAL.pkl").write_bytes(b"x")),
    "standins_on_a_file": (["standins", "{s}/notes.txt"], 6, "notes.txt", None),
    # tracks
    "tracks_video_missing": (["tracks", "{s}/nope.mp4"], 5, "not found", None),
    "tracks_sheet_suffix": (["tracks", "{s}/clip.mp4", "--sheet", "{s}/sheet.jpg"], 6, ".png", None),
    "tracks_sheet_exists": (["tracks", "{s}/clip.mp4", "--sheet", "{s}/exists.npz"], 6, "exists.npz", None),
    "tracks_sheet_is_video": (["tracks", "{s}/clip.mp4", "--sheet", "{s}/clip.mp4", "--overwrite"], 6, ".png",
                              None),
    "tracks_bad_max_gap": (["tracks", "{s}/clip.mp4", "--max-gap", "-4"], 5, "--max-gap", None),
    # batch
    "batch_nothing_matches": (["batch", "{s}/*.avi", "--out", "{s}/out"], 5, "*.avi", None),
    "batch_out_is_a_file": (["batch", "{s}/clip.mp4", "--out", "{s}/notes.txt"], 6, "notes.txt", None),
    "batch_workers_zero": (["batch", "{s}/clip.mp4", "--out", "{s}/out", "--workers", "0"], 5, "--workers", None),
    "batch_focal_nan": (["batch", "{s}/clip.mp4", "--out", "{s}/out", "--focal", "nan"], 5, "--focal", None),
    "batch_manifest_unknown_column": (["batch", "{s}/clips.csv", "--out", "{s}/out"], 5, "speed",
                                      lambda s: _manifest(s, f"video,speed\n{s}/clip.mp4,11\n")),
    "batch_manifest_bad_value": (["batch", "{s}/clips.csv", "--out", "{s}/out"], 5, "focal",
                                 lambda s: _manifest(s, f"video,focal\n{s}/clip.mp4,-1\n")),
    "batch_manifest_no_video_column": (["batch", "{s}/clips.csv", "--out", "{s}/out"], 5, "video",
                                       lambda s: _manifest(s, "clip,focal\nx.mp4,1000\n")),
    "batch_manifest_long_path": (["batch", "{s}/clips.csv", "--out", "{s}/out"], 5, "255",
                                 lambda s: _manifest(s, f"video\n{s}/{LONG}.mp4\n")),
    "batch_out_too_long": (["batch", "{s}/clip.mp4", "--out", f"{{s}}/{LONG}"], 2, "255", None),
    # research commands
    "features_db_missing": (["features", "--dataset", "3dpw", "--db", "{s}/none_db.pt", "--out", "{s}/f"], 5,
                            "none_db.pt", None),
    "features_db_runs_code": (["features", "--dataset", "3dpw", "--db", "{s}/evil_db.pt", "--out", "{s}/f"], 5,
                              "evil_db.pt", _db_with_code),
    "features_dataset_unknown": (["features", "--dataset", "kitti", "--db", "{s}/notes.txt", "--out", "{s}/f"], 5,
                                 "kitti", None),
    "features_db_is_text": (["features", "--dataset", "3dpw", "--db", "{s}/notes.txt", "--out", "{s}/f"], 5,
                            "notes.txt", None),
    "evaluate_db_is_text": (["evaluate", "--dataset", "3dpw", "--db", "{s}/notes.txt", "--features",
                             "{s}/none", "--out", "{s}/ev"], 5, "notes.txt", None),
    "evaluate_checkpoint_runs_code": (["evaluate", "--dataset", "3dpw", "--db", "{s}/notes.txt", "--features",
                                       "{s}/assets", "--checkpoint", "{s}/evil.pth", "--out", "{s}/ev"], 5, "",
                                      lambda s: (s / "evil.pth").write_bytes(_torch_pickle_with_code(s))),
    "train_bad_dataset": (["train", "--out", "{s}/run", "--train", "kitti", "{s}/notes.txt", "{s}/assets"], 5,
                          "kitti", None),
    "train_db_is_text": (["train", "--out", "{s}/run", "--train", "3dpw", "{s}/notes.txt", "{s}/assets"],
                         5, "notes.txt", None),
}


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    return lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gets_one_line_and_changes_nothing(name: str, sandbox: Path, standin_assets: Path,
                                                     capfd: pytest.CaptureFixture, monkeypatch) -> None:
    argv, code, words, setup = CASES[name]
    if name == "device_cuda_absent":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    if setup:
        setup(sandbox)
    monkeypatch.setenv("STAF_ASSETS", str(sandbox / "assets"))
    monkeypatch.chdir(sandbox)
    before = _fingerprint(sandbox, standin_assets)
    try:
        got = main([a.replace("{s}", str(sandbox)) for a in argv])
    except SystemExit as stop:  # argparse's usage errors
        got = stop.code
    _, err = capfd.readouterr()
    line = _one_line(err)
    assert got == code, f"exit {got}, expected {code}: {line}"
    assert line.startswith("error: ") and words in line, line
    assert not (sandbox / "EXECUTED").exists(), "a file's pickle ran code"
    assert _fingerprint(sandbox, standin_assets) == before, "something was written or changed"


def test_the_suite_covers_every_area() -> None:
    areas = {argv[0] for argv, *_ in CASES.values()}
    assert {"reconstruct", "tracks", "batch", "doctor", "standins", "features", "evaluate", "train"} <= areas
    assert len(CASES) >= 60


# --- signals: a real process, at different moments -------------------------------------------


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    """The command in its own process group, returned once it owns SIGTERM (Linux: the caught-signal
    mask). Before that only Python's own start-up runs (tens of milliseconds; the system default
    applies there, a documented limit)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught >> (signal.SIGTERM - 1) & 1:
            break
        time.sleep(0.005)
    return proc


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc to see the handlers")
@pytest.mark.parametrize("when, signals", [(0.0, (signal.SIGTERM,)), (0.5, (signal.SIGINT, signal.SIGINT)),
                                           (4.0, (signal.SIGTERM, signal.SIGINT, signal.SIGTERM))])
def test_signals_at_any_moment_exit_130_with_one_line(when: float, signals: tuple, sandbox: Path,
                                                      standin_assets: Path) -> None:
    """At the command's first step, during its imports, while running; several signals in quick succession."""
    before = _fingerprint(sandbox)
    proc = _spawn(["reconstruct", "clip.mp4", "-o", "o.npz", "--assets", str(standin_assets), "--progress", "none"],
                  sandbox)
    time.sleep(when)
    for s in signals:
        if proc.poll() is None:
            os.killpg(proc.pid, s)
            time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    line = _one_line(err)
    assert proc.returncode == 130 and "cancelled" in line, (proc.returncode, err)
    assert _fingerprint(sandbox) == before


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc to see the handlers")
def test_sigterm_in_features_exits_130_with_one_line(sandbox: Path, standin_assets: Path) -> None:
    from core.datasets.synthetic import make_synthetic_db

    db = make_synthetic_db(sandbox / "3dpw_test_db.pt", standin_assets, sequences=(60, 60), images=sandbox / "img")
    proc = _spawn(["features", "--dataset", "3dpw", "--db", str(db), "--images", str(sandbox / "img"), "--out",
                   str(sandbox / "f"), "--assets", str(standin_assets), "--no-progress", "--chunk-frames", "8",
                   "--batch-size", "4"], sandbox)
    time.sleep(4.0)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    line = _one_line(err)
    assert proc.returncode == 130 and "cancelled" in line, (proc.returncode, err)
    leftovers = [p.name for p in (sandbox / "f").rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"] \
        if (sandbox / "f").exists() else []
    assert not leftovers, leftovers


def test_reading_a_motion_file_from_a_shell(sandbox: Path, capfd: pytest.CaptureFixture) -> None:
    from core.motion_format import main as check

    (sandbox / "bad.npz").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    assert check([str(sandbox / "bad.npz")]) == 5
    assert "bad.npz" in _one_line(capfd.readouterr().err)
    (sandbox / "m.npz").write_bytes(json.dumps({"format": "staf-motion"}).encode())
    assert check([str(sandbox / "m.npz")]) == 5
    assert "m.npz" in _one_line(capfd.readouterr().err)
    assert np.__version__  # numpy alone reads motion files
