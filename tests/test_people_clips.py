"""The multi-person clip builder (tests/people_clips.py) and its tracker scoring, checked against themselves."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import people_clips as pc
import pytest
from people_clips import PeopleClip, build_people_clip, require_videos
from people_scoring import iou, match_tracks

# --- the matcher on hand-made ground truth (no videos needed) -------------------------------------------------


def toy_clip(n_frames: int = 10) -> PeopleClip:
    """Two people far apart; the second leaves for frames 4..5."""
    boxes = np.zeros((2, n_frames, 4))
    boxes[0] = (100, 100, 50, 100)
    boxes[1] = (400, 100, 50, 100)
    boxes[1, 4:6] = np.nan
    visible = np.ones((2, n_frames))
    visible[1, 4:6] = 0
    return PeopleClip(Path("toy.mp4"), 30.0, (640, 360), boxes, visible, ("a", "b"))


def test_match_ideal_tracker():
    clip = toy_clip()
    r = match_tracks(clip, {7: clip.boxes[0], 3: clip.boxes[1]})
    assert r["recall"] == {"a": 1.0, "b": 1.0}
    assert r["id_switches"] == {"a": 0, "b": 0} and r["total_id_switches"] == 0
    assert r["majority_track"] == {"a": 7, "b": 3}
    assert r["matched_frames"] == {"a": 10, "b": 8}
    assert r["unmatched_track_boxes"] == 0


def test_match_swap_halfway_and_gap():
    clip = toy_clip()
    t1, t2 = clip.boxes[0].copy(), clip.boxes[1].copy()
    t1[6:], t2[6:] = clip.boxes[1, 6:], clip.boxes[0, 6:]  # ids swap after b's gap: one switch each
    r = match_tracks(clip, {1: t1, 2: t2})
    assert r["id_switches"] == {"a": 1, "b": 1} and r["total_id_switches"] == 2
    assert r["majority_track"] == {"a": 1, "b": 1}  # a: 6 frames on 1, 4 on 2; b: 4 on each, a tie: the smaller
    # swapping back and forth every frame counts every change
    t1, t2 = clip.boxes[0].copy(), clip.boxes[0].copy()
    t2[:] = np.nan
    t1[1::2], t2[1::2] = np.nan, clip.boxes[0, 1::2]
    assert match_tracks(clip, {1: t1, 2: t2})["id_switches"]["a"] == 9


def test_match_recall_iou_threshold_and_false_positives():
    clip = toy_clip()
    a = clip.boxes[0].copy()
    a[:3] = np.nan  # misses 3 frames
    a[3] = (125, 100, 50, 100)  # IoU 1/3: still a match
    a[4] = (130, 100, 50, 100)  # IoU 0.25: no match
    ghost = np.full((10, 4), np.nan)
    ghost[2] = (300, 300, 20, 20)
    r = match_tracks(clip, {0: a, 9: ghost})
    assert r["recall"]["a"] == pytest.approx(0.6)
    assert r["recall"]["b"] == 0.0 and r["majority_track"]["b"] is None
    assert r["unmatched_track_boxes"] == 2  # the ghost, and frame 4's poor box
    assert r["mean_recall"] == pytest.approx(0.3)


def test_match_recall_counts_only_well_visible_frames():
    clip = toy_clip()
    visible = clip.visible.copy()
    visible[0, :5] = 0.4  # hidden frames: a match there is not required, nor held against the tracker
    clip = PeopleClip(clip.path, clip.fps, clip.size, clip.boxes, visible, clip.names)
    a = clip.boxes[0].copy()
    a[:5] = np.nan
    assert match_tracks(clip, {0: a})["recall"]["a"] == 1.0
    with pytest.raises(ValueError, match=r"\(10, 4\)"):
        match_tracks(clip, {0: a[:5]})


def test_require_videos_skips_with_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(pc, "VIDEOS", tmp_path / "absent")
    with pytest.raises(pytest.skip.Exception, match="real test clips not available"):
        require_videos()


def test_unknown_kind_and_people_count(tmp_path):
    with pytest.raises(ValueError, match="unknown kind"):
        build_people_clip("parade", tmp_path)
    with pytest.raises(ValueError, match="exactly 2"):
        build_people_clip("crossing", tmp_path, n_people=3)
    with pytest.raises(ValueError, match="1 to 4"):
        build_people_clip("crowd", tmp_path, n_people=5)


# --- the real clips --------------------------------------------------------------------------------------------

SCENARIOS = [("side_by_side", 2), ("crossing", 2), ("leave_return", 2), ("crowd", 1), ("crowd", 2), ("crowd", 4)]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], PeopleClip]:
    require_videos()
    folder = tmp_path_factory.mktemp("people_clips")
    return {(k, n): build_people_clip(k, folder, n_people=n) for k, n in SCENARIOS}


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def ideal(clip: PeopleClip) -> dict[int, np.ndarray]:
    return {10 + p: clip.boxes[p] for p in range(len(clip.names))}


def in_box(box: np.ndarray, shape: tuple[int, int], margin: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    if np.isfinite(box).all():
        x0, y0 = int(box[0] - box[2] / 2) - margin, int(box[1] - box[3] / 2) - margin
        x1, y1 = int(box[0] + box[2] / 2) + margin, int(box[1] + box[3] / 2) + margin
        m[max(y0, 0):y1, max(x0, 0):x1] = True
    return m


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "n"), SCENARIOS)
def test_clip_file_and_ground_truth_shapes(clips, kind, n):
    clip = clips[kind, n]
    frames = decoded(clip.path)
    n_frames = clip.boxes.shape[1]
    assert frames.shape == (n_frames, 540, 960, 3) and clip.size == (960, 540) and clip.fps == 30.0
    assert 60 <= n_frames <= 120  # 2 to 4 s
    assert clip.boxes.shape == (n, n_frames, 4) and clip.visible.shape == (n, n_frames)
    assert len(clip.names) == len(set(clip.names)) == n
    assert ((clip.visible >= 0) & (clip.visible <= 1)).all()
    present = np.isfinite(clip.boxes).all(axis=2)
    assert (present == np.isfinite(clip.boxes).any(axis=2)).all()
    assert (clip.visible[~present] == 0).all()
    with av.open(str(clip.path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    saved = np.load(clip.path.with_suffix(".npz"))
    np.testing.assert_array_equal(saved["boxes"], clip.boxes)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "n"), SCENARIOS)
def test_boxes_cover_the_pasted_people(clips, kind, n):
    """Pixels that differ from the empty background lie in some person's box; each box holds changed pixels."""
    import cv2

    clip = clips[kind, n]
    frames = decoded(clip.path)
    bg = np.clip(pc._background(), 0, 255).round()
    for i in range(0, len(frames), 7):
        diff = np.abs(frames[i].astype(np.float64) - bg).max(axis=2) > 60
        diff = cv2.morphologyEx(diff.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        covered = np.zeros(diff.shape, bool)
        for p in range(n):
            covered |= in_box(clip.boxes[p, i], diff.shape, margin=3)
            if clip.visible[p, i] > 0.5:
                inside = diff[in_box(clip.boxes[p, i], diff.shape, margin=0)]
                assert inside.mean() > 0.1, (kind, clip.names[p], i)
        assert np.count_nonzero(diff & ~covered) == 0, (kind, i)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "n"), SCENARIOS)
