"""People in a motion file, without bpy: the person choice ("all" or ids) and the track list.

The engine reconstructs ``--person all`` (every track) or a list of track ids, ordered by
prominence (0 = the most on screen); the motion file's person ids are those track ids. The same
text is accepted everywhere a user picks people: the panel, the import operator and batch mode.
:func:`summarise_people` is what the panel lists after a run (id, frames, first-last frame).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .errors import EXIT_BAD_INPUT, AddonError
from .motion_io import Motion
from .plan import sanitize_name

__all__ = [
    "PEOPLE_HELP",
    "TrackSummary",
    "free_base_name",
    "parse_people",
    "people_spec",
    "summarise_people",
]

#: The one line shown for a person choice that cannot be read.
PEOPLE_HELP = "People: 'all' or ids like 0, 2"


def parse_people(text: str, *, exit_code: int = EXIT_BAD_INPUT) -> tuple[int, ...] | None:
    """``"all"`` (or empty) -> None; ``"0, 2"``, ``"0,2"`` or ``"0 2"`` -> (0, 2), duplicates dropped.

    Raises AddonError with :data:`PEOPLE_HELP` and the text given for anything else (negative ids too).
    """
    cleaned = str(text).strip()
    if not cleaned or cleaned.lower() == "all":
        return None
    parts = cleaned.replace(",", " ").split()
    if not parts or not all(p.isdigit() for p in parts):  # isdigit: no signs, no decimals
        raise AddonError(f"{PEOPLE_HELP}, not '{cleaned}'", exit_code)
    return tuple(dict.fromkeys(int(p) for p in parts))


def people_spec(ids: Iterable[int] | None) -> str:
    """The engine's ``--person`` value: ``all`` for None, else ids joined by commas (``0,2``)."""
    return "all" if ids is None else ",".join(str(int(i)) for i in ids)


@dataclass(frozen=True)
class TrackSummary:
    """One person of a motion file as the panel lists it.

    person_id: the track id; frames: how many frames have the person; first, last: clip frames
    (inclusive); segments: runs of consecutive frames (2 or more: the person is missing in between).
    """

    person_id: int
    frames: int
    first: int
    last: int
    segments: int

    def label(self, frame_offset: int = 1) -> str:
        """One line: ``#0  48 frames, 1-48 (2 parts)``, frames as Blender numbers (clip + offset)."""
        if self.frames == 0:
            return f"#{self.person_id}  no frames"
        parts = f" ({self.segments} parts)" if self.segments > 1 else ""
        noun = "frame" if self.frames == 1 else "frames"
        return (f"#{self.person_id}  {self.frames} {noun}, "
                f"{self.first + frame_offset}-{self.last + frame_offset}{parts}")


def summarise_people(motion: Motion) -> tuple[TrackSummary, ...]:
    """A :class:`TrackSummary` per person of ``motion``, in the file's order."""
    summaries = []
    for person in motion.people:
        frame = np.asarray(person.frame, np.int64)
        if frame.size == 0:
            summaries.append(TrackSummary(int(person.person_id), 0, 0, 0, 0))
            continue
        segments = 1 + int(np.count_nonzero(np.diff(frame) > 1))
        summaries.append(TrackSummary(int(person.person_id), int(frame.size), int(frame[0]), int(frame[-1]),
                                      segments))
    return tuple(summaries)


def free_base_name(base: str, person_ids: Iterable[int], taken: Callable[[str], bool]) -> str:
    """The first of ``base``, ``base_2``, ``base_3``... under which an import of ``person_ids``
    finds every name free (collection, ``<base>_p<id>``, ``<base>_p<id>_body``, ``<base>_camera``);
    ``taken(name)`` says whether a name is in use. Nothing existing is ever renamed."""
    ids = list(person_ids)
    root = sanitize_name(base)
    for n in range(1, 1000):
        suffix = "" if n == 1 else f"_{n}"
        candidate = sanitize_name(root[:40 - len(suffix)] + suffix)
        names = [candidate, f"{candidate}_camera"]
        names += [name for pid in ids for name in (f"{candidate}_p{pid}", f"{candidate}_p{pid}_body")]
        if not any(taken(name) for name in names):
            return candidate
    raise AddonError(f"no free name for a new import of '{root}': rename or delete earlier imports")
