"""The training loop of both stages, resumable step for step.

Stage 2 (STAF, as the release configures it): windows of 9 frames of cached backbone features
(the backbone is frozen), Adam (lr 5e-5, no weight decay), batches of 32 of which 60 % come from
2D-only datasets when any are given, epochs of 500 iterations, the learning rate times 0.1 once
the validation result has not improved for 5 epochs, loss weights 2D 300 / 3D 300 / shape 0.06 /
pose 60 on the middle frame's final estimate. Stage 1 trains the single-frame base model
(backbone + decoder + regressors) on image crops with the same losses.

Resuming is exact: a step's batch depends only on (seed, step number), and the checkpoint holds
the model, optimizer, scheduler, torch's random state and the position inside the epoch, so a run
stopped (``max_steps``, Ctrl-C, SIGTERM) and resumed takes the same steps as one that never
stopped. Ctrl-C or SIGTERM is honoured between steps (a second Ctrl-C stops at once, saving
nothing new); the checkpoint is then saved and the run exits with code 130.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_path
from core.datasets.joints import SpinJoints
from core.datasets.sampling import MixedSampler, sequence_windows
from core.errors import BadInput
from core.training.checkpoints import (
    BEST,
    CHECKPOINT,
    check_settings,
    read_training_checkpoint,
    write_training_checkpoint,
)
from core.training.config import TrainConfig, TrainingInterrupted, TrainSummary, check_config
from core.training.data import Batch, BatchLoader, TrainSource, open_source
from core.training.losses import LossTerms, staf_losses
from core.training.validation import validate

__all__ = ["EPOCH_LOG", "STEP_LOG", "TrainConfig", "TrainSummary", "TrainingInterrupted", "train"]

EPOCH_LOG = "train_log.csv"
STEP_LOG = "train_steps.csv"
CONFIG_FILE = "config.json"
_TERMS = ("loss", "kp2d", "kp3d", "pose", "shape")
# Settings a resumed run may change.
_FREE = ("epochs", "max_steps", "resume", "progress", "device", "workers", "out", "assets", "init")


@dataclass
class _Progress:
    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_TERMS, 0.0))
    best: float = math.inf
    performance: float = math.nan
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


class _StopRequests:
    """SIGINT/SIGTERM set a flag that the loop checks between steps; a second SIGINT interrupts."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[_StopRequests]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, _frame: object) -> None:
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested = True
            print(f"\n{signal.Signals(signum).name}: stopping after this step and saving the checkpoint "
                  "(Ctrl-C again to stop at once)", file=sys.stderr)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, old in previous.items():
                signal.signal(s, old)


def _build_model(config: TrainConfig) -> torch.nn.Module:
    from core.model.checkpoint import load_backbone_weights
    from core.training.models import SingleFrameModel, init_staf, load_base_head

    staf = init_staf(config.assets, mix_tcfm_across_batch=config.mix_tcfm_across_batch)
    if config.stage == 2:
        if config.init is not None:
            load_base_head(staf, config.init)
        return staf
    model = SingleFrameModel(staf)
    if config.init is not None:
        from core.model.checkpoint import read_torch_file

        load_backbone_weights(model.feature_extractor, config.init)
        blob = read_torch_file(config.init)
        head = blob.get("model", {}) if isinstance(blob, Mapping) else {}
        if any(str(k).startswith(("deconv_layers.", "regressor.")) for k in head):
            load_base_head(model.head, config.init)
    return model


