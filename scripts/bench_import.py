"""Benchmark: importing a long motion file (rig, mesh, every key) against key-by-key insertion.

Prints the time to import a 10,000-frame motion file with the add-on (read, plan, build: bones,
skinned mesh, 99 F-curves written in bulk), the keys' share of it, and the same keys written the
usual slow way (``pose_bone.keyframe_insert`` per bone per frame). Key-by-key insertion grows
faster than linearly, so it is timed on shorter prefixes of the same data and extrapolated to the
full length with a fit ``a n + b n^2``; the output says which numbers are measured and which are
extrapolated. Targets: import under 2 s, at least 100 x faster than key by key.

    .venv/bin/python scripts/bench_import.py --write-motion build/bench/motion10k.npz --frames 10000
    .venv-bpy50/bin/python scripts/bench_import.py --motion build/bench/motion10k.npz

(``make bench-blender`` runs both steps, then the benchmark under each Blender line.)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_motion(path: Path, frames: int) -> None:
    """Write a generated motion file (main venv: needs core and torch)."""
    import tempfile

    from core.smpl import load_smpl_data
    from core.standins.motion import write_synthetic_motion
    from core.standins.smpl_files import write_smpl_assets

    with tempfile.TemporaryDirectory() as tmp:
        write_smpl_assets(Path(tmp), seed=0)
        smpl = load_smpl_data(Path(tmp) / "SMPL_NEUTRAL.pkl")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_synthetic_motion(path, smpl, n_frames=frames)
    print(f"wrote {path} ({frames} frames)")


def _fresh() -> None:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)


def bulk_import(path: Path) -> dict[str, float]:
    """One full import; returns seconds per phase (read, plan, build, of which keys)."""
    import bpy

    import staf_blender.rig as rig
    from staf_blender.motion_io import load_motion
    from staf_blender.plan import ImportOptions, plan_import

    _fresh()
    spent = {"keys": 0.0}
    write_keys = rig._write_keys

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return write_keys(*args, **kwargs)
        finally:
            spent["keys"] += time.perf_counter() - start

    rig._write_keys = timed
    try:
        t0 = time.perf_counter()
        motion = load_motion(path)
        t1 = time.perf_counter()
        plan = plan_import(motion, ImportOptions(name="bench"))
        t2 = time.perf_counter()
        rig.build_import(bpy.context, plan)
        t3 = time.perf_counter()
    finally:
        rig._write_keys = write_keys
    return {"read": t1 - t0, "plan": t2 - t1, "build": t3 - t2, "keys": spent["keys"], "total": t3 - t0}


def per_key_seconds(path: Path, frames: int) -> tuple[float, float]:
    """Seconds to key the first ``frames`` frames one key at a time, and the same keys in bulk."""
    import bpy
    import numpy as np

    import staf_blender.rig as rig
    from staf_blender.motion_io import load_motion
    from staf_blender.plan import ImportOptions, plan_import

    plan = plan_import(load_motion(path), ImportOptions(name="perkey", camera=False))
    full = plan.rigs[0]
    short = dataclasses.replace(full, frames=full.frames[:frames], rotations=full.rotations[:frames],
                                root_location=full.root_location[:frames])
    plan = dataclasses.replace(plan, rigs=(short,))

    _fresh()
    write_keys = rig._write_keys
    rig._write_keys = lambda *args, **kwargs: None  # build the same rig without keys
    try:
        result = rig.build_import(bpy.context, plan)
    finally:
        rig._write_keys = write_keys
    arm = result.armatures[0]
    bones = [arm.pose.bones[name] for name in short.bone_names]
    root = bones[short.bone_parents.index(-1)]
    start = time.perf_counter()
    for i, frame in enumerate(short.frames.tolist()):
        for j, bone in enumerate(bones):
            bone.rotation_quaternion = short.rotations[i, j].tolist()
            bone.keyframe_insert("rotation_quaternion", frame=frame)
        root.location = short.root_location[i].tolist()
        root.keyframe_insert("location", frame=frame)
    slow = time.perf_counter() - start
    slow_keys = _values(arm)

    _fresh()
    result = rig.build_import(bpy.context, dataclasses.replace(plan, rigs=(dataclasses.replace(short),)))
    arm2 = result.armatures[0]
    arm2.animation_data_clear()
    start = time.perf_counter()
    rig._write_keys(arm2, short, rig._Created())
    fast = time.perf_counter() - start
    fast_keys = _values(arm2)
    assert set(slow_keys) == set(fast_keys) and len(fast_keys) == 99
    for key, values in fast_keys.items():  # both ways give the same keys
        assert values.shape == (2 * frames,) and np.allclose(values, slow_keys[key], atol=1e-6), key
    return slow, fast


def _values(arm) -> dict:
    """(data path, index) -> the keys' interleaved (frame, value) of every F-curve of ``arm``."""
    import numpy as np

    from staf_blender.compat import action_fcurves

    found = {}
    for curve in action_fcurves(arm):
        co = np.empty(2 * len(curve.keyframe_points))
        curve.keyframe_points.foreach_get("co", co)
        found[(curve.data_path, curve.array_index)] = co
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--motion", type=Path, help="motion file to import (written by --write-motion)")
    parser.add_argument("--write-motion", type=Path, help="write a generated motion file here and stop (main venv)")
    parser.add_argument("--frames", type=int, default=10000, help="frames of the generated file (default: 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="full imports timed (default: 3; the median is shown)")
    parser.add_argument("--per-key-frames", default="500,1000,2000",
                        help="prefix lengths timed key by key (default: 500,1000,2000)")
    args = parser.parse_args()
    if args.write_motion:
        write_motion(args.write_motion, args.frames)
        return 0
    if args.motion is None:
        parser.error("give --motion FILE (or --write-motion FILE in the main venv first)")
    import bpy

    from staf_blender.motion_io import load_motion

    n = len(load_motion(args.motion).people[0])
    runs = [bulk_import(args.motion) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"Blender {bpy.app.version_string}, {n} frames, 1 person: 24 bones, 6890 vertices, {99 * n:,} keys")
    print(f"{'bulk import (median of ' + str(args.repeat) + ')':<34}{'seconds':>10}")
    for key in ("read", "plan", "build", "keys", "total"):
        label = {"keys": "  of which keys (foreach_set)", "build": "build (bones, mesh, weights, keys)"}.get(key, key)
        print(f"{label:<34}{med[key]:>10.3f}")

    sizes = [int(s) for s in args.per_key_frames.split(",") if s]
    print(f"\n{'key by key, measured':<26}{'frames':>8}{'per-key s':>11}{'bulk s':>9}{'ratio':>8}")
    measured = []
    for size in sizes:
        slow, fast = per_key_seconds(args.motion, size)
        measured.append((size, slow))
        print(f"{'':<26}{size:>8}{slow:>11.2f}{fast:>9.4f}{slow / fast:>8.0f}")
    import numpy as np

    x = np.array([m[0] for m in measured], float)
    y = np.array([m[1] for m in measured], float)
    coef, *_ = np.linalg.lstsq(np.stack([x, x * x], 1), y, rcond=None)
    coef = np.maximum(coef, 0.0)
    slow_full = float(coef[0] * n + coef[1] * n * n)
    linear_full = float(y[-1] / x[-1] * n)  # a floor: per-key cost only grows with length
    print(f"\nkey by key for {n} frames, extrapolated: {slow_full:.1f} s (fit {coef[0]:.2e} n + {coef[1]:.2e} n^2; "
          f"linear floor {linear_full:.1f} s)")
    print(f"keys:   bulk {med['keys']:.3f} s vs key by key {slow_full:.1f} s -> {slow_full / med['keys']:.0f} x "
          f"(floor {linear_full / med['keys']:.0f} x)")
    total_slow = med["total"] - med["keys"] + slow_full
    print(f"import: bulk {med['total']:.3f} s vs key by key {total_slow:.1f} s -> {total_slow / med['total']:.0f} x "
          f"(floor {(med['total'] - med['keys'] + linear_full) / med['total']:.0f} x)")
    ok = med["total"] < 2.0 and total_slow / med["total"] >= 100
    print(f"targets (under 2 s, at least 100 x): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
