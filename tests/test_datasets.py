"""Dataset readers on tiny generated ``*_db.pt`` files in the real (joblib) format, joint layouts,
window sampling, and the feature cache (crops + backbone, chunked, resumable, checked)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.datasets.db import read_db
from core.datasets.joblib_format import write_joblib
from core.datasets.joints import SpinJoints, to_common14, to_spin49
from core.datasets.sampling import MixedSampler, sequence_windows
from core.datasets.synthetic import make_synthetic_db, write_random_features
from core.errors import BadInput
from core.features_cache import FeatureCache, ImageLocator, build_features, crop_image
from core.safe_pickle import load_joblib


@pytest.fixture
def cli() -> Any:
    """``python -m core`` in this process: argv list -> exit code."""
    from core.cli import main

    return main


@pytest.fixture(scope="module")
def db_3dpw(standin_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("db")
    return make_synthetic_db(folder / "3dpw_test_db.pt", standin_assets, sequences=(4, 3), invalid_frames=(5,),
                             images=folder / "images")


def _raw(path: Path) -> dict[str, Any]:
    return load_joblib(path)


def _error(err: pytest.ExceptionInfo, path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text
    return text


# --------------------------------------------------------------------------------------------
# reading


def test_reads_a_3dpw_db(db_3dpw: Path) -> None:
    db = read_db(db_3dpw, "3dpw")
    assert len(db) == 7 and db.spec.title == "3DPW"
    assert [(s.name, s.start, s.stop) for s in db.sequences] == [("synthetic_00_0", 0, 4), ("synthetic_01_0", 4, 7)]
    assert db.valid.tolist() == [True] * 5 + [False, True]
    assert db.joints3d.shape == (7, 49, 3) and db.joints2d.shape == (7, 49, 3)
    assert db.pose.shape == (7, 72) and db.shape.shape == (7, 10) and db.has_smpl
    assert db.img_name[0] == "imageFiles/synthetic_00_0/image_00000.jpg" and db.vid_name.dtype.kind == "U"
    assert db.fingerprint() == read_db(db_3dpw, "3dpw").fingerprint()


def test_fingerprint_follows_the_frames(db_3dpw: Path, tmp_path: Path) -> None:
    raw = _raw(db_3dpw)
    raw["bbox"][3, 0] += 10
    other = read_db(write_joblib(raw, tmp_path / "moved_db.pt"), "3dpw")
    assert other.fingerprint() != read_db(db_3dpw, "3dpw").fingerprint()


def test_strings_stored_as_bytes_or_objects(db_3dpw: Path, tmp_path: Path) -> None:
    raw = _raw(db_3dpw)
    raw["vid_name"] = raw["vid_name"].astype("S")
    raw["img_name"] = np.array(raw["img_name"].tolist(), dtype=object)
    db = read_db(write_joblib(raw, tmp_path / "bytes_db.pt"), "3dpw")
    assert db.vid_name[0] == "synthetic_00_0" and db.img_name[1].endswith("image_00001.jpg")


def test_other_datasets(standin_assets: Path, tmp_path: Path) -> None:
    posetrack = read_db(make_synthetic_db(tmp_path / "posetrack_db.pt", standin_assets, dataset="posetrack",
                                          sequences=(3,)), "posetrack")
    assert posetrack.joints3d is None and not posetrack.has_smpl and posetrack.spec.kind == "2d"
    mpii = read_db(make_synthetic_db(tmp_path / "mpii3d_db.pt", standin_assets, dataset="mpii3d", sequences=(3,),
                                     joints3d=14), "mpii3d")
    assert mpii.joints3d.shape == (3, 14, 3) and mpii.pose is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: [r.pop("pose"), r.pop("shape")], "key(s) 'pose', 'shape' missing"),
        (lambda r: r.update(bbox=r["bbox"][:, :3]), "'bbox' has shape (7, 3), expected (7, 4)"),
        (lambda r: r.update(bbox=r["bbox"][:5]), "'bbox' has shape (5, 4), expected (7, 4)"),
        (lambda r: r.update(joints3D=np.zeros((7, 20, 3))), "'joints3D' has shape (7, 20, 3)"),
        (lambda r: r.update(joints3D=r["joints3D"] * 1000), "look like millimetres"),
        (lambda r: r["pose"].__setitem__((0, 0), np.nan), "'pose' contains NaN"),
        (lambda r: r.update(vid_name=np.arange(7)), "'vid_name' holds int64 values, not strings"),
        (lambda r: r.update(valid=np.ones(3)), "'valid' has shape (3,)"),
    ],
    ids=["missing-keys", "bbox-columns", "bbox-rows", "joint-count", "millimetres", "nan", "names", "valid"],
)
def test_malformed_dbs_give_one_line(db_3dpw: Path, tmp_path: Path, change: Any, expected: str) -> None:
    raw = _raw(db_3dpw)
    change(raw)
    path = write_joblib(raw, tmp_path / "bad_db.pt")
    with pytest.raises(BadInput) as err:
        read_db(path, "3dpw")
    assert expected in _error(err, path)


def test_missing_unsafe_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as err:
        read_db(tmp_path / "none_db.pt", "3dpw")
    assert "not found" in _error(err, tmp_path / "none_db.pt")

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> Any:
            return os.system, (f"touch {marker}",)

    evil = write_joblib({"vid_name": np.array(["a"]), "x": Evil()}, tmp_path / "evil_db.pt")
    with pytest.raises(BadInput) as err:
        read_db(evil, "3dpw")
    assert "refused" in _error(err, evil) and not marker.exists()

    h5 = tmp_path / "insta_train_db.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(BadInput) as err:
        read_db(h5, "insta")
    assert "HDF5" in _error(err, h5)

    listing = write_joblib([1, 2, 3], tmp_path / "list_db.pt")
    with pytest.raises(BadInput) as err:
        read_db(listing, "3dpw")
    assert "not the dict of arrays" in _error(err, listing)

    with pytest.raises(BadInput):
        read_db(listing, "coco")


def test_malicious_db_through_the_command_line(tmp_path: Path, cli: Any, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> Any:
            return os.system, (f"touch {marker}",)

    evil = write_joblib({"vid_name": Evil()}, tmp_path / "evil_db.pt")
    code = cli(["features", "--dataset", "3dpw", "--db", str(evil), "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 5 and err.count("\n") == 1 and "refused" in err and not marker.exists()
    assert not (tmp_path / "f").exists()


# --------------------------------------------------------------------------------------------
# joints


def test_joint_layouts() -> None:
    common = np.arange(14 * 3, dtype=np.float32).reshape(1, 14, 3)
    spin = to_spin49(common, what="x")
    assert spin.shape == (1, 49, 3) and not spin[:, :25].any() and not spin[:, 39:].any()
    np.testing.assert_array_equal(to_common14(spin, what="x"), common)
    h36m = np.arange(17 * 3, dtype=np.float32).reshape(1, 17, 3)
    assert to_common14(h36m, what="x")[0, 0].tolist() == h36m[0, 6].tolist()  # right ankle is H36M row 6
    with pytest.raises(BadInput, match="21 joints"):
        to_spin49(np.zeros((1, 21, 3)), what="x")


def test_spin_joints_pick_the_documented_sources() -> None:
    extra = torch.zeros(9, 6890)
    extra[torch.arange(9), torch.arange(9) * 100] = 1.0  # extra joint k sits on vertex 100 k
    spin = SpinJoints(extra)
    vertices = torch.randn(2, 6890, 3)
    smpl = torch.randn(2, 24, 3)
    out = spin(vertices, smpl)
    assert out.shape == (2, 49, 3)
    assert torch.equal(out[:, 0], vertices[:, 332])  # OP nose
    assert torch.equal(out[:, 9], smpl[:, 2])  # OP right hip = SMPL right hip
    assert torch.equal(out[:, 25], smpl[:, 8])  # right ankle = SMPL right ankle
    assert torch.equal(out[:, 27], vertices[:, 0])  # right hip (LSP) = extra joint 0
    assert torch.equal(out[:, 38], vertices[:, 300])  # head top = extra joint 3


# --------------------------------------------------------------------------------------------
# sampling


def test_windows_stay_inside_sequences(db_3dpw: Path) -> None:
    db = read_db(db_3dpw, "3dpw")
    assert sequence_windows(db, 3).tolist() == [0, 1, 4]
    assert sequence_windows(db, 4).tolist() == [0]
    assert sequence_windows(db, 9).tolist() == []
    assert sequence_windows(db, 1, stride=2).tolist() == [0, 2, 4, 6]


def test_mixed_sampler_takes_the_2d_share() -> None:
    rng = np.random.default_rng(0)
    sampler = MixedSampler([np.arange(10), np.arange(5), np.arange(3)], [False, True, False], batch_size=32,
                           ratio_2d=0.6)
    picks = sampler.draw(rng)
    assert len(picks) == 32 and sum(p.source == 1 for p in picks) == 19
    only_3d = MixedSampler([np.arange(10)], [False], batch_size=4, ratio_2d=0.6)
    assert all(p.source == 0 for p in only_3d.draw(rng))
    again = MixedSampler([np.arange(10), np.arange(5), np.arange(3)], [False, True, False], batch_size=32,
                         ratio_2d=0.6)
    assert again.draw(np.random.default_rng(0)) == picks
    with pytest.raises(ValueError):
        MixedSampler([np.zeros(0, dtype=np.int64)], [False], batch_size=2, ratio_2d=0.5)


# --------------------------------------------------------------------------------------------
# feature cache


def test_image_locator_finds_paths_of_another_machine(tmp_path: Path) -> None:
    target = tmp_path / "3DPW" / "imageFiles" / "seq" / "image_00000.jpg"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    locator = ImageLocator(tmp_path / "3DPW")
    assert locator.find("/data/someone/3DPW/imageFiles/seq/image_00000.jpg") == target
    assert locator.find("imageFiles/seq/image_00000.jpg") == target
    assert locator.find("imageFiles/seq/missing.jpg") is None


class _Counting(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.frames = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.frames += x.shape[0]
        return self.inner(x)


def test_features_are_cropped_cached_and_resumed(db_3dpw: Path, models: Any, tmp_path: Path) -> None:
    db = read_db(db_3dpw, "3dpw")
    images = db_3dpw.parent / "images"
    backbone = _Counting(models.backbone)
    out = tmp_path / "feats"

    def stop_after_first(index: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_features(db, out, backbone=backbone, backbone_digest="d1", images=images, device=torch.device("cpu"),
                       chunk_frames=3, batch_size=2, progress=False, on_chunk=stop_after_first)
    assert backbone.frames == 3 and sorted(p.name for p in out.glob("chunk_*")) == ["chunk_000000.npy"]
    with pytest.raises(BadInput, match="incomplete"):
        FeatureCache.open(out, db)

    cache = build_features(db, out, backbone=backbone, backbone_digest="d1", images=images,
                           device=torch.device("cpu"), chunk_frames=3, batch_size=2, progress=False)
    assert backbone.frames == 7  # the rerun computed only the 4 missing rows
    assert not list(out.glob(".*"))  # no temporary files left
    with torch.inference_mode():
        crops = torch.from_numpy(np.stack([crop_image(images / db.img_name[i], db.bbox[i], 1.2) for i in (0, 6)]))
        direct = models.backbone(crops).numpy()
    np.testing.assert_allclose(cache.gather(np.array([0, 6])), direct, rtol=2e-3, atol=2e-3)  # stored as float16
    assert cache.manifest.dtype == "float16"

    with pytest.raises(BadInput, match="other settings") as err:
        build_features(db, out, backbone=backbone, backbone_digest="d2", images=images, device=torch.device("cpu"),
                       chunk_frames=3, progress=False)
    assert "backbone_digest" in str(err.value)


def test_a_cache_of_another_db_is_refused(db_3dpw: Path, standin_assets: Path, tmp_path: Path) -> None:
    db = read_db(db_3dpw, "3dpw")
    other = read_db(make_synthetic_db(tmp_path / "other_db.pt", standin_assets, sequences=(7,), seed=3), "3dpw")
    write_random_features(tmp_path / "feats", other)
    with pytest.raises(BadInput) as err:
        FeatureCache.open(tmp_path / "feats", db)
    assert "computed for another db" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BadInput, match="no feature cache"):
        FeatureCache.open(tmp_path / "nowhere", db)


def test_features_command_end_to_end(db_3dpw: Path, standin_assets: Path, tmp_path: Path, cli: Any,
                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "feats"
    args = ["features", "--dataset", "3dpw", "--db", str(db_3dpw), "--images", str(db_3dpw.parent / "images"),
            "--out", str(out), "--assets", str(standin_assets), "--device", "cpu", "--chunk-frames", "4",
            "--no-progress"]
    assert cli(args) == 0
    assert "features of 7 rows" in capsys.readouterr().out
    assert len(FeatureCache.open(out, read_db(db_3dpw, "3dpw"))) == 7
    assert cli(args) == 0  # already complete: nothing to compute

    missing = ["features", "--dataset", "3dpw", "--db", str(db_3dpw), "--images", str(tmp_path / "nowhere"),
               "--out", str(tmp_path / "f2"), "--assets", str(standin_assets), "--no-progress"]
    assert cli(missing) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "image of row 0" in err
