"""Keys in bulk: whole F-curves written with ``keyframe_points.add`` and ``foreach_set``, never one
``keyframe_insert`` per frame (that is thousands of times slower on a long clip)."""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

__all__ = ["KeyWriter", "interpolation_value"]


def interpolation_value(name: str) -> int:
    """The enum value of an interpolation ('LINEAR', 'CONSTANT'), for ``foreach_set``."""
    return bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items[name].value


class KeyWriter:
    """Writes whole F-curves in bulk (``keyframe_points.add`` + ``foreach_set``) on fixed frames."""

    def __init__(self, channels: Any, frames: np.ndarray) -> None:
        self.channels = channels
        self.co = np.empty(2 * frames.shape[0], np.float32)
        self.co[0::2] = frames

    def curve(self, data_path: str, index: int, group: str, values: np.ndarray, interpolation: str = 'LINEAR') -> Any:
        """One F-curve ``data_path[index]`` in ``group`` with ``values`` (one per frame); returns it."""
        fcurve = self.channels.new_fcurve(data_path, index, group)
        points = fcurve.keyframe_points
        points.add(self.co.shape[0] // 2)
        self.co[1::2] = values
        points.foreach_set("co", self.co)
        points.foreach_set("interpolation", np.full(len(points), interpolation_value(interpolation), np.int32))
        fcurve.update()
        return fcurve

    def rewrite(self, fcurve: Any, values: np.ndarray) -> None:
        """New ``values`` for a curve :meth:`curve` made (same frames)."""
        self.co[1::2] = values
        fcurve.keyframe_points.foreach_set("co", self.co)
        fcurve.update()
