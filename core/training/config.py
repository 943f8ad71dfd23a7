"""The training run's configuration, its checks, and how a run ends.

``TrainConfig`` is everything a run depends on (its defaults are the release's stage-2 settings);
``check_config`` refuses unusable settings in one line before any data or model is opened, so a
bad flag fails fast; ``TrainSummary`` and ``TrainingInterrupted`` are the two ways a run returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.camera import CROP_SCALE
from core.errors import EXIT_CANCELLED, BadInput, StafError
from core.training.data import SourceSpec
from core.training.losses import LossWeights

__all__ = ["TrainConfig", "TrainSummary", "TrainingInterrupted", "check_config"]


class TrainingInterrupted(StafError):
    """Training stopped on request; the checkpoint is saved and ``--resume`` continues it."""

    exit_code = EXIT_CANCELLED


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (defaults: the release's stage-2 settings)."""

    out: Path
    assets: Path
    train: tuple[SourceSpec, ...]
    val: SourceSpec | None = None
    stage: int = 2
    init: Path | None = None
    epochs: int = 45
    iters_per_epoch: int = 500
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.0
    lr_factor: float = 0.1
    patience: int = 5
    ratio_2d: float = 0.6
    seq_len: int = 9
    stride: int = 1
    seed: int = 0
    device: str = "auto"
    mix_tcfm_across_batch: bool = False
    trainable: Literal["all", "regressors"] = "all"
    crop_scale: float = CROP_SCALE
    workers: int = 4
    log_every: int = 10
    max_steps: int | None = None
    resume: bool = False
    progress: bool = True
    weights: LossWeights = field(default_factory=LossWeights)

    def settings(self) -> dict[str, Any]:
        """The configuration as plain values (what ``config.json`` and the checkpoint record)."""
        plain = asdict(self)
        plain["train"] = [[s.dataset, str(s.db), str(s.location)] for s in self.train]
        plain["val"] = None if self.val is None else [self.val.dataset, str(self.val.db), str(self.val.location)]
        for key in ("out", "assets", "init"):
            plain[key] = None if plain[key] is None else str(plain[key])
        return plain


@dataclass(frozen=True)
class TrainSummary:
    """How a call to :func:`train` ended: ``finished`` all epochs or ``paused`` at ``max_steps``."""

    status: Literal["finished", "paused"]
    epochs: int
    step: int
    best: float
    history: list[dict[str, Any]]
    steps: list[dict[str, Any]]


def check_config(config: TrainConfig) -> None:
    """Refuse settings no run can use (one line each), before any data or model is opened."""
    if config.stage not in (1, 2):
        raise BadInput(f"--stage must be 1 or 2, got {config.stage}")
    if not config.train:
        raise BadInput("no training data: give at least one --train DATASET DB DIR")
    positive = {"epochs": config.epochs, "iters-per-epoch": config.iters_per_epoch, "batch-size": config.batch_size,
                "seq-len": config.seq_len, "stride": config.stride, "log-every": config.log_every}
    bad = [f"--{k} {v}" for k, v in positive.items() if v < 1]
    if config.max_steps is not None and config.max_steps < 1:
        bad.append(f"--max-steps {config.max_steps}")
    if not config.lr > 0 or not 0 <= config.ratio_2d <= 1 or not 0 < config.lr_factor < 1:
        bad.append("--lr must be > 0, --ratio-2d in [0, 1], the lr factor in (0, 1)")
    if bad:
        raise BadInput(f"invalid training settings: {', '.join(bad)}")
    if config.trainable not in ("all", "regressors"):
        raise BadInput(f"--trainable must be 'all' or 'regressors', got '{config.trainable}'")
    if config.stage == 2 and config.seq_len != 9:
        raise BadInput("stage 2 uses windows of 9 frames (--seq-len 9): the STAF network is built for 9")
