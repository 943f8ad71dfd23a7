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
