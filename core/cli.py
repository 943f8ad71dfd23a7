"""``python -m core``: the engine's command line. Each subcommand lives in ``core.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core import __version__
from core.errors import EXIT_CANCELLED, StafError

__all__ = ["COMMANDS", "build_parser", "main"]

#: Modules under ``core.commands`` that register subcommands, in the order ``--help`` lists them.
COMMANDS = (
    "core.commands.reconstruct",
    "core.commands.tracks",
    "core.commands.batch",
    "core.commands.assets",
    "core.commands.demo",
    "core.commands.research",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m core``."""
    parser = argparse.ArgumentParser(prog="python -m core", description="STAF: video to SMPL motion.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
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
