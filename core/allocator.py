"""Memory settings of a run: glibc's allocator, long-lived arrays kept off its heap, capped kernel caches.

**Big, short-lived arrays.** By default glibc serves a large block (video frames, backbone
activations of 10-50 MB) by mmap and gives it back on free, so the next batch's block of the same
size faults every page in afresh, and the heap is trimmed back to the OS whenever its free top
passes 128 KB. A run allocates and frees such blocks for every batch: on the 2-core test machine
that was 2-3 s of kernel time in an 18 s run (580,000 page faults). Serving blocks up to 32 MB from
the heap and keeping up to 1 GB of it freed for reuse took that to 0.9 s (250,000 faults) and the
run ~7 % faster; up to 1 GB of freed heap then stays with the process.

**What grew with the clip's length** was not these settings (the peak grew alike without them,
with a 256 MB trim threshold, or with ``malloc_trim`` every 256 frames). mallinfo2 showed two
causes: blocks that live long among the batches' big ones (a run's results, a segment's frame
ring) pinned the heap, so its free space grew with it; they now live in their own maps
(:func:`off_heap_array`, :func:`off_heap_zeros`). And at bf16 the primitive caches of oneDNN and
ideep kept ~27 MB for every new batch shape; they are capped (:func:`bound_primitive_caches`).

Process-wide: the allocator is set once by a run, in the main process and in the decoding worker.
A user who sets ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` or ``LRU_CACHE_CAPACITY`` keeps their own values.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["MMAP_THRESHOLD", "PRIMITIVE_CACHE_CAPACITY", "TRIM_THRESHOLD", "bound_primitive_caches", "off_heap_array",
           "off_heap_zeros", "tune_allocator"]

MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_done: bool | None = None

#: Entries kept by oneDNN's primitive cache and by ideep's (PyTorch's CPU convolutions and bf16
#: matrix products). Both default to 1024, and at bf16 the primitives of one new batch shape held
#: 15-30 MB in all: partial batches (each track's end) bring new shapes, so the main process grew
#: by ~27 MB with each. 128 holds a run's steady shapes: runner.mp4 took 17.6-20.1 s against
#: 19.8 s uncapped at bf16, and 23.6-25.1 s against 22.6-26.2 s at fp32 (the 2-core machine's noise).
PRIMITIVE_CACHE_CAPACITY = 128
_CACHE_SETTINGS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds (once per process); False where the C library is not
    glibc, or the user's environment already sets them."""
    global _done
    if _done is None:
        _done = _apply()
    return _done


def _apply() -> bool:
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (musl has no such mallopt settings)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Setting the mmap threshold first also stops glibc from moving it on its own.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def bound_primitive_caches() -> bool:
    """Cap oneDNN's and ideep's primitive caches at ``PRIMITIVE_CACHE_CAPACITY`` entries (a value the
    user's environment sets is kept); True if anything was set. They read the setting when they are
    first used, so this counts only before the process's first convolution or bf16 product."""
    unset = [name for name in _CACHE_SETTINGS if name not in os.environ]
    for name in unset:
        os.environ[name] = str(PRIMITIVE_CACHE_CAPACITY)
    return bool(unset)


def off_heap_array(count: int, dtype: np.dtype) -> np.ndarray:
    """``count`` zeroed items of ``dtype`` in their own anonymous memory map, outside glibc's heap.

    For arrays that live long among short-lived big ones (a run's results, a person's frame cache):
    inside the heap, such a block pins it, the freed space around it is cut into pieces too small
    for the next big block, and the heap grows with the clip's length. A map's pages are committed
    only when written, so a map sized for a whole clip costs only the frames written."""
    dtype = np.dtype(dtype)
    count = max(int(count), 1)
    return np.frombuffer(mmap.mmap(-1, count * dtype.itemsize), dtype, count=count)


def off_heap_zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A zeroed tensor as :func:`off_heap_array` places it, on CPU; elsewhere ``torch.zeros``."""
    import torch

    count = math.prod(shape)
    if device.type != "cpu" or count == 0:
        return torch.zeros(shape, dtype=dtype, device=device)
    size = torch.empty((), dtype=dtype).element_size()
    return torch.frombuffer(mmap.mmap(-1, count * size), dtype=dtype, count=count).view(shape)
