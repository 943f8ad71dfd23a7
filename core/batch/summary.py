"""The run's record: one row per clip, a progress display over clips, and the summary files
``batch_summary.csv`` and ``batch_summary.json`` written (atomically) into --out."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from core.atomic import atomic_path
from core.batch.plan import Clip
from core.progress import ProgressMode

__all__ = ["COLUMNS", "SUMMARY_CSV", "SUMMARY_JSON", "ClipProgress", "Row", "exit_code", "write_summary"]

SUMMARY_CSV = "batch_summary.csv"
SUMMARY_JSON = "batch_summary.json"
COLUMNS = ("clip", "output", "frames", "people", "seconds", "status", "error", "attempts", "fbx", "blend")


@dataclass
class Row:
    """One clip's line of the summary. status: done, skipped or failed; seconds: worker time spent on
    it (reconstruction and conversion); attempts: how many times a worker started it (local pool;
    None on Ray, which retries on its own)."""

    clip: str
    output: str
    frames: int | None
    people: int | None
    seconds: float
    status: str
    error: str
    attempts: int | None
    fbx: str
    blend: str
    exit_code: int = 0

    @classmethod
    def planned(cls, clip: Clip) -> Row:
        """The row of a clip before it runs (final for skipped and refused clips)."""
        return cls(clip.label, str(clip.output or ""), clip.frames, clip.people, 0.0, clip.status, clip.error, 0,
                   str(clip.fbx or ""), str(clip.blend or ""), clip.exit_code)


def exit_code(rows: Sequence[Row]) -> int:
    """0 when every clip is done or skipped, else the exit code of the first failed clip (input order)."""
    return next((r.exit_code or 1 for r in rows if r.status == "failed"), 0)


def write_summary(out: Path, rows: Sequence[Row], meta: dict) -> tuple[Path, Path]:
    """Write the CSV (the columns of COLUMNS) and the JSON (``meta``, counts, rows) into ``out``."""
    csv_path, json_path = out / SUMMARY_CSV, out / SUMMARY_JSON
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in rows:
            record = asdict(r)
            record["seconds"] = f"{r.seconds:.2f}"
            writer.writerow(["" if record[c] is None else record[c] for c in COLUMNS])
    counts = Counter(r.status for r in rows)
    doc = {**meta, "counts": {s: counts.get(s, 0) for s in ("done", "skipped", "failed")},
           "exit_code": exit_code(rows),
           "clips": [{c: (round(r.seconds, 3) if c == "seconds" else getattr(r, c)) for c in COLUMNS}
                     | {"exit_code": r.exit_code} for r in rows]}
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return csv_path, json_path


class ClipProgress:
    """Progress over clips: a tqdm bar on stderr (``bar``; ``auto`` on a terminal), one JSON object
    per finished clip on stdout (``json``), or nothing."""

    def __init__(self, total: int, mode: ProgressMode = "auto") -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "none"
        self.mode, self.total, self.done = mode, total, 0
        self._counts: Counter[str] = Counter()
        self._start = time.perf_counter()
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="clip", desc="clips", dynamic_ncols=True, leave=True)

    def finished(self, row: Row) -> None:
        """``row`` has its final status."""
        self.done += 1
        self._counts[row.status] += 1
        if self._bar is not None:
            self._bar.set_postfix({s: self._counts[s] for s in ("done", "skipped", "failed")}, refresh=False)
            self._bar.update(1)
        elif self.mode == "json":
            print(json.dumps({"stage": "clips", "done": self.done, "total": self.total, "clip": row.clip,
                              "status": row.status, "elapsed": round(time.perf_counter() - self._start, 2)}),
                  flush=True)

    def close(self) -> None:
        """End the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
