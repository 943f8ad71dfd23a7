"""Benchmark of the camera-rotation tracker (core/cleanup/camera_motion.py): ms per frame at 640 x 360
and accuracy on synthetic pans (the test file's renderer, a textured far plane), drift over a long
pan out and back, and the verdict and total rotation on the real clips in ../shared/data/videos.

    .venv/bin/python scripts/bench_camera_motion.py [--threads N] [--videos DIR] [--max-frames N] [--people]

Only ``add`` is timed (the frames are rendered or decoded beforehand). ``--threads`` sets OpenCV's
thread count (default: OpenCV's own, all cores). ``--people`` finds the people in the real clips
with the engine's people stage and masks their boxes, as the pipeline will (without it the people
are left for RANSAC to reject).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from test_cleanup_camera import add_person, plane_view, rot_x, rot_y, texture  # noqa: E402

from core.cleanup.camera_motion import CameraRotationTracker, optical_axis_angles, rotation_angle_deg  # noqa: E402

W, H = 640, 360
FOCAL = float(np.hypot(W, H))


def synthetic(yaw: np.ndarray, pitch: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames (n, H, W) of a camera turning by ``yaw`` / ``pitch`` degrees per frame, and the true rotations."""
    rots = np.stack([rot_y(a) @ rot_x(b) for a, b in zip(yaw, pitch, strict=True)])
    span = np.radians(np.abs(yaw).max() + 33), np.radians(np.abs(pitch).max() + 20)
    tex = texture(int(2 * FOCAL * np.tan(span[0])), int(2 * FOCAL * np.tan(span[1])), seed)
    return np.stack([plane_view(tex, r, w=W, h=H) for r in rots]), rots


def run(frames: np.ndarray, boxes: list[np.ndarray] | None = None, width: int = W, height: int = H,
        focal: float = FOCAL):
    """The tracker's result and the wall and CPU ms per frame of ``add`` (CPU time is the steadier
    number on a shared machine); ``boxes[f]`` (n, 4) full-frame boxes of frame f."""
    tr = CameraRotationTracker(width, height, focal)
    t0, c0 = time.perf_counter(), time.process_time()
    for f, img in enumerate(frames):
        tr.add(img, None if boxes is None else boxes[f])
    n = max(1, len(frames))
    return tr.result(), 1000 * (time.perf_counter() - t0) / n, 1000 * (time.process_time() - c0) / n


def report_synthetic() -> None:
    print(f"synthetic, {W}x{H}, focal {FOCAL:.0f} px (the diagonal)")
    print(f"{'clip':<42} {'ms/frame':>8} {'cpu ms':>6} {'max err deg':>11} {'last err':>8}  verdict")
    s = np.linspace(0, 1, 60)
    long = np.concatenate([np.linspace(0, 1, 120), np.linspace(1, 0, 120)])
    cases = {
        "pan 20 + tilt 6 deg, 60 frames": (20 * s, 6 * s * s, False),
        "same, a walking person (box given)": (20 * s, 6 * s * s, "box"),
        "same, a walking person (no box)": (20 * s, 6 * s * s, "nobox"),
        "fast pan 40 deg in 30 frames": (40 * np.linspace(0, 1, 30), np.zeros(30), False),
        "pan 30 deg out and back, 240 frames": (30 * long, 10 * np.sin(np.pi * long), False),
        "static, 60 frames": (np.zeros(60), np.zeros(60), False),
    }
    for name, (yaw, pitch, person) in cases.items():
        frames, rots = synthetic(yaw, pitch)
        boxes = add_person(frames) if person else None
        res, ms, cpu = run(frames, [b[None] for b in boxes] if person == "box" else None)
        err = rotation_angle_deg(np.swapaxes(rots, 1, 2) @ res.R_rel)
        print(f"{name:<42} {ms:8.2f} {cpu:6.2f} {err.max():11.3f} {err[-1]:8.3f}  {res.verdict}")


def read_video(path: Path, max_frames: int) -> tuple[np.ndarray, int, int]:
    """Up to ``max_frames`` RGB frames scaled to a long side of 640 px, and the full frame's size."""
    cap = cv2.VideoCapture(str(path))
    frames, size = [], (0, 0)
    while len(frames) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        size = (w, h)
        k = min(1.0, 640 / max(w, h))
        if k < 1:
            bgr = cv2.resize(bgr, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames) if frames else np.zeros((0, 16, 16, 3), np.uint8), *size


def people_boxes(clip: Path, n: int) -> list[np.ndarray]:
    """Every found person's box (cx, cy, w, h, full-frame pixels) in each of the first ``n`` frames."""
    from core.people.stage import PeopleOptions, find_people
    from core.progress import Progress
    from core.video import probe_video

    found = find_people(probe_video(clip), 0, n, PeopleOptions(), Progress("none"))
    boxes: list[list[np.ndarray]] = [[] for _ in range(n)]
    for person in found.people:
        for k in np.flatnonzero(person.track.present):
            if person.first + k < n:
                boxes[person.first + k].append(person.track.box[k])
    return [np.array(b, np.float64).reshape(-1, 4) for b in boxes]


def report_videos(folder: Path, max_frames: int, people: bool) -> None:
    clips = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
    if not clips:
        print(f"\nno clips in {folder}")
        return
    how = "people's boxes masked" if people else "no person boxes: people are outliers to RANSAC"
    print(f"\nreal clips in {folder} ({how}), focal = diagonal")
    for clip in clips:
        frames, w, h = read_video(clip, max_frames)
        if not len(frames):
            print(f"{clip.name}: unreadable")
            continue
        boxes = people_boxes(clip, len(frames)) if people else None
        res, ms, cpu = run(frames, boxes, width=w, height=h, focal=float(np.hypot(w, h)))
        yaw, pitch = optical_axis_angles(res.R_rel)
        print(f"{clip.name}: {len(frames)} frames {w}x{h} (work {frames.shape[2]}x{frames.shape[1]}), "
              f"{ms:.2f} ms/frame ({cpu:.2f} cpu), verdict {res.verdict}; measured max {res.max_deg:.2f} deg "
              f"(pan {yaw.min():+.2f}..{yaw.max():+.2f}, tilt {pitch.min():+.2f}..{pitch.max():+.2f}), "
              f"median inliers {np.median(res.inliers[1:]):.0f}, median residual "
              f"{np.nanmedian(res.residual_px):.2f} px, parallax shares {np.round(res.parallax_share, 2).tolist()}")
        print(f"  note: {res.note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="OpenCV threads (default: OpenCV's own)")
    ap.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    ap.add_argument("--max-frames", type=int, default=600)
    ap.add_argument("--people", action="store_true", help="mask the boxes of the people the engine finds")
    args = ap.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")
    report_synthetic()
    report_videos(args.videos, args.max_frames, args.people)


if __name__ == "__main__":
    main()
