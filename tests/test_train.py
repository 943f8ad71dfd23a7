"""Training: the losses by hand, the loss going down on a learnable synthetic task, checkpoints that
the engine loads, exact resumption after an interruption, and one-line refusals of bad input."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.datasets.db import read_db
from core.datasets.joints import SpinJoints
from core.datasets.sampling import Pick
from core.datasets.synthetic import make_synthetic_db, write_random_features
from core.model.checkpoint import load_backbone_weights, load_staf_weights, read_torch_file
from core.model.staf import Staf, StafOutput
from core.smpl import load_joint_regressor
from core.training.data import BatchLoader, SourceSpec, open_source
from core.training.losses import LossWeights, Targets, staf_losses
from core.training.models import init_staf


@pytest.fixture
def cli() -> Any:
    """``python -m core`` in this process: argv list -> exit code."""
    from core.cli import main

    return main


# --------------------------------------------------------------------------------------------
# losses


def _output(batch: int) -> StafOutput:
    rot = torch.eye(3).expand(batch, 24, 3, 3).clone()
    return StafOutput(rot, torch.zeros(batch, 144), torch.zeros(batch, 10), torch.tensor([[1.0, 0.0, 0.0]] * batch),
                      torch.zeros(batch, 6890, 3), torch.zeros(batch, 24, 3))


def test_losses_by_hand_with_masks() -> None:
    out = _output(2)
    joints = torch.zeros(2, 49, 3)
    joints[:, 25 + 13] = torch.tensor([0.0, 0.0, 0.1])  # head top 10 cm in front of the pelvis plane
    kp2d = torch.zeros(2, 49, 3)
    kp2d[0, 0] = torch.tensor([0.5, 0.0, 1.0])  # labelled: squared error 0.25
    kp2d[1, 1] = torch.tensor([9.0, 9.0, 0.0])  # unlabelled (confidence 0): ignored
    kp3d = torch.zeros(2, 49, 4)
    kp3d[:, 25:39, 3] = 1.0
    pose = torch.zeros(2, 72)
    pose[0, 3:6] = torch.tensor([0.0, 0.0, torch.pi / 2])  # one joint turned 90 degrees
    shape = torch.ones(2, 10)
    targets = Targets(kp2d, kp3d, pose, shape, has_3d=torch.tensor([True, False]),
                      has_smpl=torch.tensor([True, False]))
    terms = staf_losses(out, joints, targets)
    assert terms.kp2d.item() == pytest.approx(0.25 / (2 * 49 * 2))
    assert terms.kp3d.item() == pytest.approx(0.01 / (14 * 3))  # only sample 0 has 3D labels
    assert terms.pose.item() == pytest.approx(4.0 / (24 * 9))  # R - I of a 90-degree turn about z: 4 entries of 1
    assert terms.shape.item() == pytest.approx(1.0)
    w = LossWeights()
    expected = w.kp2d * terms.kp2d + w.kp3d * terms.kp3d + w.pose * terms.pose + w.shape * terms.shape
    assert terms.total.item() == pytest.approx(expected.item())
    assert (w.kp2d, w.kp3d, w.shape, w.pose) == (300.0, 300.0, 0.06, 60.0)
    none = Targets(torch.zeros(2, 49, 3), kp3d, pose, shape, torch.tensor([False, False]), torch.tensor([False, False]))
    assert staf_losses(out, joints, none).total.item() == 0.0


def test_keypoint_labels_become_crop_coordinates(standin_assets: Path, tmp_path: Path) -> None:
    db_path = make_synthetic_db(tmp_path / "3dpw_db.pt", standin_assets, sequences=(3,))
    db = read_db(db_path, "3dpw")
    write_random_features(tmp_path / "f", db)
    source = open_source(SourceSpec("3dpw", db_path, tmp_path / "f"), stage=2, crop_scale=1.2)
    cx, cy, w, _ = db.bbox[1]
    half = 1.2 * w / 2
    expected = (db.joints2d[1, :, :2] - [cx, cy]) / half
    np.testing.assert_allclose(source.labels.kp2d[1, :, :2], expected, rtol=1e-5, atol=1e-5)
    assert source.labels.has_3d.all() and source.labels.has_smpl.all()


# --------------------------------------------------------------------------------------------
# a short training run, shared by the tests below


@pytest.fixture(scope="module")
def data(standin_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("train")
    paths = {
        "train": make_synthetic_db(folder / "3dpw_train_db.pt", standin_assets, sequences=(10, 10), seed=1),
        "val": make_synthetic_db(folder / "3dpw_test_db.pt", standin_assets, sequences=(9,), seed=2),
        "2d": make_synthetic_db(folder / "posetrack_train_db.pt", standin_assets, dataset="posetrack",
                                sequences=(9,), seed=3),
    }
    for name, dataset in (("train", "3dpw"), ("val", "3dpw"), ("2d", "posetrack")):
        paths[f"{name}_features"] = write_random_features(folder / f"{name}_feats", read_db(paths[name], dataset),
                                                          seed=len(name))
    paths["folder"] = folder
    return paths


def _train_args(data: dict[str, Path], assets: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--out", str(out), "--assets", str(assets), "--device", "cpu", "--no-progress",
            "--train", "3dpw", str(data["train"]), str(data["train_features"]), "--batch-size", "2", *extra]


def _eval_loss(model: Staf, data: dict[str, Path], assets: Path) -> float:
    """The loss of ``model`` in eval mode (no dropout) on 4 fixed training windows."""
    from core.smpl import load_body_model

    source = open_source(SourceSpec("3dpw", data["train"], data["train_features"]), stage=2, crop_scale=1.2)
    batch = BatchLoader([source], length=9).load([Pick(0, s) for s in (0, 1, 10, 11)])
    body = load_body_model(assets)
    spin = SpinJoints(load_joint_regressor(assets / "J_regressor_extra.npy", 9))
    with torch.no_grad():
        out = model.eval()(batch.inputs, body)
        return staf_losses(out, spin(out.vertices, out.joints), batch.targets).total.item()


@pytest.fixture(scope="module")
def run(data: dict[str, Path], standin_assets: Path) -> Path:
    """40 steps at lr 1e-4, batches of 2, validated after each epoch. Only the regressors train, to
    keep CI fast (the whole network trains in the resume test; docs/evaluation-training.md has a
    300-step run of the whole network)."""
    from core.cli import main

    out = data["folder"] / "run"
    args = _train_args(data, standin_assets, out, "--val", "3dpw", str(data["val"]), str(data["val_features"]),
                       "--epochs", "2", "--iters-per-epoch", "20", "--lr", "1e-4", "--log-every", "1",
                       "--trainable", "regressors")
    assert main(args) == 0
    return out


def test_training_reduces_the_loss(run: Path, data: dict[str, Path], standin_assets: Path) -> None:
    torch.manual_seed(0)  # as train() does before building the model: the run's starting point
    before = _eval_loss(init_staf(standin_assets), data, standin_assets)
    after_model = Staf()
    load_staf_weights(after_model, run / "checkpoint.pth.tar")
    after = _eval_loss(after_model, data, standin_assets)
    print(f"eval-mode loss on the training windows: {before:.4f} -> {after:.4f}")  # shown with pytest -rP
    assert after < 0.5 * before, (before, after)
    steps = list(csv.DictReader(open(run / "train_steps.csv")))
    assert len(steps) == 40
    assert np.mean([float(r["loss"]) for r in steps[-10:]]) < np.mean([float(r["loss"]) for r in steps[:10]])


def test_logs_and_checkpoint_format(run: Path) -> None:
    epochs = list(csv.DictReader(open(run / "train_log.csv")))
    assert [int(r["epoch"]) for r in epochs] == [1, 2]
    assert all(np.isfinite(float(r["val_pa_mpjpe"])) and float(r["lr"]) == 1e-4 for r in epochs)
    assert float(epochs[1]["best"]) == min(float(r["val_pa_mpjpe"]) for r in epochs)
    blob = read_torch_file(run / "checkpoint.pth.tar")
    assert {"gen_state_dict", "epoch", "performance", "gen_optimizer", "lr_scheduler"} <= set(blob)
    assert blob["epoch"] == 2 and blob["performance"] == pytest.approx(float(epochs[1]["val_pa_mpjpe"]))
    assert (run / "model_best.pth.tar").is_file() and (run / "config.json").is_file()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


def test_trained_checkpoint_loads_in_the_engine(run: Path, standin_assets: Path, tmp_path: Path) -> None:
    from core.model.load import STAF_FILE, load_models

    folder = tmp_path / "assets"
    folder.mkdir()
    for item in standin_assets.iterdir():
        (folder / item.name).symlink_to(run / "model_best.pth.tar" if item.name == STAF_FILE else item)
    models = load_models(folder, device="cpu", with_backbone=False)
    best = read_torch_file(run / "model_best.pth.tar")["gen_state_dict"]
    assert all(torch.equal(v, best[k]) for k, v in models.staf.state_dict().items())
    res = models.runner().run(torch.rand(3, 2048, 7, 7))
    assert torch.isfinite(res.vertices).all()


# --------------------------------------------------------------------------------------------
# resuming


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    return read_torch_file(out / "checkpoint.pth.tar")["gen_state_dict"]


def test_an_interrupted_run_resumes_where_it_stopped(data: dict[str, Path], standin_assets: Path, tmp_path: Path,
                                                     cli: Any, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    # Half of each batch from a 2D-only dataset, as the release mixes them.
    common = ("--epochs", "2", "--iters-per-epoch", "3", "--log-every", "1",
              "--train", "posetrack", str(data["2d"]), str(data["2d_features"]), "--ratio-2d", "0.5")
    straight = tmp_path / "straight"
    assert cli(_train_args(data, standin_assets, straight, *common)) == 0

    paused = tmp_path / "paused"
    assert cli(_train_args(data, standin_assets, paused, *common, "--max-steps", "2")) == 0  # inside epoch 1
    assert "paused" in capsys.readouterr().out
    assert cli(_train_args(data, standin_assets, paused, *common, "--max-steps", "2", "--resume")) == 0  # into epoch 2

    # Then Ctrl-C during the next step: honoured after it, checkpoint saved, exit 130.
    import core.training.loop as loop

    real_step = loop._step

    def step_then_interrupt(*args: Any) -> Any:
        result = real_step(*args)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(loop, "_step", step_then_interrupt)
    assert cli(_train_args(data, standin_assets, paused, *common, "--resume")) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(loop, "_step", real_step)
    assert cli(_train_args(data, standin_assets, paused, *common, "--resume")) == 0

    a, b = _final_weights(straight), _final_weights(paused)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log_a = list(csv.DictReader(open(straight / "train_steps.csv")))
    log_b = list(csv.DictReader(open(paused / "train_steps.csv")))
    assert log_a == log_b and len(log_a) == 6
    assert all(float(r["kp3d"]) > 0 and float(r["kp2d"]) > 0 for r in log_a)  # one 3D and one 2D-only sample


def test_refusals(data: dict[str, Path], standin_assets: Path, run: Path, tmp_path: Path, cli: Any,
                  capsys: pytest.CaptureFixture) -> None:
    other_db = make_synthetic_db(tmp_path / "other_db.pt", standin_assets, sequences=(9,), seed=7)
    short = ("--epochs", "1", "--iters-per-epoch", "1")
    cases = [
        (_train_args(data, standin_assets, run, *short), 5, "already holds a training run"),
        (_train_args(data, standin_assets, tmp_path / "new", *short, "--resume"), 5, "nothing to resume"),
        (_train_args(data, standin_assets, run, "--epochs", "3", "--iters-per-epoch", "20", "--resume",
                     "--batch-size", "4"), 5, "batch_size: was 2, now 4"),
        (_train_args(data, standin_assets, run, "--stage", "1", "--resume"), 4, "a stage-2 checkpoint"),
        (["train", "--out", str(tmp_path / "x"), "--assets", str(standin_assets), "--device", "cpu",
          "--train", "3dpw", str(other_db), str(data["train_features"])], 5, "computed for another db"),
        (_train_args(data, standin_assets, tmp_path / "y", *short, "--init", str(standin_assets / "base_model.pt")),
         4, "does not fit STAF"),
        (_train_args(data, standin_assets, tmp_path / "z", *short, "--init",
                     str(standin_assets / "smpl_mean_params.npz")), 4, "not a readable torch checkpoint"),
    ]
    for args, code, message in cases:
        assert cli(args) == code, message
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "new").exists()


# --------------------------------------------------------------------------------------------
# stage 1


def test_stage1_trains_the_base_model_and_feeds_stage2(standin_assets: Path, tmp_path: Path, cli: Any) -> None:
    from core.model.backbone import ResNet50Features
    from core.training.models import load_base_head

    db_path = make_synthetic_db(tmp_path / "3dpw_train_db.pt", standin_assets, sequences=(3,), images=tmp_path / "img")
    out = tmp_path / "stage1"
    args = ["train", "--stage", "1", "--out", str(out), "--assets", str(standin_assets), "--device", "cpu",
            "--no-progress", "--train", "3dpw", str(db_path), str(tmp_path / "img"), "--batch-size", "2",
            "--epochs", "1", "--iters-per-epoch", "2", "--init", str(standin_assets / "base_model.pt"),
            "--workers", "2"]
    assert cli(args) == 0
    blob = read_torch_file(out / "checkpoint.pth.tar")
    assert {"model", "optimizer", "epoch", "performance"} <= set(blob)
    backbone = ResNet50Features()
    load_backbone_weights(backbone, out / "checkpoint.pth.tar")  # the engine's reader of base_model.pt
    start = ResNet50Features()
    load_backbone_weights(start, standin_assets / "base_model.pt")
    assert not torch.equal(backbone.layer4[0].conv1.weight, start.layer4[0].conv1.weight)  # it trained
    staf = init_staf(standin_assets)
    load_base_head(staf, out / "checkpoint.pth.tar")
    assert torch.equal(staf.regressor[2].fc1.weight, blob["model"]["regressor.2.fc1.weight"])
