"""Add-on preferences: the engine's Python interpreter and the asset folder, and setting both up
(Install Engine, the asset files' verdicts, Add Downloaded Files...)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

__all__ = ["EngineSettings", "STAF_AddonPreferences", "engine_settings", "interpreter_candidates", "managed_root"]


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
        description="Python with the STAF engine (staf-mocap, torch) installed; empty: the engine "
                    "installed by Install Engine, else Blender's own Python if it can import the engine",
        subtype='FILE_PATH',
    )
    assets_dir: StringProperty(
        name="Asset folder",
        description="Folder with the STAF weights and SMPL files; empty: the engine's default "
                    "(STAF_ASSETS or the per-user data folder)",
        subtype='DIR_PATH',
    )

    def draw(self, context: Any) -> None:
        from .install_operators import STATE, assets_icon

        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "assets_dir")
        row = layout.row(align=True)
        if STATE.job is not None:
            if hasattr(row, "progress"):
                row.progress(factor=STATE.progress, type='BAR', text=STATE.text or "installing")
            else:
                row.label(text=f"{STATE.text} ({STATE.progress:.0%})")
            row.operator("staf.cancel_install", icon='CANCEL')
        else:
            row.operator("staf.install_engine", icon='IMPORT')
        row.operator("staf.check_engine", icon='CHECKMARK')
        managed = _managed_python()
        layout.label(text=f"Installed engine: {managed}" if managed else "No engine installed by the add-on yet",
                     icon='CONSOLE')
        if STATE.message:
            layout.label(text=STATE.message, icon='INFO')

        box = layout.box()
        row = box.row(align=True)
        row.label(text="Asset files", icon='FILE_FOLDER')
        row.operator("staf.refresh_assets", icon='FILE_REFRESH')
        row.operator("staf.add_asset_files", icon='ADD')
        if STATE.busy:
            box.label(text=STATE.busy + "...", icon='SORTTIME')
        for level, text in STATE.lines[-12:]:
            box.label(text=text, icon={'ERROR': 'CANCEL', 'WARNING': 'ERROR'}.get(level, 'INFO'))
        if not STATE.assets:
            box.label(text=STATE.assets_message or "Not checked yet: press Check Assets")
            return
        box.label(text=f"{STATE.assets_message} ({STATE.assets_folder})")
        for entry in STATE.assets:
            state = entry.get("state", "?")
            optional = "" if entry.get("required") or state != "missing" else " (optional)"
            col = box.column(align=True)
            col.label(text=f"{entry.get('name')}: {state}{optional}", icon=assets_icon(entry))
            if state == "invalid":
                col.label(text=f"    {entry.get('detail')}")
            if state != "found" and (entry.get("required") or state == "invalid"):
                col.label(text=f"    get it from {entry.get('source')}")


def engine_settings(context: Any) -> EngineSettings:
    """The add-on's preferences (defaults when it runs without being enabled, e.g. from a script)."""
    addon = context.preferences.addons.get(__package__)
    if addon is None or addon.preferences is None:
        return EngineSettings()
    prefs = addon.preferences
    return EngineSettings(python_path=bpy.path.abspath(prefs.python_path) if prefs.python_path else "",
                          assets_dir=bpy.path.abspath(prefs.assets_dir) if prefs.assets_dir else "")


def managed_root(*, create: bool = False) -> Path:
    """Where Install Engine puts the engine: the extension's user folder (never the add-on's own
    folder); a legacy add-on (not an extension) uses Blender's user data folder."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path="", create=create))
    except ValueError:  # not installed as an extension
        return Path(bpy.utils.user_resource('DATAFILES', path=__package__, create=create))


def _managed_python() -> str | None:
    from .engine_install import managed_python

    try:
        return managed_python(managed_root())
    except (OSError, ValueError):
        return None


def interpreter_candidates() -> list[str]:
    """Interpreters tried when none is configured: the engine Install Engine made, then Blender's own Python."""
    return [c for c in (_managed_python(), sys.executable) if c]
