"""``demo``: the out-of-the-box run on a synthetic clip."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.commands.assets import ASSETS_HELP
from core.paths import path_arg

__all__ = ["register"]


def _demo(args: argparse.Namespace) -> int:
    from core.demo import run_demo

    return run_demo(assets=args.assets, device=args.device, out=Path(args.out), seconds=args.seconds,
                    video=Path(args.video) if args.video else None)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="check assets, then reconstruct a clip (yours, or a sample made from a photo of "
                                    "a person): STAF when its weights are installed, else the landmark solver")
    p.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    p.add_argument("--video", type=path_arg, metavar="CLIP", help="your own clip (default: the sample clip)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of the sample clip (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--out", type=path_arg, metavar="DIR", default="out",
                   help="where results are written (default: %(default)s)")
    p.set_defaults(func=_demo)
