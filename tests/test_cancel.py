"""Cancellation: a signal stays a cancellation whatever a library makes of it on the way up.

CI once saw SIGTERM land inside torch's ``load_state_dict``, which collects the exception a
parameter copy raised into a RuntimeError of its own; the command printed a traceback instead of
one line and exit 130. These tests raise the signal in the same places, in-process."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import pytest
import torch

from core import cli
from core.atomic import atomic_path
from core.cancel import Cancelled, cancellable
from core.errors import EXIT_CANCELLED, StafError


class _Tripwire(torch.Tensor):
    """A tensor that sends this process SIGTERM when torch copies it into a parameter."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.copy_:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__torch_function__(func, types, args, kwargs or {})


def _load_with_a_signal_inside() -> None:
    layer = torch.nn.Linear(2, 2)
    state = {k: v.detach().clone().as_subclass(_Tripwire) for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)


def test_torch_turns_the_signal_into_its_own_error_without_us() -> None:
    """The premise: outside our handlers' care, the exception reaches us as torch's RuntimeError."""
    def raising(signum: int, _frame: object) -> None:
        raise Cancelled("raw")

    previous = signal.signal(signal.SIGTERM, raising)
    try:
        with pytest.raises(RuntimeError, match="raw"):
            _load_with_a_signal_inside()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_wrapped_by_a_library_leaves_cancellable_as_cancelled() -> None:
    with pytest.raises(Cancelled, match="SIGTERM") as caught:
        with cancellable():
            _load_with_a_signal_inside()
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_genuine_error_inside_cancellable_is_left_alone() -> None:
    with pytest.raises(RuntimeError, match="genuine"):
        with cancellable():
            raise RuntimeError("genuine")


def test_a_signal_a_library_swallowed_still_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.npz"
    target.write_bytes(b"the user's own")
    with pytest.raises(Cancelled):
        with cancellable(), atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except Exception:  # what a careless library does
                pass
            tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"the user's own"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


@pytest.fixture
def _signals_restored():
    """A fired command-line run ignores signals from then on (the process is on its way out);
    give pytest its handlers back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _cli_running(monkeypatch: pytest.MonkeyPatch, work) -> None:
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=lambda _args: work())
    monkeypatch.setattr(cli, "build_parser", lambda: parser)


@pytest.mark.usefixtures("_signals_restored")
@pytest.mark.parametrize("wrap", [RuntimeError, StafError, OSError])
def test_the_command_line_reports_a_wrapped_signal_as_one_cancelled_line(
        wrap: type, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def work() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except Exception as err:
            raise wrap(f"the library's own words about {err}") from None
        return 0

    _cli_running(monkeypatch, work)
    assert cli.main([]) == EXIT_CANCELLED
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: cancelled by SIGTERM; nothing was written"]


def test_the_command_line_still_shows_a_genuine_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    def work() -> int:
        raise RuntimeError("a bug of ours")

    _cli_running(monkeypatch, work)
    with pytest.raises(RuntimeError, match="a bug of ours"):
        cli.main([])
