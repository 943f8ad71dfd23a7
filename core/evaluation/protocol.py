"""The evaluation protocol of STAF and its predecessors (VIBE, TCMR, MPS-Net), and its reports.

Per frame: the 14 joints of the predicted mesh (``J_regressor_h36m``, rows ``H36M_TO_J14``) and the
ground truth's 14 joints are both centred on the pelvis, the mean of the two hips (joints 2 and 3
of the 14). MPJPE is the mean joint distance; PA-MPJPE the same after a per-frame similarity
alignment; PVE the mean distance between the predicted mesh and the neutral-SMPL mesh of the
ground-truth pose and shape, both in SMPL's body frame (no alignment, as VIBE/TCMR compute it);
Accel the mean norm of the difference of the second differences of the centred joints, per middle
frame, in mm/frame^2. All in mm.

Averages pool frames over the whole set (a long sequence weighs more), counting only frames the db
marks valid; an acceleration triplet counts when its three frames are valid. Unlike VIBE/TCMR's
code, second differences never straddle two sequences.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.atomic import atomic_path
from core.evaluation.metrics import accel_error, accel_to_m_per_s2, accel_triplets_valid, mpjpe, pa_mpjpe

__all__ = [
    "M_TO_MM",
    "PUBLISHED",
    "SequenceErrors",
    "TableRow",
    "centre_on_pelvis",
    "format_table",
    "plot_worst_sequences",
    "sequence_errors",
    "summarise",
    "write_sequence_csv",
    "write_summary_json",
]

M_TO_MM = 1000.0
HIPS = (2, 3)

#: Published results (mm): PA-MPJPE, MPJPE, PVE, Accel (mm/frame^2), from the STAF paper's table.
PUBLISHED: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "3dpw": {
        "STAF (paper)": (48.0, 80.6, 95.3, 8.2),
        "MPS-Net": (52.1, 84.3, 99.7, 7.4),
        "TCMR": (52.7, 86.5, 102.9, 6.8),
        "VIBE": (51.9, 82.9, 99.1, 23.4),
    }
}


def centre_on_pelvis(joints14: torch.Tensor) -> torch.Tensor:
    """(B, 14, 3) -> the same joints minus the mean of the two hips."""
    return joints14 - joints14[:, list(HIPS)].mean(1, keepdim=True)


@dataclass(frozen=True, eq=False)
class SequenceErrors:
    """Per-frame errors of one sequence, in mm.

    frame_id, valid (N,); mpjpe, pa_mpjpe (N,); pve (N,) or None (no SMPL ground truth);
    accel (N-2,) mm/frame^2 of middle frames 1..N-2 and accel_valid (N-2,).
    """

    name: str
    frame_id: np.ndarray
    valid: np.ndarray
    mpjpe: np.ndarray
    pa_mpjpe: np.ndarray
    pve: np.ndarray | None
    accel: np.ndarray
    accel_valid: np.ndarray

    def mean(self, metric: str) -> float:
        """Mean over valid frames (valid triplets for ``accel``); NaN if none."""
        values = getattr(self, metric)
        if values is None:
            return float("nan")
        keep = self.accel_valid if metric == "accel" else self.valid
        return float(values[keep].mean()) if keep.any() else float("nan")


def sequence_errors(name: str, pred_joints14: torch.Tensor, gt_joints14: torch.Tensor, *,
                    pve_m: torch.Tensor | None = None, valid: np.ndarray | None = None,
                    frame_id: np.ndarray | None = None) -> SequenceErrors:
    """Errors of one sequence from its 14 joints (N, 14, 3) in metres (not yet centred).

    pve_m: per-frame vertex error (N,) in metres, if the ground truth has a mesh.
    """
    n = pred_joints14.shape[0]
    pred = centre_on_pelvis(pred_joints14.to(torch.float64))
    gt = centre_on_pelvis(gt_joints14.to(torch.float64))
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    accel_ok = accel_triplets_valid(torch.from_numpy(valid)).numpy()
    return SequenceErrors(
        name=name,
        frame_id=np.arange(n) if frame_id is None else np.asarray(frame_id),
        valid=valid,
        mpjpe=(mpjpe(pred, gt) * M_TO_MM).numpy(),
        pa_mpjpe=(pa_mpjpe(pred, gt) * M_TO_MM).numpy(),
        pve=None if pve_m is None else (pve_m.to(torch.float64) * M_TO_MM).cpu().numpy(),
        accel=(accel_error(pred, gt) * M_TO_MM).numpy(),
        accel_valid=accel_ok,
    )


@dataclass(frozen=True)
class TableRow:
    """The paper's table row (mm; accel mm/frame^2), pooled over frames; pve None without SMPL labels."""

    pa_mpjpe: float
    mpjpe: float
    pve: float | None
    accel: float
    frames: int
    sequences: int


