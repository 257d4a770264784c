"""db/hooks.py: actions that wait for the end of a transaction, run on the outcome they name."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from postroom.db.hooks import after_commit, after_rollback


class TestHooks:
    async def test_a_commit_runs_the_commit_actions_only(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        ran: list[str] = []
        async with sessionmaker() as session, session.begin():
            await session.execute(text("SELECT 1"))
            after_commit(session, lambda: ran.append("commit"))
            after_rollback(session, lambda: ran.append("rollback"))
            assert ran == []
        assert ran == ["commit"]

    async def test_a_rollback_runs_the_rollback_actions_only(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        ran: list[str] = []
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
            after_commit(session, lambda: ran.append("commit"))
            after_rollback(session, lambda: ran.append("rollback"))
            await session.rollback()
        assert ran == ["rollback"]

    async def test_closing_without_a_commit_counts_as_a_rollback(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        ran: list[str] = []
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
            after_rollback(session, lambda: ran.append("rollback"))
        assert ran == ["rollback"]

    async def test_a_failing_action_neither_stops_the_others_nor_the_commit(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        ran: list[str] = []

        def fail() -> None:
            raise OSError("disk gone")

        async with sessionmaker() as session, session.begin():
            await session.execute(text("SELECT 1"))
            after_commit(session, fail)
            after_commit(session, lambda: ran.append("second"))
        assert ran == ["second"]
