"""Headless batch: video (or motion file) -> rigged, animated character -> FBX and/or .blend.

    blender -b -P scripts/batch.py -- VIDEO --fbx OUT.fbx [--blend OUT.blend] [--preset unity|unreal|generic]
    python scripts/batch.py VIDEO --fbx OUT.fbx ...            (where the bpy module is installed)
    python scripts/batch.py --motion FILE.npz --fbx OUT.fbx    (an existing motion file)

Every person becomes a character: one FBX holds them all, ``--split`` writes ``OUT_p<ID>.fbx`` per
person; ``--person all|0,2`` and ``--max-people N`` choose the engine's tracks. A folder as input
processes every clip in it. ``--help`` lists every option; docs/blender.md has
the details. The work is done by ``staf_blender.batch`` from this checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _arguments() -> tuple[list[str], str]:
    """The script's own arguments: after ``--`` inside Blender, else the command line's."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:], "blender -b -P scripts/batch.py --"
    if Path(sys.argv[0]).resolve() == Path(__file__).resolve():
        return sys.argv[1:], "python scripts/batch.py"
    return [], "blender -b -P scripts/batch.py --"  # inside Blender without "--": no arguments


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        import bpy  # noqa: F401  (fail here, in one line, where Blender is absent)
    except ImportError:
        print("error: this needs Blender: run it as 'blender -b -P scripts/batch.py -- ...' or with a Python "
              "where the bpy module is installed (make blender-venvs)", file=sys.stderr)
        return 3
    from staf_blender.batch import main as batch_main

    argv, prog = _arguments()
    return batch_main(argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
