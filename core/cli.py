"""``python -m core``: the engine's command line. Each subcommand is a thin layer over a function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core import __version__
from core.errors import EXIT_CANCELLED, StafError

__all__ = ["build_parser", "main"]


def _doctor(args: argparse.Namespace) -> int:
    from core.assets import resolve_assets_dir
    from core.doctor import run_doctor

    return run_doctor(resolve_assets_dir(args.assets))


def _standins(args: argparse.Namespace) -> int:
    from core.standins import make_asset_folder

    folder = make_asset_folder(Path(args.folder), seed=args.seed)
    print(f"stand-in assets written to {folder} (random weights, look-alike body: for tests and demos only)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from core.demo import run_demo

    return run_demo(assets=args.assets, standins=Path(args.standins), frames=args.frames, device=args.device,
                    out=Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m core``."""
    parser = argparse.ArgumentParser(prog="python -m core", description="STAF: video to SMPL motion.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    assets_help = "asset folder (default: $STAF_ASSETS, else the per-user data folder)"

    p = sub.add_parser("doctor", help="check the asset folder: each file found / missing / invalid")
    p.add_argument("--assets", metavar="DIR", help=assets_help)
    p.set_defaults(func=_doctor)

    p = sub.add_parser("standins", help="write seeded stand-in assets (real formats, fake contents) into DIR")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_standins)

    p = sub.add_parser("demo", help="check assets, then run backbone + STAF over a synthetic clip")
    p.add_argument("--assets", metavar="DIR", help=assets_help)
    p.add_argument("--standins", metavar="DIR", default=".standins",
                   help="where stand-in assets are written when the real ones are incomplete (default: %(default)s)")
    p.add_argument("--frames", type=int, default=120, help="length of the synthetic clip (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", default="out", help="where results are written (default: %(default)s)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (errors: one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StafError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
