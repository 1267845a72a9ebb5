"""The ingress's load-adaptive coalescer: no wait when idle, batches that grow with the load."""

import asyncio

import pytest

from cosmic_ray.serve.coalesce import Coalescer


class SlowModel:
    """Answers each batch after ``seconds``; records the batches and the most calls out at once."""

    def __init__(self, seconds: float = 0.02, fail_on: object = None):
        self.seconds, self.fail_on = seconds, fail_on
        self.batches: list[list[int]] = []
        self.out = self.most_out = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.out += 1
        self.most_out = max(self.most_out, self.out)
        try:
            await asyncio.sleep(self.seconds)
            if self.fail_on in items:
                raise RuntimeError("model replica lost")
            return [2 * x for x in items]
        finally:
            self.out -= 1


def test_a_lone_request_is_sent_at_once():
    """No wait window: the call leaves within the loop iterations of the submit, on no timer."""

    async def main():
        model = SlowModel(seconds=0.05)
        coalescer = Coalescer(model, max_items=64, max_in_flight=2, eager_in_flight=2)
        answer = asyncio.ensure_future(coalescer.submit(21))
        for _ in range(3):
            await asyncio.sleep(0)  # yields only: a timer-based wait would not have fired yet
        sent_before_any_timer = [list(b) for b in model.batches]
        return sent_before_any_timer, await answer

    sent, answer = asyncio.run(main())
    assert sent == [[21]]
    assert answer == 42


def test_batches_grow_with_the_load_and_every_caller_gets_its_own_answer():
    async def main():
        model = SlowModel(seconds=0.02)
        coalescer = Coalescer(model, max_items=16, max_in_flight=2, eager_in_flight=2)

        async def caller(i: int) -> int:
            await asyncio.sleep(0.001 * (i % 10))
            return await coalescer.submit(i)

        answers = await asyncio.gather(*(caller(i) for i in range(100)))
        return answers, model

    answers, model = asyncio.run(main())
    assert answers == [2 * i for i in range(100)]
    assert sorted(x for batch in model.batches for x in batch) == list(range(100))
    assert model.most_out <= 2
    assert max(len(b) for b in model.batches) == 16  # queued while both calls were out
    assert len(model.batches) < 20


def test_a_failed_batch_fails_its_callers_only():
    async def main():
        model = SlowModel(seconds=0.01, fail_on=3)
        coalescer = Coalescer(model, max_items=4, max_in_flight=1, eager_in_flight=1)
        return await asyncio.gather(*(coalescer.submit(i) for i in range(8)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results[:4])  # the batch [0, 1, 2, 3]
    assert results[4:] == [8, 10, 12, 14]


def test_wrong_result_count_is_an_error_not_a_silent_mismatch():
    async def short(items):
        return items[:-1]

    async def main():
        coalescer = Coalescer(short, max_items=8, max_in_flight=1, eager_in_flight=1)
        return await asyncio.gather(*(coalescer.submit(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_settings_are_checked():
    with pytest.raises(ValueError):
        Coalescer(SlowModel(), max_items=0)
    coalescer = Coalescer(SlowModel())
    coalescer.configure(max_items=8, max_in_flight=3, eager_in_flight=2, parallel_at=4)
    assert (coalescer.max_items, coalescer.max_in_flight, coalescer.eager_in_flight, coalescer.parallel_at) == (
        8,
        3,
        2,
        4,
    )
    with pytest.raises(ValueError):
        coalescer.configure(max_in_flight=0)


def test_further_calls_go_out_in_parallel_only_under_a_backlog():
    async def main():
        model = SlowModel(seconds=0.02)
        coalescer = Coalescer(model, max_items=8, max_in_flight=3, eager_in_flight=1, parallel_at=8)

        async def trickle():
            out = []
            for i in range(6):  # a light load: one call at a time, the next one fuller
                out.append(asyncio.ensure_future(coalescer.submit(i)))
                await asyncio.sleep(0.008)
            return await asyncio.gather(*out)

        light = await trickle()
        light_most_out = model.most_out
        heavy = await asyncio.gather(*(coalescer.submit(100 + i) for i in range(64)))
        return light, light_most_out, heavy, model

    light, light_most_out, heavy, model = asyncio.run(main())
    assert light == [2 * i for i in range(6)] and heavy == [2 * (100 + i) for i in range(64)]
    assert light_most_out == 1
    assert model.most_out == 3  # the backlog of 64 went out over three calls at once
    assert all(len(b) <= 8 for b in model.batches)


def test_each_batch_size_is_reported_as_it_leaves():
    sizes: list[int] = []

    async def main():
        coalescer = Coalescer(
            SlowModel(seconds=0.01), max_items=8, max_in_flight=1, eager_in_flight=1, on_batch=sizes.append
        )
        return await asyncio.gather(*(coalescer.submit(i) for i in range(20)))

    assert asyncio.run(main()) == [2 * i for i in range(20)]
    assert sum(sizes) == 20 and max(sizes) == 8
