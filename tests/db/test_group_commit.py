"""db/group_commit.py on the test database: rows handed over together share one transaction,
each caller is answered only once its row is committed, and one row's error is its own."""

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.db.group_commit import GroupCommit, in_session
from tests.databases import BACKEND


class Recorder:
    """A write that stores each row in the idempotency table's key column (any real table
    would do) and remembers which rows each transaction held."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.groups: list[list[str]] = []
        self.refuse = refuse or set()

    async def __call__(self, session: AsyncSession, rows: Sequence[str]) -> None:
        self.groups.append(list(rows))
        for row in rows:
            await session.execute(
                text("INSERT INTO group_commit_probe (name) VALUES (:n)"), {"n": row}
            )
        if self.refuse & set(rows):
            raise ValueError(f"refused: {sorted(self.refuse & set(rows))}")


@pytest.fixture
async def probe(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DROP TABLE IF EXISTS group_commit_probe"))
        await session.execute(
            text("CREATE TABLE group_commit_probe (name VARCHAR(20) PRIMARY KEY)")
        )
    return sessionmaker


async def _stored(sessionmaker: async_sessionmaker[AsyncSession]) -> set[str]:
    async with sessionmaker() as session:
        rows = await session.execute(text("SELECT name FROM group_commit_probe"))
        return {str(name) for (name,) in rows}


async def test_rows_handed_over_together_share_a_transaction(
    probe: async_sessionmaker[AsyncSession],
) -> None:
    """Rows handed over at once are one group; those that come while it is being written are
    the next one; nobody is answered before their row is committed."""
    writing, released = asyncio.Event(), asyncio.Event()
    write = Recorder()

    async def held_first(session: AsyncSession, rows: Sequence[str]) -> None:
        await write(session, rows)
        if len(write.groups) == 1:
            writing.set()
            await released.wait()

    group = GroupCommit(in_session(probe), held_first)

    async def submit_and_check(name: str) -> None:
        await group.submit(name)
        assert name in await _stored(probe)  # another session sees it

    first = [asyncio.create_task(submit_and_check(f"first-{n}")) for n in range(3)]
    await writing.wait()
    later = [asyncio.create_task(submit_and_check(f"later-{n}")) for n in range(20)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in first + later)
    released.set()
    await asyncio.gather(*first, *later)
    assert write.groups == [
        [f"first-{n}" for n in range(3)],
        [f"later-{n}" for n in range(20)],
    ]


async def test_one_rows_error_is_its_own(probe: async_sessionmaker[AsyncSession]) -> None:
    write = Recorder(refuse={"bad"})
    group = GroupCommit(in_session(probe), write)
    names = ["first", "a", "bad", "b", "c"]
    results = await asyncio.gather(*(group.submit(name) for name in names), return_exceptions=True)
    outcomes = dict(zip(names, results, strict=True))
    assert isinstance(outcomes["bad"], ValueError)
    assert all(outcomes[name] is None for name in names if name != "bad")
    assert await _stored(probe) == {"first", "a", "b", "c"}
    # The failed group was written again row by row.
    assert ["bad"] in write.groups


async def test_an_idle_writer_starts_again(probe: async_sessionmaker[AsyncSession]) -> None:
    write = Recorder()
    group = GroupCommit(in_session(probe), write, max_group=2)
    await group.submit("one")
    await asyncio.gather(*(group.submit(f"n{n}") for n in range(5)))
    await group.submit("last")
    assert all(len(rows) <= 2 for rows in write.groups)
    assert await _stored(probe) == {"one", "last", *(f"n{n}" for n in range(5))}


@pytest.mark.skipif(
    BACKEND != "postgresql", reason="one writer at a time on SQLite (the app gives it one)"
)
async def test_with_two_writers_the_next_group_is_written_while_one_waits(
    probe: async_sessionmaker[AsyncSession],
) -> None:
    """Rows that come while a group waits for its commit go out in a second transaction at
    once; with both writers busy, the rest wait for one of them."""
    write = Recorder()
    held: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]
    writing = [asyncio.Event(), asyncio.Event()]
    at_once = [0, 0]  # groups being written now, and the most there ever were

    async def held_twice(session: AsyncSession, rows: Sequence[str]) -> None:
        at_once[0] += 1
        at_once[1] = max(at_once)
        try:
            await write(session, rows)
            index = len(write.groups) - 1
            if index < 2:
                writing[index].set()
                await held[index].wait()
        finally:
            at_once[0] -= 1

    group = GroupCommit(in_session(probe), held_twice, writers=2)
    first = asyncio.create_task(group.submit("first"))
    await writing[0].wait()
    second = asyncio.create_task(group.submit("second"))
    # Written beside the first, not after it (the bound only keeps a regression from hanging).
    await asyncio.wait_for(writing[1].wait(), 10)
    rest = [asyncio.create_task(group.submit(f"rest-{n}")) for n in range(3)]
    await asyncio.sleep(0)  # the rest hand their rows over, and find both writers busy
    assert write.groups == [["first"], ["second"]]
    assert not any(task.done() for task in [first, second, *rest])
    held[1].set()
    await asyncio.gather(second, *rest)
    assert not first.done()
    held[0].set()
    await first
    assert write.groups == [["first"], ["second"], [f"rest-{n}" for n in range(3)]]
    assert at_once[1] == 2  # never a third writer
    assert await _stored(probe) == {"first", "second", "rest-0", "rest-1", "rest-2"}
    # Both writers have ended: a row handed over now starts one again.
    await group.submit("again")
    assert write.groups[-1] == ["again"]
