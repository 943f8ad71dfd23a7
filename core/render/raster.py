"""Filled, Lambert-shaded triangles in painter's order: enough to draw a closed body mesh.

Back faces are culled and the rest drawn far to near, so a closed mesh occludes itself correctly
wherever its triangles are small (the body's are a few pixels). Frames are drawn at ``scale`` times
the output size and averaged down, which antialiases the silhouette.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["LIGHT", "draw_mesh", "project", "shade"]

#: Direction towards the light in camera axes (x right, y down, z forward): above, left, in front.
LIGHT = np.array([-0.45, -0.7, -0.55]) / np.linalg.norm([-0.45, -0.7, -0.55])

_SHIFT = 4  # fractional bits of the vertex coordinates handed to OpenCV


def project(points: np.ndarray, focal: float, width: int, height: int) -> np.ndarray:
    """Pinhole projection of camera-axes points (..., 3) to pixels (..., 2), principal point at the centre."""
    z = points[..., 2:3]
    return points[..., :2] * (focal / z) + np.array([width / 2.0, height / 2.0])


def shade(normals: np.ndarray, albedo: np.ndarray, ambient: float = 0.38) -> np.ndarray:
    """Lambert shading of unit normals (N, 3) lit by :data:`LIGHT`, plus a little sky light from above."""
    diffuse = np.clip(normals @ LIGHT, 0.0, None)
    sky = 0.12 * np.clip(-normals[:, 1], 0.0, None)
    return np.clip(albedo * (ambient + 0.62 * diffuse + sky)[:, None], 0, 255)


def draw_mesh(canvas: np.ndarray, vertices: np.ndarray, faces: np.ndarray, albedo: np.ndarray, focal: float,
              scale: int) -> None:
    """Draw a mesh (camera-axes ``vertices`` (V, 3), ``faces`` (F, 3) counter-clockwise from outside,
    per-face ``albedo`` (F, 3) RGB) into ``canvas``, an RGB uint8 image ``scale`` times the output size."""
    h, w = canvas.shape[:2]
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(1)
    front = (np.einsum("fa,fa->f", normal, centre) < 0) & (tri[:, :, 2].min(1) > 0.05)
    order = np.flatnonzero(front)[np.argsort(-centre[front, 2], kind="stable")]
    unit = normal[order] / np.linalg.norm(normal[order], axis=1, keepdims=True).clip(1e-12)
    colours = shade(unit, albedo[order]).astype(np.int32).tolist()
    pixels = project(tri[order], focal * scale, w, h)
    fixed = np.round(pixels * (1 << _SHIFT)).astype(np.int32)
    fill = cv2.fillConvexPoly
    for pts, colour in zip(fixed, colours, strict=True):
        fill(canvas, pts, colour, cv2.LINE_8, _SHIFT)
