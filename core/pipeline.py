"""One decoding pass: frames -> people -> crops, produced in a worker process beside the networks.

Each frame is decoded once. Its small copy goes through the people stage (``core.people``); the
decoded frame waits in a bounded buffer until its people's boxes are settled
(:class:`core.people.settled.SettledBoxes`, about two seconds behind), then its crops are cut and
handed on. At the end comes the people stage's result (everybody, ordered by prominence).

Run in a worker process (:func:`crops_from_worker`), decoding and detection overlap the backbone
and STAF running in the main process; the worker never imports torch.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.allocator import tune_allocator
from core.camera import CROP_SIZE
from core.crops import crop_person
from core.errors import StafError
from core.people.settled import SettledBoxes
from core.people.stage import PeopleOptions, PeoplePass, PeopleResult
from core.video import DecodedFrame, VideoInfo, iter_decoded

__all__ = ["CropFrame", "DecodingWorker", "crops_from_worker", "detector_threads", "iter_crops",
           "network_threads"]

# Frames of crops in flight between the worker and the networks (~18 MB for one person): enough that
# the worker goes on decoding through the main process's start-up (imports and weights, ~5 s on
# 2 cores) instead of waiting on a full queue; it was idle ~1.5 s of a run with 48.
_QUEUE_ITEMS = 120
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CropFrame:
    """Range-local frame ``k`` and its people: tracker keys, settled boxes (n, 4), flags (n,) and
    crops (n, 224, 224, 3) uint8 RGB."""

    k: int
    keys: list[int]
    boxes: np.ndarray
    flags: np.ndarray
    crops: np.ndarray


def detector_threads(cores: int | None = None) -> int:
    """Threads for detection in the worker, given the cores the run may use (default: the
    machine's): one on small shares (the networks need the cores), up to four on large ones."""
    cores = cores or os.cpu_count() or 1
    return 1 if cores <= 4 else min(4, cores // 4)


def network_threads() -> int:
    """The CPU threads this process's networks use, or will: torch's setting once torch is loaded
    (a batch worker sets its share), else the OMP_NUM_THREADS torch will follow, else the cores this
    process may use. Read without loading torch, so that the worker can start before it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    setting = os.environ.get("OMP_NUM_THREADS", "").strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def iter_crops(info: VideoInfo, start: int, end: int | None, opts: PeopleOptions, *, crop_scale: float,
               threads: int = 1, on_frame=None) -> Iterator[CropFrame | PeopleResult]:
    """Yields a :class:`CropFrame` for every frame of [start, end) in order, then the
    :class:`PeopleResult`. ``on_frame()`` is called after each decoded frame (progress)."""
    people = PeoplePass(info, start, opts, threads)
    settled = SettledBoxes(people)
    waiting: deque[DecodedFrame] = deque()

    def cut(frames: list) -> Iterator[CropFrame]:
        for s in frames:
            frame = waiting.popleft()
            crops = np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
            if s.keys:
                rgb = frame.rgb()
                crops = np.stack([crop_person(rgb, box, crop_scale=crop_scale) for box in s.boxes])
            yield CropFrame(s.k, s.keys, s.boxes, s.flags, crops)

    for frame in iter_decoded(info, start=start, end=end, small_side=opts.detect_max_side):
        people.add(frame.index, frame.time, frame.small)
        frame.small = None  # the buffer keeps only the decoded picture
        waiting.append(frame)
        yield from cut(settled.ready())
        if on_frame is not None:
            on_frame()
    result = people.result()  # raises on an empty range before anything else is said
    yield from cut(settled.ready(final=True))
    yield result


def _put(out: mp.Queue, item: tuple, parent: int) -> None:
    """Put ``item``, waiting while the queue is full, and leave if the main process is gone (killed
    without a chance to stop us), so that no worker outlives its run: checked before every item,
    not only when the queue is full, so that an orphan stops within a frame."""
    while True:
        if os.getppid() != parent:
            # Nobody reads any more, and the queue's own thread would wait on the pipe forever.
            out.cancel_join_thread()
            os._exit(0)
        try:
            out.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            continue


def _produce(out: mp.Queue, info: VideoInfo, start: int, end: int | None, opts: PeopleOptions,
             crop_scale: float, threads: int, parent: int) -> None:
    """The worker's body: everything goes through ``out``; errors as ("error", exception)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides; it stops us on Ctrl-C
    tune_allocator()  # a frame is megabytes: reuse heap pages rather than map new ones per frame
    try:
        for item in iter_crops(info, start, end, opts, crop_scale=crop_scale, threads=threads):
            _put(out, ("frame" if isinstance(item, CropFrame) else "people", item), parent)
        _put(out, ("done", None), parent)
    except StafError as err:
        _put(out, ("error", err), parent)
    except Exception as err:  # reported by the main process as an internal error, with its type
        _put(out, ("error", RuntimeError(f"the decoding worker failed: {err.__class__.__name__}: {err}")), parent)


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """A spawned child runs the parent's main script again first (unless the script guards itself
    with ``if __name__ == "__main__"``); the worker needs nothing from it, so a script that calls
    ``reconstruct`` unguarded must not start twice."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main.__spec__, "name", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


class DecodingWorker:
    """:func:`iter_crops` in a worker process, started at once (so that it decodes and finds people
    while the main process loads the weights); iterate it for the items, close it (or leave the
    ``with`` block) to stop it."""

    def __init__(self, info: VideoInfo, start: int, end: int | None, opts: PeopleOptions, *, crop_scale: float,
                 threads: int | None = None) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that has torch's threads running
        self._out: mp.Queue = ctx.Queue(maxsize=_QUEUE_ITEMS)
        self._worker = ctx.Process(target=_produce, name="staf-decode", daemon=True,
                                   args=(self._out, info, start, end, opts, crop_scale,
                                         threads or detector_threads(), os.getpid()))
        with _main_script_hidden():
            self._worker.start()

    def __iter__(self) -> Iterator[CropFrame | PeopleResult]:
        try:
            while True:
                try:
                    kind, item = self._out.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if not self._worker.is_alive():
                        raise RuntimeError("the decoding worker stopped unexpectedly "
                                           f"(exit code {self._worker.exitcode})") from None
                    continue
                if kind == "error":
                    raise item
                if kind == "done":
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker (if it still runs) and release the queue."""
        if self._worker.is_alive():
            self._worker.terminate()
        self._worker.join(timeout=5)
        self._out.close()
        self._out.cancel_join_thread()

    def __enter__(self) -> DecodingWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def crops_from_worker(info: VideoInfo, start: int, end: int | None, opts: PeopleOptions, *,
                      crop_scale: float, threads: int | None = None) -> DecodingWorker:
    """:func:`iter_crops` run in a worker process (decoding and detection beside the networks)."""
    return DecodingWorker(info, start, end, opts, crop_scale=crop_scale, threads=threads)
