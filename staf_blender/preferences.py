"""Add-on preferences: the engine's Python interpreter and the asset folder."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import bpy
from bpy.props import StringProperty

__all__ = ["EngineSettings", "STAF_AddonPreferences", "engine_settings", "interpreter_candidates"]


@dataclass(frozen=True)
class EngineSettings:
    """The preferences as plain values: python_path ("" = find one) and assets_dir ("" = the
    engine's default folder)."""

    python_path: str = ""
    assets_dir: str = ""


class STAF_AddonPreferences(bpy.types.AddonPreferences):
    """Where the engine runs."""

    bl_idname = __package__

    python_path: StringProperty(
        name="Python interpreter",
        description="Python with the STAF engine (staf-mocap, torch) installed; empty: Blender's own "
                    "Python if it can import the engine",
        subtype='FILE_PATH',
    )
    assets_dir: StringProperty(
        name="Asset folder",
        description="Folder with the STAF weights and SMPL files; empty: the engine's default "
                    "(STAF_ASSETS or the per-user data folder)",
        subtype='DIR_PATH',
    )

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "assets_dir")
        layout.operator("staf.check_engine", icon='CHECKMARK')


def engine_settings(context: Any) -> EngineSettings:
    """The add-on's preferences (defaults when it runs without being enabled, e.g. from a script)."""
    addon = context.preferences.addons.get(__package__)
    if addon is None or addon.preferences is None:
        return EngineSettings()
    prefs = addon.preferences
    return EngineSettings(python_path=bpy.path.abspath(prefs.python_path) if prefs.python_path else "",
                          assets_dir=bpy.path.abspath(prefs.assets_dir) if prefs.assets_dir else "")


def interpreter_candidates() -> list[str]:
    """Interpreters tried when none is configured: Blender's own Python."""
    return [sys.executable]
