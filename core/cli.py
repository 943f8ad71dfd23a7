"""``python -m core``: the engine's command line. Each subcommand lives in ``core.commands``."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

from core import __version__
from core.cancel import cancelled_behind, process_signals
from core.errors import EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_INTERNAL, EXIT_OUTPUT, EXIT_USAGE, StafError

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


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line with a hint (exit code 2), not the whole
    usage block; the subcommands' parsers are of this class too."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m core``."""
    parser = _Parser(prog="python -m core", description="STAF: video to SMPL motion.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


#: What an operating-system refusal that no command foresaw means for the exit code.
_OS_OUTPUT = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (errors: one line on stderr).

    Signals are taken over before anything else (importing the commands and torch takes seconds),
    so SIGINT/SIGTERM at any moment give exit 130 and one line."""
    with process_signals():
        try:
            parser = build_parser()
            args, extra = parser.parse_known_args(argv)
            if extra:  # said by the command's own parser, so that the hint names its --help
                commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
                commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
            return args.func(args)
        except StafError as err:
            err = cancelled_behind(err) or err  # after a signal, any failure is the cancellation's
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        except KeyboardInterrupt:
            print("error: cancelled; nothing was written", file=sys.stderr)
            return EXIT_CANCELLED
        except Exception as err:
            cancelled = cancelled_behind(err)  # a signal that a library wrapped into an error of its own
            if cancelled is not None:
                print(f"error: {cancelled}", file=sys.stderr)
                return EXIT_CANCELLED
            if not isinstance(err, OSError):
                raise
            # a refusal of the system no check foresaw: still one line
            where = f"{err.filename}: " if err.filename else ""
            print(f"error: {where}{err.strerror or err}", file=sys.stderr)
            return EXIT_OUTPUT if err.errno in _OS_OUTPUT else EXIT_BAD_INPUT if err.errno else EXIT_INTERNAL