def _model_state(model: torch.nn.Module, stage: int) -> dict[str, torch.Tensor]:
    if stage == 1:
        return model.base_state()
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def train(config: TrainConfig) -> TrainSummary:
    """Train (or resume) as ``config`` says; writes checkpoints and logs into ``config.out``.

    Raises BadInput / CheckpointMismatch (one line) for unusable data, caches or checkpoints, and
    :class:`TrainingInterrupted` after saving when stopped by Ctrl-C or SIGTERM.
    """
    from tqdm import tqdm

    from core.model.load import resolve_device
    from core.smpl import load_body_model, load_joint_regressor

    check_config(config)
    out = Path(config.out)
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not config.resume:
        raise BadInput(f"{out} already holds a training run ({CHECKPOINT}); pass --resume to continue it or "
                       "choose another --out folder")
    if config.resume and not ckpt_path.exists():
        raise BadInput(f"{ckpt_path}: nothing to resume (no checkpoint); start without --resume")
    device = resolve_device(config.device)
    stage = config.stage
    length = config.seq_len if stage == 2 else 1

    sources = [open_source(s, stage=stage, crop_scale=config.crop_scale) for s in config.train]
    try:
        sampler = MixedSampler([sequence_windows(s.db, length, config.stride) for s in sources],
                               [s.is_2d for s in sources], batch_size=config.batch_size, ratio_2d=config.ratio_2d)
    except ValueError as err:
        raise BadInput(f"training data: {err}") from None
    val = open_source(config.val, stage=stage, crop_scale=config.crop_scale) if config.val else None

    assets = Path(config.assets)
    body = load_body_model(assets).to(device)
    spin = SpinJoints(load_joint_regressor(assets / "J_regressor_extra.npy", 9)).to(device)
    regressor = torch.from_numpy(load_joint_regressor(assets / "J_regressor_h36m.npy", 17)).to(device)

    torch.manual_seed(config.seed)
    model = _build_model(config).to(device)
    if config.trainable == "regressors":
        heads = model.regressor if stage == 2 else model.head.regressor
        for p in model.parameters():
            p.requires_grad_(False)
        for p in heads.parameters():
            p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.lr_factor,
                                                           patience=config.patience)
    progress = _Progress()
    settings = config.settings()
    if config.resume:
        saved = read_training_checkpoint(ckpt_path, stage=stage)
        check_settings(ckpt_path, saved["training"].get("settings", {}), settings, free=_FREE)
        if stage == 2:
            from core.model.checkpoint import load_staf_weights

            load_staf_weights(model, ckpt_path)
        else:
            model.load_base_state(saved["model"], ckpt_path)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["lr_scheduler"])
        t = saved["training"]
        progress = _Progress(epoch=saved["epoch"], epoch_step=int(t["epoch_step"]), step=int(t["step"]),
                             sums={k: float(v) for k, v in t["sums"].items()}, best=float(t["best"]),
                             performance=saved["performance"], history=list(t["history"]), steps=list(t["steps"]))
        torch.set_rng_state(t["torch_rng"])
        if torch.cuda.is_available() and len(t.get("cuda_rng", [])) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(t["cuda_rng"])
        print(f"resuming {out} at epoch {progress.epoch + 1}, step {progress.epoch_step} of "
              f"{config.iters_per_epoch} ({progress.step} steps done)", file=sys.stderr)
    else:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(settings, indent=1) + "\n")

    def save() -> None:
        training = {"settings": settings, "step": progress.step, "epoch_step": progress.epoch_step,
                    "sums": dict(progress.sums), "best": progress.best, "history": progress.history,
                    "steps": progress.steps, "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        write_training_checkpoint(ckpt_path, stage=stage, model_state=_model_state(model, stage),
                                  epoch=progress.epoch, performance=progress.performance,
                                  optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                  training=training)
        _write_csv(out / EPOCH_LOG, progress.history)
        _write_csv(out / STEP_LOG, progress.steps)

    loader = BatchLoader(sources, length=length, workers=config.workers)
    prefetch = ThreadPoolExecutor(1)

    def fetch(step: int) -> Future[Batch]:
        return prefetch.submit(loader.load, sampler.draw(np.random.default_rng([config.seed, step])))

    steps_this_run = 0
    stops = _StopRequests()
    try:
        with stops.installed():
            pending = fetch(progress.step)
            while progress.epoch < config.epochs:
                bar = tqdm(total=config.iters_per_epoch, initial=progress.epoch_step, unit="step", file=sys.stderr,
                           desc=f"stage {stage} epoch {progress.epoch + 1}/{config.epochs}", dynamic_ncols=True,
                           disable=None if config.progress else True)
                started = time.perf_counter()
                with bar:
                    while progress.epoch_step < config.iters_per_epoch:
                        if stops.requested:
                            save()
                            raise TrainingInterrupted(
                                f"training stopped at epoch {progress.epoch + 1}, step {progress.epoch_step}; "
                                f"checkpoint saved in {ckpt_path}: rerun with --resume to continue")
                        if config.max_steps is not None and steps_this_run >= config.max_steps:
                            save()
                            return TrainSummary("paused", progress.epoch, progress.step, progress.best,
                                                progress.history, progress.steps)
                        batch = pending.result()
                        pending = fetch(progress.step + 1)
                        terms = _step(model, batch, body, spin, optimizer, config, device)
                        values = dict(zip(_TERMS, (float(getattr(terms, n)) for n in
                                                   ("total", "kp2d", "kp3d", "pose", "shape")), strict=True))
                        if not math.isfinite(values["loss"]):
                            raise BadInput(f"the loss is {values['loss']} at step {progress.step + 1}; the last "
                                           f"checkpoint in {out} is unaffected: resume with a lower --lr")
                        for k, v in values.items():
                            progress.sums[k] += v
                        progress.epoch_step += 1
                        progress.step += 1
                        steps_this_run += 1
                        if progress.step % config.log_every == 0:
                            progress.steps.append({"step": progress.step, "epoch": progress.epoch + 1,
                                                   "lr": optimizer.param_groups[0]["lr"], **values})
                        bar.update(1)
                        bar.set_postfix(loss=f"{values['loss']:.4g}")
                row = _end_epoch(model, config, progress, val, body, regressor, device, optimizer, scheduler, started)
                improved = row["performance"] < progress.best
                progress.best = min(progress.best, row["performance"])
                row["best"] = progress.best
                progress.history.append(row)
                progress.epoch += 1
                progress.epoch_step = 0
                progress.sums = dict.fromkeys(_TERMS, 0.0)
                save()
                if improved:
                    with atomic_path(out / BEST) as tmp:
                        shutil.copyfile(ckpt_path, tmp)
                print(_epoch_line(row), file=sys.stderr)
    finally:
        prefetch.shutdown(cancel_futures=True)
        loader.close()
    return TrainSummary("finished", progress.epoch, progress.step, progress.best, progress.history, progress.steps)


