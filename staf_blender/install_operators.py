"""Operators of the engine's set-up (the add-on's preferences): Install Engine, Add Downloaded
Files... and Refresh, each running in the background while Blender stays responsive.

Install Engine is modal like Reconstruct: a timer polls the :class:`InstallJob`, the preferences
show its progress, ESC or Cancel stops it. The asset operators run the engine's ``assets add`` and
``doctor --json`` in a thread; their verdicts are kept in :data:`STATE` for the preferences to draw
(module state, not saved: a verdict is only as fresh as the last check).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from .engine import resolve_interpreter
from .engine_install import InstallJob, InstallOptions, InstallResult, needs_network
from .errors import AddonError
from .preferences import engine_settings, interpreter_candidates, managed_root
from .progress import engine_failure_message

__all__ = [
    "STATE",
    "STAF_OT_add_asset_files",
    "STAF_OT_cancel_install",
    "STAF_OT_install_engine",
    "STAF_OT_refresh_assets",
    "SetupState",
]


@dataclass
class SetupState:
    """What the preferences show: the install in progress, its last result, the assets' verdicts."""

    job: InstallJob | None = None
    progress: float = 0.0
    text: str = ""
    message: str = ""
    busy: str = ""  # an asset operation running ("checking the assets", ...)
    assets: list[dict] = field(default_factory=list)
    assets_folder: str = ""
    assets_message: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)  # the last asset operation's report
    cancel_requested: bool = False


STATE = SetupState()


def _redraw(context: Any) -> None:
    """Redraw the preferences (in whichever window they are) and the 3D views."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {'PREFERENCES', 'VIEW_3D'}:
                area.tag_redraw()


def install_options(op: Any, context: Any) -> InstallOptions:
    """The operator's properties and the preferences as InstallOptions (raises AddonError)."""
    try:
        pip_options = tuple(shlex.split(op.pip_options))
    except ValueError as err:
        raise AddonError(f"pip options: {err}") from None
    return InstallOptions(package=op.package, torch=op.torch.lower(), pip_options=pip_options,
                          base_python=op.base_python, assets=engine_settings(context).assets_dir,
                          extra_site=tuple(p for p in op.extra_site.split("|") if p))


def _install_root(op: Any) -> Path:
    return Path(op.root) if op.root else managed_root(create=True)


class STAF_OT_install_engine(bpy.types.Operator):
    """Create a Python environment in the add-on's user folder and install the engine and torch into it
    (CUDA build when an NVIDIA driver is present, else CPU; ESC cancels)"""

    bl_idname = "staf.install_engine"
    bl_label = "Install Engine"
    bl_options = {'REGISTER'}

    package: StringProperty(name="Package", default="", options={'SKIP_SAVE'},
                            description="A wheel or source folder of the engine; empty: staf-mocap from PyPI")
    torch: EnumProperty(name="Torch", default='AUTO', items=(
        ('AUTO', "Automatic", "CUDA when an NVIDIA driver is present, else CPU"),
        ('CPU', "CPU", "The CPU build (smaller download)"),
        ('CUDA', "CUDA", "The NVIDIA GPU build"),
        ('NONE', "pip's choice", "No torch index: whatever pip finds"),
    ))
    pip_options: StringProperty(name="pip options", default="", options={'SKIP_SAVE'},
                                description="Extra pip arguments, e.g. --no-index --find-links DIR")
    base_python: StringProperty(name="Base Python", default="", options={'SKIP_SAVE'},
                                description="Interpreter that creates the environment; empty: Blender's Python")
    extra_site: StringProperty(name="Extra packages", default="", options={'SKIP_SAVE'},
                               description="Folders of packages the environment also sees, separated by |")
    root: StringProperty(name="Folder", default="", options={'SKIP_SAVE'},
                         description="Where the managed engine lives; empty: the add-on's user folder")

    _timer: Any = None

    @classmethod
    def poll(cls, context: Any) -> bool:
        return STATE.job is None

    def _start(self, context: Any) -> InstallJob:
        options = install_options(self, context)
        if needs_network(options) and not bpy.app.online_access:
            raise AddonError("Blender's online access is off: allow it (Preferences > System > Network) to "
                             "download the engine, or install from a downloaded wheel")
        STATE.message, STATE.progress, STATE.text, STATE.cancel_requested = "", 0.0, "starting", False
        STATE.job = InstallJob(_install_root(self), options)
        return STATE.job

    def invoke(self, context: Any, event: Any) -> set[str]:
        try:
            self._start(context)
        except AddonError as err:
            return self._fail(str(err))
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context: Any, event: Any) -> set[str]:
        job = STATE.job
        if job is None:
            return {'CANCELLED'}
        if (event.type == 'ESC' or STATE.cancel_requested) and not job.cancelling:
            job.cancel()
            STATE.text = "cancelling"
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        progress = job.poll()
        if progress is not None:
            STATE.progress, STATE.text = progress.fraction, progress.text
        _redraw(context)
        if not job.done():
            return {'PASS_THROUGH'}
        self._stop(context)
        return self._finish(context, job.result())

    def execute(self, context: Any) -> set[str]:
        """Blocking install, for scripts and background mode."""
        try:
            job = self._start(context)
        except AddonError as err:
            return self._fail(str(err))
        try:
            job.wait()
        except KeyboardInterrupt:
            job.cancel()
            job.wait()
        STATE.job = None
        return self._finish(context, job.result())

    def cancel(self, context: Any) -> None:
        """Blender ends the operator (a file is loaded, Blender quits): stop the install."""
        if STATE.job is not None:
            STATE.job.close()
        self._stop(context)

    def _stop(self, context: Any) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        STATE.job, STATE.cancel_requested = None, False

    def _fail(self, message: str) -> set[str]:
        STATE.message = message
        self.report({'ERROR'}, message)
        return {'CANCELLED'}

    def _finish(self, context: Any, result: InstallResult) -> set[str]:
        STATE.progress, STATE.text = 0.0, ""
        _redraw(context)
        if not result.ok:
            STATE.message = result.message
            self.report({'WARNING'} if result.cancelled else {'ERROR'}, f"Install engine: {result.message}")
            return {'CANCELLED'}
        note = ""
        if engine_settings(context).python_path:
            note = " (the Python interpreter preference is set: clear it to use this engine)"
        STATE.message = result.message + note
        self.report({'INFO'}, STATE.message)
        return {'FINISHED'}