def test_ideal_tracker_scores_perfectly(clips, kind, n):
    clip = clips[kind, n]
    r = match_tracks(clip, ideal(clip))
    assert r["total_id_switches"] == 0 and r["unmatched_track_boxes"] == 0
    assert all(v == 1.0 for v in r["recall"].values())
    assert r["majority_track"] == {name: 10 + p for p, name in enumerate(clip.names)}


@pytest.mark.slow
def test_side_by_side_never_overlaps(clips):
    clip = clips["side_by_side", 2]
    assert (clip.visible == 1).all()
    assert max(iou(clip.boxes[0, i : i + 1], clip.boxes[1, i : i + 1])[0, 0] for i in range(90)) == 0
    assert (clip.boxes[0, :, 0] < clip.boxes[1, :, 0]).all()
    assert (clip.boxes[:, :, 3] > 0.5 * 540).all()


@pytest.mark.slow
def test_crossing_overlaps_and_swaps_sides(clips):
    clip = clips["crossing", 2]
    front, back = clip.names.index("runner"), clip.names.index("runner_tinted")
    overlap = np.array([iou(clip.boxes[front, i : i + 1], clip.boxes[back, i : i + 1])[0, 0] for i in range(120)])
    assert overlap.max() > 0.3 and (overlap > 0).sum() >= 15
    assert clip.visible[back].min() < 0.2  # nearly hidden behind the front one at the crossing
    assert (clip.visible[back, overlap == 0] == 1).all()
    assert (clip.visible[front] == 1).all()
    assert clip.boxes[front, 0, 0] < clip.boxes[back, 0, 0] and clip.boxes[front, -1, 0] > clip.boxes[back, -1, 0]
    # a tracker that swaps the two ids halfway through (at the crossing) scores exactly one switch each
    a, b = clip.boxes[front].copy(), clip.boxes[back].copy()
    a[60:], b[60:] = clip.boxes[back, 60:], clip.boxes[front, 60:]
    r = match_tracks(clip, {1: a, 2: b})
    assert r["id_switches"] == {"runner": 1, "runner_tinted": 1}
    assert all(v == 1.0 for v in r["recall"].values())


