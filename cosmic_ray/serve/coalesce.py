"""Load-adaptive coalescing of concurrent calls into batched calls, for an asyncio server.

Each :meth:`Coalescer.submit` adds one item. While fewer than ``eager_in_flight`` calls are out,
the queued items leave at once as one call of ``send(items)``: an idle server waits for nothing (a
lone request is sent at once). Otherwise new items queue and leave together with the next call (up
to ``max_items``): batches grow with the load by themselves, where a fixed wait window costs its
full length at low load and is too short at high load. Beyond ``eager_in_flight``, a further call
goes out (up to ``max_in_flight``) only once ``parallel_at`` items are queued: under heavy load more
model replicas work at once, under moderate load calls stay few and full (each has a fixed cost).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Send concurrently submitted items in batches of at most ``max_items``, ``max_in_flight`` batches at a time.

    ``send`` must return one result per item, in order; an exception it raises goes to every
    caller of that batch.
    """

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[Result]]],
        max_items: int = 64,
        max_in_flight: int = 4,
        eager_in_flight: int = 2,
        parallel_at: int = 16,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._send = send
        self._on_batch = on_batch  # told each batch's size as it leaves (a metric)
        self.max_items = self.max_in_flight = self.eager_in_flight = self.parallel_at = 1
        self.configure(max_items, max_in_flight, eager_in_flight, parallel_at)
        self._pending: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()  # the calls out (held so they are not collected)

    def configure(
        self,
        max_items: int | None = None,
        max_in_flight: int | None = None,
        eager_in_flight: int | None = None,
        parallel_at: int | None = None,
    ) -> None:
        for name, value in (
            ("max_items", max_items),
            ("max_in_flight", max_in_flight),
            ("eager_in_flight", eager_in_flight),
            ("parallel_at", parallel_at),
        ):
            if value is not None:
                if value < 1:
                    raise ValueError(f"{name} must be at least 1")
                setattr(self, name, int(value))

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:  # items submitted in the same loop iteration leave together
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    def _dispatch(self) -> None:
        self._scheduled = False
        while (
            self._pending
            and self._in_flight < self.max_in_flight
            and (self._in_flight < self.eager_in_flight or len(self._pending) >= self.parallel_at)
        ):
            batch = [self._pending.popleft() for _ in range(min(self.max_items, len(self._pending)))]
            batch = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not batch:
                continue
            self._in_flight += 1
            if self._on_batch is not None:
                self._on_batch(len(batch))
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batched call returned {len(results)} results for {len(batch)} items")
            for (_, future), result in zip(batch, results, strict=False):
                if not future.done():
                    future.set_result(result)
        except Exception as exc:  # every caller of the batch hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._in_flight -= 1
            self._dispatch()
