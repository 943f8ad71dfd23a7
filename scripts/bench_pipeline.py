"""Benchmark of the video pipeline: frames per second of each stage and end to end, and peak memory.

Prints one table row per clip (real clips from ../shared/data/videos when present, and a generated
one), then the end-to-end / backbone-alone throughput ratio (target on CPU: >= 0.6), then peak
memory of whole runs on generated 1,000- and 10,000-frame clips (target: ratio <= 1.2).

    .venv/bin/python scripts/bench_pipeline.py [--device cpu|cuda] [--precision fp32|fp16|bf16]
        [--assets DIR] [--memory-frames 1000,10000] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.crops import crop_person, normalise
from core.model.load import autocast_for, load_models
from core.people.stage import find_people
from core.progress import Progress
from core.reconstruct import ReconstructOptions, people_options, reconstruct
from core.sample_clip import write_sample_clip
from core.video import iter_frames, probe_video

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"

# VmHWM, not ru_maxrss: after fork + exec, Linux's ru_maxrss still counts the forking parent's size.
_MEMORY_CHILD = """
import sys
from core.reconstruct import ReconstructOptions, reconstruct
reconstruct(sys.argv[1], sys.argv[2], ReconstructOptions(assets=sys.argv[3], device=sys.argv[4],
            precision=sys.argv[5], progress="none", overwrite=True))
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def timed(fn, *args):
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    out = fn(*args)
    sync()
    return out, time.perf_counter() - t


def stage_rates(clip: Path, models, opts: ReconstructOptions) -> dict[str, float]:
    """Frames per second of each stage alone, on this clip."""
    info = probe_video(clip)
    frames, t_decode = timed(lambda: [f.rgb for f in iter_frames(info)])
    n = len(frames)
    _, t_small = timed(lambda: [f.rgb for f in iter_frames(info, max_side=opts.detect_max_side)])
    # The people stage (detection and tracking of everybody) less its own decoding of the small frames.
    found, t_people = timed(find_people, info, 0, None, people_options(opts), Progress("none"))
    t_detect = max(t_people - t_small, 1e-9)
    box = (found.people[0].track.box[0] if found.people
           else np.array([info.width / 2, info.height / 2, info.width / 3, info.height / 2]))
    crops, t_crop = timed(lambda: normalise(np.stack([crop_person(f, box) for f in frames])))
    def backbone():
        with torch.inference_mode(), autocast_for(models.device, opts.precision):
            return torch.cat([models.features(b) for b in crops.split(opts.batch_size)])

    backbone()  # warm-up
    feats, t_backbone = timed(backbone)

    def staf():
        with autocast_for(models.device, opts.precision):
            return models.runner(windows_per_batch=opts.batch_size, keep_vertices=False).run(feats)

    _, t_staf = timed(staf)
    with tempfile.TemporaryDirectory() as tmp:
        _, t_e2e = timed(reconstruct, clip, Path(tmp) / "m.npz", opts)
    return {"frames": n, "decode": n / t_decode, "detect": n / t_detect, "crop": n / t_crop,
            "backbone": n / t_backbone, "staf": n / t_staf, "end-to-end": n / t_e2e}


def peak_memory(frames: int, args, assets: Path, tmp: Path) -> float:
    clip = tmp / f"clip{frames}.mp4"
    write_sample_clip(clip, seconds=frames / 30, width=320, height=240)
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(clip), str(tmp / "m.npz"), str(assets),
                          args.device, args.precision], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # VmHWM is in KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--assets", type=Path, help="asset folder (default: stand-ins in a temporary folder)")
    parser.add_argument("--memory-frames", default="1000,10000")
    parser.add_argument("--batch", type=int, help="frames/windows per batch (default: 16 on CPU, 128 on CUDA)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-table", action="store_true", help="only the peak-memory runs")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.assets is None:
            from core.standins import make_asset_folder

            assets, kind = make_asset_folder(tmp / "assets"), "stand-in"
        else:
            assets, kind = args.assets, "real"
        models = load_models(assets, device=args.device)
        results: dict = {}
        batch = args.batch or (128 if models.device.type == "cuda" else 16)
        opts = ReconstructOptions(assets=str(assets), device=args.device, precision=args.precision, progress="none",
                                  batch_size=batch)
        clips = sorted(VIDEOS.glob("*.mp4")) if VIDEOS.is_dir() else []
        generated = tmp / "generated_640x480.mp4"
        write_sample_clip(generated, seconds=10)
        clips.append(generated)
        if args.skip_table:
            clips = []

        print(f"device {models.device}, precision {args.precision}, {torch.get_num_threads()} threads, "
              f"{kind} weights; frames per second of each stage alone, then the whole pipeline")
        cols = ["frames", "decode", "detect", "crop", "backbone", "staf", "end-to-end"]
        print(f"{'clip':<24}" + "".join(f"{c:>11}" for c in cols) + f"{'e2e/backbone':>14}")
        for clip in clips:
            r = stage_rates(clip, models, opts)
            results[clip.name] = r
            ratio = r["end-to-end"] / r["backbone"]
            print(f"{clip.name:<24}{r['frames']:>11d}" + "".join(f"{r[c]:>11.1f}" for c in cols[1:])
                  + f"{ratio:>14.2f}")
        print(f"(detect runs on every {opts.detect_every}nd frame, frames/s counted over all frames; "
              "target e2e/backbone >= 0.6 on CPU)")

        if not args.skip_memory:
            sizes = [int(s) for s in args.memory_frames.split(",")]
            mem = {n: peak_memory(n, args, assets, tmp) for n in sizes}
            results["peak_memory_mib"] = mem
            for n, m in mem.items():
                print(f"peak memory, generated {n}-frame clip (320x240): {m:8.0f} MiB")
            if len(sizes) >= 2:
                print(f"ratio {sizes[-1]}/{sizes[0]}: {mem[sizes[-1]] / mem[sizes[0]]:.2f} (target <= 1.2)")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
