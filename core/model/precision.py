"""``--precision auto``: bf16 where the hardware multiplies bf16 natively and it leaves the pose as
fp32 gives it, fp32 elsewhere.

The check runs the installed weights in both precisions on crops of a real photo of a person
(matplotlib's sample photo, so no user data is involved) and measures the largest joint-rotation
difference. Its verdict is kept per process and in the user's cache folder, keyed by the weight
files, the device and the torch version, so a machine pays for it once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.model.load import StafModels, autocast_for

__all__ = ["TOLERANCE_RAD", "PrecisionChoice", "choose_precision", "native_bf16", "pose_difference"]

#: Largest joint-rotation difference from fp32 (radians) that bf16 may cause and still be chosen.
TOLERANCE_RAD = 1e-4
_CHECK_CROPS = 16
_memo: dict[str, PrecisionChoice] = {}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and why (``difference``: bf16's measured pose difference, rad)."""

    precision: str
    reason: str
    difference: float | None = None


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware (AMX or AVX-512 BF16; CUDA sm_80+)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                    or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return False


def _check_crops() -> torch.Tensor:
    from core.crops import crop_person, normalise
    from core.sample_clip import photo

    image = photo()
    rng = np.random.default_rng(0)
    boxes = [(256 + rng.uniform(-30, 30), 300 + rng.uniform(-30, 30), 380 * rng.uniform(0.8, 1.1),
              560 * rng.uniform(0.8, 1.1)) for _ in range(_CHECK_CROPS)]
    return normalise(np.stack([crop_person(image, np.array(b)) for b in boxes]))


def _angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotation angles between rotation matrices; atan2 of the skew and symmetric parts stays exact near
    zero, where arccos of the trace turns float32 rounding (1e-7) into 5e-4 rad."""
    r = a.double().transpose(-1, -2) @ b.double()
    skew = torch.stack((r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]), -1)
    return torch.atan2(0.5 * skew.norm(dim=-1), 0.5 * (r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1))


@torch.inference_mode()
def pose_difference(models: StafModels, precision: str, crops: torch.Tensor | None = None) -> float:
    """Largest joint-rotation difference (rad) between ``precision`` and fp32 on the check crops."""
    crops = _check_crops() if crops is None else crops
    runner = models.runner(windows_per_batch=_CHECK_CROPS, keep_vertices=False)
    reference = runner.run(models.features(crops)).rotmat
    with autocast_for(models.device, precision):
        trial = runner.run(models.features(crops)).rotmat
    return float(_angles(reference, trial.float()).max())


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "staf-mocap" / "precision.json"


def _key(assets: Path, device: torch.device) -> str:
    stamps = []
    for path in sorted(Path(assets).iterdir()):
        if path.is_file() and path.suffix in (".pt", ".tar", ".pkl"):
            st = path.stat()
            stamps.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    return "|".join([str(Path(assets).resolve()), device.type, name, torch.__version__, *stamps])


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(key: str, choice: PrecisionChoice) -> None:
    from core.atomic import atomic_path

    data = _load_cache()
    data[key] = {"precision": choice.precision, "difference": choice.difference}
    try:
        with atomic_path(_cache_file()) as tmp:
            tmp.write_text(json.dumps(dict(list(data.items())[-32:])))
    except OSError:
        pass  # a read-only home only costs the check again next time


def choose_precision(models: StafModels, requested: str, assets: Path) -> PrecisionChoice:
    """The precision to run: ``requested`` unless it is "auto"."""
    if requested != "auto":
        return PrecisionChoice(requested, "as asked")
    if not native_bf16(models.device):
        return PrecisionChoice("fp32", "auto: this device has no native bf16 units")
    key = _key(assets, models.device)
    if key not in _memo:
        cached = _load_cache().get(key)
        if isinstance(cached, dict) and cached.get("precision") in ("bf16", "fp32") and isinstance(
                cached.get("difference"), float):
            diff = cached["difference"]
        else:
            diff = pose_difference(models, "bf16")
        ok = diff <= TOLERANCE_RAD
        verdict = "moves the pose by at most" if ok else "would move the pose by up to"
        reason = f"auto: bf16 {verdict} {diff:.1e} rad, {'within' if ok else 'over'} the {TOLERANCE_RAD:.0e} limit"
        _memo[key] = PrecisionChoice("bf16" if ok else "fp32", reason, diff)
        if cached is None:
            _store(key, _memo[key])
    return _memo[key]
