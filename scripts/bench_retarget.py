"""Benchmark: retargeting onto other rigs, as Blender evaluates the result (needs bpy).

For each target (the test rigs in the real naming schemes, with A-pose arms, legs 1.3 times longer
and random rolls; Mixamo as the FBX importer leaves it; a rig Rigify generates), on the reference
bundle's gait clip (a noisy synthetic walk put through the engine's clean-up): the worst angle
between a mapped limb and the person's, rotations only and with planted feet; how far the
character's ankle moves over the frames where the person's foot is locked, without and with
planted feet; and the time the retarget takes per 1000 frames.

    .venv-bpy50/bin/python scripts/bench_retarget.py [--ref build/blender-ref]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests" / "blender", ROOT / "tests" / "blender" / "in_blender"):
    sys.path.insert(0, str(path))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from retarget_checks import limb_error, limbs, make_armature, planted_drift  # noqa: E402
from rigify_check import generate_rigify  # noqa: E402

import staf_blender  # noqa: E402
from staf_blender.plan import ImportOptions  # noqa: E402
from staf_blender.retarget import PRESETS  # noqa: E402
from staf_blender.retarget_scene import retarget_armature  # noqa: E402
from staf_blender.rig import import_motion_file  # noqa: E402

TARGETS = (("mixamo", True), ("ue5", False), ("rigify", False), ("vrm", False), ("rigify (generated)", False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, default=ROOT / "build" / "blender-ref")
    args = parser.parse_args()
    staf_blender.register()
    print(f"{'target':<20}{'limbs, rotations':>18}{'limbs, planted':>16}{'ankle drift':>13}{'planted':>10}"
          f"{'ms/1000 fr':>12}")
    for name, turned in TARGETS:
        row = []
        for plant in (False, True):
            bpy.ops.wm.read_factory_settings(use_empty=True)
            walker = import_motion_file(bpy.context, args.ref / "gait.npz", ImportOptions()).armatures[0]
            generated = name.startswith("rigify (")
            target = generate_rigify() if generated else make_armature("target", name, turned=turned)
            start, end = (int(x) for x in walker.animation_data.action.frame_range)
            began = time.perf_counter()
            retarget_armature(bpy.context, walker, target, "auto", plant_feet=plant)
            ms = 1e6 * (time.perf_counter() - began) / (end - start + 1)
            table = PRESETS["rigify" if generated else name]
            frames = np.arange(start, end + 1, 3)
            worst = limb_error(walker, target, table, limbs("rigify" if generated else name), frames).max()
            row.append((worst, planted_drift(walker, target, table, start, end), ms))
        (free, drift_free, _), (held, drift_held, ms) = row
        print(f"{name:<20}{free:>16.2f} d{held:>15.2f} d{100 * drift_free:>11.2f}cm{100 * drift_held:>8.2f}cm"
              f"{ms:>12.0f}")
    print("limbs: the worst angle between a mapped limb and the person's over every third frame; ankle drift: "
          "the largest move of the character's ankle while the person's foot is locked (rotations only, then "
          "with planted feet); ms/1000 fr: the retarget with planted feet, per 1000 frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
