"""Shared fixtures: a stand-in asset folder in the real formats, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def standin_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete asset folder of seeded stand-ins (SMPL look-alike, random STAF/backbone weights)."""
    from core.standins import make_asset_folder

    return make_asset_folder(tmp_path_factory.mktemp("assets"), seed=0)


@pytest.fixture(scope="session")
def models(standin_assets: Path):
    """Backbone, STAF and body model loaded from the stand-in folder through the real loaders."""
    from core.model.load import load_models

    return load_models(standin_assets, device="cpu")
