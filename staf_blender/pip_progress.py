"""pip for the engine's install (no bpy): what to install, the command line, and pip's output
read as progress and as one line saying why it failed."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import AddonError

if TYPE_CHECKING:
    from .engine_install import InstallOptions

__all__ = ["PYPI_PACKAGE", "TORCH_INDEXES", "InstallProgress", "PipProgress", "needs_network", "package_spec",
           "pip_command"]

PYPI_PACKAGE = "staf-mocap"
#: pip's extra index per torch build (Linux PyPI wheels are CUDA builds; the CPU index is ~5x smaller).
TORCH_INDEXES = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://download.pytorch.org/whl/cu128"}
_OFFLINE = re.compile(r"NewConnectionError|Network is unreachable|Temporary failure in name resolution|"
                      r"Failed to establish a new connection|No route to host|Name or service not known|"
                      r"getaddrinfo failed")


def package_spec(package: str) -> str:
    """What pip installs: the PyPI name, or the absolute path of a wheel / source folder (checked)."""
    if not package:
        return PYPI_PACKAGE
    path = Path(package).expanduser()
    if path.suffix == ".whl" or os.sep in package or path.exists():
        if path.is_file() and path.suffix == ".whl":
            return str(path.absolute())
        if path.is_dir() and ((path / "pyproject.toml").is_file() or (path / "setup.py").is_file()):
            return str(path.absolute())
        raise AddonError(f"{package}: not a wheel (.whl) or a source folder of the engine (with pyproject.toml)")
    return package


def needs_network(options: InstallOptions) -> bool:
    """Whether pip will reach a package index (it will unless told ``--no-index``)."""
    return "--no-index" not in options.pip_options


def pip_command(python: str, options: InstallOptions, torch_build: str, *, raw_progress: bool = False) -> list[str]:
    """The pip command line that installs the engine (and a torch of ``torch_build``) into ``python``'s env."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "raw" if raw_progress else "off"]
    if torch_build in TORCH_INDEXES:
        cmd += ["--extra-index-url", TORCH_INDEXES[torch_build]]
    return [*cmd, *options.pip_options, package_spec(options.package)]


# --------------------------------------------------------------------------------------------
# Progress


@dataclass(frozen=True)
class InstallProgress:
    """Where the install is: ``fraction`` 0..1 of the whole and a short line for the UI."""

    fraction: float
    text: str


class PipProgress:
    """Turns pip's output lines into progress (pip says what it collects, downloads and installs,
    never how many packages are to come, so collecting approaches its share asymptotically)."""

    START, END = 0.1, 0.9

    def __init__(self) -> None:
        self.collected = 0
        self.errors: list[str] = []
        self.offline = False
        self._file = ""

    def _at(self, share: float) -> float:
        return self.START + (self.END - self.START) * share

    def feed(self, line: str) -> InstallProgress | None:
        """The progress this line of pip's output means, or None."""
        text = line.strip()
        if _OFFLINE.search(text):
            self.offline = True
        if text.startswith("ERROR:"):
            self.errors.append(text[len("ERROR:"):].strip())
            return None
        words = text.split()
        if text.startswith("Collecting ") and len(words) > 1:
            self.collected += 1
            return InstallProgress(self._at(0.6 * (1 - math.exp(-self.collected / 12))), f"collecting {words[1]}")
        if text.startswith("Downloading ") and len(words) > 1:
            self._file = words[1].rsplit("/", 1)[-1]
            size = " ".join(words[2:]).strip("()")
            return InstallProgress(self._at(0.6 * (1 - math.exp(-self.collected / 12))),
                                   f"downloading {self._file}" + (f" ({size})" if size else ""))
        match = re.fullmatch(r"Progress (\d+) of (\d+)", text)
        if match and int(match[2]) > 0:
            done, total = int(match[1]), int(match[2])
            return InstallProgress(self._at(0.6 * (1 - math.exp(-self.collected / 12))),
                                   f"downloading {self._file} {done >> 20}/{total >> 20} MB")
        if text.startswith("Processing ") and len(words) > 1:
            return InstallProgress(self._at(0.6 * (1 - math.exp(-self.collected / 12))),
                                   f"processing {Path(words[1]).name}")
        if text.startswith("Installing collected packages:"):
            count = len(text.split(":", 1)[1].split(","))
            return InstallProgress(self._at(0.75), f"installing {count} package{'s' if count != 1 else ''}")
        if text.startswith("Successfully installed"):
            return InstallProgress(self._at(1.0), "installed")
        return None

    def failure(self, returncode: int, tail: Sequence[str]) -> str:
        """One line saying why pip failed."""
        if self.offline:
            return ("cannot download the engine's packages: no connection to the package index; connect to "
                    "the internet, or install from a downloaded wheel")
        if self.errors:
            return f"pip could not install the engine: {self.errors[-1]}"
        last = next((t.strip() for t in reversed(tail) if t.strip()), "")
        return f"pip stopped with exit code {returncode}" + (f": {last}" if last else "")
