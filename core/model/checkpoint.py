"""Loading and writing STAF and backbone weights, strictly, without executing code from the file.

Checkpoints are described as data: which top-level key holds the state dict, which prefixes to
strip, which keys are ignorable copies. Any other missing or unexpected key, or a shape that does
not match the network, stops with one line naming it.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.atomic import atomic_path
from core.errors import AssetInvalid, AssetMissing, CheckpointMismatch

__all__ = [
    "inspect_backbone_checkpoint",
    "inspect_staf_checkpoint",
    "load_backbone_weights",
    "load_staf_weights",
    "read_torch_file",
    "save_staf_checkpoint",
]

STAF_STATE_KEY = "gen_state_dict"
BACKBONE_STATE_KEY = "model"
BACKBONE_PREFIX = "feature_extractor."
# Each regressor of the release holds a copy of the SMPL model; it is not part of the network.
_SMPL_COPY = ".smpl."


def _check_archive(path: Path) -> None:
    """A zip-format checkpoint's directory and member sizes checked before torch inflates anything,
    so a crafted file cannot make loading it take more than the asset bound (2 GiB)."""
    from core.npz_archive import check_directory, check_members
    from core.safe_pickle import ASSET_LIMITS

    try:
        if not zipfile.is_zipfile(path):
            return  # torch's legacy format: a plain pickle, read by the restricted loader
        problem = check_directory(path, ASSET_LIMITS)
        if problem is None:
            with zipfile.ZipFile(path) as archive:
                problem = check_members(archive, ASSET_LIMITS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        problem = f"not a readable zip archive ({type(err).__name__})"
    if problem is not None:
        raise AssetInvalid(f"{path}: {problem}")


def read_torch_file(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise AssetMissing(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AssetInvalid(f"{path}: file is empty")
    _check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable pickle"
        if "Weights only load failed" in first or "Unsupported global" in str(err):
            raise AssetInvalid(
                f"{path}: refused to load: it holds Python objects other than tensors and plain "
                "data (loading it could run code); use the checkpoint from the official release"
            ) from None
        raise AssetInvalid(f"{path}: not a torch checkpoint ({first})") from None
    # torch's restricted unpickler reports malformed input through many exception types.
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, UnicodeDecodeError, struct.error,
            IndexError, KeyError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AssetInvalid(f"{path}: not a readable torch checkpoint, truncated or corrupt ({first})") from None


def _mismatch(path: Path, what: str, model: nn.Module, state: Mapping[str, Any]) -> None:
    """Raise CheckpointMismatch if ``state`` does not fit ``model`` exactly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in state and (not torch.is_tensor(state[k]) or state[k].shape != expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es), e.g. {'; '.join(wrong[:2])}")
    if problems:
        raise CheckpointMismatch(f"{path}: not {what}: {'; '.join(problems)}")


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def _staf_state(path: Path) -> dict[str, torch.Tensor]:
    blob = read_torch_file(path)
    if not isinstance(blob, Mapping) or STAF_STATE_KEY not in blob:
        keys = ", ".join(list(blob)[:5]) if isinstance(blob, Mapping) else type(blob).__name__
        raise CheckpointMismatch(
            f"{path}: not a STAF checkpoint: no '{STAF_STATE_KEY}' entry (found: {keys or 'nothing'})"
        )
    state = blob[STAF_STATE_KEY]
    if not isinstance(state, Mapping):
        raise CheckpointMismatch(f"{path}: '{STAF_STATE_KEY}' is not a state dict")
    state = _strip_prefix(state, "module.")
    return {k: v for k, v in state.items() if not (k.startswith("regressor.") and _SMPL_COPY in k)}


def _backbone_state(path: Path) -> dict[str, torch.Tensor]:
    blob = read_torch_file(path)
    if not isinstance(blob, Mapping):
        raise CheckpointMismatch(f"{path}: not a ResNet-50 checkpoint (holds a {type(blob).__name__})")
    if isinstance(blob.get(BACKBONE_STATE_KEY), Mapping):
        # The release's base model: the backbone is the 'feature_extractor.' part, the rest is its
        # single-frame head, which STAF replaces.
        state = _strip_prefix(blob[BACKBONE_STATE_KEY], "module.")
        picked = {k[len(BACKBONE_PREFIX):]: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
        if not picked:
            raise CheckpointMismatch(f"{path}: not a STAF base model: no '{BACKBONE_PREFIX}*' keys")
        return picked
    state = _strip_prefix(blob, "module.")
    # A plain torchvision ResNet-50: its classifier is not used.
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def load_staf_weights(model: nn.Module, path: Path) -> None:
    """Load the release's ``3dpw_model_best.pth.tar`` (or one written by us) into a Staf, strictly."""
    state = _staf_state(Path(path))
    _mismatch(Path(path), "a STAF checkpoint", model, state)
    model.load_state_dict(state, strict=True)


def load_backbone_weights(model: nn.Module, path: Path) -> None:
    """Load ``base_model.pt`` or a torchvision ResNet-50 state dict into a ResNet50Features, strictly."""
    state = _backbone_state(Path(path))
    _mismatch(Path(path), "a ResNet-50 checkpoint", model, state)
    model.load_state_dict(state, strict=True)


def inspect_staf_checkpoint(path: Path) -> str:
    """Check a STAF checkpoint against the network without loading it into one; returns a summary."""
    from core.model.staf import Staf

    state = _staf_state(Path(path))
    _mismatch(Path(path), "a STAF checkpoint", Staf(), state)
    return f"STAF weights, {len(state)} network tensors"


def inspect_backbone_checkpoint(path: Path) -> str:
    """Check a backbone checkpoint against ResNet-50 without loading it into one; returns a summary."""
    from core.model.backbone import ResNet50Features

    state = _backbone_state(Path(path))
    _mismatch(Path(path), "a ResNet-50 checkpoint", ResNet50Features(), state)
    return f"ResNet-50 weights, {len(state)} tensors"


def save_staf_checkpoint(model: nn.Module, path: Path, *, extra: Mapping[str, Any] | None = None,
                         smpl_copies: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write ``model`` in the release's format (``{'gen_state_dict': ..., **extra}``), atomically.

    ``smpl_copies`` (names relative to a regressor's ``smpl.``) are added under each regressor, as
    the release's files carry them; loading ignores them.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    for i in range(3):
        for name, value in (smpl_copies or {}).items():
            state[f"regressor.{i}.smpl.{name}"] = value
    blob = {STAF_STATE_KEY: state, **(extra or {})}
    atomic_torch_save(blob, Path(path))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
