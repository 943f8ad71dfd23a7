"""The asset folder: which files the engine needs, where users get them, and checking them.

The files are licensed to the user and never bundled; each is described as data in ``ASSETS``
(what it is, where to download it, whether it is required, and how to validate it cheaply but
for real: right kind, loadable, expected keys and shapes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import AssetInvalid, AssetMissing
from core.paths import path_problem

__all__ = [
    "ASSETS",
    "ASSETS_ENV",
    "STAF_FILE",
    "AssetSpec",
    "AssetState",
    "AssetStatus",
    "asset_spec",
    "check_assets",
    "default_assets_dir",
    "folder_missing_message",
    "require_assets",
    "resolve_assets_dir",
]

#: Environment variable naming the asset folder (``--assets DIR`` wins over it).
ASSETS_ENV = "STAF_ASSETS"

#: The published STAF weights' file name (the release's own).
STAF_FILE = "3dpw_model_best.pth.tar"

AssetState = Literal["found", "missing", "invalid"]

_STAF_RELEASE = (
    "the STAF authors' public release (the README of their GitHub repository links the data/base_data "
    "download, which holds this file)"
)
_SMPL_SITE = "the SMPL website, https://smpl.is.tue.mpg.de (free registration required)"
_SMPL_NEUTRAL_SOURCE = (
    f"{_SMPL_SITE}: the neutral model (v1.0.0, distributed with SMPLify, https://smplify.is.tue.mpg.de, "
    "as basicModel_neutral_lbs_10_207_0_v1.0.0.pkl), saved in the asset folder as SMPL_NEUTRAL.pkl"
)


def _smpl_gendered_source(gender: str) -> str:
    return (
        f"{_SMPL_SITE}: the {gender.lower()} model of 'SMPL for Python', saved in the asset folder as "
        f"SMPL_{gender.upper()}.pkl"
    )


@dataclass(frozen=True)
class AssetSpec:
    """One asset file: ``check(path)`` validates it and returns a short summary, or raises AssetInvalid.

    ``alternatives`` are other file names accepted for the same asset (looked for after ``name``).
    """

    name: str
    description: str
    source: str
    required: bool
    check: Callable[[Path], str]
    alternatives: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """``name`` then the alternatives, in the order they are looked for."""
        return (self.name, *self.alternatives)

    def locate(self, folder: Path) -> Path | None:
        """The first of ``names`` that exists in ``folder``, or None."""
        for candidate in self.names:
            path = Path(folder) / candidate
            if path.exists():
                return path
        return None


@dataclass(frozen=True)
class AssetStatus:
    """The outcome of checking one asset: ``detail`` is the summary, or why it is missing/invalid."""

    spec: AssetSpec
    path: Path
    state: AssetState
    detail: str


# --------------------------------------------------------------------------------------------
# Checks (imports are local: checking one file should not import what another needs)


def _check_staf(path: Path) -> str:
    from core.model.checkpoint import inspect_staf_checkpoint

    return inspect_staf_checkpoint(path)


def _check_backbone(path: Path) -> str:
    from core.model.checkpoint import inspect_backbone_checkpoint

    return inspect_backbone_checkpoint(path)


def _check_smpl(path: Path) -> str:
    from core.smpl import load_smpl_data

    data = load_smpl_data(path)
    return f"SMPL body model, {data.v_template.shape[0]} vertices, {data.parents.shape[0]} joints"


def _regressor_check(rows: int) -> Callable[[Path], str]:
    def check(path: Path) -> str:
        from core.smpl import load_joint_regressor

        value = load_joint_regressor(path, rows)
        return f"joint regressor {value.shape}"

    return check


def _check_mean_params(path: Path) -> str:
    from core.smpl import load_mean_params

    mean = load_mean_params(path)
    return f"pose {mean.pose.shape}, shape {mean.shape.shape}, cam {mean.cam.shape}"


def _check_downsampling(path: Path) -> str:
    from core.smpl import load_downsampling

    matrix = load_downsampling(path)
    return f"D[1] @ D[0]: {matrix.shape}"


def _smpl_spec(gender: str, required: bool) -> AssetSpec:
    stem = f"SMPL_{gender.upper()}"
    return AssetSpec(
        name=f"{stem}.pkl",
        description=f"SMPL body model ({gender.lower()})",
        source=_SMPL_NEUTRAL_SOURCE if gender == "neutral" else _smpl_gendered_source(gender),
        required=required,
        check=_check_smpl,
        alternatives=(f"{stem}.npz",),
    )


ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec(
        name=STAF_FILE,
        description="STAF network weights",
        source=_STAF_RELEASE,
        required=True,
        check=_check_staf,
    ),
    AssetSpec(
        name="base_model.pt",
        description="ResNet-50 backbone weights",
        source=_STAF_RELEASE,
        required=True,
        check=_check_backbone,
    ),
    _smpl_spec("neutral", required=True),
    _smpl_spec("male", required=False),
    _smpl_spec("female", required=False),
    AssetSpec(
        name="J_regressor_extra.npy",
        description="extra joint regressor (9, 6890)",
        source=_STAF_RELEASE,
        required=True,
        check=_regressor_check(9),
    ),
    AssetSpec(
        name="J_regressor_h36m.npy",
        description="Human3.6M joint regressor (17, 6890)",
        source=_STAF_RELEASE,
        required=True,
        check=_regressor_check(17),
    ),
    AssetSpec(
        name="smpl_mean_params.npz",
        description="mean SMPL pose, shape and camera",
        source=_STAF_RELEASE,
        required=True,
        check=_check_mean_params,
    ),
    AssetSpec(
        name="mesh_downsampling.npz",
        description="GraphCMR mesh downsampling (6890 -> 431 vertices)",
        source=_STAF_RELEASE,
        required=True,
        check=_check_downsampling,
    ),
)


def asset_spec(name: str) -> AssetSpec:
    """The spec whose name (or an alternative name) is ``name``; ValueError if there is none."""
    for spec in ASSETS:
        if name in spec.names:
            return spec
    raise ValueError(f"unknown asset {name!r}; known: {', '.join(s.name for s in ASSETS)}")


# --------------------------------------------------------------------------------------------
# Where the folder is


def default_assets_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/staf`` or ``~/.local/share/staf`` (Linux),
    ``~/Library/Application Support/staf`` (macOS), ``%APPDATA%\\staf`` (Windows)."""
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return base / "staf"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "staf"
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says to ignore a relative path.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "staf"


