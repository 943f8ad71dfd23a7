"""Benchmark: whole-clip STAF with per-frame reuse against plain per-window evaluation.

Prints the time of each path over the same clip of backbone features, their ratio (target: >= 2.5
on CPU for 300 frames) and the largest difference between their outputs (target: <= 1e-5).
Uses the real assets when --assets names a complete folder, else seeded stand-ins.

    .venv/bin/python scripts/bench_sequence.py [--frames 300] [--device cpu] [--assets DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from core.model.load import load_models
from core.model.sequence import run_per_window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16, help="windows per batch (both paths)")
    parser.add_argument("--assets", type=Path, help="asset folder (default: stand-ins in a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.assets is None:
            from core.standins import make_asset_folder

            assets, kind = make_asset_folder(Path(tmp)), "stand-in"
        else:
            assets, kind = args.assets, "real"
        models = load_models(assets, device=args.device, with_backbone=False)
    g = torch.Generator().manual_seed(0)
    feats = torch.relu(torch.randn(args.frames, 2048, 7, 7, generator=g)).to(models.device)
    runner = models.runner(windows_per_batch=args.batch)

    runner.run(feats[:20])  # warm-up (allocator, kernels)
    sync = torch.cuda.synchronize if models.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    naive = run_per_window(models.staf, models.body, feats, windows_per_batch=args.batch)
    sync()
    t1 = time.perf_counter()
    reused = runner.run(feats)
    sync()
    t2 = time.perf_counter()
    diff = max((getattr(naive, k) - getattr(reused, k)).abs().max().item()
               for k in ("rotmat", "betas", "cam", "joints", "vertices"))
    naive_s, reused_s = t1 - t0, t2 - t1
    print(f"device {models.device}, {torch.get_num_threads()} threads, {args.frames} frames, "
          f"{kind} weights, {args.batch} windows/batch")
    print(f"{'path':<22}{'seconds':>10}{'frames/s':>12}")
    print(f"{'per-window (naive)':<22}{naive_s:>10.2f}{args.frames / naive_s:>12.1f}")
    print(f"{'per-frame reuse':<22}{reused_s:>10.2f}{args.frames / reused_s:>12.1f}")
    print(f"ratio naive/reuse: {naive_s / reused_s:.2f}  (target >= 2.5)")
    print(f"max |difference|: {diff:.2e}  (target <= 1e-5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
