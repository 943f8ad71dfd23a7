"""The people stage: BlazePose run directly, tiles, the identity tracker, choosing people, and whole runs
on multi-person clips composed from the real clips (ground truth of who is where: tests/people_clips.py)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadInput
from core.motion_format import read_motion
from core.people.blazepose import Roi, _ssd_anchors, roi_from_alignment
from core.people.finder import Observation, sweep_tiles
from core.people.stage import PeopleOptions, choose_people, find_people, parse_person_spec
from core.people.tracker import _MAX_REMEMBERED, IdentityTracker
from core.progress import Progress
from core.reconstruct import ReconstructOptions, reconstruct
from core.video import iter_frames, probe_video

ROOT = Path(__file__).resolve().parents[1]


# ---- pieces, no video needed -------------------------------------------------------------------

def test_person_spec_syntax():
    assert parse_person_spec("all") is None and parse_person_spec(None) is None
    assert parse_person_spec("2, 0,2") == [0, 2]
    assert parse_person_spec(1) == [1]
    for bad in ("", "x", "0,", "-1", "1.5", "0;2"):
        with pytest.raises(BadInput, match="--person"):
            parse_person_spec(bad)


def test_choosing_people_names_the_ids_there_are():
    people = [type("P", (), {"person_id": i})() for i in range(3)]
    assert [p.person_id for p in choose_people(people, [0, 2], None, "the clip")] == [0, 2]
    assert [p.person_id for p in choose_people(people, None, 2, "the clip")] == [0, 1]
    with pytest.raises(BadInput, match=r"--person 7: the clip has people 0-2"):
        choose_people(people, [7], None, "the clip")
    with pytest.raises(BadInput, match=r"within --max-people 1"):
        choose_people(people, [1], 1, "the clip")
    with pytest.raises(BadInput, match=r"one person \(id 0\)"):
        choose_people(people[:1], [1], None, "the clip")


def test_detector_anchors_and_upright_region():
    anchors = _ssd_anchors()
    assert anchors.shape == (2254, 2) and anchors.min() > 0 and anchors.max() < 1
    roi = roi_from_alignment(np.array([100.0, 200.0]), np.array([100.0, 120.0]))  # scale point above the hips
    assert abs(roi.rotation) < 1e-9 and roi.size == pytest.approx(2 * 80 * 1.25)
    lying = roi_from_alignment(np.array([100.0, 200.0]), np.array([180.0, 200.0]))  # head to the right
    assert lying.rotation == pytest.approx(np.pi / 2)


@pytest.mark.parametrize("size", [(960, 540), (1920, 1080), (480, 640), (500, 500), (100, 80)])
def test_sweep_tiles_reach_every_edge_and_overlap(size):
    w, h = size
    tiles = sweep_tiles(w, h)
    assert tiles[0] == (0, 0, w, h)
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in tiles[1:]:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and x1 - x0 == y1 - y0
        covered[y0:y1, x0:x1] = True
    if len(tiles) > 1:
        assert covered.all()
    small = [t for t in tiles[1:] if t[2] - t[0] == min(w, h) // 2]
    if min(w, h) // 2 >= 64:  # the finest level: squares of half the short side, neighbours overlapping
        xs = sorted({t[0] for t in small})
        side = min(w, h) // 2
        assert all(b - a <= 0.75 * side + 1 for a, b in itertools.pairwise(xs))


def _obs(cx: float, cy: float, h: float) -> Observation:
    lm = np.zeros((33, 4))
    lm[:, 0] = cx + np.linspace(-0.2, 0.2, 33) * h
    lm[:, 1] = cy + np.linspace(-0.5, 0.5, 33) * h
    lm[:, 3] = 1
    return Observation(np.array([cx, cy, 0.4 * h, h]), 0.99, lm, np.zeros((33, 3)), Roi(cx, cy, 1.3 * h, 0.0))


def _painted(people: list[tuple[float, float, float, tuple[int, int, int]]]) -> np.ndarray:
    """An image with each person's torso and thighs painted in their colour (what the look reads)."""
    rgb = np.full((400, 800, 3), 90, np.uint8)
    for cx, cy, h, colour in people:
        rgb[int(cy - 0.5 * h):int(cy + 0.5 * h), int(cx - 0.2 * h):int(cx + 0.2 * h)] = colour
    return rgb