def _step(model: torch.nn.Module, batch: Batch, body: torch.nn.Module, spin: SpinJoints,
          optimizer: torch.optim.Optimizer, config: TrainConfig, device: torch.device) -> LossTerms:
    model.train()
    inputs = batch.inputs.to(device, non_blocking=True)
    out = model(inputs, body)
    terms = staf_losses(out, spin(out.vertices, out.joints), batch.targets.to(device), config.weights)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return LossTerms(*(t.detach() for t in (terms.total, terms.kp2d, terms.kp3d, terms.pose, terms.shape)))


def _end_epoch(model: torch.nn.Module, config: TrainConfig, progress: _Progress, val: TrainSource | None,
               body: torch.nn.Module, regressor: torch.Tensor, device: torch.device,
               optimizer: torch.optim.Optimizer, scheduler: Any, started: float) -> dict[str, Any]:
    """Validate, step the plateau scheduler, and return the epoch's log row."""
    n = max(1, config.iters_per_epoch)
    row: dict[str, Any] = {"epoch": progress.epoch + 1, "step": progress.step, "lr": optimizer.param_groups[0]["lr"]}
    row.update({k: v / n for k, v in progress.sums.items()})
    if val is not None:
        row.update(validate(model, config, val, body, regressor, device))
        performance = row["val_pa_mpjpe"]
    else:
        performance = row["loss"]
    row["performance"] = performance
    progress.performance = performance
    scheduler.step(performance)
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


def _epoch_line(row: Mapping[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['loss']:.4g}"]
    if "val_pa_mpjpe" in row:
        parts.append(f"val PA-MPJPE {row['val_pa_mpjpe']:.1f} mm, MPJPE {row['val_mpjpe']:.1f} mm")
    parts.append(f"lr {row['lr']:.2g}")
    return ", ".join(parts)
