"""Work that must wait for the end of a session's transaction: after a commit, or after a
rollback. It is how a change outside the database (a file on disk) follows the rows that name it:
removed only once the rows that stopped naming it are committed, or once the rows that would
have named it are rolled back."""

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)
Action = Callable[[], None]
_ON_COMMIT = "postroom.after_commit"
_ON_ROLLBACK = "postroom.after_rollback"


def after_commit(session: AsyncSession, action: Action) -> None:
    """Runs `action` once the session's transaction commits; never if it rolls back."""
    session.sync_session.info.setdefault(_ON_COMMIT, []).append(action)


def after_rollback(session: AsyncSession, action: Action) -> None:
    """Runs `action` once the session's transaction ends without a commit (rollback, close)."""
    session.sync_session.info.setdefault(_ON_ROLLBACK, []).append(action)


def _run(actions: list[Action]) -> None:
    # The transaction has ended either way: a failing action is logged, never raised, so that
    # it cannot turn a committed request into an error or hide the error of a failed one.
    for action in actions:
        try:
            action()
        except Exception:
            log.exception("an action after the end of a transaction failed")


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_ON_ROLLBACK, None)
    _run(session.info.pop(_ON_COMMIT, []))


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction, *_: Any) -> None:
    # Savepoints end inside the real transaction; only the outermost one decides.
    if transaction.parent is not None:
        return
    session.info.pop(_ON_COMMIT, None)  # after a commit, _committed has emptied it already
    _run(session.info.pop(_ON_ROLLBACK, []))
