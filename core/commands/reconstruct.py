"""``reconstruct``: a video in, a motion file out."""

from __future__ import annotations

import argparse

from core.commands.assets import ASSETS_HELP

__all__ = ["register"]


def _reconstruct(args: argparse.Namespace) -> int:
    from core.reconstruct import ReconstructOptions, reconstruct

    opts = ReconstructOptions(
        assets=args.assets, device=args.device, start=args.start, end=args.end, person=args.person,
        batch_size=args.batch_size, precision=args.precision, detect_every=args.detect_every,
        max_gap=args.max_gap, smooth=args.smooth, focal=args.focal, overwrite=args.overwrite,
        progress=args.progress, preview=args.preview,
    )
    motion = reconstruct(args.video, args.output, opts)
    if args.progress != "json":
        person = motion.people[0]
        kind = motion.meta["assets"]["kind"]
        note = " (STAND-IN assets: random weights, not real motion)" if kind == "stand-in" else ""
        print(f"wrote {args.output}: {len(person)} of {len(motion.frame_index)} frames with the person{note}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="turn a video of a person into a motion file (.npz)")
    p.add_argument("video", help="the clip (any format ffmpeg reads)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="motion file to write")
    p.add_argument("--assets", metavar="DIR", help=ASSETS_HELP)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--start", help="first frame: a frame number (120) or seconds (4s); default: the start")
    p.add_argument("--end", help="end (exclusive): a frame number or seconds; default: the end")
    p.add_argument("--person", type=int, default=0, help="which track (default: 0, the main person)")
    p.add_argument("--batch-size", type=int, help="frames/windows per batch (default: 16 on CPU, 128 on CUDA)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="network precision; fp16 needs CUDA (default: %(default)s)")
    p.add_argument("--detect-every", type=int, default=2, metavar="N",
                   help="run the person detector on every N-th frame, boxes in between interpolated "
                        "(default: %(default)s)")
    p.add_argument("--max-gap", type=float, default=0.5, metavar="SECONDS",
                   help="fill detection gaps up to this long, flagged as interpolated (default: %(default)s)")
    p.add_argument("--smooth", type=float, default=0.05, metavar="SECONDS",
                   help="box smoothing (Gaussian sigma over time; default: %(default)s)")
    p.add_argument("--focal", type=float, metavar="PIXELS",
                   help="camera focal length for the root translation (default: the image diagonal)")
    p.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto",
                   help="progress: bar (terminal), json (one object per line on stdout), none")
    p.add_argument("--preview", metavar="OUT.mp4|OUT.png",
                   help="also draw the recovered mesh over the clip (video) or a contact sheet (png)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=_reconstruct)
