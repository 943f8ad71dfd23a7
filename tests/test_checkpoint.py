"""Strict, code-free loading of STAF and backbone weights, and every bad file a user may hand us."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.errors import AssetInvalid, AssetMissing, CheckpointMismatch
from core.model.backbone import ResNet50Features
from core.model.checkpoint import (
    inspect_backbone_checkpoint,
    inspect_staf_checkpoint,
    load_backbone_weights,
    load_staf_weights,
    read_torch_file,
)
from core.model.staf import Staf

STAF_FILE = "3dpw_model_best.pth.tar"


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_release_format_loads_and_gives_identical_outputs(standin_assets, models, tmp_path):
    blob = torch.load(standin_assets / STAF_FILE, weights_only=True)
    assert set(blob) >= {"gen_state_dict", "epoch", "performance"}
    assert any(".smpl." in k for k in blob["gen_state_dict"])  # the release's SMPL copies are ignored
    fresh = Staf()
    load_staf_weights(fresh, standin_assets / STAF_FILE)
    feats = torch.relu(torch.randn(2, 9, 2048, 7, 7))
    with torch.no_grad():
        a = models.staf(feats, models.body)
        b = fresh.eval()(feats, models.body)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.cam, b.cam)
    # The same weights saved under DataParallel's "module." prefix load too.
    blob["gen_state_dict"] = {"module." + k: v for k, v in blob["gen_state_dict"].items()}
    torch.save(blob, tmp_path / "dp.pth.tar")
    again = Staf()
    load_staf_weights(again, tmp_path / "dp.pth.tar")
    assert torch.equal(again.state_dict()["tcfm.nonlocalblock.conv_g.weight"],
                       fresh.state_dict()["tcfm.nonlocalblock.conv_g.weight"])
    assert "92 network tensors" in inspect_staf_checkpoint(standin_assets / STAF_FILE)


def test_backbone_loads_release_and_torchvision_layouts(standin_assets, tmp_path):
    release = ResNet50Features()
    load_backbone_weights(release, standin_assets / "base_model.pt")
    # A torchvision-style state dict, classifier included, loads into the same module strictly.
    plain = dict(release.state_dict())
    plain["fc.weight"], plain["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(plain, tmp_path / "resnet50.pth")
    tv = ResNet50Features()
    load_backbone_weights(tv, tmp_path / "resnet50.pth")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(release.eval()(x), tv.eval()(x))
    assert "ResNet-50" in inspect_backbone_checkpoint(tmp_path / "resnet50.pth")
    del plain["layer3.2.bn2.running_var"]
    torch.save(plain, tmp_path / "broken.pth")
    with pytest.raises(CheckpointMismatch, match=r"layer3\.2\.bn2\.running_var"):
        load_backbone_weights(ResNet50Features(), tmp_path / "broken.pth")


def _staf_blob(standin_assets: Path) -> dict:
    return torch.load(standin_assets / STAF_FILE, weights_only=True)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("tcfm.nonlocalblock.conv_mask_forR.weight"), "missing key.*conv_mask_forR"),
    (lambda s: s.__setitem__("extra_head.weight", torch.zeros(3)), "unexpected key.*extra_head.weight"),
    (lambda s: s.__setitem__("regressor.1.fc1.weight", torch.zeros(1024, 2362)),
     r"regressor.1.fc1.weight \(1024, 2362\)"),
])
def test_staf_checkpoint_mismatch_names_the_key(standin_assets, tmp_path, edit, message):
    blob = _staf_blob(standin_assets)
    edit(blob["gen_state_dict"])
    torch.save(blob, tmp_path / "bad.pth.tar")
    with pytest.raises(CheckpointMismatch, match=message) as err:
        load_staf_weights(Staf(), tmp_path / "bad.pth.tar")
    assert "bad.pth.tar" in one_line(err)


def test_checkpoint_of_another_model(standin_assets):
    with pytest.raises(CheckpointMismatch, match="not a STAF checkpoint") as err:
        load_staf_weights(Staf(), standin_assets / "base_model.pt")
    one_line(err)
    with pytest.raises(CheckpointMismatch, match="not a ResNet-50 checkpoint"):
        load_backbone_weights(ResNet50Features(), standin_assets / STAF_FILE)


def test_missing_empty_truncated_and_wrong_kind_files(standin_assets, tmp_path):
    with pytest.raises(AssetMissing, match=r"nothing\.pth\.tar: file not found"):
        load_staf_weights(Staf(), tmp_path / "nothing.pth.tar")
    (tmp_path / "empty.pth.tar").write_bytes(b"")
    with pytest.raises(AssetInvalid, match="empty"):
        load_staf_weights(Staf(), tmp_path / "empty.pth.tar")
    data = (standin_assets / STAF_FILE).read_bytes()
    (tmp_path / "cut.pth.tar").write_bytes(data[: len(data) // 3])
    with pytest.raises(AssetInvalid, match=r"cut\.pth\.tar") as err:
        load_staf_weights(Staf(), tmp_path / "cut.pth.tar")
    one_line(err)
    (tmp_path / "notes.pth.tar").write_text("these are not weights\n")
    with pytest.raises(AssetInvalid, match=r"notes\.pth\.tar") as err:
        load_staf_weights(Staf(), tmp_path / "notes.pth.tar")
    one_line(err)


class _Payload:
    """Pickles to a call that would create a marker file if it were ever executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_tries_to_run_code_is_refused(tmp_path):
    marker = tmp_path / "executed"
    torch.save({"gen_state_dict": {"points_grid": torch.zeros(1)}, "evil": _Payload(marker)},
               tmp_path / "evil.pth.tar")
    with pytest.raises(AssetInvalid, match="refused to load") as err:
        load_staf_weights(Staf(), tmp_path / "evil.pth.tar")
    one_line(err)
    assert not marker.exists()


def test_zip_bomb_checkpoint_is_refused_before_inflating(tmp_path):
    import zipfile


    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (64 << 20))  # 64 MiB from about 65 KB
    with pytest.raises(AssetInvalid, match="a zip bomb"):
        read_torch_file(bomb)
    fine = tmp_path / "fine.pt"
    torch.save({"w": torch.arange(3.0)}, fine)
    assert torch.equal(read_torch_file(fine)["w"], torch.arange(3.0))
