"""Benchmark of ``python -m core batch``: clips per hour on this machine with 1 and 2 local workers
(and, with --ray, through a local Ray cluster), from the wall time of the whole run including starting
the workers and loading the models, as a user pays it; the table is printed at the end.

The clips are cut from the real clips in ../shared/data/videos (``--frames`` frames each, in turn
from each video, by a manifest's start/end columns); without them, synthetic clips of a photo of a
person (core.sample_clip). Assets: --assets DIR, else seeded stand-ins in a temporary folder (the
networks' cost is the same; the motion is not real).

    .venv/bin/python scripts/bench_batch.py [--clips 4] [--frames 30] [--workers 1 2] [--ray] [--repeat N]
        [--assets DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from core.batch.run import BatchConfig, run_batch
from core.reconstruct import ReconstructOptions
from core.sample_clip import write_sample_clip
from core.standins import make_asset_folder

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def make_manifest(folder: Path, clips: int, frames: int) -> tuple[Path, str]:
    """A manifest of ``clips`` clips of ``frames`` frames; returns it and a description of the clips."""
    from core.video import probe_video

    sources = sorted(VIDEOS.glob("*.mp4")) if VIDEOS.is_dir() else []
    rows = ["video,start,end,output"]
    if sources:
        infos = [probe_video(p) for p in sources]
        offsets = [0] * len(sources)
        for i in range(clips):
            k = i % len(sources)
            if offsets[k] + frames > infos[k].frame_count:
                offsets[k] = 0
            rows.append(f"{sources[k]},{offsets[k]},{offsets[k] + frames},clip{i}.npz")
            offsets[k] += frames
        sizes = ", ".join(f"{p.name} ({i.width}x{i.height})" for p, i in zip(sources, infos, strict=True))
        what = f"{frames}-frame cuts of {sizes}"
    else:
        print(f"note: no real clips in {VIDEOS}; using synthetic 640x480 clips of a photo of a person")
        for i in range(clips):
            path = folder / f"synthetic{i}.mp4"
            write_sample_clip(path, seconds=frames / 30)
            rows.append(f"{path},,,clip{i}.npz")
        what = f"{frames}-frame synthetic clips (640x480)"
    manifest = folder / "clips.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, what


def run_once(manifest: Path, out: Path, options: ReconstructOptions, workers: int | None, ray: bool) -> float:
    """Seconds for the whole batch; raises if a clip failed (the numbers would mean nothing)."""
    config = BatchConfig(inputs=(str(manifest),), out=out, options=options, workers=workers,
                         ray="" if ray else None, progress="none")
    start = time.perf_counter()
    rows, _ = run_batch(config)
    seconds = time.perf_counter() - start
    failed = [r for r in rows if r.status != "done"]
    if failed:
        raise SystemExit(f"error: {len(failed)} clip(s) did not run: {failed[0].error}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="clips per run (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local pool sizes (default: 1 2)")
    parser.add_argument("--ray", action="store_true", help="also through a local Ray cluster (all cores)")
    parser.add_argument("--assets", help="asset folder (default: stand-ins made in a temporary folder)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--precision", default="fp32", help="network precision (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each run's fastest is shown (default: 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp_name:
        tmp = Path(tmp_name)
        assets = Path(args.assets) if args.assets else make_asset_folder(tmp / "assets", seed=0)
        manifest, what = make_manifest(tmp, args.clips, args.frames)
        options = ReconstructOptions(assets=str(assets), device=args.device, precision=args.precision, progress="none")
        print(f"{args.clips} clips: {what}; {os.cpu_count()} cores; assets: "
              f"{'given' if args.assets else 'stand-ins'}; device {args.device}")
        print(f"{'run':<22} {'seconds':>8} {'clips/hour':>11} {'frames/s':>9} {'vs 1 worker':>12}")
        runs = [(f"local, {w} worker{'s' * (w > 1)}", w, False) for w in args.workers]
        runs += [("ray, local cluster", None, True)] if args.ray else []
        best = [float("inf")] * len(runs)
        for r in range(args.repeat):  # rounds in turn, so a busy spell of the machine hits every run alike
            for i, (_, workers, ray) in enumerate(runs):
                best[i] = min(best[i], run_once(manifest, tmp / f"out{r}-{i}", options, workers, ray))
        base = args.clips / best[0] * 3600
        for (name, _, _), seconds in zip(runs, best, strict=True):
            per_hour = args.clips / seconds * 3600
            print(f"{name:<22} {seconds:>8.1f} {per_hour:>11.0f} {args.clips * args.frames / seconds:>9.2f} "
                  f"{per_hour / base:>11.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
