"""Previews of a reconstruction: the recovered mesh drawn over the clip (MP4) or a contact sheet (PNG).

Software rendering (painter's algorithm with OpenCV, flat shading, back faces culled): no GPU,
no extra dependency, and the same camera model the motion file documents.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path
from core.errors import OutputError
from core.motion_format import Motion, PersonMotion
from core.posing import pose_person
from core.video import VideoInfo, iter_frames

__all__ = ["draw_overlay", "write_preview"]

_MESH_COLOUR = np.array([120, 180, 255], np.float64)  # RGB, light blue
_BOX_COLOUR = (255, 200, 0)
_LIGHT = np.array([0.3, -0.5, -1.0]) / np.linalg.norm([0.3, -0.5, -1.0])  # from the camera, a bit above


def draw_overlay(rgb: np.ndarray, vertices: np.ndarray, faces: np.ndarray, focal: float, box: np.ndarray | None,
                 scale: float = 1.0, alpha: float = 0.75) -> np.ndarray:
    """Draw a camera-space mesh (V, 3) over an RGB image (H, W, 3) uint8 whose full-size pixels are
    ``1 / scale`` times larger; returns a new image."""
    h, w = rgb.shape[:2]
    full_w, full_h = w / scale, h / scale
    z = vertices[:, 2]
    px = np.stack([focal * vertices[:, 0] / z + full_w / 2, focal * vertices[:, 1] / z + full_h / 2], -1) * scale
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    centre = tri.mean(1)
    facing = (normal * centre).sum(1) < 0  # towards the camera
    shade = np.clip(-(normal @ _LIGHT), 0.0, 1.0) * 0.7 + 0.3
    order = np.flatnonzero(facing & (z[faces].min(1) > 1e-3))
    order = order[np.argsort(-centre[order, 2])]  # far to near
    layer = rgb.copy()
    pts = np.round(px[faces[order]] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    colours = (shade[order, None] * _MESH_COLOUR).astype(np.int32)
    for poly, colour in zip(pts, colours, strict=True):
        cv2.fillConvexPoly(layer, poly, colour.tolist(), lineType=cv2.LINE_AA, shift=4)
    out = cv2.addWeighted(layer, alpha, rgb, 1 - alpha, 0)
    if box is not None:
        cx, cy, bw, bh = (float(v) * scale for v in box)
        cv2.rectangle(out, (round(cx - bw / 2), round(cy - bh / 2)), (round(cx + bw / 2), round(cy + bh / 2)),
                      _BOX_COLOUR, 2)
    return out


def _frames_with_overlay(motion: Motion, person: PersonMotion, info: VideoInfo, max_side: int,
                         wanted: set[int] | None):
    focal = motion.meta["camera"]["focal_length_px"]
    start, end = motion.meta["range"]["start"], motion.meta["range"]["end"]
    row_of = {int(f): i for i, f in enumerate(person.frame)}
    for frame in iter_frames(info, start=start, end=end, max_side=max_side):
        if wanted is not None and frame.index not in wanted:
            continue
        scale = frame.rgb.shape[1] / info.width
        row = row_of.get(frame.index)
        if row is None:
            yield frame, frame.rgb
            continue
        _, verts = pose_person(motion, person, slice(row, row + 1))
        yield frame, draw_overlay(frame.rgb, verts[0], motion.faces, focal, person.box[row], scale)


def write_preview(path: Path, motion: Motion, info: VideoInfo, *, overwrite: bool = False, max_side: int = 960,
                  sheet_frames: int = 12) -> None:
    """An MP4 of the whole range (``.mp4``) or a contact sheet of evenly spaced frames (``.png``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".png"):
        raise OutputError(f"{path}: a preview is an .mp4 video or a .png contact sheet")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; pass --overwrite to replace it")
    person = motion.people[0]
    if suffix == ".png":
        picks = np.unique(np.linspace(0, len(person) - 1, min(sheet_frames, len(person))).round().astype(int))
        wanted = {int(person.frame[i]) for i in picks}
        tiles = [img for _, img in _frames_with_overlay(motion, person, info, 480, wanted)]
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
            for _, img in _frames_with_overlay(motion, person, info, max_side, None):
                if stream is None:
                    stream = out.add_stream("libx264", rate=info.fps)
                    stream.width, stream.height = img.shape[1] // 2 * 2, img.shape[0] // 2 * 2
                    stream.pix_fmt = "yuv420p"
                frame = av.VideoFrame.from_ndarray(img[: stream.height, : stream.width], format="rgb24")
                out.mux(stream.encode(frame))
            if stream is not None:
                out.mux(stream.encode(None))
