"""STAF for Blender: reconstruct a character from video, import motion files, export FBX.

The add-on side of the project (bpy, never torch): it runs the engine (``python -m core``) as a
subprocess and reads the motion file it writes (docs/motion-format.md). Modules without bpy
(``plan``, ``rotations``, ``engine``, ``progress``, ``session``, ``fbx_presets``, ``batch``'s
argument handling) import and test without Blender; ``register`` pulls in the Blender side.
"""

from __future__ import annotations

__all__ = ["register", "unregister"]


def register() -> None:
    """Register the add-on's classes with Blender (called by Blender when the add-on is enabled)."""
    from . import addon

    addon.register()


def unregister() -> None:
    """Unregister everything :func:`register` added."""
    from . import addon

    addon.unregister()
