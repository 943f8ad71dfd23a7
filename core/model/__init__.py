"""The STAF network, its backbone, checkpoints and whole-clip inference."""

from core.model.backbone import ResNet50Features
from core.model.load import StafModels, load_models, resolve_device
from core.model.sequence import FrameResults, SequenceRunner, run_per_window
from core.model.staf import Staf, StafOutput

__all__ = [
    "FrameResults",
    "ResNet50Features",
    "SequenceRunner",
    "Staf",
    "StafModels",
    "StafOutput",
    "load_models",
    "resolve_device",
    "run_per_window",
]
