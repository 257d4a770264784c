"""db/engine.py: the gate in front of the API's connection pool."""

import asyncio

import pytest

from postroom.db.engine import ConnectionGate


class TestConnectionGate:
    async def test_waiters_enter_in_the_order_they_came(self) -> None:
        gate = ConnectionGate(1)
        await gate.enter()
        entered: list[int] = []

        async def wait(n: int) -> None:
            await gate.enter()
            entered.append(n)

        waiters = [asyncio.create_task(wait(n)) for n in range(3)]
        await asyncio.sleep(0)
        for _ in range(3):
            gate.leave()
            # A newcomer arriving while a waiter is being woken queues behind it.
            late = asyncio.create_task(wait(99))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            late.cancel()
        await asyncio.wait_for(asyncio.gather(*waiters), 1)
        assert entered == [0, 1, 2]

    async def test_a_wait_longer_than_the_timeout_is_a_timeout(self) -> None:
        gate = ConnectionGate(1, timeout=0.01)
        await gate.enter()
        with pytest.raises(TimeoutError):
            await gate.enter()
        gate.leave()
        await gate.enter()  # the timed-out waiter took nothing