def summarise(sequences: Sequence[SequenceErrors]) -> TableRow:
    """Pool every sequence's valid frames (and valid acceleration triplets) into one row."""
    def pooled(metric: str) -> float:
        values = [getattr(s, metric)[s.accel_valid if metric == "accel" else s.valid] for s in sequences]
        values = [v for v in values if v.size]
        return float(np.concatenate(values).mean()) if values else float("nan")

    has_pve = bool(sequences) and all(s.pve is not None for s in sequences)
    return TableRow(pooled("pa_mpjpe"), pooled("mpjpe"), pooled("pve") if has_pve else None, pooled("accel"),
                    int(sum(s.valid.sum() for s in sequences)), len(sequences))


def _cell(value: float | None) -> str:
    return f"{value:8.1f}" if value is not None and np.isfinite(value) else f"{'n/a':>8}"


def format_table(title: str, row: TableRow, *, fps: float | None, published: dict[str, tuple] | None = None) -> str:
    """The row as the paper prints it, with published rows below for comparison."""
    lines = [f"{title}: {row.frames} frames scored in {row.sequences} sequences",
             f"{'':16}{'PA-MPJPE':>8}{'MPJPE':>8}{'PVE':>8}{'Accel':>8}",
             f"{'this model':16}{_cell(row.pa_mpjpe)}{_cell(row.mpjpe)}{_cell(row.pve)}{_cell(row.accel)}"]
    for name, values in (published or {}).items():
        lines.append(f"{name:16}" + "".join(_cell(v) for v in values))
    unit = "(mm; Accel in mm/frame^2"
    if fps and np.isfinite(row.accel):
        unit += f", here {accel_to_m_per_s2(row.accel, fps):.2f} m/s^2 at {fps:g} fps"
    lines.append(unit + ")")
    return "\n".join(lines)


def write_sequence_csv(path: Path, sequences: Sequence[SequenceErrors], *, fps: float | None) -> None:
    """One row per sequence: name, frames, valid frames, PA-MPJPE, MPJPE, PVE, Accel (and m/s^2)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["sequence", "frames", "valid_frames", "pa_mpjpe_mm", "mpjpe_mm", "pve_mm",
                      "accel_mm_per_frame2", "accel_m_per_s2"])
        for s in sequences:
            accel = s.mean("accel")
            out.writerow([s.name, len(s.valid), int(s.valid.sum()), f"{s.mean('pa_mpjpe'):.3f}",
                          f"{s.mean('mpjpe'):.3f}", "" if s.pve is None else f"{s.mean('pve'):.3f}", f"{accel:.3f}",
                          f"{accel_to_m_per_s2(accel, fps):.3f}" if fps else ""])


def write_summary_json(path: Path, dataset: str, row: TableRow, *, fps: float | None, **extra: object) -> None:
    """The table row and how it was obtained, as JSON."""
    record = {"dataset": dataset, **asdict(row), "accel_unit": "mm/frame^2", "fps": fps,
              "accel_m_per_s2": accel_to_m_per_s2(row.accel, fps) if fps else None, **extra}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")


def plot_worst_sequences(path: Path, sequences: Sequence[SequenceErrors], *, count: int = 4,
                         metric: str = "pa_mpjpe") -> list[str]:
    """A PNG of per-frame MPJPE and PA-MPJPE over time for the ``count`` sequences with the highest
    mean ``metric``; invalid frames are shaded. Returns the names plotted."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ranked = sorted((s for s in sequences if np.isfinite(s.mean(metric))), key=lambda s: -s.mean(metric))[:count]
    fig, axes = plt.subplots(max(1, len(ranked)), 1, figsize=(10, 2.4 * max(1, len(ranked))), squeeze=False)
    for ax, s in zip(axes[:, 0], ranked, strict=False):
        x = np.arange(len(s.valid))
        ax.plot(x, s.mpjpe, label="MPJPE", lw=1)
        ax.plot(x, s.pa_mpjpe, label="PA-MPJPE", lw=1)
        if s.pve is not None:
            ax.plot(x, s.pve, label="PVE", lw=0.8, alpha=0.7)
        for i in np.flatnonzero(~s.valid):
            ax.axvspan(i - 0.5, i + 0.5, color="0.85", lw=0)
        ax.set_title(f"{s.name}: mean PA-MPJPE {s.mean('pa_mpjpe'):.1f} mm, MPJPE {s.mean('mpjpe'):.1f} mm",
                     fontsize=9)
        ax.set_ylabel("mm")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("frame in sequence")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return [s.name for s in ranked]
