"""The STAF engine: video -> people -> crops -> features -> STAF -> SMPL motion. No Blender here."""

__version__ = "0.1.0"

__all__ = ["__version__"]
