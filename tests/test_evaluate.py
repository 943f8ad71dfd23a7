"""The evaluation protocol on known cases, and ``evaluate`` end to end on a tiny generated 3DPW."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.datasets.db import read_db
from core.datasets.joints import joints14_from_vertices, to_common14
from core.datasets.synthetic import make_synthetic_db, write_random_features
from core.evaluation.protocol import (
    format_table,
    plot_worst_sequences,
    sequence_errors,
    summarise,
    write_sequence_csv,
)
from core.features_cache import FeatureCache
from core.model.sequence import run_per_window
from core.smpl import load_joint_regressor


@pytest.fixture
def cli() -> Any:
    """``python -m core`` in this process: argv list -> exit code."""
    from core.cli import main

    return main


def _walk(frames: int = 12, seed: int = 0) -> torch.Tensor:
    """14 joints (frames, 14, 3) in metres, moving smoothly."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=0.3, size=(1, 14, 3))
    t = np.arange(frames)[:, None, None] / 30
    return torch.tensor(base + 0.2 * np.sin(2 * np.pi * t + rng.uniform(0, 6, size=(1, 14, 3))))


# --------------------------------------------------------------------------------------------
# protocol


def test_ground_truth_against_itself_scores_zero() -> None:
    gt = _walk()
    errors = sequence_errors("s", gt, gt.clone(), pve_m=torch.zeros(12))
    for metric in ("mpjpe", "pa_mpjpe", "pve", "accel"):
        assert errors.mean(metric) == pytest.approx(0.0, abs=1e-6)


def test_a_known_offset_gives_a_known_mpjpe() -> None:
    gt = _walk()
    pred = gt + torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)  # whole body moved: centring removes it
    assert sequence_errors("s", pred, gt).mean("mpjpe") == pytest.approx(0.0, abs=1e-9)
    pred = gt.clone()
    pred[:, 13, 2] += 0.014  # head top 14 mm off in every frame: 1 mm over 14 joints
    errors = sequence_errors("s", pred, gt)
    np.testing.assert_allclose(errors.mpjpe, 1.0, rtol=1e-9)
    assert errors.mean("accel") == pytest.approx(0.0, abs=1e-9)  # constant offset: no acceleration
    turn = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    similar = sequence_errors("s", 1.1 * gt @ turn.T + 0.3, gt)  # turned, scaled and moved
    assert similar.mean("mpjpe") > 50 and similar.mean("pa_mpjpe") == pytest.approx(0.0, abs=1e-6)
    hips = gt.clone()
    hips[:, 2, 0] += 0.028  # a hip moves the pelvis by 14 mm, so every joint moves
    assert sequence_errors("s", hips, gt).mean("mpjpe") > 1.0


def test_invalid_frames_are_not_scored_and_frames_pool() -> None:
    gt = _walk()
    pred = gt.clone()
    pred[5, 13, 0] += 0.14  # a 10 mm MPJPE spike at frame 5, which the db marks invalid
    valid = np.ones(12, dtype=bool)
    valid[5] = False
    spiky = sequence_errors("a", pred, gt, valid=valid)
    assert spiky.mean("mpjpe") == pytest.approx(0.0, abs=1e-9)
    assert spiky.mean("accel") == pytest.approx(0.0, abs=1e-9)  # triplets touching frame 5 are dropped
    assert spiky.accel_valid.sum() == 10 - 3
    offset = gt.clone()
    offset[:, 13, 0] += 0.014  # 1 mm in each of 4 frames
    row = summarise([spiky, sequence_errors("b", offset[:4], gt[:4])])
    assert row.frames == 11 + 4 and row.sequences == 2
    assert row.mpjpe == pytest.approx(4 * 1.0 / 15)  # pooled over frames, not a mean of sequence means
    assert row.pve is None


def test_reports(tmp_path: Path) -> None:
    gt = _walk()
    seqs = [sequence_errors(f"seq{i}", gt + 0.01 * i * torch.randn_like(gt), gt, pve_m=torch.full((12,), 0.05))
            for i in range(5)]
    write_sequence_csv(tmp_path / "s.csv", seqs, fps=30)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [r["sequence"] for r in rows] == [f"seq{i}" for i in range(5)]
    assert float(rows[0]["pve_mm"]) == pytest.approx(50.0)
    assert float(rows[3]["accel_m_per_s2"]) == pytest.approx(float(rows[3]["accel_mm_per_frame2"]) * 0.9, abs=2e-3)
    plotted = plot_worst_sequences(tmp_path / "w.png", seqs, count=2)
    assert plotted == ["seq4", "seq3"]
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_table("3DPW", summarise(seqs), fps=30, published={"STAF (paper)": (48.0, 80.6, 95.3, 8.2)})
    assert "PA-MPJPE" in table and "STAF (paper)" in table and "m/s^2 at 30 fps" in table


# --------------------------------------------------------------------------------------------
# end to end