def test_tracker_keeps_identities_through_a_crossing():
    """Two people walk through each other; at the crossing only the one in front is observed."""
    tracker = IdentityTracker(coast=30, remember=300)
    red, blue = (200, 30, 30), (30, 30, 200)
    for k in range(0, 80, 2):
        a, b = 100 + 7 * k, 660 - 7 * k  # they meet around k = 40
        people = [(a, 200, 150, red), (b, 200, 150, blue)]
        obs = [_obs(a, 200, 150), _obs(b, 200, 150)]
        if abs(a - b) < 60:
            people, obs = people[:1], obs[:1]  # blue is hidden behind red
        tracker.update(k, _painted(people), obs)
    tracks = [t for t in tracker.tracks() if t.confirmed]
    assert len(tracks) == 2
    by_start = {round(t.boxes[0][0]): t for t in tracks}
    red_track, blue_track = by_start[100], by_start[660]
    assert red_track.boxes[-1][0] > 500 and blue_track.boxes[-1][0] < 300  # each ended where it was heading


def test_tracker_reidentifies_a_person_who_left_and_came_back():
    tracker = IdentityTracker(coast=10, remember=300)
    green, grey = (30, 200, 30), (150, 150, 150)
    for k in range(0, 200, 2):
        people = [(200, 200, 150, grey)]
        if k < 40 or k > 140:  # green is out of the frame in between (3 s at 30 fps)
            people.append((600, 200, 150, green))
        tracker.update(k, _painted(people), [_obs(cx, cy, h) for cx, cy, h, _ in people])
    keys = {t.key for t in tracker.tracks()}
    assert len(keys) == 2, "the person who came back got their id back"


def test_tracker_memory_does_not_grow_with_comings_and_goings():
    tracker = IdentityTracker(coast=4, remember=10_000)
    for i in range(300):  # 300 different people, one after another, each seen for 3 frames
        colour = ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)
        for k in range(10 * i, 10 * i + 6, 2):
            tracker.update(k, _painted([(400, 200, 150, colour)]), [_obs(400, 200, 150)])
    assert len(tracker.lost) <= _MAX_REMEMBERED and len(tracker.active) <= 1


# ---- the models against mediapipe's own Pose solution --------------------------------------------

@pytest.fixture(scope="module")
def videos() -> Path:
    from people_clips import require_videos

    return require_videos()


def test_landmarks_match_mediapipes_own_pose_solution(videos):
    """Our pre- and post-processing around the wheel's models agrees with mediapipe's graph."""
    import mediapipe as mp

    from core.people.finder import PeopleFinder

    finder = PeopleFinder()
    info = probe_video(videos / "dancer.mp4")
    errors, expected = [], []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False) as pose:
        for frame in iter_frames(info, end=30, max_side=640):
            obs = finder(frame.rgb, expected, sweep="none" if expected else "full")
            assert len(obs) == 1
            expected = [obs[0].next_roi]
            ref = pose.process(frame.rgb).pose_landmarks
            h, w = frame.rgb.shape[:2]
            ref_xy = np.array([(p.x * w, p.y * h) for p in ref.landmark])
            errors.append(np.median(np.linalg.norm(ref_xy - obs[0].landmarks[:, :2], axis=1)) / obs[0].box[3])
    assert np.median(errors) < 0.03, errors


# ---- whole people stage on multi-person clips ---------------------------------------------------

@pytest.fixture(scope="module")
def clips(videos, tmp_path_factory):
    from people_clips import build_people_clip

    folder = tmp_path_factory.mktemp("people")
    return {name: build_people_clip(kind, folder, n_people=n)
            for name, (kind, n) in {"side": ("side_by_side", 2), "crossing": ("crossing", 2),
                                    "leave": ("leave_return", 2), "crowd": ("crowd", 4)}.items()}


