"""Cancellation: SIGINT and SIGTERM become an exception, so work stops at the next Python step and
every ``finally``/atomic write cleans up; the CLI then exits with EXIT_CANCELLED (130)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import EXIT_CANCELLED, StafError

__all__ = ["Cancelled", "cancellable"]


class Cancelled(StafError):
    """The user (or the add-on) asked the engine to stop."""

    exit_code = EXIT_CANCELLED


def _raise(signum: int, _frame: object) -> None:
    raise Cancelled(f"cancelled by {signal.Signals(signum).name}; nothing was written")


@contextmanager
def cancellable() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM raise :class:`Cancelled` (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
