"""Building the engine's models from an asset folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.assets import STAF_FILE
from core.errors import BadInput
from core.model.backbone import ResNet50Features, fold_batch_norms
from core.model.checkpoint import load_backbone_weights, load_staf_weights
from core.model.sequence import SequenceRunner
from core.model.staf import Staf

__all__ = ["BACKBONE_FILE", "CPU_BACKBONE_CHUNK", "PRECISION_DTYPES", "STAF_FILE", "StafModels", "autocast_for",
           "load_models", "load_models_cached", "resolve_device"]

BACKBONE_FILE = "base_model.pt"

#: Frames per backbone call on CPU: a chunk's activations then stay within the caches (and below
#: glibc's mmap threshold); 8 ran 5-10 % faster than 16 at fp32 and bf16 on a 2-core AVX-512 machine.
CPU_BACKBONE_CHUNK = 8

#: ``--precision`` names -> autocast dtype (None: plain float32).
PRECISION_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_for(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context for a ``--precision`` name on ``device`` (disabled for fp32)."""
    dtype = PRECISION_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        if not torch.cuda.is_available():
            raise BadInput(f"device '{spec}' requested but this torch build sees no CUDA GPU; use --device cpu")
        index = int(spec[5:]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise BadInput(f"device '{spec}' does not exist: {torch.cuda.device_count()} CUDA GPU(s) visible")
        return torch.device(spec)
    raise BadInput(f"unknown device '{spec}': use auto, cpu, cuda or cuda:N")


@dataclass
class StafModels:
    """The frozen backbone, the STAF heads and the body model, on one device, in eval mode."""

    backbone: torch.nn.Module | None  # ResNet50Features with its batch norms folded
    staf: Staf
    body: torch.nn.Module
    device: torch.device

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """Backbone features (N, 2048, 7, 7) of normalised crops (N, 3, 224, 224), any device."""
        if self.backbone is None:
            raise RuntimeError("these models were loaded without the backbone")
        x = crops.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self.device.type != "cpu" or len(x) <= CPU_BACKBONE_CHUNK:
            return self.backbone(x).contiguous()
        return torch.cat([self.backbone(part).contiguous() for part in x.split(CPU_BACKBONE_CHUNK)])

    def runner(self, **options) -> SequenceRunner:
        """A whole-clip runner over these models (options as :class:`SequenceRunner`)."""
        return SequenceRunner(self.staf, self.body, **options)


def load_models(assets: Path, *, device: torch.device | str = "cpu", with_backbone: bool = True,
                mix_tcfm_across_batch: bool = False, gender: str = "neutral") -> StafModels:
    """Load SMPL, STAF and (optionally) the backbone from ``assets``, strictly, onto ``device``."""
    from core.assets import require_assets
    from core.smpl import load_body_model

    assets = Path(assets)
    device = resolve_device(device) if isinstance(device, str) else device
    # The mean parameters and the downsampling matrix travel inside the STAF checkpoint.
    needed = [STAF_FILE, f"SMPL_{gender.upper()}.pkl", *([BACKBONE_FILE] if with_backbone else [])]
    require_assets(assets, needed, validate=False)  # all missing files in one message; loaders validate
    body = load_body_model(assets, gender=gender)
    staf = Staf(mix_tcfm_across_batch=mix_tcfm_across_batch)
    load_staf_weights(staf, assets / STAF_FILE)
    backbone = None
    if with_backbone:
        backbone = ResNet50Features()
        load_backbone_weights(backbone, assets / BACKBONE_FILE)
        # channels_last runs ResNet-50 about 15 % faster on CPU and is the fast layout on GPU too.
        backbone = fold_batch_norms(backbone, in_place=True).to(device, memory_format=torch.channels_last)
    return StafModels(backbone, staf.to(device).use_channels_last().eval(), body.to(device).eval(), device)


_cached: tuple[tuple, StafModels] | None = None


def load_models_cached(assets: Path, *, device: torch.device | str = "cpu") -> StafModels:
    """:func:`load_models` once per process for the same folder, device and files: a batch worker
    runs many clips on one copy of the weights. A file changed on disk (size or time) loads anew."""
    global _cached
    assets = Path(assets).resolve()
    device = resolve_device(device) if isinstance(device, str) else device
    stamps = []
    for path in sorted(assets.iterdir()) if assets.is_dir() else []:
        if path.is_file():
            st = path.stat()
            stamps.append((path.name, st.st_size, st.st_mtime_ns))
    key = (str(assets), str(device), tuple(stamps))
    if _cached is None or _cached[0] != key:
        _cached = None  # let the old copy go before the new one loads
        _cached = (key, load_models(assets, device=device))
    return _cached[1]
