"""The video pipeline end to end: real clips, generated clips with known motion, edge cases, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from core.errors import AssetMissing, BadInput, NoPersonFound, OutputError
from core.motion_format import FLAG_DETECTED, read_motion
from core.reconstruct import ReconstructOptions, parse_time, reconstruct
from core.sample_clip import write_sample_clip

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def opts(assets: Path, **kw) -> ReconstructOptions:
    return ReconstructOptions(assets=str(assets), device="cpu", progress="none", **kw)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("clips") / "sample.mp4"
    return path, write_sample_clip(path, seconds=2.0)


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30, pix_fmt: str = "yuv420p") -> Path:
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def box_error(motion, known) -> tuple[np.ndarray, np.ndarray]:
    """Per tracked frame, the distance (px) between the tracked box's centre and the centre of the box
    around the rendered body's projected mesh, and the ratio of their heights."""
    p = motion.people[0]
    truth = known.box[p.frame]
    return np.linalg.norm(p.box[:, :2] - truth[:, :2], axis=1), p.box[:, 3] / truth[:, 3]


def test_parse_time():
    assert parse_time("120", 30.0, "start") == 120
    assert parse_time("2.5s", 30.0, "start") == 75
    assert parse_time(None, 30.0, "start") is None
    with pytest.raises(BadInput, match="--end 'soon'"):
        parse_time("soon", 30.0, "end")


def test_box_follows_the_person_in_a_clip_with_known_motion(sample, standin_assets, tmp_path):
    path, known = sample
    motion = reconstruct(path, tmp_path / "m.npz", opts(standin_assets))
    assert len(motion.people[0]) == len(motion.frame_index) == 60
    err, ratio = box_error(motion, known)
    assert np.median(err) < 12 and np.percentile(err, 90) < 20, err  # the person is ~220 px tall
    assert np.all(np.abs(ratio - 1.0) < 0.15), ratio  # around the whole body, head to feet
    back = read_motion(tmp_path / "m.npz")
    assert back.fps == 30 and back.meta["source"]["width"] == 640
    assert np.array_equal(back.people[0].frame, np.arange(60))


def test_rotated_video_is_turned_upright(sample, standin_assets, tmp_path):
    import imageio_ffmpeg

    path, known = sample
    # Store the frames turned a quarter clockwise and say "display rotated 90 degrees counter-clockwise".
    raw = write_clip(tmp_path / "raw.mp4", [np.rot90(f, -1) for f in decoded(path)])
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90",
                    "-i", str(raw), "-c", "copy", str(rotated)], check=True)
    motion = reconstruct(rotated, tmp_path / "m.npz", opts(standin_assets))
    assert motion.meta["source"]["rotation"] == 90
    assert (motion.meta["source"]["width"], motion.meta["source"]["height"]) == (640, 480)
    err, ratio = box_error(motion, known)
    assert np.median(err) < 12 and np.all(np.abs(ratio - 1.0) < 0.15), (err, ratio)


def test_short_single_frame_and_odd_sized_clips(sample, standin_assets, tmp_path):
    frames = decoded(sample[0])
    five = reconstruct(write_clip(tmp_path / "five.mp4", frames[20:25]), tmp_path / "five.npz", opts(standin_assets))
    assert len(five.people[0]) == 5
    one = reconstruct(write_clip(tmp_path / "one.mp4", frames[30:31]), tmp_path / "one.npz",
                      opts(standin_assets, detect_every=3))
    assert len(one.people[0]) == 1 and one.people[0].flags[0] == FLAG_DETECTED
    odd = [f[7:7 + 251, 11:11 + 333] for f in frames[:12]]
    m = reconstruct(write_clip(tmp_path / "odd.mp4", odd, pix_fmt="yuv444p"), tmp_path / "odd.npz",
                    opts(standin_assets))
    assert (m.meta["source"]["width"], m.meta["source"]["height"]) == (333, 251)
    assert len(m.people[0]) == 12


