import math

import torch

from core.model.geometry import (
    crop_camera_translation,
    project_to_crop,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    rotmat_to_rot6d,
)


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """Float64 reference: axis-angle (N, 3) -> rotation matrices (N, 3, 3)."""
    aa = aa.double()
    angle = aa.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    k = aa / angle
    kx = torch.zeros(aa.shape[0], 3, 3, dtype=torch.float64)
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    kx = kx - kx.transpose(1, 2)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return torch.eye(3, dtype=torch.float64) + s * kx + (1 - c) * kx @ kx


def test_axis_angle_round_trip_including_zero_and_pi():
    g = torch.Generator().manual_seed(0)
    axes = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=-1)
    angles = torch.cat([torch.rand(194, generator=g, dtype=torch.float64) * math.pi,
                        torch.tensor([0.0, 1e-8, 1e-4, math.pi - 1e-6, math.pi - 1e-3, 3.0], dtype=torch.float64)])
    aa = axes * angles[:, None]
    back = rotmat_to_axis_angle(rodrigues(aa))
    assert torch.allclose(rodrigues(back), rodrigues(aa), atol=1e-9)
    small = angles < math.pi - 1e-2
    assert torch.allclose(back[small], aa[small], atol=1e-9)


def test_rot6d_gives_rotations_and_round_trips():
    x = torch.randn(50, 6)
    r = rot6d_to_rotmat(x)
    eye = torch.eye(3).expand(50, 3, 3)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(50), atol=1e-5)
    assert torch.allclose(rot6d_to_rotmat(rotmat_to_rot6d(r)), r, atol=1e-5)
    # The 6D layout is the 3x2 matrix of the first two columns, row-major.
    assert torch.allclose(rot6d_to_rotmat(torch.tensor([1.0, 0, 0, 1, 0, 0])), torch.eye(3))


def test_projection_is_weak_perspective_at_the_body_centre():
    cam = torch.tensor([[0.8, 0.1, -0.2]])
    # A point at the origin lands at (s * tx, s * ty) in [-1, 1] crop units.
    p = project_to_crop(torch.zeros(1, 1, 3), cam)
    assert torch.allclose(p[0, 0], torch.tensor([0.8 * 0.1, 0.8 * -0.2]), atol=1e-6)
    # A point 0.5 m to the side moves by s * 0.5 (perspective equals weak perspective at depth 0).
    q = project_to_crop(torch.tensor([[[0.5, 0.0, 0.0]]]), cam)
    assert torch.allclose(q[0, 0, 0] - p[0, 0, 0], torch.tensor(0.4), atol=1e-6)
    assert torch.allclose(crop_camera_translation(cam)[0, 2], torch.tensor(2 * 5000 / (224 * 0.8)), rtol=1e-6)
