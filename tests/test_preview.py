"""The preview renderer: every person in their own colour, one far-to-near order across people, labels,
absent people left out, and the contact sheet's choice of frames."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from core.posing import pose_person
from core.preview import PERSON_COLOURS, Figure, _sheet_frames, draw_overlay, draw_people, person_colour, write_preview
from core.smpl import load_smpl_data
from core.standins.motion import synthetic_motion
from core.video import probe_video

W, H = 320, 240
_PER_FRAME = ("frame", "time", "pose", "betas", "cam_crop", "cam_full", "translation", "box", "flags")


@pytest.fixture(scope="module")
def smpl(standin_assets):
    return load_smpl_data(standin_assets / "SMPL_NEUTRAL.pkl")


@pytest.fixture(scope="module")
def two(smpl):
    return synthetic_motion(smpl, n_frames=12, n_people=2, width=W, height=H, seed=1)


def only_frames(motion, keep: dict[int, range]):
    """The motion with person ``pid`` kept on clip frames ``keep[pid]`` only."""
    people = []
    for p in motion.people:
        rows = np.isin(p.frame, list(keep.get(p.person_id, p.frame)))
        people.append(dataclasses.replace(p, **{k: getattr(p, k)[rows] for k in _PER_FRAME}))
    return dataclasses.replace(motion, people=tuple(people))


def figures(motion, row: int) -> list[Figure]:
    out = []
    for p in motion.people:
        _, verts = pose_person(motion, p, slice(row, row + 1))
        out.append(Figure(p.person_id, verts[0], p.box[row]))
    return out


def render(motion, figs, bg: int = 0, **kw) -> np.ndarray:
    return draw_people(np.full((H, W, 3), bg, np.uint8), figs, motion.faces,
                       motion.meta["camera"]["focal_length_px"], **kw)


def hue_of(colour) -> int:
    return int(cv2.cvtColor(np.uint8([[colour]]), cv2.COLOR_RGB2HSV_FULL)[0, 0, 0])


def has_hue(img: np.ndarray, colour, tol: int = 10, min_sat: int = 40) -> np.ndarray:
    """Pixels whose hue is within ``tol`` (of 256) of ``colour``'s, among clearly coloured ones."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(int)
    diff = np.abs(hsv[..., 0] - hue_of(colour))
    return (np.minimum(diff, 256 - diff) <= tol) & (hsv[..., 1] >= min_sat) & (hsv[..., 2] >= 20)


