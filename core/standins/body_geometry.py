"""Small geometry helpers for building the stand-in body: unit vectors, smoothstep, angle wrapping,
arc-length chains through joints, and super-ellipse outlines."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "Chain",
    "param_for_angle",
    "smoothstep",
    "superellipse",
    "unit",
    "wrap",
]


# ============================================================================================
# Small geometry helpers


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def wrap(angle: np.ndarray | float) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2.0 * math.pi) - math.pi


class Chain:
    """A polyline through joint positions, parametrised by arc length s."""

    def __init__(self, points: Sequence[np.ndarray]) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        seg = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        self.s = np.concatenate([[0.0], np.cumsum(seg)])

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def at(self, s: float) -> np.ndarray:
        return np.array([np.interp(s, self.s, self.points[:, k]) for k in range(3)])

    def tangent(self, s: float, window: float = 0.04) -> np.ndarray:
        lo, hi = max(0.0, s - window), min(self.length, s + window)
        return unit(self.at(hi) - self.at(lo))

    def s_at_y(self, y: float) -> float:
        """Arc length where the chain reaches height y (the chain must be monotone in y)."""
        ys = self.points[:, 1]
        order = np.argsort(ys)
        return float(np.interp(y, ys[order], self.s[order]))


def superellipse(t: np.ndarray, a: float, b: float, p: float) -> np.ndarray:
    """Points (m, 2) of |x/a|^p + |y/b|^p = 1 at parameters t."""
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / p
    return np.stack([a * np.sign(c) * np.abs(c) ** e, b * np.sign(s) * np.abs(s) ** e], axis=1)


def param_for_angle(theta: float, a: float, b: float) -> float:
    """Ellipse parameter whose point lies at polar angle theta (start rings where the loop starts)."""
    return math.atan2(a * math.sin(theta), b * math.cos(theta))