@pytest.fixture(scope="module")
def dataset(standin_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("eval")
    db_path = make_synthetic_db(folder / "3dpw_test_db.pt", standin_assets, sequences=(9, 6), invalid_frames=(3,))
    write_random_features(folder / "feats", read_db(db_path, "3dpw"), chunk_frames=4)
    return db_path, folder / "feats"


def test_evaluate_end_to_end(dataset: tuple[Path, Path], standin_assets: Path, models: Any, tmp_path: Path,
                             cli: Any, capsys: pytest.CaptureFixture) -> None:
    db_path, feats = dataset
    out = tmp_path / "report"
    code = cli(["evaluate", "--dataset", "3dpw", "--db", str(db_path), "--features", str(feats), "--assets",
                str(standin_assets), "--out", str(out), "--device", "cpu", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "3DPW: 14 frames scored in 2 sequences" in printed and "STAF (paper)" in printed
    rows = list(csv.DictReader(open(out / "3dpw_sequences.csv")))
    summary = json.loads((out / "3dpw_summary.json").read_text())
    assert (out / "3dpw_worst.png").stat().st_size > 1000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    # The same numbers, computed independently: plain per-window STAF, numpy distances.
    db = read_db(db_path, "3dpw")
    cache = FeatureCache.open(feats, db)
    regressor = torch.from_numpy(load_joint_regressor(standin_assets / "J_regressor_h36m.npy", 17))
    gt14 = to_common14(db.joints3d, what="gt")
    all_mpjpe, all_pve = [], []
    for seq, row in zip(db.sequences, rows, strict=True):
        res = run_per_window(models.staf, models.body, torch.from_numpy(cache.gather(np.arange(seq.start, seq.stop))))
        pred = joints14_from_vertices(res.vertices, regressor).numpy()
        gt = gt14[seq.start:seq.stop]
        pred = pred - pred[:, 2:4].mean(1, keepdims=True)
        gt = gt - gt[:, 2:4].mean(1, keepdims=True)
        per_frame = np.linalg.norm(pred - gt, axis=-1).mean(-1) * 1000
        with torch.no_grad():
            gt_mesh = models.body.forward_axis_angle(torch.from_numpy(db.shape[seq.start:seq.stop]),
                                                     torch.from_numpy(db.pose[seq.start:seq.stop]))
        pve = np.linalg.norm((res.vertices - gt_mesh.vertices).numpy(), axis=-1).mean(-1) * 1000
        keep = db.valid[seq.start:seq.stop]
        assert row["sequence"] == seq.name and int(row["valid_frames"]) == keep.sum()
        assert float(row["mpjpe_mm"]) == pytest.approx(per_frame[keep].mean(), abs=2e-3)
        assert float(row["pve_mm"]) == pytest.approx(pve[keep].mean(), abs=2e-3)
        all_mpjpe.append(per_frame[keep])
        all_pve.append(pve[keep])
    assert summary["mpjpe"] == pytest.approx(np.concatenate(all_mpjpe).mean(), abs=2e-3)
    assert summary["pve"] == pytest.approx(np.concatenate(all_pve).mean(), abs=2e-3)
    assert summary["frames"] == 14 and summary["fps"] == 30
    assert 0 < summary["pa_mpjpe"] < summary["mpjpe"]


def test_evaluate_against_mesh_joints(dataset: tuple[Path, Path], standin_assets: Path) -> None:
    from core.evaluation.run import evaluate_db, load_eval_models

    db_path, feats = dataset
    db = read_db(db_path, "3dpw")
    models = load_eval_models(standin_assets, checkpoint=None, device=torch.device("cpu"))
    result = evaluate_db(models, db, FeatureCache.open(feats, db), gt_joints="mesh", progress=False)
    assert result.row.frames == 14 and np.isfinite(result.row.mpjpe) and result.row.pve is not None


def test_bad_inputs_give_one_line_and_an_exit_code(dataset: tuple[Path, Path], standin_assets: Path,
                                                   tmp_path: Path, cli: Any, capsys: pytest.CaptureFixture) -> None:
    db_path, feats = dataset
    other_db = make_synthetic_db(tmp_path / "other_db.pt", standin_assets, sequences=(5,), seed=9)
    base = ["evaluate", "--dataset", "3dpw", "--assets", str(standin_assets), "--out", str(tmp_path / "r"),
            "--device", "cpu", "--no-progress"]
    cases = [
        (["--db", str(other_db), "--features", str(feats)], 5, "computed for another db"),
        (["--db", str(db_path), "--features", str(feats), "--checkpoint", str(standin_assets / "base_model.pt")], 4,
         "not a STAF checkpoint"),
        (["--db", str(tmp_path / "nowhere_db.pt"), "--features", str(feats)], 5, "dataset file not found"),
        (["--db", str(db_path), "--features", str(tmp_path)], 5, "no feature cache"),
    ]
    for extra, code, message in cases:
        assert cli([*base, *extra]) == code, message
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "r").exists()
