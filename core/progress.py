"""Progress reporting: a tqdm bar for people, one JSON object per line for programs (the add-on)."""

from __future__ import annotations

import json
import sys
import time
from typing import Literal, TextIO

__all__ = ["Progress", "ProgressMode"]

ProgressMode = Literal["auto", "bar", "json", "none"]


class Progress:
    """Reports stages of known length. ``json`` writes to stdout lines like
    ``{"stage": "detect", "done": 40, "total": 89, "fps": 31.2, "eta": 1.5}``; ``bar`` draws tqdm
    bars on stderr; ``auto`` is ``bar`` on a terminal and silent otherwise."""

    def __init__(self, mode: ProgressMode = "auto", *, out: TextIO | None = None, min_interval: float = 0.1) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "none"
        self.mode = mode
        self._out = out
        self._min_interval = min_interval
        self._bar = None
        self._stage = ""
        self._total = 0
        self._done = 0
        self._start = 0.0
        self._last = 0.0

    def stage(self, name: str, total: int) -> None:
        """Begin a stage of ``total`` steps (ending the previous one)."""
        self.close()
        self._stage, self._total, self._done = name, int(total), 0
        self._start = self._last = time.perf_counter()
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=name, unit="frame", dynamic_ncols=True, leave=True)
        self._emit(force=True)

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current stage are done."""
        self._done += steps
        if self._bar is not None:
            self._bar.update(steps)
        self._emit(force=self._done >= self._total)

    def message(self, **fields: object) -> None:
        """A one-off JSON record (json mode only), e.g. the output path at the end."""
        if self.mode == "json":
            self._write(fields)

    def _emit(self, *, force: bool) -> None:
        if self.mode != "json":
            return
        now = time.perf_counter()
        if not force and now - self._last < self._min_interval:
            return
        self._last = now
        elapsed = now - self._start
        fps = self._done / elapsed if elapsed > 0 else 0.0
        eta = (self._total - self._done) / fps if fps > 0 else None
        self._write({"stage": self._stage, "done": self._done, "total": self._total, "fps": round(fps, 2),
                     "eta": None if eta is None else round(eta, 2)})

    def _write(self, record: dict) -> None:
        out = self._out or sys.stdout
        out.write(json.dumps(record) + "\n")
        out.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
