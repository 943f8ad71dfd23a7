"""The out-of-the-box main job: reconstruct a sample clip made from a real photo of a person.

Uses the real assets when the asset folder is complete, else seeded stand-ins (and says so).
"""

from __future__ import annotations

from pathlib import Path

from core.assets import resolve_assets_dir
from core.doctor import run_doctor
from core.model.load import resolve_device
from core.reconstruct import ReconstructOptions, reconstruct
from core.sample_clip import write_sample_clip

__all__ = ["run_demo"]


def run_demo(*, assets: str | None, standins: Path, device: str, out: Path, seconds: float = 4.0) -> int:
    """Report on the assets, pick real ones or stand-ins, reconstruct the sample clip into ``out``."""
    resolve_device(device)  # a bad --device fails before anything is written
    folder = resolve_assets_dir(assets)
    print("== assets")
    if run_doctor(folder) == 0:
        kind = "REAL"
        print(f"\nUsing the REAL assets in {folder}.")
    else:
        from core.standins import make_asset_folder

        kind = "STAND-IN"
        folder = make_asset_folder(standins)
        print(f"\nReal assets incomplete: using STAND-INS from {folder} (random weights and a look-alike body: "
              "the run shows the pipeline works, the motion is not real).")
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "sample_clip.mp4"
    write_sample_clip(clip, seconds=seconds)
    print(f"\n== reconstructing {clip} (a photo of Grace Hopper, panned and zoomed)")
    motion_path, preview = out / "sample_motion.npz", out / "sample_preview.png"
    motion = reconstruct(clip, motion_path, ReconstructOptions(
        assets=str(folder), device=device, overwrite=True, progress="auto", preview=str(preview)))
    person = motion.people[0]
    print(f"\nwrote {motion_path}: {len(person)} of {len(motion.frame_index)} frames with the person, "
          f"{motion.fps:.2f} fps, {kind} assets")
    print(f"wrote {preview}: the recovered mesh over 12 frames of the clip")
    return 0
