"""User changes racing each other in real transactions on SQLite and PostgreSQL: the database has the last word."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from watchkeeper.auth.users import create_user, get_user, update_user
from watchkeeper.errors import ConflictError
from watchkeeper.store.models import User

# How long a transaction stays open waiting for the others to decide; ends early only when one waits
# for a lock this one holds (then it must commit first).
HOLD_S = 2.0


def race(db, *actions: Callable[[Session], Any]) -> list[Any]:
    """Each action in its own transaction on its own thread, started together; returns results or exceptions.

    No transaction commits before every action has run (or HOLD_S has passed), so without locks or
    constraints each would decide on what it saw before the others' changes.
    """
    start, decided = threading.Barrier(len(actions)), threading.Barrier(len(actions), timeout=HOLD_S)
    outcomes: list[Any] = [None] * len(actions)

    def run(index: int, action: Callable[[Session], Any]) -> None:
        start.wait()
        try:
            with db.session() as session:
                outcomes[index] = action(session)
                try:
                    decided.wait()
                except threading.BrokenBarrierError:  # another action waits for this one's lock
                    pass
        except Exception as exc:  # the outcome under test
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, action)) for i, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_the_last_two_admins_cannot_both_step_down_at_once(db):
    with db.session() as session:
        ada, bob = (create_user(session, name, f"{name}-password", "admin") for name in ("ada", "bob"))
        ids = ada.id, bob.id
    outcomes = race(db, lambda s: update_user(s, get_user(s, ids[0]), role="viewer"),
                    lambda s: update_user(s, get_user(s, ids[1]), state="disabled"))
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, dict) for o in outcomes) == 1, outcomes
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(User)
                              .where(User.role == "admin", User.state == "active")) == 1


@pytest.mark.parametrize("names", [("Carol", "carol"), ("dave", "dave")])
def test_names_registered_at_once_are_unique_regardless_of_case(db, names):
    outcomes = race(db, *(lambda s, n=name: create_user(s, n, f"{n}-password", "viewer") for name in names))
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, User) for o in outcomes) == 1, outcomes
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
