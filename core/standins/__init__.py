"""Seeded, deterministic stand-ins for the licensed asset files, written in the real formats.

``make_asset_folder`` fills a folder exactly as a user's asset folder would look, so every loader
is exercised for real. Stand-ins are for tests and the out-of-the-box demo only: their network
weights are random and their body is a hand-built look-alike of SMPL, not SMPL.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STANDIN_MARKER", "make_asset_folder"]

#: A file in a stand-in folder that says so (the doctor and the demo report it).
STANDIN_MARKER = "STANDINS.txt"


def make_asset_folder(folder: Path, seed: int = 0) -> Path:
    """Write every asset file (SMPL, regressors, mean parameters, downsampling, both weight files)
    into ``folder``; reuses a complete stand-in folder written earlier with the same seed."""
    from core.smpl import load_downsampling, load_mean_params
    from core.standins.smpl_files import write_smpl_assets
    from core.standins.weights import (
        make_backbone,
        make_staf,
        write_backbone_checkpoint,
        write_staf_checkpoint,
    )

    folder = Path(folder)
    marker = folder / STANDIN_MARKER
    stamp = f"stand-in assets, seed {seed}: random weights and a look-alike body, for tests and demos only\n"
    if marker.is_file() and marker.read_text() == stamp:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_smpl_assets(folder, seed=seed)
    mean = load_mean_params(folder / "smpl_mean_params.npz")
    dmap = load_downsampling(folder / "mesh_downsampling.npz")
    staf = make_staf(seed, mean_pose=mean.pose, mean_shape=mean.shape, mean_cam=mean.cam, dmap=dmap)
    write_staf_checkpoint(folder / "3dpw_model_best.pth.tar", staf)
    write_backbone_checkpoint(folder / "base_model.pt", make_backbone(seed))
    marker.write_text(stamp)
    return folder
