"""The add-on's domain error: one line a user can act on, and the exit code batch mode uses."""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_MISSING",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "AddonError",
]

# The engine's codes (core/errors.py), reused so a batch run reads the same as the engine.
EXIT_FAILED = 1  # anything else (an engine crash without a message)
EXIT_USAGE = 2  # bad command line
EXIT_MISSING = 3  # something needed is missing: the engine, its interpreter, an asset
EXIT_BAD_INPUT = 5  # an input that cannot be used: a bad motion file, a name taken
EXIT_OUTPUT = 6  # an output that cannot be written: exists without --overwrite, unwritable place
EXIT_CANCELLED = 130


class AddonError(Exception):
    """An error shown to the user as one line (UI report or a stderr line in batch mode)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code
