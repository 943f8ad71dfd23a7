"""A sample clip made from a real photo of a person (matplotlib's ``grace_hopper.jpg``), panned and
zoomed with a known motion: the out-of-the-box demo's input and a test clip with known boxes."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path

__all__ = ["SampleMotion", "photo", "sample_motion", "write_sample_clip"]


def photo() -> np.ndarray:
    """The photo (600, 512, 3) RGB uint8 shipped with matplotlib."""
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class SampleMotion:
    """Per frame, the photo's placement in the clip: clip pixel = zoom * photo pixel + (ox, oy)."""

    zoom: np.ndarray
    ox: np.ndarray
    oy: np.ndarray

    def map_box(self, box: np.ndarray) -> np.ndarray:
        """A box (cx, cy, w, h) in photo pixels -> its (N, 4) boxes in the clip's frames."""
        cx, cy, w, h = box
        return np.stack([self.zoom * cx + self.ox, self.zoom * cy + self.oy, self.zoom * w, self.zoom * h], 1)


def sample_motion(n_frames: int, width: int, height: int) -> SampleMotion:
    """A slow zoom-in while the photo drifts from left to right, eased at both ends."""
    t = np.linspace(0.0, 1.0, n_frames)
    ease = 0.5 - 0.5 * np.cos(np.pi * t)
    zoom = 0.55 + 0.2 * ease
    ph, pw = 600, 512
    ox = 0.08 * width + ease * (0.9 * width - zoom * pw - 0.08 * width)
    oy = (height - zoom * ph) / 2 + 0.03 * height * np.sin(2 * np.pi * t)  # the photo stays inside
    return SampleMotion(zoom, ox, oy)


def write_sample_clip(path: Path, *, seconds: float = 4.0, fps: int = 30, width: int = 640,
                      height: int = 480) -> SampleMotion:
    """Write the sample clip (H.264 MP4) atomically; returns its known motion."""
    import av

    image = photo()
    n = max(1, round(seconds * fps))
    motion = sample_motion(n, width, height)
    with atomic_path(Path(path)) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for z, ox, oy in zip(motion.zoom, motion.ox, motion.oy, strict=True):
            m = np.array([[z, 0, ox], [0, z, oy]])
            frame = cv2.warpAffine(image, m, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=(40, 40, 46))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return motion