def _track_boxes(found) -> dict[int, np.ndarray]:
    out = {}
    for p in found.people:
        boxes = np.full((len(found.frame_index), 4), np.nan)
        rows = p.first + np.flatnonzero(p.track.present)
        boxes[rows] = p.track.box[p.track.present]
        out[p.person_id] = boxes
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["side", "crossing", "leave", "crowd"])
def test_everyone_found_and_nobody_swapped(clips, name):
    from people_scoring import match_tracks

    clip = clips[name]
    found = find_people(probe_video(clip.path), 0, None, PeopleOptions(), Progress("none"))
    score = match_tracks(clip, _track_boxes(found))
    assert len(found.people) == len(clip.names), [p.frames_seen for p in found.people]
    assert score["total_id_switches"] == 0, score
    assert min(score["recall"].values()) >= 0.95, score
    tracks = list(score["majority_track"].values())
    assert len(set(tracks)) == len(tracks), "each person is one track"
    if name == "crowd":  # ids ordered by prominence: the biggest person is 0, the smallest (1/7 tall) last
        assert score["majority_track"]["dancer"] == 0 and score["majority_track"]["runner_small"] == 3
    if name == "leave":  # out of the frame for 1.8 s, back with the same id
        runner = found.people[score["majority_track"]["runner"]]
        assert len(runner.segments) == 2


@pytest.mark.slow
def test_ids_are_stable_from_run_to_run(clips):
    info = probe_video(clips["crossing"].path)
    a, b = (find_people(info, 0, None, PeopleOptions(), Progress("none")) for _ in range(2))
    assert [p.person_id for p in a.people] == [p.person_id for p in b.people]
    for p, q in zip(a.people, b.people, strict=True):
        assert p.first == q.first and np.array_equal(p.track.box, q.track.box, equal_nan=True)


@pytest.mark.slow
def test_reconstruct_every_person_or_some(clips, standin_assets, tmp_path):
    path = clips["side"].path
    base = dict(assets=str(standin_assets), device="cpu", progress="none")
    motion = reconstruct(path, tmp_path / "all.npz", ReconstructOptions(**base))
    back = read_motion(tmp_path / "all.npz")
    assert [p.person_id for p in back.people] == [0, 1] and back.meta["people_found"] == 2
    for p in back.people:
        assert len(p) == 90 and p.landmarks.shape == (90, 33, 3) and p.score.shape == (90,)
        observed = ~np.isnan(p.score)
        assert observed.sum() >= 40 and np.all(p.score[observed] >= 0.5)
        inside = p.landmarks[observed][:, :, 2] > 0.5  # visible landmarks lie in the person's box
        lm, box = p.landmarks[observed], p.box[observed][:, None]
        near = ((np.abs(lm[..., 0] - box[..., 0]) < 0.6 * box[..., 2] + 5)
                & (np.abs(lm[..., 1] - box[..., 1]) < 0.6 * box[..., 3] + 5))
        assert near[inside].mean() > 0.98
    assert abs(motion.people[0].box[:, 0].mean() - motion.people[1].box[:, 0].mean()) > 200, "two different people"
    one = reconstruct(path, tmp_path / "one.npz", ReconstructOptions(person="1", **base))
    assert [p.person_id for p in one.people] == [1]
    assert np.allclose(one.people[0].box, motion.people[1].box)
    assert [p.person_id for p in reconstruct(path, tmp_path / "top.npz",
                                             ReconstructOptions(max_people=1, **base)).people] == [0]
    with pytest.raises(BadInput, match="--person 7: the clip has people 0-1"):
        reconstruct(path, tmp_path / "none.npz", ReconstructOptions(person="7", **base))
    assert not (tmp_path / "none.npz").exists()


@pytest.mark.slow
def test_tracks_command_lists_people_and_draws_a_sheet(clips, tmp_path):
    sheet = tmp_path / "sheet.png"
    run = subprocess.run([sys.executable, "-m", "core", "tracks", str(clips["crowd"].path), "--sheet", str(sheet),
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    listing = json.loads(run.stdout)
    assert [p["id"] for p in listing["people"]] == [0, 1, 2, 3] and listing["frames"] == 90
    shares = [p["share_of_frame"] for p in listing["people"]]
    assert shares[0] > shares[-1] > 0
    import cv2

    image = cv2.imread(str(sheet))
    assert image.shape[0] == 4 * 160 and image.std() > 20
    bad = subprocess.run([sys.executable, "-m", "core", "tracks", str(clips["crowd"].path), "--sheet",
                          str(tmp_path / "sheet.jpg")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 6 and bad.stderr.count("\n") == 1 and "must end in .png" in bad.stderr
