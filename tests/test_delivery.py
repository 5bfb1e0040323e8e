"""The outbox and its dispatcher: signed webhooks to real receivers on loopback, retries, leases, the log.

Every test runs on a SQLite file and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from loopback_http import LoopbackServer, Received, Reply
from sqlalchemy import func, select, update

from watchkeeper.delivery import SIGNATURE_HEADER, Dispatcher, SendOutcome, enqueue, sign, verify, webhook_sender
from watchkeeper.netguard import UrlPolicy
from watchkeeper.store.db import Database
from watchkeeper.store.models import Delivery, DeliveryAttempt, utcnow

SECRET = "receiver-shared-secret"
LOOPBACK = ["127.0.0.0/8"]
PAYLOAD = {"job_id": "video_1700000000_abc123", "status": "success", "result": {"crime_detected": False}}


def make_dispatcher(db: Database, *, secret: str | None = SECRET, timeout_s: float = 5, max_attempts: int = 4,
                    lease_s: float = 60, poll_s: float = 0.5, policy: UrlPolicy | None = None) -> Dispatcher:
    sender = webhook_sender(secret, policy or UrlPolicy(LOOPBACK), timeout_s)
    return Dispatcher(db, {"webhook": sender}, max_attempts=max_attempts, backoff_s=0.05, backoff_max_s=0.2,
                      poll_s=poll_s, lease_s=lease_s)


def add_webhook(db: Database, url: str, *, dedupe_key: str | None = None) -> int:
    with db.session() as session:
        delivery = enqueue(session, channel="webhook", target=url, event="job.finished", payload=PAYLOAD,
                           dedupe_key=dedupe_key)
        assert delivery is not None
        return delivery.id


def load(db: Database, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]]:
    with db.session(write=False) as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        return delivery, list(delivery.log)


def run_until(dispatcher: Dispatcher, done: Callable[[], bool], timeout_s: float = 30) -> None:
    """Run passes (backoff makes a retry due only after a while) until ``done()``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the delivery did not settle"
        dispatcher.run_once()
        time.sleep(0.02)


def assert_signed(request: Received, delivery_id: int) -> None:
    assert verify(SECRET, request.body, request.headers[SIGNATURE_HEADER.lower()])
    assert json.loads(request.body) == PAYLOAD
    assert request.headers["x-watchkeeper-event"] == "job.finished"
    assert request.headers["x-watchkeeper-delivery"] == str(delivery_id)
    assert request.headers["content-type"] == "application/json"


@pytest.fixture
def receiver() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


# ---------------------------------------------------------------- signatures


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    signature = sign(SECRET, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, body, signature) and verify(SECRET, body, f" {signature}\n")
    assert not verify(SECRET, b'{"a":2}', signature)
    assert not verify("another secret", body, signature)
    for bad in ("", "sha256=", signature.upper(), "sha1=" + signature[7:], "sha256=ünïcode"):
        assert not verify(SECRET, body, bad)


# ---------------------------------------------------------------- the outbox


def test_enqueue_is_idempotent_and_part_of_the_callers_transaction(db: Database) -> None:
    first = add_webhook(db, "http://127.0.0.1:9/hook", dedupe_key="job:1:finished")
    with db.session() as session:
        assert enqueue(session, channel="webhook", target="http://127.0.0.1:9/other", event="job.finished",
                       payload={}, dedupe_key="job:1:finished") is None
    add_webhook(db, "http://127.0.0.1:9/hook")  # no key: no de-duplication
    with pytest.raises(RuntimeError), db.session() as session:
        enqueue(session, channel="webhook", target="http://127.0.0.1:9/hook", event="job.finished", payload={})
        raise RuntimeError("the job's transaction fails")
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2
        delivery = session.get(Delivery, first)
        assert delivery is not None
        assert (delivery.state, delivery.attempts, delivery.target) == ("pending", 0, "http://127.0.0.1:9/hook")


# ---------------------------------------------------------------- delivering


def test_signed_webhook_delivered(db: Database, receiver: LoopbackServer) -> None:
    receiver.replies["/hook"] = Reply(200)
    delivery_id = add_webhook(db, f"{receiver.url}/hook")
    assert make_dispatcher(db).run_once() == 1
    [request] = receiver.received
    assert request.method == "POST"
    assert_signed(request, delivery_id)
    delivery, log = load(db, delivery_id)
    assert (delivery.state, delivery.attempts, delivery.lease_expires_at) == ("delivered", 1, None)
    assert delivery.delivered_at is not None
    assert [(a.ok, a.status_code) for a in log] == [(True, 200)]
    assert make_dispatcher(db).run_once() == 0  # delivered once


def test_no_secret_no_signature(db: Database, receiver: LoopbackServer) -> None:
    receiver.replies["/hook"] = Reply(204)
    add_webhook(db, f"{receiver.url}/hook")
    make_dispatcher(db, secret=None).run_once()
    [request] = receiver.received
    assert SIGNATURE_HEADER.lower() not in request.headers and json.loads(request.body) == PAYLOAD


