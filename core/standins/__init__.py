"""Seeded, deterministic stand-ins for the licensed asset files, written in the real formats.

``make_asset_folder`` fills a folder exactly as a user's asset folder would look, so every loader
is exercised for real. Stand-ins are for tests and the out-of-the-box demo only: their network
weights are random and their body is a hand-built look-alike of SMPL, not SMPL.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STANDIN_MARKER", "check_standin_folder", "make_asset_folder"]

#: A file in a stand-in folder that says so (the doctor and the demo report it).
STANDIN_MARKER = "STANDINS.txt"


def check_standin_folder(folder: Path) -> None:
    """Raise OutputError unless stand-ins may be written into ``folder``: it does not exist, is
    empty, or is a stand-in folder already (it holds :data:`STANDIN_MARKER`). Anything else may be
    the user's real downloads, which stand-ins would silently replace."""
    from core.errors import OutputError

    folder = Path(folder)
    try:
        if not folder.exists():
            return
        if not folder.is_dir():
            raise OutputError(f"{folder} is a file, not a folder: give a new or empty folder for the stand-ins")
        if (folder / STANDIN_MARKER).is_file():
            return
        names = sorted(entry.name for entry in folder.iterdir())
    except OSError as err:
        raise OutputError(f"cannot use {folder} for stand-ins: {err.strerror or err}") from None
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise OutputError(f"{folder} already holds files ({shown}) and is not a stand-in folder (no "
                          f"{STANDIN_MARKER}): stand-ins would replace them; give a new or empty folder")


def make_asset_folder(folder: Path, seed: int = 0) -> Path:
    """Write every asset file (SMPL, regressors, mean parameters, downsampling, both weight files)
    into ``folder``; reuses a complete stand-in folder written earlier with the same seed. Refuses
    (OutputError, nothing written) a folder that holds anything but stand-ins."""
    check_standin_folder(Path(folder))
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
    if marker.is_file() and marker.read_text(errors="replace") == stamp:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("stand-in assets, being written (incomplete)\n")  # first: a rerun after a stop may go on
    write_smpl_assets(folder, seed=seed)
    mean = load_mean_params(folder / "smpl_mean_params.npz")
    dmap = load_downsampling(folder / "mesh_downsampling.npz")
    staf = make_staf(seed, mean_pose=mean.pose, mean_shape=mean.shape, mean_cam=mean.cam, dmap=dmap)
    write_staf_checkpoint(folder / "3dpw_model_best.pth.tar", staf)
    write_backbone_checkpoint(folder / "base_model.pt", make_backbone(seed))
    marker.write_text(stamp)
    return folder
