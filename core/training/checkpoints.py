"""Training checkpoints in the release's formats, with what resuming needs beside them.

Stage 2 writes ``{'gen_state_dict': ..., 'epoch', 'performance', 'gen_optimizer', 'lr_scheduler',
'training'}`` -- the release's keys (``load_staf_weights`` reads ``gen_state_dict`` and ignores the
rest). Stage 1 writes the base-model layout ``{'model': ..., 'epoch', 'performance', 'optimizer',
'lr_scheduler', 'training'}``. ``training`` holds the resume bookkeeping as tensors and plain
values only, so every file loads with ``torch.load(..., weights_only=True)``. Files are replaced
atomically: an interruption leaves the previous checkpoint whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import BadInput, CheckpointMismatch
from core.model.checkpoint import BACKBONE_STATE_KEY, STAF_STATE_KEY, atomic_torch_save, read_torch_file

__all__ = [
    "BEST",
    "CHECKPOINT",
    "TRAINING_KEY",
    "check_settings",
    "read_training_checkpoint",
    "write_training_checkpoint",
]

CHECKPOINT = "checkpoint.pth.tar"
BEST = "model_best.pth.tar"
TRAINING_KEY = "training"
_MODEL_KEY = {2: STAF_STATE_KEY, 1: BACKBONE_STATE_KEY}
_OPTIMIZER_KEY = {2: "gen_optimizer", 1: "optimizer"}


def write_training_checkpoint(path: Path, *, stage: int, model_state: Mapping[str, Any], epoch: int,
                              performance: float, optimizer: Mapping[str, Any], scheduler: Mapping[str, Any],
                              training: Mapping[str, Any]) -> None:
    """Write one checkpoint file atomically in the stage's release format."""
    blob = {
        _MODEL_KEY[stage]: dict(model_state),
        "epoch": int(epoch),
        "performance": float(performance),
        _OPTIMIZER_KEY[stage]: dict(optimizer),
        "lr_scheduler": dict(scheduler),
        TRAINING_KEY: {"stage": stage, **training},
    }
    atomic_torch_save(blob, Path(path))


def read_training_checkpoint(path: Path, *, stage: int) -> dict[str, Any]:
    """Read a checkpoint written by :func:`write_training_checkpoint` for ``stage``.

    Returns ``{'model': state, 'optimizer': ..., 'lr_scheduler': ..., 'epoch', 'performance',
    'training': ...}``. CheckpointMismatch (one line) for a file of another model or stage, or one
    without the resume bookkeeping.
    """
    path = Path(path)
    blob = read_torch_file(path)
    if not isinstance(blob, Mapping):
        raise CheckpointMismatch(f"{path}: not a training checkpoint (holds a {type(blob).__name__})")
    training = blob.get(TRAINING_KEY)
    if not isinstance(training, Mapping) or "stage" not in training:
        raise CheckpointMismatch(f"{path}: not a checkpoint written by 'python -m core train' (no resume state); "
                                 "start a new run in another --out folder, with --init to start from these weights")
    if training["stage"] != stage:
        raise CheckpointMismatch(f"{path}: a stage-{training['stage']} checkpoint, but this run is stage {stage}")
    model = blob.get(_MODEL_KEY[stage])
    optimizer = blob.get(_OPTIMIZER_KEY[stage])
    scheduler = blob.get("lr_scheduler")
    if not all(isinstance(x, Mapping) for x in (model, optimizer, scheduler)):
        raise CheckpointMismatch(f"{path}: checkpoint lacks the model, optimizer or scheduler state")
    return {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler, "epoch": int(blob.get("epoch", 0)),
            "performance": float(blob.get("performance", float("nan"))), "training": dict(training)}


def check_settings(path: Path, saved: Mapping[str, Any], current: Mapping[str, Any], *, free: tuple[str, ...]) -> None:
    """BadInput if a resumed run changes a setting other than those in ``free``."""
    changed = [k for k in current if k not in free and k in saved and saved[k] != current[k]]
    if changed:
        detail = "; ".join(f"{k}: was {saved[k]!r}, now {current[k]!r}" for k in changed[:4])
        raise BadInput(f"{path}: the run was started with other settings ({detail}); resume with the same ones "
                       "or start a new run in another --out folder")
