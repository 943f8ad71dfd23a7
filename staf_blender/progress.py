"""The engine's progress and error lines (no bpy).

With ``--progress json`` the engine prints one JSON object per line on stdout,
``{"stage": str, "done": int, "total": int, "fps": float, "eta": float}``; on failure it prints one
line ``error: ...`` on stderr and exits non-zero (3 missing assets, 4 invalid asset, 5 bad input,
130 cancelled).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import EXIT_CANCELLED

__all__ = ["Progress", "engine_failure_message", "parse_progress_line"]


@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` items of ``stage``; fps and eta (s) when known."""

    stage: str
    done: int
    total: int
    fps: float | None = None
    eta: float | None = None

    @property
    def fraction(self) -> float:
        """Completed share of the stage, 0..1 (0 while the total is unknown)."""
        return min(1.0, max(0.0, self.done / self.total)) if self.total > 0 else 0.0

    def describe(self) -> str:
        """A short line for a status bar: ``detect 120/300, 25.0 fps, 7 s left``."""
        text = f"{self.stage} {self.done}/{self.total}" if self.total > 0 else f"{self.stage} {self.done}"
        if self.fps is not None:
            text += f", {self.fps:.1f} fps"
        if self.eta is not None:
            text += f", {self.eta:.0f} s left"
        return text


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_progress_line(line: str) -> Progress | None:
    """The Progress in one stdout line, or None for anything else (other output is not an error)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
        return None
    done, total = _number(data.get("done")), _number(data.get("total"))
    if done is None or total is None:
        return None
    return Progress(stage=data["stage"], done=int(done), total=int(total), fps=_number(data.get("fps")),
                    eta=_number(data.get("eta")))


def engine_failure_message(returncode: int, stderr_lines: Iterable[str], interpreter: str) -> str:
    """One line saying why the engine failed, from its exit code and what it wrote on stderr."""
    lines = [line.strip() for line in stderr_lines if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    if returncode == EXIT_CANCELLED or returncode in (-2, -15):
        return "cancelled"
    for line in lines:
        if "No module named" in line:
            module = line.split("No module named", 1)[1].strip(" '\"")
            return (f"the interpreter {interpreter} cannot run the engine (no module '{module}'): install "
                    "staf-mocap there or choose another interpreter")
    last = f": {lines[-1]}" if lines else ""
    return f"the engine stopped with exit code {returncode}{last}"
