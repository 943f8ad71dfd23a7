"""Metrics on hand-computed cases; PA-MPJPE against a float64 SVD reference for every batch size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.evaluation.metrics import (
    accel_error,
    accel_to_m_per_s2,
    accel_triplets_valid,
    mpjpe,
    pa_mpjpe,
    procrustes_align,
    pve,
)


def _reference_pa_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """One item at a time in float64, written from the closed form (Umeyama 1991), not from ours:
    covariance Sigma = Y0^T X0 / n, R = U diag(1, 1, d) V^T, s = n trace(D S) / |X0|^2."""
    out = []
    for x, y in zip(pred.astype(np.float64), target.astype(np.float64), strict=True):
        n = len(x)
        x0, y0 = x - x.mean(0), y - y.mean(0)
        sigma = y0.T @ x0 / n
        u, d, vt = np.linalg.svd(sigma)
        flip = np.eye(3)
        if np.linalg.det(u) * np.linalg.det(vt) < 0:
            flip[2, 2] = -1
        r = u @ flip @ vt
        s = n * np.trace(np.diag(d) @ flip) / (x0**2).sum()
        t = y.mean(0) - s * r @ x.mean(0)
        aligned = (s * (r @ x.T)).T + t
        out.append(np.linalg.norm(aligned - y, axis=1).mean())
    return np.array(out)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_mpjpe_by_hand() -> None:
    pred = torch.tensor([[[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]]])
    target = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
    assert mpjpe(pred, target).tolist() == [2.5]
    assert pve(pred, target).tolist() == [2.5]


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
@pytest.mark.parametrize("points", [3, 14])
def test_pa_mpjpe_matches_float64_svd_reference(batch: int, points: int) -> None:
    rng = np.random.default_rng(batch * 100 + points)
    target = rng.normal(size=(batch, points, 3))
    pred = target + 0.3 * rng.normal(size=target.shape)  # noisy, then moved, turned and scaled
    for i in range(batch):
        pred[i] = 1.7 * pred[i] @ _random_rotation(rng).T + rng.normal(size=3)
    expected = _reference_pa_mpjpe(pred, target)
    got = pa_mpjpe(torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-6)
    # and each item alone gives the same as inside the batch
    alone = [pa_mpjpe(torch.tensor(pred[i:i + 1]), torch.tensor(target[i:i + 1])).item() for i in range(batch)]
    np.testing.assert_allclose(alone, expected, rtol=1e-9)


@pytest.mark.parametrize("batch", [2, 3])
def test_similar_copies_align_exactly_for_batches_of_two_and_three(batch: int) -> None:
    rng = np.random.default_rng(batch)
    target = rng.normal(size=(batch, 3, 3))  # 3 points of 3 coordinates: every axis could be "the" 3
    pred = np.stack([0.5 * t @ _random_rotation(rng).T + 2.0 for t in target])
    aligned = procrustes_align(torch.tensor(pred), torch.tensor(target))
    np.testing.assert_allclose(aligned.numpy(), target, atol=1e-9)


def test_a_mirror_image_is_not_aligned_by_a_reflection() -> None:
    rng = np.random.default_rng(1)
    target = rng.normal(size=(1, 14, 3))
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    expected = _reference_pa_mpjpe(mirrored, target)
    assert expected[0] > 0.1
    got = pa_mpjpe(torch.tensor(mirrored), torch.tensor(target))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def test_point_sets_must_be_batched_and_equal_in_shape() -> None:
    with pytest.raises(ValueError):
        pa_mpjpe(torch.zeros(14, 3), torch.zeros(14, 3))
    with pytest.raises(ValueError):
        mpjpe(torch.zeros(2, 14, 3), torch.zeros(2, 13, 3))


def test_accel_error_by_hand() -> None:
    frames, joints = 10, 14
    t = torch.arange(frames, dtype=torch.float64)[:, None, None]
    target = torch.cat((t * 0.01, t**0, -t * 0.02), -1).expand(frames, joints, 3).clone()  # constant velocity
    still = accel_error(target + 5.0, target)  # a constant offset does not accelerate
    assert torch.allclose(still, torch.zeros_like(still))
    pred = target.clone()
    pred[4, 7] += torch.tensor([0.0, 0.0, 14.0])  # one joint jumps 14 units at frame 4
    err = accel_error(pred, target)
    expected = torch.zeros(frames - 2, dtype=torch.float64)
    # middles 3, 4, 5 see |d|, 2|d|, |d| on one of 14 joints
    expected[[2, 3, 4]] = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    assert torch.allclose(err, expected)
    assert math.isclose(err.mean().item(), 4.0 / (frames - 2))


def test_accel_validity_drops_every_triplet_touching_an_invalid_frame() -> None:
    valid = torch.tensor([1, 1, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    assert accel_triplets_valid(valid).tolist() == [True, True, False, False, False, True]
    assert accel_error(torch.zeros(2, 14, 3), torch.zeros(2, 14, 3)).numel() == 0


def test_accel_unit_conversion() -> None:
    assert math.isclose(accel_to_m_per_s2(1.0, 30), 0.9)
    assert math.isclose(accel_to_m_per_s2(8.2, 25), 8.2 * 625 / 1000)
