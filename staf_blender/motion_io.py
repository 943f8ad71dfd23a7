"""The motion file reader, from the copy shipped inside the extension or from the source tree.

``core/motion_format.py`` is the single definition of the motion file (numpy + standard library;
its checks in ``core/motion_schema.py``, its bounded archive reading in ``core/npz_archive.py``).
The extension build copies the three to ``staf_blender/vendor/``, so an installed add-on never
needs ``core``; running from a source checkout, the same modules come from ``core``.
"""

from __future__ import annotations

from pathlib import Path

try:
    from .vendor.motion_format import (
        FLAG_DETECTED,
        FLAG_INTERPOLATED,
        FORMAT_VERSION,
        Motion,
        MotionFormatError,
        PersonMotion,
        read_motion,
    )
except ModuleNotFoundError as _missing:  # a source checkout: no vendored copy; the engine's module is beside us
    if _missing.name not in (f"{__package__}.vendor", f"{__package__}.vendor.motion_format"):
        raise
    from core.motion_format import (
        FLAG_DETECTED,
        FLAG_INTERPOLATED,
        FORMAT_VERSION,
        Motion,
        MotionFormatError,
        PersonMotion,
        read_motion,
    )

from .errors import EXIT_BAD_INPUT, AddonError

__all__ = [
    "FLAG_DETECTED",
    "FLAG_INTERPOLATED",
    "FORMAT_VERSION",
    "Motion",
    "MotionFormatError",
    "PersonMotion",
    "load_motion",
    "read_motion",
]


def load_motion(path: str | Path) -> Motion:
    """Read and validate a motion file; any problem becomes one ``AddonError`` line."""
    try:
        return read_motion(Path(path))
    except MotionFormatError as err:
        raise AddonError(str(err), EXIT_BAD_INPUT) from None
