"""The one-pass pipeline: crops cut while decoding goes on, from boxes that the whole-clip clean-up
would give, and the same motion as finding people first and decoding again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.people.stage import PeopleOptions, PeopleResult
from core.pipeline import CropFrame, crops_from_worker, iter_crops
from core.reconstruct import ReconstructOptions, reconstruct
from core.video import probe_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    from people_clips import build_people_clip, require_videos

    require_videos()
    folder = tmp_path_factory.mktemp("onepass")
    return {kind: build_people_clip(kind, folder, n_people=3 if kind == "crowd" else 2).path
            for kind in ("crossing", "leave_return", "crowd")}


def _collect(items) -> tuple[list[CropFrame], PeopleResult]:
    frames, found = [], None
    for item in items:
        if isinstance(item, PeopleResult):
            found = item
        else:
            frames.append(item)
    assert found is not None
    return frames, found


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["crossing", "leave_return", "crowd"])
def test_settled_boxes_are_the_whole_clip_boxes(clips, kind):
    """Every frame comes out once, in order, with exactly the boxes and flags of the whole-clip clean-up
    (crossings, a person leaving for 1.8 s and coming back, a small person found by the sweeps)."""
    info = probe_video(clips[kind])
    frames, found = _collect(iter_crops(info, 0, None, PeopleOptions(), crop_scale=1.2))
    assert [f.k for f in frames] == list(range(len(found.frame_index)))
    assert len(found.people) >= 2
    emitted = 0
    for person in found.people:
        for row in range(len(person.track.box)):
            k = person.first + row
            got = [i for i, key in enumerate(frames[k].keys) if key == person.key]
            if person.track.flags[row]:
                assert len(got) == 1, (kind, person.person_id, k)
                i = got[0]
                np.testing.assert_array_equal(frames[k].boxes[i], person.track.box[row])
                assert frames[k].flags[i] == person.track.flags[row]
                assert frames[k].crops[i].shape == (224, 224, 3) and frames[k].crops[i].any()
                emitted += 1
            else:
                assert not got
    assert emitted == sum(p.frames_seen for p in found.people)


@pytest.mark.slow
def test_one_pass_equals_two_passes(clips, standin_assets, tmp_path):
    """Worker process or not, one decoding pass gives the very motion of people-first-then-crops."""
    video = clips["crossing"]
    runs = {}
    for pipeline in ("two-pass", "one-pass", "in-process"):
        opts = ReconstructOptions(assets=str(standin_assets), progress="none", pipeline=pipeline, end="40",
                                  precision="fp32")
        runs[pipeline] = reconstruct(video, tmp_path / f"{pipeline}.npz", opts)
    base = runs["two-pass"]
    assert len(base.people) == 2
    for name in ("one-pass", "in-process"):
        other = runs[name]
        assert [p.person_id for p in other.people] == [p.person_id for p in base.people]
        for a, b in zip(base.people, other.people, strict=True):
            np.testing.assert_array_equal(a.frame, b.frame)
            np.testing.assert_array_equal(a.box, b.box)
            np.testing.assert_allclose(a.pose, b.pose, atol=1e-6)
            np.testing.assert_allclose(a.translation, b.translation, atol=1e-6)


def test_worker_reports_a_bad_clip_and_stops(tmp_path):
    """The worker's one-line error reaches the caller (here the clip was replaced by junk after it
    was probed), and the worker process is gone afterwards."""
    import multiprocessing

    from core.errors import BadInput
    from core.sample_clip import write_sample_clip

    clip = tmp_path / "clip.mp4"
    write_sample_clip(clip, seconds=1.0)
    info = probe_video(clip)
    clip.write_bytes(b"junk" * 100)
    with pytest.raises(BadInput, match=r"clip\.mp4: not a video file"):
        list(crops_from_worker(info, 0, None, PeopleOptions(), crop_scale=1.2))
    assert not [p for p in multiprocessing.active_children() if p.name == "staf-decode"]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to find the worker")
def test_worker_does_not_outlive_a_killed_run(standin_assets, tmp_path):
    """``kill -9`` of the main process: its decoding worker notices and leaves (it would otherwise
    decode this 40 s clip for a good while)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from core.sample_clip import write_sample_clip

    clip = tmp_path / "long.mp4"
    write_sample_clip(clip, seconds=40.0, width=320, height=240)
    root = Path(__file__).resolve().parents[1]
    main = subprocess.Popen([sys.executable, "-m", "core", "reconstruct", str(clip), "-o", str(tmp_path / "m.npz"),
                             "--assets", str(standin_assets), "--progress", "none", "--precision", "fp32"],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    worker = None
    deadline = time.monotonic() + 60
    while worker is None and time.monotonic() < deadline:
        for child in _children(main.pid):
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text(errors="replace") and _children(child) == []:
                cmd = Path(f"/proc/{child}/cmdline").read_text(errors="replace")
                if "resource_tracker" not in cmd:
                    worker = child
        time.sleep(0.2)
    assert worker is not None, "the decoding worker did not start"
    time.sleep(2.0)
    main.send_signal(signal.SIGKILL)
    main.wait()
    gone_by = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < gone_by:
        time.sleep(0.2)
    assert not _alive(worker)
    assert not (tmp_path / "m.npz").exists()


def test_streamed_results_grow_and_agree_with_the_track_frame_by_frame():
    """The one-pass results of one identity (kept off the heap, grown when the clip runs longer than
    said): each track row takes the box, flag and STAF output of its own frame, and only where the
    crop was cut, STAF ran and the track has the person."""
    import torch

    from core.inference import _agree, _KeyResults
    from core.model.sequence import FrameResults
    from core.people.smoothing import Track
    from core.people.stage import PersonTrack

    got = _KeyResults(5, capacity=1)  # first emitted frame 5; room for one frame, so it must grow
    for k in range(5, 15):
        if k != 8:
            got.mark(k, np.array([k, k + 0.5, 10.0, 20.0]), flag=1 + k % 2)

    def part(start: int, frames: range) -> FrameResults:
        f = torch.tensor(list(frames), dtype=torch.float32)
        return FrameResults(start, f[:, None, None, None].expand(-1, 24, 3, 3).clone(), f[:, None].repeat(1, 10),
                            f[:, None].repeat(1, 3), torch.zeros(len(f), 24, 3), None)

    got.put(5, part(0, range(5, 9)))  # the run began at frame 5: its parts count from there
    got.put(5, part(4, range(9, 15)))
    flags = np.ones(14, np.uint8)
    flags[12 - 3] = 0  # the track (frames 3..16) does not have the person at frame 12
    person = PersonTrack(0, 3, Track(np.zeros((14, 4)), flags, ((0, 9), (10, 14))), np.ones(14),
                         np.zeros((14, 33, 3)), 0.1)
    track, body = _agree(person, got)
    frames = 3 + np.arange(14)
    kept = (frames >= 5) & (frames < 15) & (frames != 8) & (frames != 12)
    assert (track.track.flags != 0).tolist() == kept.tolist()
    assert track.track.flags[kept].tolist() == (1 + frames[kept] % 2).tolist()
    assert track.track.box[kept, 0].tolist() == frames[kept].tolist()
    assert np.isnan(track.track.box[~kept]).all()
    assert body.rotmat[kept, 5, 2, 1].tolist() == frames[kept].tolist()
    assert body.betas[kept, 9].tolist() == frames[kept].tolist() and body.cam[kept, 2].tolist() == frames[kept].tolist()
    assert not body.rotmat[~kept].any() and not body.cam[~kept].any()
    assert _agree(person, None) is None
    late = PersonTrack(0, 40, Track(np.zeros((3, 4)), np.ones(3, np.uint8), ((0, 3),)), np.ones(3),
                       np.zeros((3, 33, 3)), 0.1)
    assert _agree(late, got) is None  # frames the identity never reached


def test_the_decoding_worker_starts_before_torch_loads(standin_assets, tmp_path):
    """The worker decodes and finds people while the main process imports torch and loads the
    weights (seconds the first crops would otherwise wait); its threads follow OMP_NUM_THREADS then."""
    import json
    import os
    import subprocess
    import sys

    from core.sample_clip import write_sample_clip

    clip = tmp_path / "short.mp4"
    write_sample_clip(clip, seconds=1.0, width=320, height=240)
    script = f"""
import json, sys
import core.pipeline as pipeline
seen = {{}}
start = pipeline.DecodingWorker.__init__
def spy(self, *args, threads=None, **kwargs):
    seen.update(torch="torch" in sys.modules, threads=threads)
    start(self, *args, threads=threads, **kwargs)
pipeline.DecodingWorker.__init__ = spy
from core.reconstruct import ReconstructOptions, reconstruct
reconstruct({str(clip)!r}, {str(tmp_path / "m.npz")!r}, ReconstructOptions(assets={str(standin_assets)!r},
            progress="none", precision="fp32"))
seen["torch_after"] = "torch" in sys.modules
print(json.dumps(seen))
"""
    root = Path(__file__).resolve().parents[1]
    for omp, threads in (("3", 1), ("16", 4)):
        run = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": omp})
        assert run.returncode == 0, run.stderr
        seen = json.loads(run.stdout.strip().splitlines()[-1])
        assert seen == {"torch": False, "threads": threads, "torch_after": True}
        assert (tmp_path / "m.npz").is_file()
        (tmp_path / "m.npz").unlink()


def test_network_threads_follow_torch_once_it_is_loaded(monkeypatch):
    import torch

    from core.pipeline import network_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert network_threads() == torch.get_num_threads()