def test_range_in_frames_and_seconds(sample, standin_assets, tmp_path):
    m = reconstruct(sample[0], tmp_path / "r.npz", opts(standin_assets, start="10", end="1s"))
    assert m.people[0].frame.tolist() == list(range(10, 30))
    assert m.meta["range"] == {"start": 10, "end": 30}
    with pytest.raises(BadInput, match="past the clip's end"):
        reconstruct(sample[0], tmp_path / "x.npz", opts(standin_assets, start="500"))
    with pytest.raises(BadInput, match="must come after"):
        reconstruct(sample[0], tmp_path / "x.npz", opts(standin_assets, start="20", end="10"))
    assert not (tmp_path / "x.npz").exists()


def test_clip_with_nobody(standin_assets, tmp_path):
    x = np.linspace(0, 255, 320)[None, :, None]
    frames = [np.broadcast_to((x + 3 * i) % 256, (240, 320, 3)).astype(np.uint8) for i in range(15)]
    with pytest.raises(NoPersonFound, match="nobody was found"):
        reconstruct(write_clip(tmp_path / "empty.mp4", frames), tmp_path / "e.npz", opts(standin_assets))
    assert not (tmp_path / "e.npz").exists()


def test_bad_inputs_leave_nothing_behind(sample, standin_assets, tmp_path):
    out = tmp_path / "o.npz"
    with pytest.raises(BadInput, match="file not found"):
        reconstruct(tmp_path / "missing.mp4", out, opts(standin_assets))
    (tmp_path / "notes.mp4").write_text("not a video\n")
    with pytest.raises(BadInput, match="not a video file"):
        reconstruct(tmp_path / "notes.mp4", out, opts(standin_assets))
    data = sample[0].read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match=r"cut\.mp4"):
        reconstruct(tmp_path / "cut.mp4", out, opts(standin_assets))
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=black:s=64x64:r=30", "-frames:v", "0", "-c:v", "libx264", str(tmp_path / "zero.mp4")],
                   check=True)
    with pytest.raises(BadInput, match=r"zero\.mp4: holds no video stream"):
        reconstruct(tmp_path / "zero.mp4", out, opts(standin_assets))
    with pytest.raises(AssetMissing, match="does not exist"):
        reconstruct(sample[0], out, opts(tmp_path / "no-assets"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="does not exist"):
        reconstruct(sample[0], tmp_path / "afile" / "o.npz", opts(standin_assets))
    with pytest.raises(OutputError, match=r"\.npz"):
        reconstruct(sample[0], tmp_path / "o.txt", opts(standin_assets))
    out.write_text("keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        reconstruct(sample[0], out, opts(standin_assets))
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "cut.mp4", "notes.mp4", "o.npz", "zero.mp4"]


def test_cli_progress_json_and_cancel(sample, standin_assets, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "c.npz"
    long_clip = tmp_path / "long.mp4"
    write_sample_clip(long_clip, seconds=20.0)
    proc = subprocess.Popen([sys.executable, "-m", "core", "reconstruct", str(long_clip), "-o", str(out),
                             "--assets", str(standin_assets), "--device", "cpu", "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    import json

    for line in proc.stdout:
        record = json.loads(line)
        assert set(record) == {"stage", "done", "total", "fps", "eta"}
        if record["stage"] == "reconstruct" and record["done"] > 0:
            break
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 130
    assert "cancelled" in proc.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"real clips not found at {VIDEOS} (shared/data/videos)")
@pytest.mark.parametrize("name, n_frames, fps", [("dancer.mp4", 89, Fraction(30000, 1001)),
                                                 ("runner.mp4", 180, Fraction(30))])
def test_real_clips(standin_assets, tmp_path, name, n_frames, fps):
    motion = reconstruct(VIDEOS / name, tmp_path / "m.npz", opts(standin_assets))
    p = motion.people[0]
    assert len(motion.frame_index) == n_frames
    assert len(p) == n_frames, "a person box in every frame"
    assert Fraction(motion.meta["source"]["fps_num"], motion.meta["source"]["fps_den"]) == fps
    # Boxes move smoothly: no frame-to-frame jump larger than 5 % of the box height.
    jump = np.linalg.norm(np.diff(p.box[:, :2], axis=0), axis=1) / p.box[1:, 3]
    assert jump.max() < 0.05, jump.max()
    assert np.all(p.box[:, 3] > 100)  # a full-body person, not a fragment
    read_motion(tmp_path / "m.npz")  # complete and valid


def test_precision_options(sample, standin_assets, tmp_path):
    with pytest.raises(BadInput, match="fp16 needs a CUDA device"):
        reconstruct(sample[0], tmp_path / "h.npz", opts(standin_assets, precision="fp16"))
    assert not (tmp_path / "h.npz").exists()
    full = reconstruct(sample[0], tmp_path / "f.npz", opts(standin_assets, end="12", precision="fp32"))
    half = reconstruct(sample[0], tmp_path / "b.npz", opts(standin_assets, end="12", precision="bf16"))
    # bfloat16 keeps about 3 significant digits: close to fp32, not equal.
    assert np.abs(half.people[0].pose - full.people[0].pose).max() < 0.05
    assert np.abs(half.people[0].cam_crop - full.people[0].cam_crop).max() < 0.02


def test_outputs_checked_before_any_work(sample, standin_assets, tmp_path):
    """A preview that cannot be written, or an output that is the input clip itself, is refused before
    the run: nothing is written and the clip is untouched."""
    import shutil

    clip = shutil.copy(sample[0], tmp_path / "clip.mp4")
    before = Path(clip).read_bytes()
    out = tmp_path / "m.npz"
    with pytest.raises(OutputError, match=r"a preview is an \.mp4 video or a \.png"):
        reconstruct(clip, out, opts(standin_assets, preview=str(tmp_path / "p.gif")))
    (tmp_path / "p.png").write_text("mine")
    with pytest.raises(OutputError, match="--overwrite"):
        reconstruct(clip, out, opts(standin_assets, preview=str(tmp_path / "p.png")))
    (tmp_path / "link.npz").symlink_to(clip)  # the same file under a motion file's name
    with pytest.raises(OutputError, match="is the input video"):
        reconstruct(clip, tmp_path / "link.npz", opts(standin_assets, preview=str(tmp_path / "q.png"), overwrite=True))
    with pytest.raises(OutputError, match="is the input video"):
        reconstruct(clip, out, opts(standin_assets, preview=str(clip), overwrite=True))
    assert not out.exists() and not (tmp_path / "q.png").exists()
    assert (tmp_path / "p.png").read_text() == "mine" and Path(clip).read_bytes() == before


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("focal", float("nan"), "--focal"), ("focal", float("inf"), "--focal"), ("focal", -500.0, "--focal"),
    ("smooth", -0.1, "--smooth"), ("max_gap", -1.0, "--max-gap"), ("max_gap", float("nan"), "--max-gap"),
    ("min_track", float("inf"), "--min-track"), ("batch_size", 0, "--batch-size"),
    ("batch_size", 10**9, "--batch-size"), ("detect_every", 0, "--detect-every"), ("max_people", 0, "--max-people"),
    ("batch_size", 2.5, "--batch-size"), ("crop_scale", 0.0, "crop_scale"),
])
def test_numeric_options_are_checked_before_any_work(field, value, flag, tmp_path):
    """Each bad number is one line naming the flag, raised before the clip is even opened."""
    with pytest.raises(BadInput, match=f"^{flag} "):
        reconstruct(tmp_path / "not-even-there.mp4", tmp_path / "m.npz", ReconstructOptions(**{field: value}))
    assert not list(tmp_path.iterdir())