def resolve_assets_dir(explicit: str | os.PathLike[str] | None) -> Path:
    """The asset folder to use: ``explicit`` (``--assets DIR``), else ``$STAF_ASSETS``, else the default."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ASSETS_ENV, "")
    if env.strip():
        problem = path_problem(env)
        if problem:
            raise AssetMissing(f"${ASSETS_ENV} is {problem}: point it at the asset folder")
        return Path(env).expanduser()
    return default_assets_dir()


def folder_missing_message(folder: Path) -> str:
    """What to tell a user whose asset folder does not exist (one line)."""
    return (
        f"the asset folder {folder} does not exist: create it and put the asset files there "
        f"(run 'staf doctor' for the list and where to get each), or point to the folder that holds them "
        f"with --assets DIR or the {ASSETS_ENV} environment variable"
    )


# --------------------------------------------------------------------------------------------
# Checking


def _check_one(spec: AssetSpec, folder: Path) -> AssetStatus:
    path = spec.locate(folder)
    if path is None:
        names = " or ".join(spec.names)
        return AssetStatus(spec, folder / spec.name, "missing", f"{names} not found in {folder}")
    if not path.is_file():
        return AssetStatus(spec, path, "invalid", f"{path}: not a regular file")
    try:
        return AssetStatus(spec, path, "found", spec.check(path))
    except AssetInvalid as err:
        return AssetStatus(spec, path, "invalid", str(err))
    except AssetMissing as err:  # vanished while being checked
        return AssetStatus(spec, path, "missing", str(err))


def check_assets(folder: Path) -> list[AssetStatus]:
    """Check every asset of ``ASSETS`` in ``folder`` (loads each file; SMPL takes the longest)."""
    folder = Path(folder)
    if not folder.is_dir():
        why = "not a folder" if folder.exists() else "does not exist"
        return [AssetStatus(spec, folder / spec.name, "missing", f"the asset folder {folder} {why}") for spec in ASSETS]
    return [_check_one(spec, folder) for spec in ASSETS]


def require_assets(folder: Path, names: Iterable[str], *, validate: bool = True) -> None:
    """Raise AssetMissing/AssetInvalid unless each named asset is in ``folder`` (and valid).

    ``names`` are file names of ``ASSETS`` (an alternative name, e.g. ``SMPL_NEUTRAL.npz``, means
    the same asset). Missing files are all listed in one message, each with where to get it.
    """
    folder = Path(folder)
    specs = list(dict.fromkeys(asset_spec(name) for name in names))
    if not folder.is_dir():
        raise AssetMissing(folder_missing_message(folder) + ".")
    missing = [spec for spec in specs if spec.locate(folder) is None]
    if missing:
        parts = "; ".join(f"{spec.name} (from {spec.source})" for spec in missing)
        noun = "file is" if len(missing) == 1 else "files are"
        raise AssetMissing(f"{len(missing)} asset {noun} missing from {folder}: {parts}.")
    if not validate:
        return
    for spec in specs:
        status = _check_one(spec, folder)
        if status.state == "invalid":
            raise AssetInvalid(status.detail)
        if status.state == "missing":
            raise AssetMissing(status.detail)
