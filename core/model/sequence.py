"""Whole-clip STAF inference: one 9-frame window centred on every frame, sharing per-frame work.

Edge frames get windows padded by repeating the nearest real frame (frame 0 before the start, the
last frame after the end), so every window is made of real, nearby frames. (The release instead
gives its first and last four frames a window of their own feature repeated, and its tail windows
pick up wrong frames; neither is reproduced.)

In the plain per-window evaluation most work is repeated: a frame appears in nine windows, and
outside the middle position its decoder maps and stage-0 grid features are the same in each. The
runner computes those once per frame. The middle frame's input is the window mean (APM); since the
first transposed convolution is linear, its output for the mean equals the mean of the per-frame
outputs already cached, so only the BN/ReLU and the later blocks run per window. Likewise stage-1
sampling is linear in the map, so each frame's second map is multiplied once by the parts of the
point MLP that read the sampled channels (197 instead of 256 channels, sampled per window). TCFM
onwards depends on the whole window and runs per window, batched; stage 2 decodes only the pixels it
samples (:mod:`core.model.sparse_decode`). Frames are streamed: only the frames the next batch of
windows needs are kept, so memory does not grow with clip length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from core.allocator import off_heap_zeros
from core.model.staf import SEQ_LEN, TARGET, Body, Staf, StafOutput

__all__ = ["FrameResults", "SegmentStream", "SequenceRunner", "run_per_window", "window_indices"]

HALF = SEQ_LEN // 2


def window_indices(targets: torch.Tensor, n_frames: int | None) -> torch.Tensor:
    """Frame indices (len(targets), 9) of the windows centred on ``targets``, clamped to the clip.

    ``n_frames=None`` means the end of the clip is not known yet (only the start is clamped).
    """
    idx = targets.unsqueeze(1) + torch.arange(-HALF, HALF + 1, device=targets.device)
    return idx.clamp(0, None if n_frames is None else n_frames - 1)


@dataclass(frozen=True)
class FrameResults:
    """STAF results for consecutive frames ``start .. start + len - 1``.

    rotmat (N, 24, 3, 3), betas (N, 10), cam (N, 3) crop cameras, joints (N, 24, 3) and, when
    kept, vertices (N, 6890, 3) (else None).
    """

    start: int
    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    joints: torch.Tensor
    vertices: torch.Tensor | None

    def __len__(self) -> int:
        return self.rotmat.shape[0]

    @staticmethod
    def from_output(start: int, out: StafOutput, keep_vertices: bool) -> FrameResults:
        return FrameResults(start, out.rotmat, out.betas, out.cam, out.joints,
                            out.vertices if keep_vertices else None)

    @staticmethod
    def concat(parts: list[FrameResults]) -> FrameResults:
        """Join consecutive parts into one."""
        if not parts:
            raise ValueError("nothing to concatenate")
        verts = None if parts[0].vertices is None else torch.cat([p.vertices for p in parts])
        return FrameResults(parts[0].start, torch.cat([p.rotmat for p in parts]),
                            torch.cat([p.betas for p in parts]), torch.cat([p.cam for p in parts]),
                            torch.cat([p.joints for p in parts]), verts)


class _FrameCache:
    """Per-frame results for a contiguous range [lo, hi) of frames, in fixed ring buffers.

    Frame f lives in slot ``f % capacity``. The buffers are allocated once, at the first frames, so
    their memory is fixed by the batch sizes and no batch copies the whole cache (regrowing it by
    concatenation did). On CPU they live in their own memory maps: a segment's buffers outlive many
    batches, and inside glibc's heap they pinned it between the batches' big blocks.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lo = self.hi = 0
        self.pre14: torch.Tensor | None = None  # first deconvolution, before BN: (C, 256, 14, 14) channels-last
        self.grid: torch.Tensor | None = None  # stage-0 grid features (C, 2205)
        self.pre28: torch.Tensor | None = None  # second decoder map, premultiplied: (C, 28, 28, 197)

    def slots(self, frames: torch.Tensor) -> torch.Tensor:
        """Buffer rows of (cached) frame numbers."""
        return frames % self.capacity

    def append(self, pre14: torch.Tensor, grid: torch.Tensor, pre28: torch.Tensor) -> None:
        n = pre14.shape[0]
        if self.hi + n - self.lo > self.capacity:
            raise RuntimeError(f"frame cache over capacity ({self.hi + n - self.lo} > {self.capacity})")
        if self.pre14 is None:
            _, c, h, w = pre14.shape
            self.pre14 = off_heap_zeros((self.capacity, h, w, c), pre14.dtype, pre14.device).permute(0, 3, 1, 2)
            self.grid = off_heap_zeros((self.capacity, *grid.shape[1:]), grid.dtype, grid.device)
            self.pre28 = off_heap_zeros((self.capacity, *pre28.shape[1:]), pre28.dtype, pre28.device)
        rows = self.slots(torch.arange(self.hi, self.hi + n, device=pre14.device))
        self.pre14[rows], self.grid[rows], self.pre28[rows] = pre14, grid, pre28
        self.hi += n

    def drop_before(self, frame: int) -> None:
        """Forget frames before ``frame``."""
        self.lo = max(self.lo, min(frame, self.hi))


