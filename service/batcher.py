"""Gathers concurrent scoring requests into micro-batches.

    MicroBatcher(run, max_size=32, max_wait_s=0.002, on_batch=None, on_scored=None)
    max_size   requests per batch; 1 turns batching off
    max_wait_s the most the first request of a batch waits for company
    on_batch   told each batch's size (requests)
    on_scored  told each batch's scoring time (s, `run` alone, on the scoring thread)

A lone request pays at most max_wait_s. Batches run on one worker thread, so the event
loop keeps accepting requests, which queue up and form the next batch while this one runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
log = logging.getLogger(__name__)


class MicroBatcher(Generic[Job, Result]):
    def __init__(
        self,
        run: Callable[[list[Job]], list[Result]],
        max_size: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] | None = None,
        on_scored: Callable[[float], None] | None = None,
    ):
        self._run = run
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._on_scored = on_scored
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Result]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        """Requests queued for the next batch (not those of the batch being scored)."""
        return self._queue.qsize()

    async def submit(self, job: Job) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((job, future))
        return await future

    async def call(self, fn: Callable[..., Result], *args: object) -> Result:
        """Runs `fn` on the scoring thread (explanations), serialised with the batches."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self._max_wait_s
            while len(batch) < self._max_size:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        batch.append(self._queue.get_nowait())
                    else:
                        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            live = [(job, fut) for job, fut in batch if not fut.cancelled()]
            if not live:
                continue
            if self._on_batch is not None:
                self._on_batch(len(live))
            try:
                results = await loop.run_in_executor(
                    self._executor, self._timed_run, [job for job, _ in live]
                )
            except Exception as exc:  # one bad batch must not kill the loop
                log.exception("scoring batch failed")
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    def _timed_run(self, jobs: list[Job]) -> list[Result]:
        """`run`, timed on the scoring thread: the wait for the thread (an explanation
        running, `call`) is not the scorer's time."""
        started = time.perf_counter()
        try:
            return self._run(jobs)
        finally:
            if self._on_scored is not None:
                self._on_scored(time.perf_counter() - started)
