"""The out-of-the-box main job until the video pipeline lands: check the assets, then run the
backbone and whole-clip STAF over a synthetic clip and write what came out."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from core.assets import resolve_assets_dir
from core.atomic import atomic_path
from core.doctor import run_doctor
from core.model.geometry import rotmat_to_axis_angle
from core.model.load import load_models

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "run_demo", "synthetic_crops", "write_obj"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def synthetic_crops(n_frames: int, size: int = 224) -> torch.Tensor:
    """A deterministic clip (N, 3, size, size) of normalised crops: a dark figure swaying over a
    moving grating, so consecutive frames differ smoothly as real video does."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    frames = []
    for i in range(n_frames):
        t = i / 30.0
        sway = 0.15 * math.sin(2 * math.pi * 0.5 * t)
        grating = 0.5 + 0.25 * torch.sin(8 * xx + 3 * t) * torch.cos(6 * yy - 2 * t)
        body = ((xx - sway) / 0.22) ** 2 + (yy / 0.8) ** 2 < 1
        head = (xx - sway * 1.3) ** 2 + (yy + 0.75) ** 2 < 0.12**2
        gray = torch.where(body | head, torch.full_like(xx, 0.15), grating)
        rgb = torch.stack((gray, gray * 0.9, gray * 0.8))
        frames.append(rgb)
    clip = torch.stack(frames)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (clip - mean) / std


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A Wavefront OBJ of one mesh (V, 3) / (F, 3) zero-based, written atomically."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def run_demo(*, assets: str | None, standins: Path, frames: int, device: str, out: Path) -> int:
    """Report on the assets, pick real ones or stand-ins, run the models, write results to ``out``."""
    folder = resolve_assets_dir(assets)
    print("== assets")
    if run_doctor(folder) == 0:
        print(f"\nUsing the REAL assets in {folder}.")
    else:
        from core.standins import make_asset_folder

        folder = make_asset_folder(standins)
        print(f"\nReal assets incomplete: using STAND-INS from {folder} "
              "(random weights, a look-alike body: numbers below show the pipeline runs, not accuracy).")

    models = load_models(folder, device=device)
    print(f"\n== synthetic clip: {frames} frames on {models.device}")
    crops = synthetic_crops(frames).to(models.device)
    with torch.inference_mode():
        t0 = time.perf_counter()
        feats = torch.cat([models.backbone(b) for b in crops.split(16)])
        t1 = time.perf_counter()
        res = models.runner().run(feats)
        t2 = time.perf_counter()
    pose = rotmat_to_axis_angle(res.rotmat).cpu().numpy()
    height = (res.vertices[:, :, 1].amax(1) - res.vertices[:, :, 1].amin(1)).cpu().numpy()
    print(f"backbone      {frames / (t1 - t0):7.1f} frames/s")
    print(f"STAF (clip)   {frames / (t2 - t1):7.1f} frames/s")
    print(f"finite        {bool(np.isfinite(pose).all() and torch.isfinite(res.vertices).all())}")
    print(f"body height   {height.mean():.2f} m (mean over frames)")
    print(f"root rotation {np.degrees(np.linalg.norm(pose[:, 0], axis=-1)).mean():.1f} deg (mean)")

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "demo_smpl.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, pose=pose, betas=res.betas.cpu().numpy(), cam=res.cam.cpu().numpy(),
                     joints=res.joints.cpu().numpy())
    write_obj(out / "demo_frame0.obj", res.vertices[0].cpu().numpy(), models.body.faces)
    print(f"\nwrote {out / 'demo_smpl.npz'} (per-frame SMPL) and {out / 'demo_frame0.obj'} (first frame's mesh)")
    return 0