class SequenceRunner:
    """Runs STAF over a whole clip's backbone features, one window per frame.

    Args:
        net: the STAF network (put in eval mode by the runner).
        body: the body model the network uses.
        windows_per_batch: windows evaluated together (16 in the release's demo).
        frames_per_batch: frames whose shared work is computed together.
        keep_vertices: return per-frame vertices (6890 x 3 floats a frame).
    """

    def __init__(self, net: Staf, body: Body, *, windows_per_batch: int = 16, frames_per_batch: int = 32,
                 keep_vertices: bool = True) -> None:
        if windows_per_batch < 1 or frames_per_batch < 1:
            raise ValueError("batch sizes must be positive")
        self.net = net.eval()
        self.body = body
        self.windows_per_batch = windows_per_batch
        self.frames_per_batch = frames_per_batch
        self.keep_vertices = keep_vertices

    def run(self, features: torch.Tensor) -> FrameResults:
        """All frames' features (N, 2048, 7, 7) -> results for all N frames."""
        if features.ndim != 4 or features.shape[0] == 0:
            raise ValueError(f"expected features (N>0, 2048, 7, 7), got {tuple(features.shape)}")
        chunks = features.split(self.frames_per_batch)
        return FrameResults.concat(list(self.stream(chunks)))

    @torch.inference_mode()
    def stream(self, chunks: Iterable[torch.Tensor]) -> Iterator[FrameResults]:
        """Consumes feature chunks (n_i, 2048, 7, 7) in clip order; yields results in frame order
        as soon as each batch of windows has all its frames."""
        segment = self.segment()
        for chunk in chunks:
            yield from segment.feed(chunk)
        yield from segment.finish()

    def segment(self) -> SegmentStream:
        """A push-style stream over one contiguous run of frames (call under inference mode):
        several people's runs can then be fed side by side from one decoding pass."""
        return SegmentStream(self)

    def _add_frames(self, cache: _FrameCache, features: torch.Tensor) -> None:
        net = self.net
        pre14 = net.deconv(0, features)
        map14 = net.activate(0, pre14)
        # Float32 rows (F, 28, 28, 197): nine windows sample each frame's map.
        pre28 = net.maf_extractor[1].premultiply(net.decode(1, map14))
        cache.append(pre14, net.grid_features(map14), pre28)

    def _windows(self, cache: _FrameCache, first: int, count: int, n_frames: int | None) -> FrameResults:
        net = self.net
        targets = torch.arange(first, first + count, device=cache.pre14.device)
        local = cache.slots(window_indices(targets, n_frames))
        # The target frame: APM mean, pushed through the decoder per window. The mean is one matrix
        # product of per-window frame counts (exact in any float type) with the cached frames; slots
        # outside a window (zeros, or frames already seen) count zero.
        counts = torch.zeros(count, cache.capacity, device=local.device)
        counts.scatter_add_(1, local, torch.ones(local.shape, device=local.device))
        n, c, h, w = cache.pre14.shape
        rows14 = cache.pre14.permute(0, 2, 3, 1).reshape(n, -1)  # a view: the buffer is channels-last
        mean14 = (counts.to(rows14.dtype) @ rows14) / SEQ_LEN
        map14 = net.activate(0, mean14.reshape(count, h, w, c).permute(0, 3, 1, 2))
        map28_t = net.decode(1, map14)
        grid = cache.grid[local]
        grid[:, TARGET] = net.grid_features(map14)
        est0, points0 = net.stage0(self.body, grid)
        extractor = net.maf_extractor[1]
        points0 = points0.reshape(count, SEQ_LEN, *points0.shape[1:])
        cam0 = est0.cam.reshape(count, SEQ_LEN, -1)
        # The other eight frames read their cached maps; the target reads the window's own.
        others = [i for i in range(SEQ_LEN) if i != TARGET]
        mesh_others = extractor.finish_premultiplied(extractor.sample_premultiplied(
            cache.pre28, local[:, others].flatten(), points0[:, others].flatten(0, 1),
            cam0[:, others].flatten(0, 1))).reshape(count, len(others), -1)
        mesh_target = extractor.finish_premultiplied(extractor.sample_premultiplied(
            extractor.premultiply(map28_t), torch.arange(count, device=local.device), points0[:, TARGET],
            cam0[:, TARGET]))
        mesh1 = torch.cat((mesh_others[:, :TARGET], mesh_target[:, None], mesh_others[:, TARGET:]), 1)
        out = net.stages12(self.body, mesh1, est0.select(slice(TARGET, None, SEQ_LEN)), map28_t)
        return FrameResults.from_output(first, out, self.keep_vertices)


