"""``batch``: many clips to motion files, on a local process pool or a Ray cluster (docs/batch.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.commands.assets import ASSETS_HELP
from core.commands.reconstruct import add_cleanup_args, add_people_args
from core.paths import path_arg

__all__ = ["register"]


def _batch(args: argparse.Namespace) -> int:
    from core.batch.run import BatchConfig, report, run_batch
    from core.reconstruct import ReconstructOptions

    options = ReconstructOptions(
        assets=args.assets, device=args.device, start=args.start, end=args.end, person=args.person,
        max_people=args.max_people, batch_size=args.batch_size, precision=args.precision,
        detect_every=args.detect_every, max_gap=args.max_gap, smooth=args.smooth, min_track=args.min_track,
        focal=args.focal, progress="none", world=not args.no_world, foot_lock=not args.no_foot_lock,
        filter=args.filter)
    config = BatchConfig(
        inputs=tuple(args.inputs), out=Path(args.out), options=options, recursive=args.recursive,
        overwrite=args.overwrite, workers=args.workers, ray=args.ray, cpus_per_clip=args.cpus_per_clip,
        gpus_per_clip=args.gpus_per_clip, fbx=args.fbx, blend=args.blend, blender=args.blender, preset=args.preset,
        progress=args.progress)
    rows, code = run_batch(config)
    if args.progress == "json":
        counts = {s: sum(r.status == s for r in rows) for s in ("done", "skipped", "failed")}
        print(json.dumps({"stage": "done", "summary": str(Path(args.out) / "batch_summary.json"), **counts,
                          "exit_code": code}), flush=True)
    else:
        report(rows, Path(args.out))
    return code


def register(sub: argparse._SubParsersAction) -> None:
    from staf_blender.fbx_presets import PRESET_NAMES

    p = sub.add_parser("batch", help="many clips -> motion files in a folder (local process pool or a Ray cluster)",
                       description="Reconstruct many clips; each becomes OUT/<stem>.npz. Clips whose valid output "
                                   "exists are skipped. A summary (batch_summary.csv/.json) is written into --out; "
                                   "the exit code is 0 when no clip failed, else the first failed clip's code.")
    p.add_argument("inputs", type=path_arg, nargs="+", metavar="INPUT",
                   help="videos, folders of videos, globs ('clips/**/*.mp4') or CSV manifests (a 'video' column "
                        "plus optional option columns, see docs/batch.md)")
    p.add_argument("--out", type=path_arg, required=True, metavar="DIR",
                   help="folder for the motion files and the summary")
    p.add_argument("--recursive", action="store_true", help="also take the videos in subfolders of a folder")
    p.add_argument("--overwrite", action="store_true", help="redo clips whose output exists")
    p.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto",
                   help="progress over clips: bar (terminal), json (one object per finished clip), none")
    g = p.add_argument_group("where it runs")
    g.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes, one clip each (default: one per core, fewer when memory "
                        "is short: about 2 GiB each); each gets cores // N torch threads")
    g.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on a Ray cluster: HOST:PORT of 'ray start --head', ray://HOST:PORT, auto, or no "
                        "address for a local one (write it as --ray=ADDRESS or after the inputs)")
    g.add_argument("--cpus-per-clip", type=float, default=1.0, metavar="N",
                   help="Ray: CPUs each clip task asks for, also its torch threads (default: %(default)s)")
    g.add_argument("--gpus-per-clip", type=float, default=1.0, metavar="N",
                   help="Ray with --device cuda: GPUs each clip asks for; 0.5 puts two clips on a GPU "
                        "(default: %(default)s)")
    g = p.add_argument_group("Blender conversion (a separate task per clip, after its motion file)")
    g.add_argument("--fbx", action="store_true", help="also write OUT/<stem>.fbx")
    g.add_argument("--blend", action="store_true", help="also write OUT/<stem>.blend")
    g.add_argument("--blender", type=path_arg, metavar="PYTHON_OR_BLENDER",
                   help="a Blender executable or a Python with bpy (default: $STAF_BLENDER, the checkout's "
                        ".venv-bpy50 or .venv-bpy45, else blender on PATH)")
    g.add_argument("--preset", choices=PRESET_NAMES, default="unity", help="FBX preset (default: %(default)s)")
    g = p.add_argument_group("reconstruct options (every clip; a manifest's columns override them per clip)")
    g.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    g.add_argument("--device", default="auto",
                   help="auto, cpu, cuda or cuda:N (default: %(default)s; on Ray only cuda reserves GPUs, auto "
                        "there runs on CPU)")
    g.add_argument("--start", help="first frame: a frame number (120) or seconds (4s)")
    g.add_argument("--end", help="end (exclusive): a frame number or seconds")
    g.add_argument("--person", default="all", metavar="all|ID[,ID...]", help="who to reconstruct (default: all)")
    g.add_argument("--max-people", type=int, metavar="N", help="keep at most the N most prominent people")
    g.add_argument("--batch-size", type=int, help="frames/windows per batch (default: 16 on CPU, 128 on CUDA)")
    g.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="network precision, as for reconstruct; fp16 needs CUDA (default: %(default)s)")
    add_people_args(g)
    add_cleanup_args(g)
    g.add_argument("--focal", type=float, metavar="PIXELS", help="camera focal length (default: the image diagonal)")
    p.set_defaults(func=_batch)
