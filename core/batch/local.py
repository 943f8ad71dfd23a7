"""The local backend: long-lived worker processes (``spawn``: torch and fork do not mix) from
``concurrent.futures.ProcessPoolExecutor``, one clip per worker at a time, models loaded once per
worker.

When a worker dies (killed, segfault, out of memory) the executor breaks and fails every outstanding
future. The pool is then recreated and the clips that had not started are resubmitted, uncharged.
The clips that had started (each worker creates a marker file first, so the pool knows) are
suspects: each is retried once more, alone, in a one-worker pool after the others, so that a clip
that only happened to run beside the one that crashed is not blamed for it; a clip whose worker dies
on that second, solitary attempt fails.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from core.batch.run import Book
from core.batch.worker import ClipTask, ConvertTask, Outcome, convert_clip, init_worker, run_clip
from core.errors import EXIT_INTERNAL

__all__ = ["run_local"]

Item = ClipTask | ConvertTask
_STOP_SECONDS = 30  # how long a cancelled run waits for its running clips to clean up
DIED = ("its worker process died (killed or crashed) on both attempts: the first beside other clips, the "
        "second alone")


class _Phase:
    """Runs a queue of tasks through pools of ``workers`` processes until none is left; clips that
    were running when a pool broke collect in ``suspects`` (or fail, on their second attempt)."""

    def __init__(self, book: Book, workers: int, threads: int, marks: Path, generation: int = 0) -> None:
        self.book, self.workers, self.threads, self.marks = book, workers, threads, marks
        self.generation = generation
        self.suspects: list[ClipTask] = []
        self._conversion_tries: dict[int, int] = {}

    def attempts(self, index: int) -> int:
        """How many times a worker has started this clip (its marker files)."""
        return sum(1 for _ in self.marks.glob(f"{index}.*"))

    def run(self, queue: deque[Item]) -> None:
        """Work through ``queue``, one pool after another while pools break."""
        empty_breaks = 0
        while queue:
            self.generation += 1
            started_any = self._pool(queue)
            empty_breaks = 0 if started_any else empty_breaks + 1
            if empty_breaks >= 2:  # workers die before any task starts: they cannot start at all
                for item in queue:
                    self.book.lost(item.index, self.attempts(item.index),
                                   "worker processes died before starting any clip (see the messages above)")
                queue.clear()

    def _pool(self, queue: deque[Item]) -> bool:
        """One pool over the queue; False if it broke before any task had started."""
        pool = ProcessPoolExecutor(min(self.workers, len(queue)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(self.threads,))
        futures: dict[Future, Item] = {}
        state = {"broken": False, "started": False}

        def submit(item: Item) -> None:
            """Submit, or put back in the queue once the pool is broken."""
            if state["broken"]:
                queue.append(item)
                return
            if isinstance(item, ClipTask):
                item = replace(item, started=str(self.marks / f"{item.index}.{self.generation}"))
            try:
                futures[pool.submit(run_clip if isinstance(item, ClipTask) else convert_clip, item)] = item
            except BrokenProcessPool:
                state["broken"] = True
                queue.append(replace(item, started=None) if isinstance(item, ClipTask) else item)

        try:
            for _ in range(len(queue)):
                submit(queue.popleft())
            while futures:
                done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in done:
                    item = futures.pop(fut)
                    try:
                        outcome = fut.result()
                    except BrokenProcessPool:
                        state["broken"] = True
                        state["started"] |= self._interrupted(item, queue)
                        continue
                    except Exception as err:  # the task itself raised (it should not): that clip fails
                        line = " ".join(f"{type(err).__name__}: {err}".split())
                        outcome = Outcome(item.index, "failed", 0.0, error=f"internal error: {line}",
                                          exit_code=EXIT_INTERNAL)
                    state["started"] = True
                    if isinstance(item, ConvertTask):
                        self.book.convert_done(outcome)
                    else:
                        follow = self.book.clip_done(outcome, self.attempts(item.index))
                        if follow is not None:
                            submit(follow)
        except BaseException:  # Ctrl-C / SIGTERM: stop the running clips (they clean up), then re-raise
            _stop(pool, futures)
            self._end_leftovers()
            raise
        pool.shutdown(wait=True)
        if state["broken"]:
            self._end_leftovers()
        return state["started"] or not state["broken"]

    def _end_leftovers(self) -> None:
        """After a break (or a cancel) every worker of this pool is gone, but a child of one that was
        killed or left at once (the engine's decoding process) could live on: end each of this pool's
        worker process groups."""
        for mark in self.marks.glob(f"*.{self.generation}"):
            pid = mark.read_text()
            if pid.isdigit():
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass  # nothing left in that group

    def _interrupted(self, item: Item, queue: deque[Item]) -> bool:
        """A task the broken pool did not finish: requeue, suspect or fail it; True if it had started."""
        if isinstance(item, ConvertTask):
            tries = self._conversion_tries[item.index] = self._conversion_tries.get(item.index, 0) + 1
            if tries >= 2:
                self.book.convert_done(Outcome(item.index, "failed", 0.0, error=f"blender conversion: {DIED}",
                                               exit_code=EXIT_INTERNAL))
            else:
                queue.append(item)
            return True
        if not Path(item.started).exists():
            queue.append(replace(item, started=None))
            return False
        attempts = self.attempts(item.index)
        if attempts >= 2:
            self.book.lost(item.index, attempts, DIED)
        else:  # it may have written its (complete, atomic) output just before its worker died
            self.suspects.append(replace(item, started=None, options=replace(item.options, overwrite=True)))
        return True


def _stop(pool: ProcessPoolExecutor, futures: dict[Future, Item]) -> None:
    """Cancel what has not started and ask the workers running clips to stop (SIGTERM: reconstruct
    then raises Cancelled, removes its temporary file and ends its decoding process); wait for them,
    up to ``_STOP_SECONDS``, before the caller ends whatever is left."""
    pool.shutdown(wait=False, cancel_futures=True)
    for item in futures.values():
        mark = Path(item.started) if isinstance(item, ClipTask) and item.started else None
        if mark is not None and mark.exists() and mark.read_text().isdigit():
            try:
                os.kill(int(mark.read_text()), signal.SIGTERM)  # a worker process of this pool
            except ProcessLookupError:
                pass
    # Not a second shutdown(wait=True): after shutdown(wait=False) it returns at once (the pool has
    # already let go of its manager thread), and the workers would be killed in mid-clean-up. A
    # worker that stops leaves at once (os._exit), so its future ends as a broken pool.
    wait(list(futures), timeout=_STOP_SECONDS)


def run_local(book: Book, workers: int, test_kill: str | None = None) -> dict:
    """Run the book's clips (and conversions) on ``workers`` local processes; returns summary meta."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    queue: deque[Item] = deque([*book.clip_tasks(threads, test_kill), *book.initial_conversions])
    retried = 0
    with tempfile.TemporaryDirectory(prefix="staf-batch-") as marks:
        phase = _Phase(book, workers, threads, Path(marks))
        phase.run(queue)
        while phase.suspects:  # each retried alone, after the rest: nothing else runs beside it
            retried += len(phase.suspects)
            alone = _Phase(book, 1, threads, Path(marks), phase.generation)
            alone.run(deque(phase.suspects))
            phase = alone
    return {"workers": workers, "threads_per_worker": threads, "retried": retried}