def test_server_error_retried_with_backoff_then_delivered_once(db: Database, receiver: LoopbackServer) -> None:
    receiver.replies["/hook"] = [Reply(500), Reply(200)]
    delivery_id = add_webhook(db, f"{receiver.url}/hook")
    dispatcher = make_dispatcher(db)
    assert dispatcher.run_once() == 1
    delivery, [failed] = load(db, delivery_id)
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 500")
    assert delivery.next_attempt_at > failed.attempted_at  # backed off, not due at once

    run_until(dispatcher, lambda: load(db, delivery_id)[0].state == "delivered")
    delivery, log = load(db, delivery_id)
    assert [(a.ok, a.status_code, a.error) for a in log] == [(False, 500, "HTTP 500"), (True, 200, None)]
    assert delivery.attempts == 2 and delivery.last_error is None
    assert len(receiver.received) == 2
    for request in receiver.received:  # the same message both times, for the receiver's de-duplication
        assert_signed(request, delivery_id)
    assert dispatcher.run_once() == 0 and len(receiver.received) == 2


def test_client_error_is_final(db: Database, receiver: LoopbackServer) -> None:
    receiver.replies["/hook"] = Reply(404)
    delivery_id = add_webhook(db, f"{receiver.url}/hook")
    make_dispatcher(db).run_once()
    delivery, [attempt] = load(db, delivery_id)
    assert (delivery.state, delivery.last_error, attempt.status_code, attempt.ok) == ("dead", "HTTP 404", 404, False)
    assert make_dispatcher(db).run_once() == 0 and len(receiver.received) == 1


@pytest.mark.parametrize(("status", "ok", "retry"), [
    (200, True, True), (202, True, True), (400, False, False), (404, False, False), (410, False, False),
    (302, False, False), (408, False, True), (429, False, True), (500, False, True), (503, False, True),
])
def test_webhook_outcome_by_status(receiver: LoopbackServer, status: int, ok: bool, retry: bool) -> None:
    receiver.replies["/hook"] = Reply(status)
    send = webhook_sender(SECRET, UrlPolicy(LOOPBACK), timeout_s=5)
    outcome = send(Delivery(id=7, channel="webhook", target=f"{receiver.url}/hook", event="job.finished",
                            payload=PAYLOAD))
    assert (outcome.ok, outcome.status_code) == (ok, status)
    assert outcome.ok or outcome.retry == retry


def test_timeout_is_retried(db: Database, receiver: LoopbackServer) -> None:
    receiver.replies["/hook"] = [Reply(200, delay_s=3), Reply(200)]
    delivery_id = add_webhook(db, f"{receiver.url}/hook")
    dispatcher = make_dispatcher(db, timeout_s=0.5)
    dispatcher.run_once()
    delivery, [timed_out] = load(db, delivery_id)
    assert delivery.state == "pending" and timed_out.status_code is None
    assert "no complete answer within 0.5 s" in (timed_out.error or "")
    run_until(dispatcher, lambda: load(db, delivery_id)[0].state == "delivered")
    assert [a.ok for a in load(db, delivery_id)[1]] == [False, True]


def test_dead_after_max_attempts(db: Database, receiver: LoopbackServer) -> None:
    receiver.replies["/hook"] = Reply(502)
    delivery_id = add_webhook(db, f"{receiver.url}/hook")
    dispatcher = make_dispatcher(db, max_attempts=3)
    run_until(dispatcher, lambda: load(db, delivery_id)[0].state == "dead")
    delivery, log = load(db, delivery_id)
    assert delivery.attempts == 3 and len(log) == 3 and delivery.last_error == "HTTP 502"
    assert dispatcher.run_once() == 0 and len(receiver.received) == 3


@pytest.mark.parametrize(("target", "reason"), [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.1/hook", "private"),
    ("http://127.0.0.1:9/hook", "loopback"),
])
def test_unsafe_callback_dead_without_connecting(db: Database, target: str, reason: str) -> None:
    delivery_id = add_webhook(db, target)
    make_dispatcher(db, policy=UrlPolicy()).run_once()
    delivery, [attempt] = load(db, delivery_id)
    assert delivery.state == "dead" and reason in (attempt.error or "")


def test_unknown_channel_and_failing_sender(db: Database) -> None:
    with db.session() as session:
        orphan = enqueue(session, channel="carrier-pigeon", target="loft", event="job.finished", payload={})
        broken = enqueue(session, channel="broken", target="x", event="job.finished", payload={})
        assert orphan is not None and broken is not None
        ids = orphan.id, broken.id

    def explode(delivery: Delivery) -> SendOutcome:
        raise ValueError("a bug in a sender")

    Dispatcher(db, {"broken": explode}, max_attempts=3, backoff_s=0.05, backoff_max_s=0.1).run_once()
    assert load(db, ids[0])[0].state == "dead" and "no sender" in (load(db, ids[0])[0].last_error or "")
    broken_delivery, [attempt] = load(db, ids[1])
    assert broken_delivery.state == "pending" and attempt.error == "ValueError: a bug in a sender"


# ---------------------------------------------------------------- leases and crashes


