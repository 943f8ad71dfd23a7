"""``reconstruct``: a video in, a motion file out."""

from __future__ import annotations

import argparse

from core.commands.assets import ASSETS_HELP
from core.paths import path_arg

__all__ = ["add_cleanup_args", "add_people_args", "register"]


def add_cleanup_args(p: argparse.ArgumentParser) -> None:
    """The clean-up stage's switches (core/cleanup), shared by ``reconstruct`` and ``batch``."""
    p.add_argument("--no-world", action="store_true",
                   help="no clean-up world frame: no ground plane, camera motion or world trajectory")
    p.add_argument("--no-foot-lock", action="store_true", help="do not keep planted feet fixed (foot lock)")
    p.add_argument("--filter", choices=("none", "one-euro", "savgol"), default="none",
                   help="smooth pose and translation (rotation-correct; default: %(default)s, STAF's output "
                        "is smooth already)")


def add_people_args(p: argparse.ArgumentParser) -> None:
    """The options of the people stage, shared by ``reconstruct`` and ``tracks``."""
    p.add_argument("--detect-every", type=int, default=2, metavar="N",
                   help="run the person detector on every N-th frame, boxes in between interpolated "
                        "(default: %(default)s)")
    p.add_argument("--max-gap", type=float, default=0.5, metavar="SECONDS",
                   help="fill detection gaps up to this long, flagged as interpolated (default: %(default)s)")
    p.add_argument("--smooth", type=float, default=0.05, metavar="SECONDS",
                   help="box smoothing (Gaussian sigma over time; default: %(default)s)")
    p.add_argument("--min-track", type=float, default=1.0, metavar="SECONDS",
                   help="drop people seen for less than this long (default: %(default)s)")


def _reconstruct(args: argparse.Namespace) -> int:
    from core.cleanup.stage import world_line
    from core.reconstruct import ReconstructOptions, reconstruct
    from core.reprojection import frames_to_check

    opts = ReconstructOptions(
        assets=args.assets, device=args.device, start=args.start, end=args.end, person=args.person,
        max_people=args.max_people, batch_size=args.batch_size, precision=args.precision,
        detect_every=args.detect_every, max_gap=args.max_gap, smooth=args.smooth, min_track=args.min_track,
        focal=args.focal, overwrite=args.overwrite,
        progress=args.progress, preview=args.preview, pipeline=args.pipeline, world=not args.no_world,
        foot_lock=not args.no_foot_lock, filter=args.filter, solver=args.solver,
    )
    motion = reconstruct(args.video, args.output, opts)
    if args.progress != "json":
        kind = motion.meta["assets"]["kind"]
        solver = motion.meta["options"].get("solver", "staf")
        note = " (STAND-IN assets: random weights, not real motion)" if kind == "stand-in" and solver == "staf" else ""
        who = ", ".join(f"person {p.person_id}: {len(p)} frames" for p in motion.people)
        options = motion.meta["options"]
        print(f"wrote {args.output}: {len(motion.frame_index)} frames; {who}{note}; "
              f"{options['precision']} ({options['precision_rule']})")
        print(f"solver: {solver} ({motion.meta['options'].get('solver_rule', '')})")
        print(f"world: {world_line(motion.meta['world'])}")
        for person in motion.people:
            rows = [] if person.reprojection_px is None else frames_to_check(person.reprojection_px, person.box)
            if len(rows):
                shown = ", ".join(str(int(f)) for f in person.frame[rows[:10]]) + (" ..." if len(rows) > 10 else "")
                print(f"person {person.person_id}: {len(rows)} frames to check (joints far from the detector's "
                      f"landmarks): {shown}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="turn a video of a person into a motion file (.npz)")
    p.add_argument("video", type=path_arg, help="the clip (any format ffmpeg reads)")
    p.add_argument("-o", "--output", type=path_arg, required=True, metavar="OUT.npz", help="motion file to write")
    p.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--start", help="first frame: a frame number (120) or seconds (4s); default: the start")
    p.add_argument("--end", help="end (exclusive): a frame number or seconds; default: the end")
    p.add_argument("--person", default="all", metavar="all|ID[,ID...]",
                   help="who to reconstruct: all, or track ids such as 0 or 0,2; ids are ordered by how much "
                        "each person is on screen, 0 the most (default: %(default)s)")
    p.add_argument("--max-people", type=int, metavar="N", help="keep at most the N most prominent people")
    p.add_argument("--batch-size", type=int, help="frames/windows per batch (default: 16 on CPU, 128 on CUDA)")
    add_cleanup_args(p)
    p.add_argument("--solver", choices=("auto", "staf", "landmarks"), default="auto",
                   help="staf (the network; needs its weights), landmarks (BlazePose's landmarks fitted to the "
                        "body; no licensed download) or auto: STAF when its weights are installed (default)")
    p.add_argument("--pipeline", choices=("auto", "one-pass", "two-pass", "in-process"), default="auto",
                   help="one-pass: decode once, decoding and detection in a worker process beside the networks "
                        "(everybody); two-pass: find people, then decode again for the chosen ones; auto: "
                        "one-pass unless --person/--max-people choose some (default: %(default)s)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="network precision; auto: bf16 where the device has native bf16 units and it leaves "
                        "the pose within 1e-4 rad of fp32 (checked once per machine), else fp32; fp16 needs "
                        "CUDA (default: %(default)s)")
    add_people_args(p)
    p.add_argument("--focal", type=float, metavar="PIXELS",
                   help="camera focal length for the root translation (default: the image diagonal)")
    p.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto",
                   help="progress: bar (terminal), json (one object per line on stdout), none")
    p.add_argument("--preview", type=path_arg, metavar="OUT.mp4|OUT.png",
                   help="also draw the recovered mesh over the clip (video) or a contact sheet (png)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=_reconstruct)
