"""The out-of-the-box main job: reconstruct a sample clip of a person walking and waving (rendered).

Uses STAF when its weights are installed, else the landmark solver (and says which ran).
"""

from __future__ import annotations

from pathlib import Path

from core.assets import resolve_assets_dir
from core.doctor import run_doctor
from core.model.load import resolve_device
from core.reconstruct import ReconstructOptions, reconstruct
from core.sample_clip import write_sample_clip

__all__ = ["run_demo"]


def run_demo(*, assets: str | None, device: str, out: Path, seconds: float = 4.0, video: Path | None = None) -> int:
    """Report on the assets, pick STAF or the landmark solver, reconstruct ``video`` (default: the
    sample clip) into ``out``."""
    resolve_device(device)  # a bad --device fails before anything is written
    folder = resolve_assets_dir(assets)
    print("== assets")
    if run_doctor(folder) == 0:
        kind, solver = "REAL", "staf"
        print(f"\nUsing the REAL assets in {folder}: STAF.")
    else:
        kind, solver = "no STAF weights", "landmarks"
        print("\nThe STAF weights are not installed: using the landmark solver (BlazePose's landmarks fitted to "
              "the body; real motion, less accurate than STAF; no licensed download needed).")
    out.mkdir(parents=True, exist_ok=True)
    if video is None:
        clip = out / "sample_clip.mp4"
        write_sample_clip(clip, seconds=seconds)
        print(f"\n== reconstructing {clip} (made by the project's renderer: its look-alike body walking across a "
              "room and waving; give VIDEO=your_clip.mp4 for your own)")
    else:
        clip = Path(video)
        print(f"\n== reconstructing {clip}")
    motion_path, preview = out / "sample_motion.npz", out / "sample_preview.png"
    motion = reconstruct(clip, motion_path, ReconstructOptions(
        assets=str(folder) if folder.is_dir() else None, device=device, overwrite=True, progress="auto",
        preview=str(preview), solver=solver))
    person = motion.people[0]
    print(f"\nwrote {motion_path}: {len(person)} of {len(motion.frame_index)} frames with the person, "
          f"{motion.fps:.2f} fps, {kind} ({solver})")
    print(f"wrote {preview}: the recovered mesh over 12 frames of the clip")
    return 0