def test_a_leased_delivery_is_not_sent_twice_at_once(db: Database, receiver: LoopbackServer) -> None:
    answer = threading.Event()
    receiver.replies["/hook"] = Reply(200, hold=answer)
    delivery_id = add_webhook(db, f"{receiver.url}/hook")
    first, second = make_dispatcher(db), make_dispatcher(db)
    sending = threading.Thread(target=first.run_once)
    sending.start()
    receiver.wait_for(1)
    assert second.run_once() == 0  # the first holds the lease while its send is in flight
    answer.set()
    sending.join(30)
    assert load(db, delivery_id)[0].state == "delivered" and len(receiver.received) == 1


_DISPATCH_IN_A_CHILD = """
import sys
from watchkeeper.delivery import Dispatcher, webhook_sender
from watchkeeper.netguard import UrlPolicy
from watchkeeper.store.db import Database

url, secret, lease_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
sender = webhook_sender(secret, UrlPolicy(["127.0.0.0/8"]), timeout_s=60)
Dispatcher(Database(url), {"webhook": sender}, max_attempts=4, backoff_s=0.05, backoff_max_s=0.2,
           lease_s=lease_s).run_once()
"""


def test_a_killed_dispatcher_s_delivery_is_sent_again_after_its_lease(
    db: Database, database_url: str, receiver: LoopbackServer
) -> None:
    answer = threading.Event()
    receiver.replies["/hook"] = [Reply(200, hold=answer), Reply(200)]
    delivery_id = add_webhook(db, f"{receiver.url}/hook")
    child = subprocess.Popen([sys.executable, "-c", _DISPATCH_IN_A_CHILD, database_url, SECRET, "1.0"])
    try:
        receiver.wait_for(1, timeout_s=60)
    finally:
        child.kill()  # SIGKILL mid-send: no outcome recorded, the lease left to expire
        child.wait()
    answer.set()

    run_until(make_dispatcher(db), lambda: load(db, delivery_id)[0].state == "delivered")
    delivery, log = load(db, delivery_id)
    assert delivery.attempts == 2  # the killed claim counts
    assert [(a.ok, a.status_code) for a in log] == [(True, 200)]  # the killed send left no outcome
    assert len(receiver.received) == 2
    for request in receiver.received:
        assert_signed(request, delivery_id)


def test_a_last_attempt_abandoned_by_a_crash_goes_dead(db: Database) -> None:
    delivery_id = add_webhook(db, "http://127.0.0.1:9/hook")
    with db.session() as session:  # as a dispatcher that claimed the last attempt and died leaves it
        session.execute(update(Delivery).where(Delivery.id == delivery_id)
                        .values(attempts=3, lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert make_dispatcher(db, max_attempts=3).run_once() == 0
    delivery, log = load(db, delivery_id)
    assert delivery.state == "dead" and "stopped during the last attempt" in (delivery.last_error or "") and not log


def test_the_thread_delivers_when_woken(db: Database, receiver: LoopbackServer) -> None:
    receiver.replies["/hook"] = Reply(200)
    dispatcher = make_dispatcher(db, poll_s=60)  # only wake() can make it look before a minute is up
    dispatcher.start()
    try:
        time.sleep(0.3)  # its first pass finds the outbox empty; then it sleeps on the poll interval
        delivery_id = add_webhook(db, f"{receiver.url}/hook")
        dispatcher.wake()
        receiver.wait_for(1)
        deadline = time.monotonic() + 20
        while load(db, delivery_id)[0].state != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        dispatcher.stop()


def test_a_channel_stuck_in_a_send_holds_up_no_other_channel(db: Database) -> None:
    stuck, released = threading.Event(), threading.Event()
    sent: list[str] = []

    def hanging(delivery: Delivery) -> SendOutcome:
        stuck.set()
        released.wait(20)  # an SMTP server that does not answer
        return SendOutcome(ok=True)

    def quick(delivery: Delivery) -> SendOutcome:
        sent.append(delivery.target)
        return SendOutcome(ok=True)

    with db.session() as session:
        enqueue(session, channel="email", target="guards@example.org", event="alert.incident", payload={})
        enqueue(session, channel="sms", target="+15550001111", event="alert.incident", payload={})
        enqueue(session, channel="pager", target="nobody", event="alert.incident", payload={})  # no sender
    dispatcher = Dispatcher(db, {"email": hanging, "sms": quick}, max_attempts=3, backoff_s=0.05, backoff_max_s=0.2,
                            poll_s=0.05)
    dispatcher.start()
    try:
        assert stuck.wait(10)
        deadline = time.monotonic() + 10
        while not sent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sent == ["+15550001111"]  # delivered while the e-mail is still hanging
        def pager() -> Delivery:  # a new session each time: an open one keeps reading its first snapshot
            with db.session(write=False) as session:
                return session.scalar(select(Delivery).where(Delivery.channel == "pager"))

        deadline = time.monotonic() + 10
        while pager().state == "pending" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pager().state == "dead" and "no sender" in pager().last_error
    finally:
        released.set()
        dispatcher.stop()
