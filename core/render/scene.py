"""The room the demo's person walks in (a tiled floor, a painted wall) and the person's clothes.

The room is ray-cast once per camera: every pixel's ray meets the floor (z = 0, world z up) or the
wall (a vertical plane behind the walk), and gets that surface's pattern, so the floor's tiles
converge in perspective and meet the wall on a straight line as a real room would.
"""

from __future__ import annotations

import numpy as np

__all__ = ["backdrop", "clothes", "shadow"]

_SKIN = (224, 172, 140)
_HAIR = (58, 40, 30)
_SHIRT = (52, 104, 170)
_TROUSERS = (46, 50, 62)
_SHOES = (150, 40, 36)
# SMPL joints whose bone (the joint to its child) each colour covers; the rest is the shirt.
_PARTS = {_SKIN: (12, 15, 18, 19, 20, 21, 22, 23), _TROUSERS: (0, 1, 2, 4, 5), _SHOES: (7, 8, 10, 11)}


def clothes(rest_vertices: np.ndarray, rest_joints: np.ndarray, faces: np.ndarray,
            skin_weights: np.ndarray) -> np.ndarray:
    """Per-face albedo (F, 3) RGB from each face's dominant bone: skin on the head, forearms and hands
    (a T-shirt), a shirt, trousers, shoes, and hair on the top and back of the head."""
    bone = skin_weights[faces].sum(1).argmax(1)
    albedo = np.tile(np.array(_SHIRT, np.float64), (len(faces), 1))
    for colour, joints in _PARTS.items():
        albedo[np.isin(bone, joints)] = colour
    centre = rest_vertices[faces].mean(1) - rest_joints[15]
    hair = (bone == 15) & ((centre[:, 1] > 0.075) | ((centre[:, 2] < 0.0) & (centre[:, 1] > -0.04)))
    albedo[hair] = _HAIR
    return albedo


def _hash_noise(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """A repeatable pseudo-random value in [0, 1) per integer cell (tile-to-tile variation)."""
    n = (ix * 374761393 + iy * 668265263) & 0xFFFFFFFF
    n = ((n ^ (n >> 13)) * 1274126177) & 0xFFFFFFFF
    return (n & 0xFFFF) / 65536.0


def backdrop(width: int, height: int, focal: float, camera_to_world: np.ndarray, wall_y: float) -> np.ndarray:
    """The empty room seen by a fixed camera (``camera_to_world`` (4, 4), OpenCV axes, world z up):
    an (height, width, 3) RGB uint8 image of the floor and of a wall at world y = ``wall_y``."""
    rot, origin = camera_to_world[:3, :3], camera_to_world[:3, 3]
    u, v = np.meshgrid(np.arange(width) + 0.5 - width / 2, np.arange(height) + 0.5 - height / 2)
    rays = np.stack([u / focal, v / focal, np.ones_like(u)], -1) @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 2] < 0, -origin[2] / rays[..., 2], np.inf)
        t_wall = np.where(rays[..., 1] > 0, (wall_y - origin[1]) / rays[..., 1], np.inf)
    on_floor = t_floor < t_wall
    t = np.minimum(t_floor, t_wall)
    hit = origin + rays * np.where(np.isfinite(t), t, 1e3)[..., None]
    image = np.empty((height, width, 3))

    # Floor: 0.5 m tiles of slightly varying tone, darker grout, fading with distance.
    fx, fy = hit[..., 0] / 0.5, hit[..., 1] / 0.5
    tone = 0.9 + 0.2 * _hash_noise(np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64))
    grout = np.minimum(np.abs(fx - np.round(fx)), np.abs(fy - np.round(fy))) < 0.025
    fade = np.exp(-np.maximum(t - 3.0, 0.0) / 25.0)
    floor = np.array([168.0, 150.0, 128.0]) * (tone * np.where(grout, 0.72, 1.0) * (0.75 + 0.25 * fade))[..., None]

    # Wall: a warm paint brightening upwards, vertical panels, a dark skirting board at the bottom.
    z, x = hit[..., 2], hit[..., 0]
    wall = np.array([196.0, 190.0, 176.0]) * (0.82 + 0.1 * np.clip(z / 2.5, 0, 1))[..., None]
    seam = np.abs(x / 1.2 - np.round(x / 1.2)) < 0.008
    wall = wall * np.where(seam, 0.85, 1.0)[..., None]
    wall = np.where((z < 0.12)[..., None], np.array([92.0, 78.0, 66.0]), wall)
    image[:] = np.where(on_floor[..., None], floor, wall)
    return np.clip(image, 0, 255).astype(np.uint8)


def shadow(canvas: np.ndarray, ground_points_cam: np.ndarray, up_cam: np.ndarray, focal: float, scale: int) -> None:
    """Darken the floor under the person: soft blobs around camera-axes points on the floor (N, 3)
    (the feet, then the pelvis), foreshortened as seen along the floor's normal ``up_cam`` (3,),
    drawn into the ``scale``-times canvas; only the blobs' area is touched."""
    import cv2

    h, w = canvas.shape[:2]
    f = focal * scale
    centres = ground_points_cam[:, :2] * (f / ground_points_cam[:, 2:3]) + [w / 2, h / 2]
    radii = np.array([0.16, 0.16, 0.26])[: len(centres)] * f / ground_points_cam[:, 2]
    pad = int(radii.max() * 1.3) + 4
    x0, y0 = np.maximum(np.floor(centres.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(centres.max(0)).astype(int) + pad, [w, h])
    if x1 <= x0 or y1 <= y0 or np.any(ground_points_cam[:, 2] <= 0.1):
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    squash = np.abs(ground_points_cam @ up_cam) / np.linalg.norm(ground_points_cam, axis=1)
    for (cx, cy), r, k in zip(centres - [x0, y0], radii, squash, strict=True):
        cv2.ellipse(mask, (int(cx), int(cy)), (max(1, int(r)), max(1, int(k * r))), 0, 0, 360, 1.0, -1)
    k = max(3, int(0.02 * h) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    roi = canvas[y0:y1, x0:x1]
    roi[:] = (roi * (1.0 - 0.45 * np.clip(mask, 0, 1))[..., None]).astype(np.uint8)
