"""Previews of a reconstruction: the recovered meshes drawn over the clip (MP4) or a contact sheet (PNG).

Software rendering (painter's algorithm with OpenCV, flat shading, back faces culled): no GPU,
no extra dependency, and the same camera model the motion file documents. Every person in the file
is drawn in their own colour (:data:`PERSON_COLOURS`, indexed by person id) with a box and an id label;
the triangles of all people in a frame are drawn in one far-to-near order, so meshes occlude correctly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from core.atomic import atomic_path
from core.errors import OutputError
from core.motion_format import Motion
from core.posing import pose_person
from core.reprojection import frames_to_check
from core.video import Frame, VideoInfo, iter_frames

__all__ = ["PERSON_COLOURS", "Figure", "draw_overlay", "draw_people", "person_colour", "write_preview"]

#: RGB colour of person id ``i`` is ``PERSON_COLOURS[i % 8]``: light blue, orange, green, pink, yellow,
#: violet, teal, red. Fixed, so a person's colour is the same in every run (and in the add-on's docs).
PERSON_COLOURS: tuple[tuple[int, int, int], ...] = (
    (120, 180, 255),  # 0 light blue
    (255, 150, 50),  # 1 orange
    (100, 220, 100),  # 2 green
    (245, 110, 200),  # 3 pink
    (240, 225, 70),  # 4 yellow
    (165, 120, 255),  # 5 violet
    (60, 215, 200),  # 6 teal
    (235, 70, 70),  # 7 red
)
# Towards the light: the camera's side (-z), a bit above (-y).
_LIGHT = np.array([0.3, -0.5, -1.0]) / np.linalg.norm([0.3, -0.5, -1.0])


def person_colour(person_id: int) -> tuple[int, int, int]:
    """The RGB colour a person is drawn in (the palette repeats after 8 ids)."""
    return PERSON_COLOURS[int(person_id) % len(PERSON_COLOURS)]


class Figure(NamedTuple):
    """One person to draw: camera-space vertices (V, 3), box (cx, cy, w, h) in full-size pixels or None;
    ``check``: a frame to check (its joints land far from the detector's landmarks), labelled so."""

    person_id: int
    vertices: np.ndarray
    box: np.ndarray | None
    check: bool = False


def _faces_of(vertices: np.ndarray, faces: np.ndarray, focal: float, full_w: float, full_h: float,
              scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible faces of one mesh: polygons (K, 3, 2) in 1/16 pixels, depths (K,), shades (K,)."""
    z = vertices[:, 2]
    px = np.stack([focal * vertices[:, 0] / z + full_w / 2, focal * vertices[:, 1] / z + full_h / 2], -1) * scale
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    centre = tri.mean(1)
    facing = (normal * centre).sum(1) < 0  # towards the camera
    shade = np.clip(normal @ _LIGHT, 0.0, 1.0) * 0.7 + 0.3
    keep = np.flatnonzero(facing & (z[faces].min(1) > 1e-3))
    pts = np.round(px[faces[keep]] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    return pts, centre[keep, 2], shade[keep]


def _draw_label(img: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    """A filled tag in ``colour`` with dark or light text (whichever contrasts), its top-left corner on
    (x, y) moved up above that point when there is room, so it sits on the box's top-left corner."""
    h, w = img.shape[:2]
    font, size = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, min(h, w) / 600)
    thick = max(1, round(size * 2))
    (tw, th), base = cv2.getTextSize(text, font, size, thick)
    pad = max(2, round(size * 4))
    lw, lh = tw + 2 * pad, th + base + 2 * pad
    x = int(np.clip(x, 0, max(0, w - lw)))
    y = y - lh if y - lh >= 0 else max(0, y)  # above the box's top edge, else just inside it
    y = int(min(y, max(0, h - lh)))
    cv2.rectangle(img, (x, y), (x + lw - 1, y + lh - 1), colour, -1)
    cv2.rectangle(img, (x, y), (x + lw - 1, y + lh - 1), (0, 0, 0), 1)  # edge for light backgrounds
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luma > 110 else (255, 255, 255)
    cv2.putText(img, text, (x + pad, y + pad + th), font, size, ink, thick, cv2.LINE_AA)


def draw_people(rgb: np.ndarray, figures: Sequence[Figure], faces: np.ndarray, focal: float,
                scale: float = 1.0, alpha: float = 0.75, labels: bool = True) -> np.ndarray:
    """Draw several camera-space meshes over an RGB image (H, W, 3) uint8 whose full-size pixels are
    ``1 / scale`` times larger, each in its person's colour with its box (and id label); returns a new
    image. All people's triangles go in one far-to-near order, so nearer people hide farther ones."""
    h, w = rgb.shape[:2]
    full_w, full_h = w / scale, h / scale
    parts = [_faces_of(np.asarray(f.vertices, np.float64), faces, focal, full_w, full_h, scale) for f in figures]
    layer = rgb.copy()
    if parts:
        pts = np.concatenate([pts for pts, _, _ in parts])
        depth = np.concatenate([depth for _, depth, _ in parts])
        colours = np.concatenate([(shade[:, None] * np.asarray(person_colour(f.person_id), np.float64))
                                  .astype(np.int32) for (_, _, shade), f in zip(parts, figures, strict=True)])
        for i in np.argsort(-depth):  # far to near, across people
            cv2.fillConvexPoly(layer, pts[i], colours[i].tolist(), lineType=cv2.LINE_AA, shift=4)
    out = cv2.addWeighted(layer, alpha, rgb, 1 - alpha, 0)
    for fig in figures:
        if fig.box is None:
            continue
        colour = person_colour(fig.person_id)
        cx, cy, bw, bh = (float(v) * scale for v in fig.box)
        x0, y0 = round(cx - bw / 2), round(cy - bh / 2)
        cv2.rectangle(out, (x0, y0), (round(cx + bw / 2), round(cy + bh / 2)), colour, 2)
        if labels or fig.check:
            _draw_label(out, f"{fig.person_id} check" if fig.check else str(fig.person_id), x0, y0, colour)
    return out


def draw_overlay(rgb: np.ndarray, vertices: np.ndarray, faces: np.ndarray, focal: float, box: np.ndarray | None,
                 scale: float = 1.0, alpha: float = 0.75, person_id: int = 0) -> np.ndarray:
    """One person's camera-space mesh (V, 3) and box over an RGB image, without a label; see
    :func:`draw_people`."""
    return draw_people(rgb, [Figure(person_id, vertices, box)], faces, focal, scale, alpha, labels=False)


def _figures_at(motion: Motion, rows_of: list[dict[int, int]], index: int,
                checks: list[set[int]]) -> list[Figure]:
    """The people present on clip frame ``index``, posed in camera space."""
    figures = []
    for person, row_of, check in zip(motion.people, rows_of, checks, strict=True):
        row = row_of.get(index)
        if row is not None:
            _, verts = pose_person(motion, person, slice(row, row + 1))
            figures.append(Figure(person.person_id, verts[0], person.box[row], row in check))
    return figures


def _frames_with_overlay(motion: Motion, info: VideoInfo, max_side: int,
                         wanted: set[int] | None) -> Iterator[tuple[Frame, np.ndarray]]:
    focal = motion.meta["camera"]["focal_length_px"]
    start, end = motion.meta["range"]["start"], motion.meta["range"]["end"]
    rows_of = [{int(f): i for i, f in enumerate(p.frame)} for p in motion.people]
    checks = [set() if p.reprojection_px is None else set(frames_to_check(p.reprojection_px, p.box).tolist())
              for p in motion.people]
    for frame in iter_frames(info, start=start, end=end, max_side=max_side):
        if wanted is not None and frame.index not in wanted:
            continue
        figures = _figures_at(motion, rows_of, frame.index, checks)
        if not figures:
            yield frame, frame.rgb
            continue
        scale = frame.rgb.shape[1] / info.width
        yield frame, draw_people(frame.rgb, figures, motion.faces, focal, scale)


def _sheet_frames(motion: Motion, count: int) -> set[int]:
    """Up to ``count`` evenly spaced clip frames where someone is present (any frame if nobody is)."""
    present = np.unique(np.concatenate([p.frame for p in motion.people] or [np.zeros(0, np.int64)]))
    if present.size == 0:
        present = np.asarray(motion.frame_index, np.int64)
    if present.size == 0:
        return set()
    picks = np.unique(np.linspace(0, present.size - 1, min(count, present.size)).round().astype(int))
    return {int(present[i]) for i in picks}


def write_preview(path: Path, motion: Motion, info: VideoInfo, *, overwrite: bool = False, max_side: int = 960,
                  sheet_frames: int = 12) -> None:
    """An MP4 of the whole range (``.mp4``) or a contact sheet of evenly spaced frames (``.png``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".png"):
        raise OutputError(f"{path}: a preview is an .mp4 video or a .png contact sheet")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; pass --overwrite to replace it")
    if suffix == ".png":
        tiles = [img for _, img in _frames_with_overlay(motion, info, 480, _sheet_frames(motion, sheet_frames))]
        if not tiles:
            raise OutputError(f"{path}: no frames of the clip to put on a contact sheet")
        cols = min(4, len(tiles))
        rows = -(-len(tiles) // cols)
        th, tw = tiles[0].shape[:2]
        sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
        for i, tile in enumerate(tiles):
            sheet[(i // cols) * th:(i // cols + 1) * th, (i % cols) * tw:(i % cols + 1) * tw] = tile
        with atomic_path(path) as tmp:
            ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            if not ok:
                raise OutputError(f"{path}: could not encode the contact sheet")
            tmp.write_bytes(data.tobytes())
        return
    import av

    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            stream = None
            for _, img in _frames_with_overlay(motion, info, max_side, None):
                if stream is None:
                    stream = out.add_stream("libx264", rate=info.fps)
                    stream.width, stream.height = img.shape[1] // 2 * 2, img.shape[0] // 2 * 2
                    stream.pix_fmt = "yuv420p"
                frame = av.VideoFrame.from_ndarray(img[: stream.height, : stream.width], format="rgb24")
                out.mux(stream.encode(frame))
            if stream is not None:
                out.mux(stream.encode(None))
