"""Validation after each training epoch: the PA-MPJPE the plateau scheduler and ``best.pt`` follow.

Stage 2 runs the evaluate pipeline on the cached validation features; stage 1 runs the single-frame
base model on the validation crops and scores it with the same protocol.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from core.datasets.sampling import Pick
from core.errors import BadInput
from core.training.config import TrainConfig
from core.training.data import BatchLoader, TrainSource

if TYPE_CHECKING:
    from core.evaluation.protocol import TableRow

__all__ = ["validate"]


def validate(model: torch.nn.Module, config: TrainConfig, val: TrainSource, body: torch.nn.Module,
             regressor: torch.Tensor, device: torch.device) -> dict[str, float]:
    """The epoch's validation errors in mm (``val_pa_mpjpe``, ``val_mpjpe``, ``val_pve``, ``val_accel``)."""
    from core.evaluation.run import EvalModels, evaluate_db

    if config.stage == 2:
        result = evaluate_db(EvalModels(model, body, regressor, device), val.db, val.cache, progress=config.progress)
        row = result.row
    else:
        row = _validate_single_frame(model, val, body, regressor, device)
    return {"val_pa_mpjpe": row.pa_mpjpe, "val_mpjpe": row.mpjpe,
            "val_pve": math.nan if row.pve is None else row.pve, "val_accel": row.accel}


@torch.inference_mode()
def _validate_single_frame(model: torch.nn.Module, val: TrainSource, body: torch.nn.Module, regressor: torch.Tensor,
                           device: torch.device) -> TableRow:
    from core.datasets.joints import joints14_from_vertices, to_common14
    from core.evaluation.metrics import pve
    from core.evaluation.protocol import sequence_errors, summarise

    db = val.db
    if db.joints3d is None:
        raise BadInput(f"{db.path}: the validation db has no 'joints3D'")
    gt14 = torch.from_numpy(to_common14(db.joints3d[..., :3], what=f"{db.path}: 'joints3D'"))
    loader = BatchLoader([val], length=1)
    model.eval()
    results = []
    try:
        for seq in db.sequences:
            pred14, pves = [], []
            for first in range(seq.start, seq.stop, 16):
                rows = list(range(first, min(seq.stop, first + 16)))
                crops = loader.load([Pick(0, r) for r in rows]).inputs.to(device)
                out = model(crops, body)
                pred14.append(joints14_from_vertices(out.vertices, regressor).cpu())
                if db.has_smpl:
                    gt = body.forward_axis_angle(torch.from_numpy(db.shape[rows]).to(device),
                                                 torch.from_numpy(db.pose[rows]).to(device).reshape(-1, 24, 3))
                    pves.append(pve(out.vertices, gt.vertices).cpu())
            results.append(sequence_errors(seq.name, torch.cat(pred14), gt14[seq.start:seq.stop],
                                           pve_m=torch.cat(pves) if pves else None,
                                           valid=db.valid[seq.start:seq.stop]))
    finally:
        loader.close()
    return summarise(results)