@pytest.mark.slow
def test_leave_return_is_away_over_a_second(clips):
    clip = clips["leave_return", 2]
    stays, leaves = clip.names.index("dancer"), clip.names.index("runner")
    assert (clip.visible[stays] == 1).all()
    away = ~np.isfinite(clip.boxes[leaves]).all(axis=1)
    idx = np.flatnonzero(away)
    assert len(idx) >= 30 and (np.diff(idx) == 1).all()  # one stretch of at least 1 s
    assert idx[0] > 10 and idx[-1] < 110 and (clip.visible[leaves, : idx[0] - 20] == 1).all()
    assert (clip.visible[leaves, -5:] == 1).all()
    assert (clip.visible[leaves, away] == 0).all()


@pytest.mark.slow
def test_crowd_sizes_and_positions(clips):
    for n in (1, 2, 4):
        clip = clips["crowd", n]
        assert (clip.visible > 0.99).all()
        heights = np.nanmedian(clip.boxes[:, :, 3], axis=1) / 540
        if n >= 2:
            assert 1 / 8 <= heights.min() <= 1 / 6
        for p in range(n):
            for q in range(p):
                assert max(iou(clip.boxes[p, i : i + 1], clip.boxes[q, i : i + 1])[0, 0] for i in range(90)) == 0
    assert clips["crowd", 4].names[:2] == clips["crowd", 2].names


def _decoded_difference(a: Path, b: Path) -> float:
    """Mean absolute difference (grey levels) between the decoded frames of two clips of equal length."""
    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        fa = [f.to_ndarray(format="rgb24").astype(np.int16) for f in ca.decode(video=0)]
        fb = [f.to_ndarray(format="rgb24").astype(np.int16) for f in cb.decode(video=0)]
    assert len(fa) == len(fb)
    return float(np.mean([np.abs(x - y).mean() for x, y in zip(fa, fb, strict=True)]))


@pytest.mark.slow
def test_deterministic_and_seeded(clips, tmp_path):
    first = clips["crowd", 1]
    again = build_people_clip("crowd", tmp_path, n_people=1, seed=0)
    np.testing.assert_array_equal(again.boxes, first.boxes)
    np.testing.assert_array_equal(again.visible, first.visible)
    # The same frames: compared decoded, since the H.264 bytes were seen to differ once in a full
    # suite run (the encoder's output is not ours to promise), with the composed frames equal.
    assert _decoded_difference(again.path, first.path) < 0.5
    other = build_people_clip("crowd", tmp_path, n_people=1, seed=1)
    assert other.path != again.path and not np.array_equal(other.boxes, again.boxes, equal_nan=True)
