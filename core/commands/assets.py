"""``doctor``, ``standins`` and ``assets add``: the asset folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.paths import path_arg

__all__ = ["ASSETS_HELP", "register"]

ASSETS_HELP = "asset folder (default: $STAF_ASSETS, else the per-user data folder)"


def _doctor(args: argparse.Namespace) -> int:
    from core.assets import resolve_assets_dir

    folder = resolve_assets_dir(args.assets)
    if args.json:
        from core.asset_import import doctor_report

        report = doctor_report(folder)
        print(json.dumps(report))
        return report["exit_code"]
    from core.doctor import run_doctor

    return run_doctor(folder)


def _add(args: argparse.Namespace) -> int:
    from core.asset_import import add_assets
    from core.assets import resolve_assets_dir

    report = add_assets(Path(args.source), resolve_assets_dir(args.assets))
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(f"Adding {report.source} to {report.folder}:")
        skipped = [v for v in report.files if v.state == "skipped"]
        for verdict in report.files:
            if verdict.state != "skipped" or len(skipped) <= 3:
                print(verdict.line())
        if len(skipped) > 3:
            print(f"  {len(skipped)} other files skipped (not files the engine uses, or not checked)")
        if report.ok:
            print(report.message)
    if not report.ok:
        print(f"error: {report.message}", file=sys.stderr)
    return report.exit_code


def _standins(args: argparse.Namespace) -> int:
    from core.standins import make_asset_folder

    folder = make_asset_folder(Path(args.folder), seed=args.seed)
    print(f"stand-in assets written to {folder} (random weights, look-alike body: for tests and demos only)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the asset folder: each file found / missing / invalid")
    p.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object: the folder and each file's verdict")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("assets", help="manage the asset folder: 'assets add' checks downloaded files and copies them")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="check each asset file in a folder or .zip, copy them only if all are valid")
    add.add_argument("source", type=path_arg, metavar="SOURCE", help="the downloaded folder or .zip")
    add.add_argument("--assets", type=path_arg, metavar="DIR", help=ASSETS_HELP)
    add.add_argument("--json", action="store_true", help="print one JSON object with each file's verdict")
    add.set_defaults(func=_add)

    p = sub.add_parser("standins", help="write seeded stand-in assets (real formats, fake contents) into DIR")
    p.add_argument("folder", type=path_arg, metavar="DIR")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_standins)