class SegmentStream:
    """Frames of one contiguous run go in (:meth:`feed`), results come out in frame order as soon as
    a batch of windows has all its frames; :meth:`finish` returns the rest once the run has ended."""

    def __init__(self, runner: SequenceRunner) -> None:
        self._runner = runner
        # Enough for the windows still waiting (fewer than a batch, with their 2 x HALF neighbours)
        # and one more part of frames: feed() runs windows after every part.
        self._cache = _FrameCache(runner.windows_per_batch + 2 * HALF + runner.frames_per_batch)
        self._next = 0

    def feed(self, chunk: torch.Tensor) -> list[FrameResults]:
        """Add the next frames' features (n, 2048, 7, 7); returns the results that became complete."""
        runner, cache, out = self._runner, self._cache, []
        for part in chunk.split(runner.frames_per_batch):
            runner._add_frames(cache, part)
            # Windows whose last frame has arrived need no clamping at the end.
            while cache.hi - HALF - self._next >= runner.windows_per_batch:
                out.append(runner._windows(cache, self._next, runner.windows_per_batch, None))
                self._next += runner.windows_per_batch
                cache.drop_before(self._next - HALF)
        return out

    def finish(self) -> list[FrameResults]:
        """The results of the frames still waiting (the run's last windows, clamped at its end)."""
        runner, cache, out = self._runner, self._cache, []
        n_frames = cache.hi
        while self._next < n_frames:
            count = min(runner.windows_per_batch, n_frames - self._next)
            out.append(runner._windows(cache, self._next, count, n_frames))
            self._next += count
            cache.drop_before(self._next - HALF)
        return out


@torch.inference_mode()
def run_per_window(net: Staf, body: Body, features: torch.Tensor, *, windows_per_batch: int = 16) -> FrameResults:
    """Reference evaluation: builds every padded window explicitly and calls ``net`` on it.

    Same results as :class:`SequenceRunner` (to float rounding) at several times the cost; used by
    tests and the benchmark.
    """
    net.eval()
    n = features.shape[0]
    parts = []
    for first in range(0, n, windows_per_batch):
        targets = torch.arange(first, min(n, first + windows_per_batch), device=features.device)
        out = net(features[window_indices(targets, n)], body)
        parts.append(FrameResults.from_output(first, out, True))
    return FrameResults.concat(parts)