def mesh_mask(motion, fig: Figure) -> np.ndarray:
    """Where one person's mesh alone covers the image, shrunk by 2 px (away from anti-aliased edges)."""
    alone = render(motion, [fig._replace(box=None)])
    return cv2.erode((alone.max(2) > 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_palette_is_fixed_and_distinguishable():
    assert person_colour(0) == (120, 180, 255)  # today's light blue stays person 0's
    assert person_colour(len(PERSON_COLOURS) + 1) == person_colour(1)
    hues = sorted(hue_of(c) for c in PERSON_COLOURS)
    gaps = np.diff([*hues, hues[0] + 256])
    assert gaps.min() >= 16, hues  # no two people share a hue


def test_each_person_in_their_own_colour(two):
    figs = figures(two, 3)
    m0, m1 = mesh_mask(two, figs[0]), mesh_mask(two, figs[1])
    img = render(two, figs)
    for mine, colour, rival in ((m0 & ~m1, person_colour(0), person_colour(1)),
                                (m1 & ~m0, person_colour(1), person_colour(0))):
        assert mine.sum() > 500
        assert has_hue(img, colour)[mine].mean() > 0.95
        assert has_hue(img, rival)[mine].mean() < 0.03  # the other's box line may cross


@pytest.mark.parametrize("near_id", [0, 1])
@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_person_hides_the_farther_one_whatever_the_list_order(two, near_id, near_first):
    verts = figures(two, 3)[0].vertices
    near = Figure(near_id, verts, None)
    far = Figure(1 - near_id, verts + np.array([0.12, 0.0, 0.6]), None)  # behind and to the right: partly covered
    overlap = mesh_mask(two, near) & mesh_mask(two, far)
    assert overlap.sum() > 500
    img = render(two, [near, far] if near_first else [far, near])
    assert has_hue(img, person_colour(near_id))[overlap].mean() > 0.97
    assert has_hue(img, person_colour(1 - near_id))[overlap].mean() < 0.01


@pytest.mark.parametrize("bg", [0, 235])
def test_label_at_the_box_top_left_on_dark_and_light(two, bg):
    figs = figures(two, 3)
    plain, labelled = render(two, figs, bg, labels=False), render(two, figs, bg)
    for fig in figs:
        cx, cy, bw, bh = fig.box
        x0, y0 = round(cx - bw / 2), round(cy - bh / 2)
        near = labelled[max(0, y0 - 12):y0, x0:x0 + 10].astype(int)  # just above the corner
        changed = np.abs(near - plain[max(0, y0 - 12):y0, x0:x0 + 10]).max(2) > 30
        assert changed.mean() > 0.8, fig.person_id
        tag = near.reshape(-1, 3)
        fill = np.abs(tag - person_colour(fig.person_id)).max(1) < 8
        ink = np.abs(tag - person_colour(fig.person_id)).max(1) > 100  # the id's strokes contrast with the tag
        assert fill.mean() > 0.3 and ink.sum() >= 5, fig.person_id
    assert (np.abs(labelled.astype(int) - plain).max(2) > 0).sum() < 0.05 * W * H  # a tag, not a smear


def test_label_stays_in_the_image_for_a_box_at_the_top(two):
    fig = figures(two, 3)[0]
    box = fig.box.copy()
    box[1] = box[3] / 2  # top edge on the image's top
    plain = render(two, [fig._replace(box=box)], labels=False)
    labelled = render(two, [fig._replace(box=box)])
    x0 = round(box[0] - box[2] / 2)
    assert (np.abs(labelled[:20, x0:x0 + 20].astype(int) - plain[:20, x0:x0 + 20]).max(2) > 30).mean() > 0.3


def test_draw_overlay_is_one_person_without_a_label(two):
    fig = figures(two, 3)[0]
    rgb = np.zeros((H, W, 3), np.uint8)
    focal = two.meta["camera"]["focal_length_px"]
    one = draw_overlay(rgb, fig.vertices, two.faces, focal, fig.box)
    assert np.array_equal(one, draw_people(rgb, [fig], two.faces, focal, labels=False))
    assert has_hue(one, person_colour(0))[mesh_mask(two, fig)].mean() > 0.97


def test_mp4_draws_everyone_present_and_nobody_absent(two, tmp_path):
    motion = only_frames(two, {1: range(0, 6)})  # person 1 leaves after frame 5
    clip = write_clip(tmp_path / "clip.mp4", [np.full((H, W, 3), 110, np.uint8)] * 12)
    write_preview(tmp_path / "p.mp4", motion, probe_video(clip))
    with av.open(str(tmp_path / "p.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 12
    for i in (2, 9):
        assert has_hue(frames[i], person_colour(0)).sum() > 500, i
    assert has_hue(frames[2], person_colour(1)).sum() > 500
    assert has_hue(frames[9], person_colour(1)).sum() < 10


def test_contact_sheet_picks_from_the_union_of_frames(two, tmp_path):
    motion = only_frames(two, {0: range(6, 12), 1: range(0, 3)})  # nobody on frames 3..5
    assert _sheet_frames(motion, 12) == {0, 1, 2, 6, 7, 8, 9, 10, 11}
    assert _sheet_frames(motion, 3) == {0, 7, 11}
    clip = write_clip(tmp_path / "clip.mp4", [np.full((H, W, 3), 110, np.uint8)] * 12)
    write_preview(tmp_path / "s.png", motion, probe_video(clip))
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "s.png")), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (3 * H, 4 * W, 3)  # 9 tiles, 4 a row
    tiles = [sheet[r * H:(r + 1) * H, c * W:(c + 1) * W] for r in range(3) for c in range(4)][:9]
    ids = [[pid for pid in (0, 1) if has_hue(t, person_colour(pid)).sum() > 500] for t in tiles]
    assert ids == [[1], [1], [1], [0], [0], [0], [0], [0], [0]]
