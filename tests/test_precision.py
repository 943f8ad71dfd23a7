"""``--precision auto``: bf16 only where the device has native bf16 units and the check passes."""

from __future__ import annotations

import json

import pytest

import core.model.precision as precision
from core.model.precision import choose_precision, pose_difference


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "_memo", {})
    return tmp_path / "cache" / "staf-mocap" / "precision.json"


def test_asked_precision_is_kept(models, standin_assets):
    assert choose_precision(models, "fp32", standin_assets).precision == "fp32"
    assert choose_precision(models, "bf16", standin_assets).reason == "as asked"


def test_no_native_units_means_fp32(models, standin_assets, fresh, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    chosen = choose_precision(models, "auto", standin_assets)
    assert chosen.precision == "fp32" and "no native bf16" in chosen.reason
    assert not fresh.exists()  # nothing measured, nothing stored


def test_check_decides_and_is_remembered(models, standin_assets, fresh, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    calls = []

    def measured(m, name, crops=None):
        calls.append(name)
        return 3e-4

    monkeypatch.setattr(precision, "pose_difference", measured)
    chosen = choose_precision(models, "auto", standin_assets)
    assert chosen.precision == "fp32" and "3.0e-04" in chosen.reason and "over" in chosen.reason
    assert calls == ["bf16"]
    stored = json.loads(fresh.read_text())
    assert [v["precision"] for v in stored.values()] == ["fp32"]
    # Another process (empty memo) reads the verdict instead of measuring again.
    monkeypatch.setattr(precision, "_memo", {})
    assert choose_precision(models, "auto", standin_assets).precision == "fp32"
    assert calls == ["bf16"]
    # Within the limit, bf16 is chosen.
    monkeypatch.setattr(precision, "_memo", {})
    monkeypatch.setattr(precision, "TOLERANCE_RAD", 1e-3)
    assert choose_precision(models, "auto", standin_assets).precision == "bf16"


def test_pose_difference_is_zero_for_fp32_and_small_for_bf16(models):
    assert pose_difference(models, "fp32") == 0.0
    assert 0.0 < pose_difference(models, "bf16") < 0.05


def test_the_torch_free_precision_names_are_the_models_own():
    """``core.reconstruct`` checks --precision without torch; its names must be the ones that load."""
    from core.model.load import PRECISION_DTYPES
    from core.reconstruct import PRECISIONS

    assert sorted(PRECISIONS) == sorted(PRECISION_DTYPES)
