"""Group commit: rows that requests hand over together are written in one transaction.

Each request that writes a new row pays for a transaction of its own: BEGIN, its statements and a
COMMIT that waits for the disk (the WAL flush), each a round trip with its share of the driver's
and the database's CPU. Under load, many requests are waiting for that at the same moment. A
`GroupCommit` takes their rows as they come and writes all that arrived while the previous group
was being written in a single transaction, then answers every one of them: nobody is answered
before its row is committed, and an idle server writes each row at once, with no wait added.
With `writers` above one, that many groups may be written at once, each in its own transaction
(on its own connection): rows that come while one group waits for its commit go out in the next
at once, so that the process has requests to work on through the other's disk flush.

If a group's transaction fails, each of its rows is written again alone, so that one row's error
(a constraint, say) is that row's only and the others are stored.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")
W = TypeVar("W")

# Rows written by one transaction at most; more wait for the next.
MAX_GROUP = 500


class GroupCommit(Generic[T, W]):
    """`write(target, rows)` writes rows with what `begin()` opens and yields: a session in a
    transaction that commits after it, or a connection on which `write` makes one statement
    (atomic by itself); `submit(row)` returns once `row` is committed, or raises what writing it
    raised. At most `writers` groups are being written at any time."""

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[W]],
        write: Callable[[W, Sequence[T]], Awaitable[None]],
        *,
        max_group: int = MAX_GROUP,
        writers: int = 1,
    ) -> None:
        self._begin = begin
        self._write = write
        self._max_group = max_group
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._max_writers = writers
        self._writing = 0  # writers under way, counted down as each one ends (not a callback later)
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done

    async def submit(self, row: T) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((row, done))
        if self._writing < self._max_writers:
            self._writing += 1
            writer = asyncio.create_task(self._write_waiting())
            self._tasks.add(writer)
            writer.add_done_callback(self._tasks.discard)
        await done

    async def _write_waiting(self) -> None:
        group: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                group = self._waiting[: self._max_group]
                del self._waiting[: self._max_group]
                await self._write_group(group)
        except BaseException as error:  # cancelled (shutdown): nobody is left waiting forever
            for _, done in [*group, *self._waiting]:
                _answer(done, error)
            self._waiting.clear()
            raise
        finally:
            self._writing -= 1

    async def _write_group(self, group: list[tuple[T, "asyncio.Future[None]"]]) -> None:
        try:
            async with self._begin() as target:
                await self._write(target, [row for row, _ in group])
        except Exception as error:
            if len(group) > 1:
                for one in group:
                    await self._write_group([one])
                return
            _answer(group[0][1], error)
            return
        for _, done in group:
            _answer(done, None)


def in_session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[[], AbstractAsyncContextManager[AsyncSession]]:
    """`begin` for a GroupCommit that writes through a session of `sessionmaker`."""

    @asynccontextmanager
    async def begin() -> AsyncIterator[AsyncSession]:
        async with sessionmaker() as session, session.begin():
            yield session

    return begin


def _answer(done: "asyncio.Future[None]", error: BaseException | None) -> None:
    if done.done():  # its request was cancelled meanwhile
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
