"""A contact sheet of the people found in a clip: a row per person, crops spread over their frames,
so a user can tell who is who before choosing ``--person`` for the expensive pass."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path
from core.crops import crop_person
from core.people.stage import PeopleResult
from core.video import VideoInfo, iter_frames

__all__ = ["write_track_sheet"]

_TILE = 160
_PER_ROW = 6


def write_track_sheet(path: Path, found: PeopleResult, info: VideoInfo, start: int) -> None:
    """Write the sheet (PNG) atomically: one labelled row of up to six crops per person."""
    wanted: dict[int, list[tuple[int, int]]] = {}  # range-local frame -> [(row, column)]
    for row, p in enumerate(found.people):
        present = p.first + np.flatnonzero(p.track.present)
        picks = present[np.linspace(0, len(present) - 1, min(_PER_ROW, len(present))).round().astype(int)]
        for col, k in enumerate(dict.fromkeys(picks.tolist())):
            wanted.setdefault(k, []).append((row, col))
    label_w = 90
    sheet = np.full((max(1, len(found.people)) * _TILE, label_w + _PER_ROW * _TILE, 3), 32, np.uint8)
    last = max(wanted, default=-1)
    for frame in iter_frames(info, start=start, end=start + last + 1):
        k = frame.index - start
        for row, col in wanted.get(k, []):
            p = found.people[row]
            tile = crop_person(frame.rgb, p.track.box[k - p.first], crop_scale=1.1, size=_TILE)
            sheet[row * _TILE:(row + 1) * _TILE, label_w + col * _TILE:label_w + (col + 1) * _TILE] = tile
    for row, p in enumerate(found.people):
        y = row * _TILE
        cv2.putText(sheet, str(p.person_id), (12, y + 70), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 3,
                    cv2.LINE_AA)
        first, last_frame = int(found.frame_index[p.first]), int(found.frame_index[p.first + len(p.track.box) - 1])
        cv2.putText(sheet, f"{first}-{last_frame}", (8, y + 110), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1,
                    cv2.LINE_AA)
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - OpenCV always encodes PNG
            raise OSError("PNG encoding failed")
        tmp.write_bytes(data.tobytes())
