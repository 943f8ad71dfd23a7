"""Benchmark of the video pipeline: frames per second of each stage and end to end, and peak memory.

Prints one table row per clip (real clips from ../shared/data/videos when present, and a generated
one): each stage alone, then whole runs of ``python -m core reconstruct`` as a user starts them (a
fresh process: imports, weights, the clip), of today's pipeline and of the pipeline at
``--baseline-rev`` (default: the last commit before the one-pass pipeline; its ``core/`` is
extracted with git and run beside), with the ratios new/baseline (target >= 2) and end-to-end /
backbone alone (target on CPU: >= 0.6). Then peak memory of whole runs on generated 1,000- and
10,000-frame clips, the main process plus its decoding worker (target: ratio <= 1.2).

    .venv/bin/python scripts/bench_pipeline.py [--device cpu|cuda] [--precision auto|fp32|fp16|bf16]
        [--assets DIR] [--baseline-rev REV] [--memory-frames 1000,10000] [--skip-memory] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from core.crops import crop_person, normalise
from core.model.load import autocast_for, load_models
from core.people.stage import find_people
from core.progress import Progress
from core.reconstruct import ReconstructOptions, people_options
from core.sample_clip import write_sample_clip
from core.video import iter_frames, probe_video

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"

BASELINE_REV = "0f48613"  # two passes over the clip, detection in series with the networks

# VmHWM, not ru_maxrss: after fork + exec, Linux's ru_maxrss still counts the forking parent's size.
# The decoding worker (spawned, so its own size) is added: an upper bound of the two together.
_MEMORY_CHILD = """
import resource, sys
from core.reconstruct import ReconstructOptions, reconstruct
if __name__ == "__main__":
    reconstruct(sys.argv[1], sys.argv[2], ReconstructOptions(assets=sys.argv[3], device=sys.argv[4],
                precision=sys.argv[5], progress="none", overwrite=True))
    main = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
    print(main + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def baseline_tree(rev: str, tmp: Path) -> Path | None:
    """The engine (``core/``) as it was at ``rev``, extracted into ``tmp``; None outside a git checkout."""
    where = tmp / f"baseline-{rev}"
    where.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "core"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


_SHORT = 15  # frames of the short run whose time is taken as a run's fixed cost


def command_seconds(tree: Path, clip: Path, out: Path, assets: Path, device: str, precision: str,
                    end: int | None = None) -> float:
    """Seconds of a whole ``python -m core reconstruct`` run of the engine in ``tree``."""
    cmd = [sys.executable, "-m", "core", "reconstruct", str(clip), "-o", str(out), "--assets", str(assets),
           "--device", device, "--precision", precision, "--progress", "none", "--overwrite",
           *(["--end", str(end)] if end else [])]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def command_rates(runs: dict[str, tuple[Path, str]], clip: Path, out: Path, assets: Path, device: str,
                  frames: int, repeat: int = 1) -> dict[str, tuple[float, float]]:
    """Per named run (engine tree, precision): (whole-run frames/s, steady frames/s). Steady leaves
    out a run's fixed cost (start-up, weights, the first frames' latency), measured by a run of the
    first frames only. With ``repeat`` > 1 the runs take turns for that many rounds and the fastest
    whole and short times count, so a busy moment of the machine hits no one run alone."""
    whole = {name: float("inf") for name in runs}
    short = dict(whole)
    for _ in range(repeat):
        for name, (tree, precision) in runs.items():
            whole[name] = min(whole[name], command_seconds(tree, clip, out, assets, device, precision))
            short[name] = min(short[name], command_seconds(tree, clip, out, assets, device, precision, _SHORT))
    return {name: (frames / whole[name], (frames - _SHORT) / max(whole[name] - short[name], 1e-9))
            for name in runs}


def timed(fn, *args):
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    out = fn(*args)
    sync()
    return out, time.perf_counter() - t


def stage_rates(clip: Path, models, opts: ReconstructOptions, baseline: Path | None,
                repeat: int = 1) -> dict[str, float]:
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

    def backbone_fp32():
        with torch.inference_mode():
            return torch.cat([models.features(b) for b in crops.split(opts.batch_size)])

    _, t_backbone32 = timed(backbone_fp32)

    def staf():
        with autocast_for(models.device, opts.precision):
            return models.runner(windows_per_batch=opts.batch_size, keep_vertices=False).run(feats)

    _, t_staf = timed(staf)
    rates = {"frames": n, "decode": n / t_decode, "detect": n / t_detect, "crop": n / t_crop,
             "backbone": n / t_backbone, "staf": n / t_staf, "backbone fp32": n / t_backbone32}
    with tempfile.TemporaryDirectory() as tmp:
        out, assets = Path(tmp) / "m.npz", Path(opts.assets)
        runs = {"today": (ROOT, opts.precision), "fp32": (ROOT, "fp32")}
        if baseline is not None:
            runs["baseline"] = (baseline, "fp32")
        measured = command_rates(runs, clip, out, assets, opts.device, n, repeat)
        rates["e2e"], rates["steady"] = measured["today"]
        rates["e2e fp32"], rates["st. fp32"] = measured["fp32"]
        if baseline is not None:
            rates["baseline"], rates["st. base"] = measured["baseline"]
    return rates


def peak_memory(frames: int, args, assets: Path, tmp: Path) -> float:
    clip = tmp / f"clip{frames}.mp4"
    write_sample_clip(clip, seconds=frames / 30, width=320, height=240)
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(clip), str(tmp / "m.npz"), str(assets),
                          args.device, args.precision], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # VmHWM is in KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the pipeline to compare with")
    parser.add_argument("--assets", type=Path, help="asset folder (default: stand-ins in a temporary folder)")
    parser.add_argument("--memory-frames", default="1000,10000")
    parser.add_argument("--batch", type=int, help="frames/windows per batch (default: 16 on CPU, 128 on CUDA)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-table", action="store_true", help="only the peak-memory runs")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the whole runs, taken in turn; the fastest times count")
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

        from core.model.precision import choose_precision

        chosen = choose_precision(models, args.precision, assets)
        opts = replace(opts, precision=chosen.precision)
        baseline = baseline_tree(args.baseline_rev, tmp)
        print(f"device {models.device}, precision {chosen.precision} ({chosen.reason}), {torch.get_num_threads()} "
              f"threads, {kind} weights; frames per second of each stage alone (at {chosen.precision}), then whole "
              f"runs of the command: today's (e2e, and at fp32), baseline {args.baseline_rev} (fp32)")
        cols = ["frames", "decode", "detect", "crop", "backbone", "staf", "e2e", "steady", "e2e fp32", "st. fp32",
                "baseline", "st. base"]
        print(f"{'clip':<22}" + "".join(f"{c:>9}" for c in cols) + f"{'new/base':>9}{'fp32/base':>10}{'st/bb':>7}"
              f"{'fp32/bb':>8}")
        for clip in clips:
            r = stage_rates(clip, models, opts, baseline, args.repeat)
            results[clip.name] = r
            nan = float("nan")
            fp32_bb = r["st. fp32"] / r["backbone fp32"]
            print(f"{clip.name:<22}{r['frames']:>9d}" + "".join(f"{r.get(c, nan):>9.1f}" for c in cols[1:])
                  + f"{r['steady'] / r.get('st. base', nan):>9.2f}{r['st. fp32'] / r.get('st. base', nan):>10.2f}"
                  f"{r['steady'] / r['backbone']:>7.2f}{fp32_bb:>8.2f}")
        print(f"(detect runs on every {opts.detect_every}nd frame, frames/s counted over all frames; e2e: whole "
              f"runs of the command, start-up and weights included; steady: without a run's fixed cost (a "
              f"{_SHORT}-frame run's time); new/base and fp32/base compare steady rates; st/bb: steady over backbone "
              f"alone at {chosen.precision}, fp32/bb both at fp32; targets: new/base >= 2, fp32/bb >= 0.6 on CPU)")

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
