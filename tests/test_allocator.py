"""The allocator settings a run makes: fewer page faults for big arrays freed and made again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Rounds of three 20 MB arrays made, written and freed; prints whether the tuning took and the page
# faults of the measured rounds.
_CHILD = """
import resource, sys
import numpy as np
tuned = None
if sys.argv[1] == "tuned":
    from core.allocator import tune_allocator
    tuned = tune_allocator()
def rounds(n):
    for _ in range(n):
        blocks = [np.ones(20 << 18, np.float32) for _ in range(3)]
        del blocks
rounds(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(20)
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _child(mode: str, **env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], cwd=ROOT, env=environ, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the settings are glibc's (Linux)")
def test_tuned_allocator_reuses_pages_of_freed_big_arrays():
    tuned, tuned_faults = _child("tuned")
    _, plain_faults = _child("plain")
    assert tuned == "True"
    assert plain_faults > 1000, "glibc gave freed big arrays back and faulted them in again"
    assert tuned_faults * 10 < plain_faults, (tuned_faults, plain_faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the settings are glibc's (Linux)")
def test_a_users_own_malloc_settings_are_kept():
    tuned, _ = _child("tuned", MALLOC_TRIM_THRESHOLD_="200000000")
    assert tuned == "False"


def _mapping_of(address: int) -> str:
    """The name of the memory mapping holding ``address`` ("" for an anonymous map)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split()
        lo, hi = (int(x, 16) for x in span.split("-"))
        if lo <= address < hi:
            return rest[4] if len(rest) > 4 else ""
    raise AssertionError(f"{address:#x} is in no mapping")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_off_heap_arrays_are_zeroed_writable_and_outside_the_heap():
    import numpy as np

    from core.allocator import off_heap_array

    record = np.dtype([("box", "f8", (4,)), ("flag", "u1")])
    rows = off_heap_array(1000, record)
    assert rows.shape == (1000,) and rows.dtype == record
    assert not rows["box"].any() and not rows["flag"].any()
    rows[999]["box"] = (1, 2, 3, 4)  # a record is a view: writing it writes the array
    assert rows["box"][999].tolist() == [1, 2, 3, 4]
    small_on_heap = np.ones(64)  # glibc serves this from [heap]: the check below can tell the two apart
    assert _mapping_of(small_on_heap.ctypes.data) == "[heap]"
    assert _mapping_of(rows.ctypes.data) != "[heap]"
    assert len(off_heap_array(0, record)) == 1  # never an empty map (mmap refuses length 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_off_heap_tensors_on_cpu_and_plain_zeros_elsewhere():
    import torch

    from core.allocator import off_heap_zeros

    t = off_heap_zeros((56, 14, 14, 256), torch.bfloat16, torch.device("cpu"))
    assert t.shape == (56, 14, 14, 256) and t.dtype == torch.bfloat16 and t.is_contiguous()
    assert not t.any()
    t[55] = 1.5
    assert float(t[55].float().mean()) == 1.5 and float(t[:55].abs().sum()) == 0
    assert _mapping_of(t.data_ptr()) != "[heap]"
    small = off_heap_zeros((16, 64), torch.float32, torch.device("cpu"))
    assert _mapping_of(torch.zeros(16, 64).data_ptr()) == "[heap]"  # what torch.zeros would have done
    assert _mapping_of(small.data_ptr()) != "[heap]"
    meta = off_heap_zeros((3, 4), torch.float32, torch.device("meta"))
    assert meta.device.type == "meta" and meta.shape == (3, 4)
    assert off_heap_zeros((0, 4), torch.float32, torch.device("cpu")).shape == (0, 4)


# A bf16 linear layer and convolution over 300 batch shapes: the growth of the heap's in-use bytes
# from the 150th shape to the 300th, in MiB (capped caches stop growing once they are full).
_SHAPES_CHILD = """
import ctypes, sys
if sys.argv[1] == "bounded":
    from core.allocator import bound_primitive_caches
    assert bound_primitive_caches()
import torch
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
torch.set_num_threads(1)
lin, conv = torch.nn.Linear(1024, 1024), torch.nn.Conv2d(64, 64, 3, padding=1)
used = []
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
    for n in range(1, 301):
        lin(torch.randn(n, 1024))
        conv(torch.randn(1, 64, 4, n % 50 + 4))
        if n in (150, 300):
            used.append(libc.mallinfo2().uordblks)
print((used[1] - used[0]) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallinfo2 is glibc's (Linux)")
def test_bounded_primitive_caches_stop_growing_with_new_batch_shapes():
    def growth(mode: str) -> float:
        environ = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY",
                                                                    "LRU_CACHE_CAPACITY")}
        out = subprocess.run([sys.executable, "-c", _SHAPES_CHILD, mode], cwd=ROOT, env=environ,
                             capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    unbounded = growth("default")
    if unbounded < 20:
        pytest.skip(f"this CPU's bf16 kernels keep little per batch shape ({unbounded:.1f} MiB over 150 shapes)")
    assert growth("bounded") < 5 < unbounded


def test_a_users_own_cache_capacities_are_kept(monkeypatch):
    from core.allocator import PRIMITIVE_CACHE_CAPACITY, bound_primitive_caches

    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "7")
    monkeypatch.delenv("LRU_CACHE_CAPACITY", raising=False)
    assert bound_primitive_caches()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "7"
    assert os.environ["LRU_CACHE_CAPACITY"] == str(PRIMITIVE_CACHE_CAPACITY)
    assert not bound_primitive_caches()  # nothing left to set
