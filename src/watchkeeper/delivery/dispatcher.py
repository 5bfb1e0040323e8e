"""The dispatcher: sends what the outbox holds, at least once, with retries and a log.

A delivery is claimed under a lease before it is sent: claiming bumps its
``attempts``, and that count is the claim's fencing token, so two
dispatchers never send one message at the same time, and the outcome of a
send whose lease was lost (and re-claimed by another) changes nothing but
the log. A dispatcher that dies mid-send leaves the lease to expire, and the
delivery is sent again. Failures are retried with exponential backoff and
jitter until ``max_attempts``; a sender says when retrying is pointless.

Each channel has a thread of its own, so a channel whose server is slow or
down (an SMTP server timing out) holds up none of the others; one more thread
takes what no sender can send, to record why.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, or_, select, true, update
from sqlalchemy.orm import Session

from ..metrics import ALERTS_FAILED, ALERTS_SENT
from ..store.db import Database
from ..store.models import Delivery, DeliveryAttempt, utcnow

log = logging.getLogger(__name__)

# Due deliveries looked at per claim: enough to get past ones another dispatcher takes first.
_CLAIM_CANDIDATES = 8
# From this attempt on, a failure is a warning: the channel is not having a passing hiccup.
_LOUD_AFTER = 3
# Backoff stops growing long before this; it keeps 2**n a float.
_MAX_DOUBLINGS = 30


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry: bool = True  # False: failing again is certain (a 4xx, a refused target), so the delivery is dead


Sender = Callable[[Delivery], SendOutcome]


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        Delivery.state == "pending",
        Delivery.next_attempt_at <= now,
        or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at <= now),
    )


class Dispatcher:
    """Delivers pending outbox messages through one sender per channel, in a thread or by ``run_once``."""

    def __init__(self, db: Database, senders: dict[str, Sender], *, max_attempts: int, backoff_s: float,
                 backoff_max_s: float, poll_s: float = 0.5, lease_s: float = 60) -> None:
        self.db = db
        self.senders = senders
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.lease_s = lease_s
        self._wakeups: list[threading.Event] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        lanes: list[tuple[str, ...] | None] = [(channel,) for channel in self.senders] + [None]
        for lane in lanes:
            wakeup = threading.Event()
            thread = threading.Thread(target=self._loop, args=(lane, wakeup), daemon=True,
                                      name=f"watchkeeper-dispatcher-{lane[0] if lane else 'unsendable'}")
            self._wakeups.append(wakeup)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 10) -> None:
        """Finish the sends in progress (up to ``timeout``), then stop; unsent deliveries wait in the outbox."""
        self._stopping.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        if stuck:  # a send that never returns (a hook that hangs): its thread ends when the send does
            log.warning("delivery threads still sending at stop", extra={"threads": stuck})
        self._threads, self._wakeups = [], []

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll (call after committing an enqueue)."""
        for wakeup in self._wakeups:
            wakeup.set()

    def _loop(self, lane: tuple[str, ...] | None, wakeup: threading.Event) -> None:
        while not self._stopping.is_set():
            wakeup.clear()  # before the pass: a wake() during it triggers the next one at once
            try:
                self.run_once(lane)
            except Exception:  # the database away for a moment must not end the thread
                log.exception("delivery pass failed; retrying after the poll interval")
            wakeup.wait(self.poll_s)

    def run_once(self, lane: tuple[str, ...] | None | Literal["all"] = "all") -> int:
        """Send every delivery due now on ``lane`` (some channels; None: the channels without a sender;
        "all": every one), one claim at a time; returns how many were attempted."""
        attempted = 0
        while not self._stopping.is_set():
            delivery = self._claim(lane)
            if delivery is None:
                break
            attempted_at = utcnow()
            started = time.perf_counter()
            outcome = self._send(delivery)
            self._record(delivery, outcome, attempted_at, (time.perf_counter() - started) * 1000)
            attempted += 1
        return attempted

    # -- steps -----------------------------------------------------------------------------------
    def _claim(self, lane: tuple[str, ...] | None | Literal["all"]) -> Delivery | None:
        now = utcnow()
        on_lane = (true() if lane == "all" else Delivery.channel.in_(lane) if lane is not None
                   else Delivery.channel.not_in(list(self.senders)))
        due = and_(_due(now), Delivery.attempts < self.max_attempts, on_lane)
        buries = lane is None or lane == "all"  # one lane buries the abandoned for all
        # A read first: an idle channel's lane takes no write lock (SQLite has one for the whole database).
        if not buries:
            with self.db.session(write=False) as session:
                if session.scalar(select(Delivery.id).where(due).limit(1)) is None:
                    return None
        with self.db.session() as session:
            if buries:
                self._bury_abandoned(session, now)
            candidates = session.execute(
                select(Delivery.id, Delivery.attempts)
                .where(due)
                .order_by(Delivery.next_attempt_at)
                .limit(_CLAIM_CANDIDATES)
            ).all()
            for delivery_id, attempts in candidates:
                claimed = session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id, Delivery.attempts == attempts, _due(now))
                    .values(attempts=attempts + 1, lease_expires_at=now + timedelta(seconds=self.lease_s))
                    .execution_options(synchronize_session=False)
                ).rowcount
                if claimed:
                    return session.get(Delivery, delivery_id)
        return None

    def _send(self, delivery: Delivery) -> SendOutcome:
        sender = self.senders.get(delivery.channel)
        if sender is None:
            return SendOutcome(ok=False, error=f"no sender for channel '{delivery.channel}'", retry=False)
        try:
            return sender(delivery)
        except Exception as exc:  # a sender's bug costs an attempt, not the dispatcher
            log.exception("sender failed", extra={"delivery_id": delivery.id, "channel": delivery.channel})
            return SendOutcome(ok=False, error=f"{type(exc).__name__}: {exc}", retry=True)

    def _record(self, delivery: Delivery, outcome: SendOutcome, attempted_at: datetime, duration_ms: float) -> None:
        attempt = delivery.attempts  # this claim's number, bumped when it was claimed
        if outcome.ok:
            changes: dict[str, object] = {"state": "delivered", "delivered_at": utcnow(), "last_error": None}
        elif not outcome.retry or attempt >= self.max_attempts:
            changes = {"state": "dead", "last_error": outcome.error}
        else:
            changes = {"next_attempt_at": utcnow() + timedelta(seconds=self._backoff(attempt)),
                       "last_error": outcome.error}
        with self.db.session() as session:
            session.add(DeliveryAttempt(delivery_id=delivery.id, attempted_at=attempted_at, ok=outcome.ok,
                                        status_code=outcome.status_code, error=outcome.error,
                                        duration_ms=round(duration_ms, 2)))
            applied = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id, Delivery.attempts == attempt, Delivery.state == "pending")
                .values(lease_expires_at=None, **changes)
                .execution_options(synchronize_session=False)
            ).rowcount
        (ALERTS_SENT if outcome.ok else ALERTS_FAILED).labels(delivery.channel).inc()  # lease lost or not, it went out
        fields = {"delivery_id": delivery.id, "channel": delivery.channel, "attempt": attempt,
                  "status_code": outcome.status_code}
        if not applied:
            log.warning("delivery lease lost during the send; its outcome is only logged", extra=fields)
        elif outcome.ok:
            log.info("delivered", extra=fields)
        elif changes.get("state") == "dead":
            log.warning("delivery dead: %s", outcome.error, extra=fields)
        elif attempt >= _LOUD_AFTER:
            log.warning("delivery keeps failing, will retry: %s", outcome.error, extra=fields)
        else:
            log.info("delivery failed, will retry: %s", outcome.error, extra=fields)

    def _backoff(self, attempt: int) -> float:
        """Seconds before the next try: doubling from ``backoff_s``, capped, with jitter so retries spread out."""
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** min(attempt - 1, _MAX_DOUBLINGS))
        return delay * random.uniform(0.5, 1.0)

    def _bury_abandoned(self, session: Session, now: datetime) -> None:
        """Dead: deliveries whose last allowed attempt was claimed by a dispatcher that never came back."""
        session.execute(
            update(Delivery)
            .where(Delivery.state == "pending", Delivery.attempts >= self.max_attempts,
                   Delivery.lease_expires_at <= now)
            .values(state="dead", lease_expires_at=None, last_error="the dispatcher stopped during the last attempt")
            .execution_options(synchronize_session=False)
        )