class STAF_OT_cancel_install(bpy.types.Operator):
    """Stop the running install (the previous engine stays as it was)"""

    bl_idname = "staf.cancel_install"
    bl_label = "Cancel"
    bl_options = {'INTERNAL'}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return STATE.job is not None

    def execute(self, context: Any) -> set[str]:
        STATE.cancel_requested = True
        return {'FINISHED'}


# --------------------------------------------------------------------------------------------
# The assets, through the engine


@dataclass(frozen=True)
class _Engine:
    """The engine's interpreter and asset folder, read from the preferences on the main thread (a
    worker thread must not touch bpy)."""

    python: str
    assets: str
    source: str = ""  # Add Downloaded Files: the folder or .zip

    @classmethod
    def from_context(cls, context: Any) -> _Engine:
        prefs = engine_settings(context)
        return cls(resolve_interpreter(prefs.python_path, interpreter_candidates()), prefs.assets_dir)

    def run(self, *args: str, timeout: float = 3600.0) -> tuple[dict | None, str]:
        """``python -m core ARGS --json [--assets DIR]``: its JSON object (None if it printed none)
        and, when it failed, one line saying why."""
        cmd = [self.python, "-m", "core", *args, "--json"] + (["--assets", self.assets] if self.assets else [])
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, encoding="utf-8",
                                  errors="replace", timeout=timeout, cwd=tempfile.gettempdir())
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"the engine did not run ({err})"
        data = None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("{"):
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                break
        failure = "" if proc.returncode == 0 else engine_failure_message(proc.returncode, proc.stderr.splitlines(),
                                                                           self.python)
        return (data if isinstance(data, dict) else None), failure

    def store_doctor(self) -> None:
        """Run the doctor and keep its verdicts in :data:`STATE`."""
        report, failure = self.run("doctor")
        if report is None:
            STATE.assets, STATE.assets_message = [], failure or "the engine's doctor printed no report"
            return
        STATE.assets, STATE.assets_folder = list(report.get("assets", [])), str(report.get("folder", ""))
        bad = [a for a in STATE.assets
               if a.get("state") != "found" and (a.get("required") or a.get("state") == "invalid")]
        STATE.assets_message = ("Ready: every required file found and valid" if report.get("ready") else
                                f"Not ready: {len(bad)} file{'s' if len(bad) != 1 else ''} missing or invalid")
        if report.get("standins"):
            STATE.assets_message += " (stand-in files: for tests only)"


