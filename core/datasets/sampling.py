"""Training windows inside sequences and the mixed 2D/3D batch sampler of the release."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.datasets.db import Db

__all__ = ["MixedSampler", "Pick", "sequence_windows"]


def sequence_windows(db: Db, length: int, stride: int = 1) -> np.ndarray:
    """First rows (W,) of every window of ``length`` consecutive rows lying inside one sequence,
    ``stride`` rows apart (length 1: every row)."""
    if length < 1 or stride < 1:
        raise ValueError("window length and stride must be positive")
    starts = [np.arange(s.start, s.stop - length + 1, stride) for s in db.sequences if len(s) >= length]
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Pick:
    """One sampled window: source number and its first row."""

    source: int
    start: int


class MixedSampler:
    """Draws batches with a fixed share from 2D-only sources, the rest from 3D sources.

    Within each group every window is equally likely (the sources' windows are pooled, as the
    release concatenates its datasets); draws are with replacement. ``ratio_2d`` applies only when
    both groups have windows; otherwise the batch comes from whichever group has.

    Args:
        windows: per source, its window starts (from :func:`sequence_windows`).
        is_2d: per source, whether it only has 2D labels.
        batch_size: windows per batch.
        ratio_2d: share of each batch from 2D-only sources (0.6 in the release).
    """

    def __init__(self, windows: list[np.ndarray], is_2d: list[bool], *, batch_size: int, ratio_2d: float) -> None:
        if len(windows) != len(is_2d):
            raise ValueError("one is_2d flag per source")
        if not 0.0 <= ratio_2d <= 1.0:
            raise ValueError("ratio_2d must be in [0, 1]")
        self.batch_size = batch_size
        pools: dict[bool, list[tuple[int, np.ndarray]]] = {True: [], False: []}
        for source, (starts, flag) in enumerate(zip(windows, is_2d, strict=True)):
            if len(starts):
                pools[flag].append((source, starts))
        self._pools = {flag: self._flatten(items) for flag, items in pools.items()}
        n2d, n3d = (len(self._pools[True][0]), len(self._pools[False][0]))
        if n2d + n3d == 0:
            raise ValueError("no training windows: every sequence is shorter than the window")
        self.n_2d = batch_size if n3d == 0 else 0 if n2d == 0 else round(ratio_2d * batch_size)

    @staticmethod
    def _flatten(items: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not items:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        sources = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, s in items])
        return sources, np.concatenate([s for _, s in items])

    def draw(self, rng: np.random.Generator) -> list[Pick]:
        """One batch: ``n_2d`` picks from 2D sources, then the rest from 3D sources."""
        picks = []
        for flag, count in ((True, self.n_2d), (False, self.batch_size - self.n_2d)):
            sources, starts = self._pools[flag]
            if count:
                chosen = rng.integers(len(starts), size=count)
                picks += [Pick(int(sources[i]), int(starts[i])) for i in chosen]
        return picks
