"""Build the installable Blender extension zip of the add-on (standard library only).

    python scripts/build_extension.py [--out build/extension] [--validate BLENDER_EXT_PY]

The zip holds ``blender_manifest.toml`` and the ``staf_blender`` package at its root, plus copies of
the engine's motion-file reader (``core/motion_format.py`` and the two modules it imports) under
``vendor/`` (the add-on reads motion files with them and never imports ``core``). Entries are
sorted and time-stamped identically, so the same sources give the same bytes. ``--validate``
runs Blender's own extension validator (``bpy/<ver>/scripts/addons_core/bl_pkg/cli/blender_ext.py``,
plain Python) on the result; ``auto`` picks it from a ``.venv-bpy*`` folder of this checkout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "staf_blender"
MANIFEST = ROOT / "blender_manifest.toml"
#: The engine's modules the add-on ships (numpy + standard library, relative imports only).
VENDORED = ("motion_format.py", "motion_schema.py", "npz_archive.py")
EXCLUDE_NAMES = {"__pycache__", "ruff.toml", "vendor"}
_STAMP = (2024, 1, 1, 0, 0, 0)


def package_files() -> dict[str, bytes]:
    """Archive name -> contents of every file the extension ships."""
    files = {"blender_manifest.toml": MANIFEST.read_bytes()}
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE)
        hidden_or_excluded = any(part in EXCLUDE_NAMES or part.startswith(".") for part in rel.parts)
        if path.is_dir() or hidden_or_excluded or path.suffix == ".pyc":
            continue
        files[rel.as_posix()] = path.read_bytes()
    files["vendor/__init__.py"] = b'"""Engine modules the add-on needs, copied in by scripts/build_extension.py."""\n'
    for name in VENDORED:
        files[f"vendor/{name}"] = (ROOT / "core" / name).read_bytes()
    return files


def build(out: Path) -> Path:
    """Write ``<id>-<version>.zip`` into ``out``; returns its path."""
    manifest = tomllib.loads(MANIFEST.read_text())
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(package_files().items()):
            info = zipfile.ZipInfo(name, date_time=_STAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    tmp.replace(target)
    return target


def find_validator() -> Path | None:
    """Blender's ``blender_ext.py`` from a ``.venv-bpy*`` of this checkout, if one is installed."""
    pattern = ".venv-bpy*/lib/python*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"
    found = sorted(ROOT.glob(pattern))
    return found[-1] if found else None


def validate(archive: Path, validator: Path) -> None:
    """Run Blender's extension validator on ``archive``; raises SystemExit with its output on failure."""
    proc = subprocess.run([sys.executable, str(validator), "validate", str(archive)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: Blender's validator rejected {archive}: {(proc.stdout + proc.stderr).strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "extension", help="output folder")
    parser.add_argument("--validate", default="", metavar="BLENDER_EXT_PY",
                        help="path of Blender's blender_ext.py, or 'auto' (default: no validation)")
    args = parser.parse_args()
    archive = build(args.out)
    if args.validate:
        validator = find_validator() if args.validate == "auto" else Path(args.validate)
        if validator is None or not validator.is_file():
            print("error: Blender's blender_ext.py not found: run 'make blender-venvs' or pass its path",
                  file=sys.stderr)
            return 3
        validate(archive, validator)
        print(f"validated with {validator}")
    print(archive)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