class _Background:
    """An operator whose work (``work(engine)``, returning report lines as (level, text) pairs)
    runs in a thread while Blender stays responsive; the lines then show in the preferences
    (:data:`STATE`). In background mode (scripts, tests) it blocks and reports them itself."""

    busy_text = "working"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not STATE.busy

    def prepare(self, context: Any) -> _Engine:
        """What the work needs from bpy, read on the main thread (raises AddonError)."""
        return _Engine.from_context(context)

    @staticmethod
    def work(engine: _Engine) -> list[tuple[str, str]]:
        """The work itself, on plain values only (the operator may be gone when a thread runs it)."""
        raise NotImplementedError

    @classmethod
    def _lines(cls, engine: _Engine) -> list[tuple[str, str]]:
        try:
            return cls.work(engine)
        except AddonError as err:
            return [('ERROR', str(err))]
        except Exception as err:  # the thread must end with a line, never silently
            return [('ERROR', f"{cls.bl_label} failed ({type(err).__name__}: {err})")]

    def execute(self, context: Any) -> set[str]:
        try:
            engine = self.prepare(context)
        except AddonError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        STATE.busy, STATE.lines = self.busy_text, []
        if bpy.app.background:
            lines = self._lines(engine)
            STATE.busy, STATE.lines = "", lines
            for level, text in lines:
                self.report({level}, text)
            return {'CANCELLED'} if any(level == 'ERROR' for level, _ in lines) else {'FINISHED'}
        done: list[list[tuple[str, str]]] = []
        cls, label = type(self), self.bl_label
        thread = threading.Thread(target=lambda: done.append(cls._lines(engine)), daemon=True)

        def watch() -> float | None:
            if thread.is_alive():
                return 0.25
            STATE.busy, STATE.lines = "", done[0] if done else [('ERROR', f"{label} stopped")]
            _redraw(bpy.context)
            return None

        thread.start()
        bpy.app.timers.register(watch, first_interval=0.25)
        self.report({'INFO'}, f"{self.busy_text[0].upper()}{self.busy_text[1:]}: the result shows in the "
                              "add-on's preferences")
        return {'FINISHED'}


class STAF_OT_refresh_assets(_Background, bpy.types.Operator):
    """Check each asset file with the engine's doctor (found / missing / invalid and why)"""

    bl_idname = "staf.refresh_assets"
    bl_label = "Check Assets"
    bl_options = {'REGISTER'}
    busy_text = "checking the asset files"

    @staticmethod
    def work(engine: _Engine) -> list[tuple[str, str]]:
        engine.store_doctor()
        level = 'INFO' if STATE.assets and STATE.assets_message.startswith("Ready") else 'WARNING'
        return [(level if STATE.assets else 'ERROR', STATE.assets_message)]


class STAF_OT_add_asset_files(_Background, bpy.types.Operator):
    """Check each file of a downloaded folder or .zip and copy them into the asset folder only if all are valid"""

    bl_idname = "staf.add_asset_files"
    bl_label = "Add Downloaded Files..."
    bl_options = {'REGISTER'}
    busy_text = "checking and adding the downloaded files"

    filepath: StringProperty(subtype='FILE_PATH', options={'SKIP_SAVE'})
    directory: StringProperty(subtype='DIR_PATH', options={'SKIP_SAVE'})
    filter_glob: StringProperty(default="*.zip", options={'HIDDEN'})

    def invoke(self, context: Any, event: Any) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def source(self) -> str:
        """The chosen .zip, or the folder when no file was picked."""
        chosen = bpy.path.abspath(self.filepath) if self.filepath else ""
        if chosen and Path(chosen).is_file():
            return chosen
        return bpy.path.abspath(self.directory) if self.directory else chosen

    def prepare(self, context: Any) -> _Engine:
        source = self.source()
        if not source:
            raise AddonError("choose the downloaded folder or .zip")
        return replace(super().prepare(context), source=source)

    @staticmethod
    def work(engine: _Engine) -> list[tuple[str, str]]:
        report, failure = engine.run("assets", "add", engine.source)
        lines: list[tuple[str, str]] = []
        for entry in (report or {}).get("files", []):
            if entry.get("state") in ("valid", "invalid", "unsafe"):
                level = 'INFO' if entry["state"] == "valid" else 'WARNING'
                done = f" ({entry['action']})" if entry.get("action") else ""
                lines.append((level, f"{entry.get('where')}: {entry['state']}, {entry.get('detail')}{done}"))
        engine.store_doctor()
        if failure:
            lines.append(('ERROR', failure))
        elif report is not None:
            lines.append(('INFO', str(report.get("message", "done"))))
        return lines


def assets_icon(entry: dict) -> str:
    """The icon of one doctor verdict in the preferences."""
    state = entry.get("state")
    if state == "found":
        return 'CHECKMARK'
    if state == "invalid":
        return 'CANCEL'
    return 'ERROR' if entry.get("required") else 'DOT'

