"""Read an exported FBX with ufbx, an FBX reader independent of Blender (tests/blender/fbx_tree.py).

The reader runs in a subprocess (a reader crash fails one test, not the session), with this
interpreter where it has ufbx (the Makefile installs it into each Blender venv), else the main
venv's (its ``dev`` extra has it too).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TREE = ROOT / "tests" / "blender" / "fbx_tree.py"


@functools.cache
def ufbx_python() -> str | None:
    """An interpreter that can import ufbx: this one, else the main venv's, else None."""
    for python in (Path(sys.executable), ROOT / ".venv" / "bin" / "python"):
        if python.is_file() and subprocess.run([str(python), "-c", "import ufbx"], capture_output=True,
                                               timeout=60).returncode == 0:
            return str(python)
    return None


def fbx_tree(path: Path, bones: Sequence[str] = (), times: Sequence[float] = ()) -> dict:
    """ufbx's view of ``path`` (fbx_tree.describe), with the world positions (m, Z up) of ``bones``
    at ``times`` (s) when given. Fails the test where no interpreter has ufbx."""
    python = ufbx_python()
    if python is None:
        pytest.fail("no interpreter here can import ufbx: pip install ufbx==0.0.5 (make blender-venvs does)")
    args = [python, str(TREE), str(path)]
    if bones and times:
        args += ["--bones", ",".join(bones), "--times", ",".join(repr(float(t)) for t in times)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
