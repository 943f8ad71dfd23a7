"""Rotation and camera math shared by the network, inference and export. Pure tensor functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.camera import CROP_SIZE

__all__ = [
    "CROP_FOCAL",
    "CROP_SIZE",
    "crop_camera_translation",
    "project_to_crop",
    "rot6d_to_rotmat",
    "rotmat_to_axis_angle",
    "rotmat_to_rot6d",
]

#: Focal length (px) of the perspective camera the STAF regressors assume inside a crop.
CROP_FOCAL = 5000.0
# The release adds this to the scale before dividing; kept so projections match it bit for bit.
_SCALE_EPS = 1e-9


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D rotation (first two columns, stored row-major as 3x2) -> rotation matrix.

    x: (..., 6) -> (..., 3, 3) with columns [b1, b2, b1 x b2] from Gram-Schmidt.
    """
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def rotmat_to_rot6d(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> 6D (..., 6), the inverse of :func:`rot6d_to_rotmat` on rotations."""
    return r[..., :, :2].reshape(*r.shape[:-2], 6)


def rotmat_to_axis_angle(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3), stable near 0 and pi.

    Goes through a unit quaternion (largest-component branch), then ``2 * atan2(|v|, w)``.
    """
    shape = r.shape[:-2]
    m = r.reshape(-1, 3, 3).to(torch.float64)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    # Four candidate quaternions, each well conditioned when its own component is the largest.
    cand = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0],
                         m[:, 1, 0] - m[:, 0, 1]], -1),
            torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m00 - m11 - m22, m[:, 0, 1] + m[:, 1, 0],
                         m[:, 0, 2] + m[:, 2, 0]], -1),
            torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m00 + m11 - m22,
                         m[:, 1, 2] + m[:, 2, 1]], -1),
            torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                         1 - m00 - m11 + m22], -1),
        ],
        dim=1,
    )
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = diag.argmax(dim=-1)
    q = cand[torch.arange(m.shape[0]), best]
    q = F.normalize(q, dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)  # w >= 0: angle in [0, pi]
    v = q[:, 1:]
    sin_half = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[:, :1])
    # angle / sin(angle/2) -> 2 as the angle -> 0.
    scale = torch.where(sin_half > 1e-12, angle / sin_half.clamp_min(1e-12), torch.full_like(angle, 2.0))
    return (v * scale).to(r.dtype).reshape(*shape, 3)


def crop_camera_translation(cam: torch.Tensor) -> torch.Tensor:
    """Crop camera (s, tx, ty) (..., 3) -> the equivalent perspective translation (..., 3) in metres.

    With focal :data:`CROP_FOCAL` in a :data:`CROP_SIZE` crop, depth ``2 f / (224 s)`` makes the
    perspective projection equal the weak-perspective one at the body's centre.
    """
    s, tx, ty = cam.unbind(-1)
    tz = 2 * CROP_FOCAL / (CROP_SIZE * s + _SCALE_EPS)
    return torch.stack((tx, ty, tz), dim=-1)


def project_to_crop(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project body-frame points (B, N, 3) with crop cameras (B, 3) to crop coordinates in [-1, 1].

    Perspective projection with the principal point at the crop centre, divided by half the crop
    size, as the regressors were trained: (B, N, 2), x to the right, y down.
    """
    p = points + crop_camera_translation(cam).unsqueeze(1)
    return CROP_FOCAL * p[..., :2] / p[..., 2:3] / (CROP_SIZE / 2)
