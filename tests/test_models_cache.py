"""Models load once per process for the same asset folder (batch workers run many clips)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.model.load import load_models_cached


def test_same_folder_same_models_and_a_changed_file_reloads(standin_assets: Path, tmp_path: Path):
    folder = tmp_path / "assets"
    shutil.copytree(standin_assets, folder)
    first = load_models_cached(folder, device="cpu")
    assert load_models_cached(folder, device="cpu") is first
    staf = next(folder.glob("*.pth.tar"))
    st = staf.stat()
    os.utime(staf, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_models_cached(folder, device="cpu")
    assert again is not first
    assert load_models_cached(folder, device="cpu") is again
