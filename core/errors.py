"""Domain errors of the engine: each carries the one-line message a user sees and an exit code."""

from __future__ import annotations

__all__ = [
    "EXIT_ASSET_INVALID",
    "EXIT_ASSET_MISSING",
    "EXIT_BAD_INPUT",
    "EXIT_CANCELLED",
    "EXIT_INTERNAL",
    "EXIT_NO_PERSON",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "AssetInvalid",
    "AssetMissing",
    "BadInput",
    "CheckpointMismatch",
    "NoPersonFound",
    "OutputError",
    "StafError",
]

EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_ASSET_MISSING = 3
EXIT_ASSET_INVALID = 4
EXIT_BAD_INPUT = 5
EXIT_OUTPUT = 6
EXIT_NO_PERSON = 7
EXIT_CANCELLED = 130


class StafError(Exception):
    """An error the user can act on. ``str(err)`` is a single line; ``exit_code`` is for the CLI."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class AssetMissing(StafError):
    """A required asset folder or file does not exist."""

    exit_code = EXIT_ASSET_MISSING


class AssetInvalid(StafError):
    """An asset file exists but is of the wrong kind, truncated, malformed or unsafe."""

    exit_code = EXIT_ASSET_INVALID


class CheckpointMismatch(AssetInvalid):
    """A checkpoint does not hold the network it claims to (missing/unexpected keys, wrong shapes)."""


class BadInput(StafError):
    """A user-supplied input (other than an asset) is unusable."""

    exit_code = EXIT_BAD_INPUT


class OutputError(StafError):
    """The output cannot be written (exists without --overwrite, unwritable place, wrong suffix)."""

    exit_code = EXIT_OUTPUT


class NoPersonFound(StafError):
    """The clip (or the chosen range) shows nobody the detector can find."""

    exit_code = EXIT_NO_PERSON
