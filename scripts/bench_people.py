"""Benchmark of the people stage: detection + tracking ms/frame with 1, 2 and 4 people, and the
end-to-end frames/s of 2 people against 1 (target: >= 0.55; the networks run twice, decoding and
detection once). Clips are composed from the real clips in ../shared/data/videos by
tests/people_clips.py (960 x 540, 30 fps, 90 frames), so the numbers can be rerun anywhere the data is.

    .venv/bin/python scripts/bench_people.py [--assets DIR] [--device cpu|cuda] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from people_clips import build_people_clip, require_videos  # noqa: E402
from people_scoring import match_tracks  # noqa: E402

from core.people.stage import PeopleOptions, find_people  # noqa: E402
from core.progress import Progress  # noqa: E402
from core.reconstruct import ReconstructOptions, reconstruct  # noqa: E402
from core.standins import make_asset_folder  # noqa: E402
from core.video import iter_frames, probe_video  # noqa: E402


def best_of(repeat: int, fn):
    """The fastest of ``repeat`` runs (seconds) and the last result: the least disturbed measurement."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", help="asset folder (default: stand-ins made in a temporary folder)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    try:
        require_videos()
    except BaseException as skip:  # pytest.skip outside pytest
        print(f"skipped: {skip}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assets = Path(args.assets) if args.assets else make_asset_folder(tmp / "assets", seed=0)
        clips = {n: build_people_clip("crowd", tmp, n_people=n) for n in (1, 2, 4)}
        print("people  frames  decode ms/f  detect+track ms/f  landmark runs/f  detector runs/f  recall  id switches")
        for n, clip in clips.items():
            info = probe_video(clip.path)
            t_decode, frames = best_of(args.repeat, lambda info=info: sum(1 for _ in iter_frames(info, max_side=640)))
            counts = {}

            def people(info=info, counts=counts):
                import core.people.stage as stage

                made = []
                original = stage.PeopleFinder

                def counting(**kw):
                    made.append(original(**kw))
                    return made[-1]

                stage.PeopleFinder = counting
                try:
                    found = find_people(info, 0, None, PeopleOptions(), Progress("none"))
                finally:
                    stage.PeopleFinder = original
                counts["lm"], counts["det"] = made[0].landmark_runs, made[0].detector_runs
                return found

            t_people, found = best_of(args.repeat, people)
            boxes = {}
            for p in found.people:
                b = np.full((frames, 4), np.nan)
                rows = p.first + np.flatnonzero(p.track.present)
                b[rows] = p.track.box[p.track.present]
                boxes[p.person_id] = b
            score = match_tracks(clip, boxes)
            per_frame = 1000 * (t_people - t_decode) / frames
            print(f"{n:>6}  {frames:>6}  {1000 * t_decode / frames:>11.1f}  {per_frame:>17.1f}"
                  f"  {counts['lm'] / frames:>15.2f}  {counts['det'] / frames:>15.2f}  {score['mean_recall']:>6.3f}"
                  f"  {score['total_id_switches']:>11}")
        rates = {}
        for n in (1, 2):
            opts = ReconstructOptions(assets=str(assets), device=args.device, progress="none", overwrite=True)
            t, _ = best_of(args.repeat, lambda n=n, opts=opts: reconstruct(clips[n].path, tmp / f"m{n}.npz", opts))
            rates[n] = clips[n].boxes.shape[1] / t
            print(f"end to end, {n} {'person' if n == 1 else 'people'}: {rates[n]:.2f} frames/s")
        print(f"ratio 2 people / 1 person: {rates[2] / rates[1]:.2f} (target >= 0.55)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
