"""``staf doctor``: report, file by file, whether the asset folder is complete and valid."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from core.assets import ASSETS, AssetStatus, check_assets, folder_missing_message
from core.errors import EXIT_ASSET_INVALID, EXIT_ASSET_MISSING

__all__ = ["run_doctor"]


def _line(status: AssetStatus, width: int) -> str:
    """One line: name, state, then the summary, or why and where to get the file."""
    spec = status.spec
    name = status.path.name if status.state != "missing" else spec.name
    label = status.state if spec.required or status.state != "missing" else "missing (optional)"
    text = f"  {name:<{width}}  {label}"
    if status.state == "found":
        return f"{text}: {status.detail}"
    if status.state == "invalid":
        why = status.detail.removeprefix(f"{status.path}: ").rstrip(".")
        return f"{text} ({why}); get it from {spec.source}"
    return f"{text}: {spec.description}; get it from {spec.source}"


def run_doctor(folder: Path, *, out: TextIO | None = None) -> int:
    """Print the state of each asset in ``folder`` and a summary to ``out`` (default: the current
    ``sys.stdout``); return the exit code.

    0: every required asset found and valid; 3 (EXIT_ASSET_MISSING): something required is missing
    (nothing invalid); 4 (EXIT_ASSET_INVALID): something present is invalid (optional ones too).
    """
    out = sys.stdout if out is None else out
    folder = Path(folder)
    out.write(f"Asset folder: {folder}\n")
    if not folder.is_dir():
        out.write(f"  {folder_missing_message(folder)}.\n  The files it must hold:\n")
        for spec in ASSETS:
            if spec.required:
                out.write(f"  {spec.name}: {spec.description}; get it from {spec.source}\n")
        out.write("Not ready: the asset folder is missing.\n")
        return EXIT_ASSET_MISSING
    from core.standins import STANDIN_MARKER  # written into a folder of stand-ins

    if (folder / STANDIN_MARKER).is_file():
        out.write("  note: this folder holds stand-in assets (random weights, a look-alike body), not the real files\n")
    statuses = check_assets(folder)
    width = max(len(spec.name) for spec in ASSETS)
    for status in statuses:
        out.write(_line(status, width) + "\n")
    invalid = [s for s in statuses if s.state == "invalid"]
    missing = [s for s in statuses if s.state == "missing" and s.spec.required]
    if invalid or missing:
        counts = []
        if missing:
            counts.append(f"{len(missing)} required file{'s' if len(missing) != 1 else ''} missing")
        if invalid:
            counts.append(f"{len(invalid)} file{'s' if len(invalid) != 1 else ''} invalid")
        out.write(f"Not ready: {', '.join(counts)}.\n")
        return EXIT_ASSET_INVALID if invalid else EXIT_ASSET_MISSING
    found = sum(1 for s in statuses if s.state == "found")
    out.write(f"Ready: all {sum(1 for s in ASSETS if s.required)} required files found and valid ({found} in all).\n")
    return 0
