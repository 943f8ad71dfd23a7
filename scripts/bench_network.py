"""Benchmark of the two networks alone: backbone and whole-clip STAF throughput at each precision.

Prints frames per second of ResNet-50 on 224 x 224 crops and of STAF (per-frame reuse) on backbone
features, for fp32 / fp16 / bf16 autocast on one device, with stand-in weights (speed does not
depend on the weights' values), and how far each precision's STAF output is from fp32's.

    .venv/bin/python scripts/bench_network.py [--device cuda] [--frames 300] [--batch 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from core.model.load import autocast_for, load_models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precisions", default="fp32,fp16,bf16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        from core.standins import make_asset_folder

        models = load_models(make_asset_folder(Path(tmp)), device=args.device)
    dev = models.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    crops = torch.randn(args.frames, 3, 224, 224, generator=g)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device {dev} ({name}), {args.frames} frames, batch {args.batch}")
    print(f"{'precision':<10}{'backbone f/s':>14}{'STAF f/s':>12}{'max |pose - fp32|':>20}")
    reference = None
    for precision in args.precisions.split(","):
        if precision == "fp16" and dev.type != "cuda":
            continue
        with torch.inference_mode(), autocast_for(dev, precision):
            models.features(crops[: args.batch])  # warm-up
            sync()
            t0 = time.perf_counter()
            feats = torch.cat([models.features(b) for b in crops.split(args.batch)])
            sync()
            t1 = time.perf_counter()
            runner = models.runner(windows_per_batch=args.batch, keep_vertices=False)
            runner.run(feats[:20].float())
            sync()
            t2 = time.perf_counter()
            out = runner.run(feats.float())
            sync()
            t3 = time.perf_counter()
        rot = out.rotmat.float().cpu()
        diff = 0.0 if reference is None else (rot - reference).abs().max().item()
        reference = rot if reference is None else reference
        print(f"{precision:<10}{args.frames / (t1 - t0):>14.1f}{args.frames / (t3 - t2):>12.1f}{diff:>20.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
