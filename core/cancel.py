"""Cancellation: SIGINT and SIGTERM become an exception, so work stops at the next Python step and
every ``finally``/atomic write cleans up; the CLI then exits with EXIT_CANCELLED (130).

Only the first signal raises: a second Ctrl-C in quick succession would otherwise interrupt the
clean-up of the first (a traceback, or a temporary file left). The command line installs the
handlers for its whole run (:func:`process_signals`), start-up included; library callers get them
around a run with :func:`cancellable`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import EXIT_CANCELLED, StafError

__all__ = ["Cancelled", "cancellable", "cancelled_behind", "process_signals", "raise_if_cancelled",
           "writes_after_cancel"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancelled(StafError):
    """The user (or the add-on) asked the engine to stop."""

    exit_code = EXIT_CANCELLED


class _Once:
    """A signal handler that raises Cancelled the first time and ignores the signals after it."""

    def __init__(self) -> None:
        self.raised: Cancelled | None = None

    @property
    def fired(self) -> bool:
        return self.raised is not None

    def __call__(self, signum: int, _frame: object) -> None:
        if self.raised is not None:
            return
        self.raised = Cancelled(f"cancelled by {signal.Signals(signum).name}; nothing was written")
        raise self.raised


_process_handler: _Once | None = None  # set while a command-line run owns the signals
_active: list[_Once] = []  # the handlers installed now, innermost last
_recording = 0  # > 0 inside writes_after_cancel()


def _fired(handlers: list[_Once]) -> Cancelled | None:
    return next((h.raised for h in handlers if h.raised is not None), None)


def cancelled_behind(err: BaseException, handler: _Once | None = None) -> Cancelled | None:
    """The cancellation that ``err`` stands for: ``err`` itself, or, once a signal has fired, the
    :class:`Cancelled` it raised, whatever a library made of it on the way up (torch's
    ``load_state_dict`` collects it into a RuntimeError of its own). None for a genuine error."""
    if isinstance(err, Cancelled):
        return err
    return _fired([handler] if handler else _active)


def raise_if_cancelled() -> None:
    """Raise :class:`Cancelled` if a signal has fired in this run, even where a library swallowed
    the first one; called before an output is committed, so that "nothing was written" holds."""
    fired = _fired(_active)
    if fired is not None and not _recording:
        raise Cancelled(str(fired))


@contextmanager
def writes_after_cancel() -> Iterator[None]:
    """For code that caught the cancellation and records it on purpose (a batch's summary of which
    clips were cancelled): atomic writes inside the block commit although a signal fired."""
    global _recording
    _recording += 1
    try:
        yield
    finally:
        _recording -= 1


@contextmanager
def _handlers(handler: _Once) -> Iterator[None]:
    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    _active.append(handler)
    try:
        yield
    except Exception as err:
        cancelled = cancelled_behind(err, handler)
        if cancelled is None or cancelled is err:
            raise
        raise Cancelled(str(cancelled)) from err
    finally:
        _active.remove(handler)
        for s, old in previous.items():
            signal.signal(s, old)


@contextmanager
def process_signals() -> Iterator[None]:
    """For a command-line run: the first SIGINT/SIGTERM anywhere in the block raises Cancelled,
    later ones are ignored, and :func:`cancellable` blocks inside it add nothing."""
    global _process_handler
    if threading.current_thread() is not threading.main_thread() or _process_handler is not None:
        yield
        return
    handler = _process_handler = _Once()
    try:
        with _handlers(handler):
            yield
    finally:
        _process_handler = None
        if handler.fired:  # the process is on its way out: a late signal must not turn into a traceback
            for s in _SIGNALS:
                signal.signal(s, signal.SIG_IGN)


@contextmanager
def cancellable() -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM raises :class:`Cancelled` and later ones are
    ignored (main thread only; else, or inside :func:`process_signals`, a no-op)."""
    if threading.current_thread() is not threading.main_thread() or _process_handler is not None:
        yield
        return
    with _handlers(_Once()):
        yield
