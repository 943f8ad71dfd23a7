"""``doctor`` and ``standins``: the asset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.paths import path_arg

__all__ = ["ASSETS_HELP", "register"]

ASSETS_HELP = "asset folder (default: $STAF_ASSETS, else the per-user data folder)"


def _doctor(args: argparse.Namespace) -> int:
    from core.assets import resolve_assets_dir
    from core.doctor import run_doctor

    return run_doctor(resolve_assets_dir(args.assets))


def _standins(args: argparse.Namespace) -> int:
    from core.standins import make_asset_folder

    folder = make_asset_folder(Path(args.folder), seed=args.seed)
    print(f"stand-in assets written to {folder} (random weights, look-alike body: for tests and demos only)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the asset folder: each file found / missing / invalid")
    p.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    p.set_defaults(func=_doctor)

    p = sub.add_parser("standins", help="write seeded stand-in assets (real formats, fake contents) into DIR")
    p.add_argument("folder", type=path_arg, metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_standins)
