"""Gathering concurrent requests into one forward pass, off the event loop, behind a bounded queue.

The batcher takes every job waiting when it is free (up to max_batch images), so under load batches grow by
themselves while a lone request never waits: the extra wait (max_wait_ms) applies only while other requests are
still being received. The queue holds at most max_queue jobs; beyond that a request is refused at once (503
with Retry-After) instead of waiting without bound.

Where a batch runs: a forward pass that takes less than inline_ms (the tutorial's MLP: well under a
millisecond) runs on the event loop itself, because handing it to a thread costs more than it does: the two
threads contend for the GIL, and on 2 cores the event loop then waited for it on every request (in wrk runs,
fewer requests answered than with no batching at all). Slower models run in the model thread so
that the event loop keeps answering. The server decides once, from a timed forward pass before it opens
(a choice that follows the live batch times fed itself: batches in the thread are slowed by that very contention).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class QueueFull(Exception):
    """The model's queue holds max_queue jobs already."""


class Batcher:
    """A bounded queue of jobs, and one task that runs them through `work` in batches, in one thread."""

    def __init__(
        self,
        work: Callable[[list[Any]], list[Any]],
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        max_queue: int = 256,
        on_batch: Callable[[int], None] | None = None,
        setup_thread: Callable[[], None] | None = None,
        inline: bool = False,
    ):
        self.work = work  # jobs -> one result (or exception) per job, in order
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000  # seconds
        self.max_queue = max_queue
        self.on_batch = on_batch  # told each batch's image count (for /metrics)
        self.arriving = 0  # requests whose bodies are still being received: worth waiting for
        self.inline = inline  # run batches on the event loop (fast models), else in the model thread
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.executor = ThreadPoolExecutor(  # setup_thread: e.g. torch's thread count, which is per thread
            max_workers=1, thread_name_prefix="trainlab-model", initializer=setup_thread
        )

    def start(self) -> None:
        self.queue = asyncio.Queue(self.max_queue)
        self.task = asyncio.get_running_loop().create_task(self.loop())

    async def stop(self) -> None:
        """Finish the jobs already queued, then stop (the server has stopped taking requests)."""
        if self.task is not None:
            await self.queue.join()
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        return self.queue.qsize() if self.queue is not None else 0

    async def submit(self, job: Any, size: int = 1) -> Any:  # size: the job's images, toward max_batch
        """The job's result once its batch has run; QueueFull at once when the queue is full."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((job, size, future))
        except asyncio.QueueFull:
            raise QueueFull from None
        result = await future
        if isinstance(result, Exception):
            raise result
        return result

    async def loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            images = batch[0][1]
            deadline = loop.time() + self.max_wait
            while images < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    if not self.arriving or loop.time() >= deadline:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                    except asyncio.TimeoutError:  # TimeoutError from 3.11 on
                        break
                batch.append(item)
                images += item[1]
            jobs = [job for job, _, _ in batch]
            try:
                if self.inline:
                    results = self.work(jobs)
                else:
                    results = await loop.run_in_executor(self.executor, self.work, jobs)
            except Exception as exc:  # noqa: BLE001 - a failed batch fails its requests, not the server
                results = [exc] * len(batch)
            if self.on_batch is not None:
                self.on_batch(images)
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():  # its client may have gone
                    future.set_result(result)
                self.queue.task_done()
