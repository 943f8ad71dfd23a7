"""Install the extension zip offline into a fresh bpy and use it (run in a subprocess, see
test_bpy_extension.py): ``python extension_check.py ZIP MOTION_FILE``.

BLENDER_USER_RESOURCES must point at an empty temporary folder before bpy is imported, so the
user's real Blender profile is never touched. Prints one JSON line with what it found.
"""

from __future__ import annotations

import importlib
import json
import sys


def main() -> int:
    archive, motion = sys.argv[1], sys.argv[2]
    import bpy  # first: it puts Blender's own modules (addon_utils) on the path

    addon_utils = importlib.import_module("addon_utils")

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=archive, repo="user_default",
                                                      enable_on_install=True)
    module = "bl_ext.user_default.staf_blender"
    loaded, enabled = addon_utils.check(module)
    imported = bpy.ops.staf.import_motion(filepath=motion, name="installed")
    found = {
        "install": sorted(result),
        "enabled": bool(enabled and loaded),
        "import": sorted(imported),
        "objects": sorted(o.name for o in bpy.data.objects),
        "core_imported": any(name == "core" or name.startswith("core.") for name in sys.modules),
        "motion_format": sys.modules[f"{module}.motion_io"].read_motion.__module__,
        "prefs": module in bpy.context.preferences.addons,
    }
    bpy.ops.preferences.addon_disable(module=module)
    found["disabled"] = not addon_utils.check(module)[1] and not hasattr(bpy.types.Scene, "staf")
    found["unregistered"] = getattr(bpy.types, "STAF_OT_import_motion", None) is None
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
