"""Evaluating STAF on a preprocessed dataset: cached features in, the paper's table row out."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from core.datasets.db import Db
from core.datasets.joints import joints14_from_vertices, to_common14
from core.errors import BadInput
from core.evaluation.metrics import pve
from core.evaluation.protocol import SequenceErrors, TableRow, sequence_errors, summarise
from core.features_cache import FeatureCache
from core.model.sequence import SequenceRunner
from core.model.staf import Staf

__all__ = ["EvalModels", "EvalResult", "evaluate_db", "load_eval_models", "run_evaluate"]

GtJoints = Literal["db", "mesh"]
REGRESSOR_H36M = "J_regressor_h36m.npy"


@dataclass
class EvalModels:
    """STAF, the neutral body model and the (17, 6890) Human3.6M joint regressor, on one device."""

    staf: Staf
    body: torch.nn.Module
    regressor_h36m: torch.Tensor
    device: torch.device


def load_eval_models(assets: Path, *, checkpoint: Path | None, device: torch.device,
                     mix_tcfm_across_batch: bool = False) -> EvalModels:
    """Load the body model and regressor from ``assets`` and STAF weights from ``checkpoint``
    (default: the asset folder's ``3dpw_model_best.pth.tar``), strictly."""
    from core.assets import require_assets
    from core.model.checkpoint import load_staf_weights
    from core.model.load import STAF_FILE
    from core.smpl import load_body_model, load_joint_regressor

    assets = Path(assets)
    require_assets(assets, ["SMPL_NEUTRAL.pkl", REGRESSOR_H36M, *([] if checkpoint else [STAF_FILE])], validate=False)
    staf = Staf(mix_tcfm_across_batch=mix_tcfm_across_batch)
    load_staf_weights(staf, Path(checkpoint) if checkpoint else assets / STAF_FILE)
    body = load_body_model(assets)
    regressor = torch.from_numpy(load_joint_regressor(assets / REGRESSOR_H36M, 17))
    return EvalModels(staf.to(device).eval(), body.to(device).eval(), regressor.to(device), device)


@dataclass(frozen=True)
class EvalResult:
    """A dataset's table row and its per-sequence errors."""

    dataset: str
    row: TableRow
    sequences: list[SequenceErrors]


def _gt_joints(db: Db, gt_joints: GtJoints) -> np.ndarray | None:
    if gt_joints == "mesh":
        if not db.has_smpl:
            raise BadInput(f"{db.path}: --gt-joints mesh needs 'pose' and 'shape', which this db lacks")
        return None
    if db.joints3d is None:
        raise BadInput(f"{db.path}: no 'joints3D' key to score against")
    return to_common14(db.joints3d[..., :3], what=f"{db.path}: 'joints3D'")


def evaluate_db(models: EvalModels, db: Db, cache: FeatureCache, *, gt_joints: GtJoints = "db",
                windows_per_batch: int = 16, progress: bool = True) -> EvalResult:
    """Run STAF over every sequence of ``db`` (features from ``cache``) and score it.

    Ground-truth joints: the db's ``joints3D`` as the 14 common joints (``db``), or the 14 joints
    of the neutral-SMPL mesh of its pose and shape (``mesh``). PVE only where the db has SMPL.
    """
    from tqdm import tqdm

    device, body, reg = models.device, models.body, models.regressor_h36m
    gt14_all = _gt_joints(db, gt_joints)
    runner = SequenceRunner(models.staf, body, windows_per_batch=windows_per_batch, frames_per_batch=32)
    results = []
    bar = tqdm(total=len(db), unit="frame", desc=f"evaluate {db.spec.title}", disable=None if progress else True,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for seq in db.sequences:
            chunks = (torch.from_numpy(x).to(device) for x in cache.iter_rows(seq.start, seq.stop, 64))
            pred14, gt14, pve_m = [], [], []
            for part in runner.stream(chunks):
                rows = np.arange(seq.start + part.start, seq.start + part.start + len(part))
                pred14.append(joints14_from_vertices(part.vertices, reg).cpu())
                if db.has_smpl:
                    with torch.inference_mode():
                        pose = torch.from_numpy(db.pose[rows]).to(device)
                        shape = torch.from_numpy(db.shape[rows]).to(device)
                        gt_vertices = body.forward_axis_angle(shape, pose.reshape(-1, 24, 3)).vertices
                    pve_m.append(pve(part.vertices, gt_vertices).cpu())
                    if gt14_all is None:
                        gt14.append(joints14_from_vertices(gt_vertices, reg).cpu())
                if gt14_all is not None:
                    gt14.append(torch.from_numpy(gt14_all[rows]))
                bar.update(len(part))
            results.append(sequence_errors(
                seq.name, torch.cat(pred14), torch.cat(gt14), pve_m=torch.cat(pve_m) if pve_m else None,
                valid=db.valid[seq.start:seq.stop], frame_id=db.frame_id[seq.start:seq.stop]))
    finally:
        bar.close()
    return EvalResult(db.spec.name, summarise(results), results)


def run_evaluate(*, dataset: str, db_path: Path, features: Path, assets: Path, checkpoint: Path | None,
                 out: Path, device: str, gt_joints: GtJoints, worst: int, fps: float | None,
                 mix_tcfm_across_batch: bool, windows_per_batch: int, progress: bool) -> EvalResult:
    """The ``evaluate`` command: print the table row; write per-sequence CSV, summary JSON and the
    plot of the worst sequences into ``out``."""
    from core.datasets.db import read_db
    from core.evaluation.protocol import (
        PUBLISHED,
        format_table,
        plot_worst_sequences,
        write_sequence_csv,
        write_summary_json,
    )
    from core.model.load import resolve_device

    db = read_db(db_path, dataset)
    cache = FeatureCache.open(features, db)
    dev = resolve_device(device)
    models = load_eval_models(assets, checkpoint=checkpoint, device=dev, mix_tcfm_across_batch=mix_tcfm_across_batch)
    result = evaluate_db(models, db, cache, gt_joints=gt_joints, windows_per_batch=windows_per_batch,
                         progress=progress)
    fps = fps if fps is not None else db.spec.fps
    print(format_table(db.spec.title, result.row, fps=fps, published=PUBLISHED.get(db.spec.name)))
    out = Path(out)
    name = db.spec.name
    write_sequence_csv(out / f"{name}_sequences.csv", result.sequences, fps=fps)
    write_summary_json(out / f"{name}_summary.json", name, result.row, fps=fps, db=str(db.path),
                       checkpoint=str(checkpoint) if checkpoint else "assets", gt_joints=gt_joints,
                       tcfm="across batch (release)" if mix_tcfm_across_batch else "per window", device=str(dev))
    plotted = plot_worst_sequences(out / f"{name}_worst.png", result.sequences, count=worst)
    print(f"wrote {out / f'{name}_sequences.csv'}, {out / f'{name}_summary.json'} and {out / f'{name}_worst.png'} "
          f"(worst by PA-MPJPE: {', '.join(plotted) or 'none'})")
    return result
