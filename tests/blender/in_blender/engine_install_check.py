"""Install the extension zip into a fresh bpy, run Install Engine from a wheel offline, and
reconstruct a clip through the installed engine (run in a subprocess, see
test_bpy_engine_install.py): ``python engine_install_check.py CONFIG.json``.

CONFIG holds: zip, wheel, site (the main venv's site-packages the new engine also sees: torch and
the other dependencies cannot be downloaded here), assets, video, frames, out (a folder), downloads
(a folder of asset files to add). BLENDER_USER_RESOURCES must point at an empty temporary folder
before bpy is imported, so the user's real Blender profile is never touched. Prints one JSON line
with what it found.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path


def _call(operator, **kwargs) -> list[str]:
    """The operator's result; in background mode an ERROR report raises instead of returning CANCELLED."""
    try:
        return sorted(operator(**kwargs))
    except RuntimeError:
        return ["CANCELLED"]


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    import bpy  # first: it puts Blender's own modules (addon_utils) on the path

    addon_utils = importlib.import_module("addon_utils")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    installed = bpy.ops.extensions.package_install_files(filepath=config["zip"], repo="user_default",
                                                         enable_on_install=True)
    module = "bl_ext.user_default.staf_blender"
    found: dict = {"install": sorted(installed), "enabled": bool(all(addon_utils.check(module)))}
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.assets_dir = config["assets"]
    addon = sys.modules[module]
    setup = sys.modules[f"{module}.install_operators"]
    root = sys.modules[f"{module}.preferences"].managed_root()
    found["root"] = str(root)

    started = time.monotonic()
    options = {"package": config["wheel"], "torch": 'NONE', "pip_options": "--no-deps --no-index",
               "extra_site": config["site"]}
    found["engine"] = _call(bpy.ops.staf.install_engine, **options)
    found["engine_s"] = round(time.monotonic() - started, 1)
    found["engine_message"] = setup.STATE.message
    python = sys.modules[f"{module}.engine_install"].managed_python(root)
    found["python"] = python
    found["candidates"] = sys.modules[f"{module}.preferences"].interpreter_candidates()
    where = subprocess.run([python, "-c", "import core; print(core.__file__)"], capture_output=True, text=True,
                           cwd=config["out"])
    found["core_file"] = where.stdout.strip()

    # A second install that cannot work offline (PyPI's staf-mocap, no index): the first stays.
    found["bad_engine"] = _call(bpy.ops.staf.install_engine, package="", torch='NONE', pip_options="--no-index")
    found["bad_message"] = setup.STATE.message
    found["python_after_bad"] = sys.modules[f"{module}.engine_install"].managed_python(root)

    found["refresh"] = _call(bpy.ops.staf.refresh_assets)
    found["assets"] = {a["name"]: a["state"] for a in setup.STATE.assets}

    prefs.assets_dir = str(Path(config["out"]) / "added")
    found["add"] = _call(bpy.ops.staf.add_asset_files, directory=config["downloads"])
    found["added"] = {a["name"]: a["state"] for a in setup.STATE.assets}
    prefs.assets_dir = config["assets"]

    settings = bpy.context.scene.staf
    settings.clip_source, settings.clip_path = 'FILE', config["video"]
    settings.use_range, settings.frame_start, settings.frame_end = True, 0, config["frames"]
    settings.device = 'cpu'
    settings.keep_motion = str(Path(config["out"]) / "motion.npz")
    started = time.monotonic()
    found["reconstruct"] = _call(bpy.ops.staf.reconstruct_video)
    found["reconstruct_s"] = round(time.monotonic() - started, 1)
    found["armatures"] = sorted(o.name for o in bpy.data.objects if o.type == 'ARMATURE')
    found["addon"] = addon.__name__
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
