"""A micro-batcher: concurrent requests' images go through the networks together, in one thread.

Why: the detector and embedder are fastest on batches, and running them from one thread means
no two requests ever touch the same network at once (torch modules are not documented as safe
for concurrent calls, and dlib's own DNN is not thread-safe: davisking/dlib#998). Requests wait
on a future; a full queue refuses new work (the caller answers 503) instead of growing memory.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MicroBatcher", "OverloadedError"]

log = logging.getLogger("faceprint.service")


class OverloadedError(RuntimeError):
    """The batcher's queue is full: too much work waiting already."""


@dataclass
class _Job:
    item: Any
    future: concurrent.futures.Future


class MicroBatcher:
    """Run ``fn(items) -> results`` (same length, same order) on batches gathered from many callers.

    A batch starts with the first waiting item and takes whatever else arrives within
    ``max_wait`` seconds, up to ``max_batch`` items. An exception from ``fn`` goes to every caller
    of that batch. ``on_batch(size, seconds)`` is told about each batch (metrics).
    """

    def __init__(
        self,
        fn: Callable[[Sequence[Any]], Sequence[Any]],
        *,
        max_batch: int = 16,
        max_wait: float = 0.005,
        max_queue: int = 256,
        on_batch: Callable[[int, float], None] | None = None,
        name: str = "faceprint-batcher",
    ) -> None:
        self.fn, self.max_batch, self.max_wait, self.on_batch = fn, max(1, max_batch), max_wait, on_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> concurrent.futures.Future:
        """Queue one item; its future resolves to ``fn``'s result for it."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            self._queue.put_nowait(_Job(item, fut))
        except queue.Full:
            raise OverloadedError(f"{self._queue.maxsize} images are already waiting; try again shortly") from None
        return fut

    def qsize(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued work and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.monotonic() + self.max_wait
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        start = time.perf_counter()
        try:
            results = self.fn([j.item for j in jobs])
        except Exception as exc:  # noqa: BLE001  (every caller hears of it; the thread lives on)
            log.warning("batch of %d image(s) failed: %s", len(jobs), exc)
            for j in jobs:
                j.future.set_exception(exc)
            return
        for j, r in zip(jobs, results):
            j.future.set_result(r)
        if self.on_batch is not None:
            self.on_batch(len(jobs), time.perf_counter() - start)
