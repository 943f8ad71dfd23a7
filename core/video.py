"""Streaming video decoding (PyAV): frame rate, timestamps and rotation metadata, constant memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from core.errors import BadInput

__all__ = ["DecodedFrame", "Frame", "VideoInfo", "iter_decoded", "iter_frames", "probe_video"]


@dataclass(frozen=True)
class VideoInfo:
    """What the container says of a clip's video stream. ``width``/``height`` are as displayed (after
    rotation); ``frame_count`` may be an estimate until the clip has been decoded once."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    rotation: int
    codec: str

    def as_meta(self) -> dict:
        """The ``source`` entry of a motion file's meta."""
        return {"path": str(self.path.resolve()), "name": self.path.name, "width": self.width,
                "height": self.height, "fps_num": self.fps.numerator, "fps_den": self.fps.denominator,
                "frame_count": self.frame_count, "duration": self.duration, "rotation": self.rotation,
                "codec": self.codec}


@dataclass(frozen=True)
class Frame:
    """A decoded frame: ``index`` counts from 0, ``time`` in seconds, ``rgb`` (H, W, 3) uint8 upright."""

    index: int
    time: float
    rgb: np.ndarray


def _open(path: Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: file not found")
    if not path.is_file():
        raise BadInput(f"{path}: not a file")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: not a video file ffmpeg can read ({err.__class__.__name__})") from None
    if not container.streams.video:
        container.close()
        raise BadInput(f"{path}: holds no video stream")
    return container


def _rotation_of(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Display rotation in degrees counter-clockwise (0, 90, 180, 270), read from the first frame."""
    try:
        for frame in container.decode(stream):
            return round(frame.rotation / 90.0) * 90 % 360
    except av.error.FFmpegError:
        return 0
    return 0


def probe_video(path: Path) -> VideoInfo:
    """Read a clip's metadata (and its first frame, for the rotation) without decoding the rest."""
    path = Path(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps or fps <= 0:
            raise BadInput(f"{path}: the video stream has no frame rate")
        fps = Fraction(fps).limit_denominator(1001 * 1000)
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            container.duration / 1e6 if container.duration else 0.0)
        frame_count = stream.frames or round(duration * fps)
        rotation = _rotation_of(container, stream)
        width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise BadInput(f"{path}: the video stream has no picture size; is the codec supported?")
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(path, width, height, fps, int(frame_count), duration, rotation, codec)


class DecodedFrame:
    """A decoded frame kept as the decoder gave it (YUV, half the bytes of RGB): ``small`` is an upright
    RGB copy scaled for detection (or None); :meth:`rgb` converts the full picture only when asked,
    so frames nobody needs at full size are never converted."""

    __slots__ = ("_frame", "_rotation", "index", "small", "time")

    def __init__(self, index: int, time: float, frame: av.VideoFrame, rotation: int, small: np.ndarray | None):
        self.index, self.time, self.small = index, time, small
        self._frame, self._rotation = frame, rotation

    def rgb(self) -> np.ndarray:
        """The full-size upright picture (H, W, 3) uint8."""
        return _upright(self._frame.to_ndarray(format="rgb24"), self._rotation)


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    k = rotation // 90
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def _scaled_size(info: VideoInfo, max_side: int | None) -> tuple[int, int] | None:
    """Decoder-side (width, height) whose upright picture's longer side is at most ``max_side``."""
    if not max_side or max(info.width, info.height) <= max_side:
        return None
    scale = max_side / max(info.width, info.height)
    w, h = round(info.width * scale / 2) * 2, round(info.height * scale / 2) * 2
    return (h, w) if info.rotation in (90, 270) else (w, h)


def iter_decoded(info: VideoInfo, *, start: int = 0, end: int | None = None,
                 small_side: int | None = None) -> Iterator[DecodedFrame]:
    """Decode frames ``start <= index < end`` in order, each with its copy scaled to ``small_side``
    (None: no small copy). Memory does not depend on the clip's length."""
    container = _open(info.path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size = _scaled_size(info, small_side)
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if index < start:
                    continue
                if end is not None and index >= end:
                    break
                t = float(frame.time) if frame.time is not None else index / float(info.fps)
                small = None
                if small_side:
                    small = frame.to_ndarray(format="rgb24") if size is None else frame.to_ndarray(
                        format="rgb24", width=size[0], height=size[1])
                    small = _upright(small, info.rotation)
                yield DecodedFrame(index, t, frame, info.rotation, small)
        except av.error.FFmpegError as err:
            raise BadInput(f"{info.path}: the video is corrupt or truncated near frame {index + 1} "
                           f"({err.__class__.__name__}); re-encode or trim it") from None


def iter_frames(info: VideoInfo, *, start: int = 0, end: int | None = None,
                max_side: int | None = None) -> Iterator[Frame]:
    """Decode frames ``start <= index < end`` in order, upright, optionally downscaled so that the
    longer side is at most ``max_side`` pixels. Memory does not depend on the clip's length."""
    for frame in iter_decoded(info, start=start, end=end, small_side=max_side or max(info.width, info.height)):
        yield Frame(frame.index, frame.time, frame.small)
