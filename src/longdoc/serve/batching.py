"""Dynamic batching under a token budget: requests that arrive together share one forward pass.

Requests wait in one bounded queue (`max_concurrent_requests` queued or running; one more is refused with
QueueFull, which the service answers 429 with Retry-After). One worker thread runs the models (torch
releases the GIL, so the event loop keeps accepting and answering meanwhile). Each time it is free it takes
the oldest request's group (same model, same options: `ServedModel.batch_key`), sorts the group by length,
and packs alike lengths into batches whose padded size (longest x count, in tokens) stays within
`max_batch_tokens`; it runs the batch holding the oldest request. A document over the budget runs alone.

A request cancelled while it waits (its client left, or it timed out) is dropped before its batch forms;
one cancelled while its batch runs is computed and its result discarded. A batch that fails is run again
one request at a time, so that one bad request fails alone and the others get their answers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The service holds as many requests as it takes; `retry_after`: seconds until one is likely done."""

    def __init__(self, limit: int, retry_after: int):
        super().__init__(f"the server is busy: {limit} requests are queued or running (--max-concurrent-requests); "
                         f"retry in {retry_after} s")
        self.limit, self.retry_after = limit, retry_after


class ShuttingDown(Exception):
    """The service is stopping: requests still queued are not run."""


@dataclass
class _Waiting:
    model: object  # a ServedModel
    request: dict
    tokens: int
    key: tuple
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


def pack_by_length(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices of `lengths` in batches of alike lengths, longest first, each within `budget` padded tokens
    (its longest x its count); an item longer than the budget is a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= budget:
            batches[-1].append(index)  # sorted longest first: the batch's first item is its longest
        else:
            batches.append([index])
    return batches


class TokenBudgetBatcher:
    """`await batcher.submit(model, request)`: the model's JSON for the request, run in a batch with the
    requests to the same model with the same options that wait at the same time."""

    def __init__(self, max_batch_tokens: int = 16384, max_concurrent_requests: int = 64, metrics=None,
                 gather_seconds: float = 0.002):
        self.max_batch_tokens = max_batch_tokens
        self.max_concurrent_requests = max_concurrent_requests
        self.metrics = metrics  # a serve.metrics.ServeMetrics, or None
        self.gather_seconds = gather_seconds  # an idle worker waits this long for requests arriving together
        self._waiting: list[_Waiting] = []
        self._held = 0  # requests queued or running: what max_concurrent_requests bounds
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._batch_seconds = 0.0  # recent seconds per batch (for Retry-After)
        self._batch_size = 1.0  # recent requests per batch

    @classmethod
    def from_settings(cls, settings, metrics=None) -> "TokenBudgetBatcher":
        return cls(settings.max_batch_tokens, settings.max_concurrent_requests, metrics)

    def bind_metrics(self, metrics) -> None:
        self.metrics = metrics

    @property
    def depth(self) -> int:
        """Requests queued or running."""
        return self._held

    async def start(self) -> None:
        if self._worker is None:
            self._closed = False
            self._wakeup = asyncio.Event()
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="longdoc-predict")
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Refuse new requests, fail the queued ones (ShuttingDown) and stop the worker."""
        self._closed = True
        for waiting in self._waiting:
            if not waiting.future.done():
                waiting.future.set_exception(ShuttingDown("the server is shutting down; retry on another replica"))
        self._waiting.clear()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def retry_after(self) -> int:
        """Seconds after which a refused client may find room: the batches ahead of it at the recent pace."""
        batches_ahead = self._held / max(1.0, self._batch_size)
        return max(1, min(300, math.ceil(batches_ahead * self._batch_seconds)))

    async def submit(self, model, request: dict, tokens: int | None = None) -> dict:
        """The model's JSON for `request` (`tokens`: its count, if the caller has it); QueueFull when the
        service holds max_concurrent_requests already; the model's exception if it fails on this request."""
        if self._closed:
            raise ShuttingDown("the server is shutting down; retry on another replica")
        if self._held >= self.max_concurrent_requests:
            raise QueueFull(self.max_concurrent_requests, self.retry_after())
        self._hold(+1)
        try:
            await self.start()
            if tokens is None:
                tokens = await asyncio.to_thread(model.count_tokens, request)
            future = asyncio.get_running_loop().create_future()
            self._waiting.append(_Waiting(model, request, tokens, model.batch_key(request), future))
            self._wakeup.set()
            return await future  # cancelling the caller cancels the future: the worker then skips it
        finally:
            self._hold(-1)

    def _hold(self, change: int) -> None:
        self._held += change
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._held)

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.gather_seconds:
                await asyncio.sleep(self.gather_seconds)
            while batch := self._next_batch():
                try:
                    await self._run(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the worker must survive anything: fail this batch's requests only
                    logger.exception("the batch worker failed")
                    for waiting in batch:
                        if not waiting.future.done():
                            waiting.future.set_exception(RuntimeError("the batch worker failed"))

    def _next_batch(self) -> list[_Waiting]:
        self._waiting = [w for w in self._waiting if not w.future.done()]
        if not self._waiting:
            return []
        oldest = self._waiting[0]
        group = [w for w in self._waiting if w.key == oldest.key]
        batches = pack_by_length([w.tokens for w in group], self.max_batch_tokens)
        chosen = next(b for b in batches if 0 in b)  # the oldest request's batch: nobody waits forever
        taken = [group[i] for i in sorted(chosen)]
        taken_ids = {id(w) for w in taken}
        self._waiting = [w for w in self._waiting if id(w) not in taken_ids]
        return taken

    async def _run(self, batch: list[_Waiting]) -> None:
        model = batch[0].model
        start = time.perf_counter()
        outcomes = await asyncio.get_running_loop().run_in_executor(
            self._executor, predict_isolating, model, [w.request for w in batch])
        seconds = time.perf_counter() - start
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds if self._batch_seconds else seconds
        self._batch_size = 0.8 * self._batch_size + 0.2 * len(batch)
        if self.metrics is not None:
            self.metrics.observe_batch(model.name, len(batch), max(w.tokens for w in batch) * len(batch),
                                       sum(w.tokens for w in batch), seconds)
        for waiting, outcome in zip(batch, outcomes):
            if waiting.future.done():  # cancelled meanwhile: nobody waits for it
                continue
            if isinstance(outcome, BaseException):
                waiting.future.set_exception(outcome)
            else:
                waiting.future.set_result(outcome)


def predict_isolating(model, requests: list[dict]) -> list:
    """The model's results for a batch; if the batch fails, each request run alone, so that the failure stays
    with the request(s) that cause it (each outcome a result or the exception it raised)."""
    try:
        return model.predict_batch(requests)
    except Exception as error:
        if len(requests) == 1:
            return [error]
        logger.info("a batch of %d requests to %s failed (%s); running them one at a time", len(requests),
                    model.name, error)
    outcomes = []
    for request in requests:
        try:
            outcomes.extend(model.predict_batch([request]))
        except Exception as error:
            outcomes.append(error)
    return outcomes
