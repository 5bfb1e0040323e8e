"""Cameras share the analysis time by weight, never more windows at once than the capacity."""

from __future__ import annotations

import threading
import time

from watchkeeper.live.slots import AnalysisSlots


def test_turns_go_first_come_first_served_within_the_capacity():
    slots = AnalysisSlots(capacity=2)
    order: list[str] = []
    running, most = 0, 0
    lock = threading.Lock()
    gate = threading.Event()

    def camera(name: str) -> None:
        nonlocal running, most
        with slots.turn():
            with lock:
                order.append(name)
                running += 1
                most = max(most, running)
            gate.wait(5)
            time.sleep(0.01)
            with lock:
                running -= 1

    threads = []
    for name in "abcdef":
        thread = threading.Thread(target=camera, args=(name,))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # a after b after c...: the order they ask in
    gate.set()
    for thread in threads:
        thread.join(10)
    assert order == list("abcdef") and most == 2


def _compete(slots: AnalysisSlots, cameras: dict[str, tuple[float, float]], seconds: float) -> dict[str, float]:
    """Cameras (name: (seconds per window, weight)) asking for turns back to back; the time each got."""
    used = dict.fromkeys(cameras, 0.0)
    stop = threading.Event()

    def camera(name: str, cost: float, weight: float) -> None:
        while not stop.is_set():
            with slots.turn(name, weight):
                started = time.perf_counter()
                time.sleep(cost)
                used[name] += time.perf_counter() - started

    threads = [threading.Thread(target=camera, args=(name, *spec)) for name, spec in cameras.items()]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(5)
    return used


def test_a_costly_camera_gets_its_share_of_the_time_not_more():
    used = _compete(AnalysisSlots(capacity=1), {"costly": (0.05, 1.0), "cheap": (0.005, 1.0)}, 1.5)
    # Turns by time: the cheap camera takes about as many seconds as the costly one, in ten times the turns.
    assert 0.6 < used["cheap"] / used["costly"] < 1.6


def test_a_weighted_camera_gets_a_larger_share():
    used = _compete(AnalysisSlots(capacity=1), {"entrance": (0.02, 3.0), "yard": (0.02, 1.0)}, 1.5)
    assert 2.0 < used["entrance"] / used["yard"] < 4.5


def _ask_while_held(slots: AnalysisSlots, cameras: list[tuple[str, float]]) -> list[str]:
    """Cameras asking, in this order, while another holds the only slot; the order they get it in."""
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.turn("holder"):
            held.set()
            release.wait(5)

    def ask(camera: str, cost: float) -> None:
        with slots.turn(camera):
            order.append(camera)
            time.sleep(cost)

    threading.Thread(target=holder).start()
    held.wait(5)
    waiters = [threading.Thread(target=ask, args=spec) for spec in cameras]
    for waiter in waiters:
        waiter.start()
        time.sleep(0.05)
    release.set()
    for waiter in waiters:
        waiter.join(5)
    return order


def test_the_least_served_camera_goes_first():
    slots = AnalysisSlots(capacity=1)
    cameras = [("heavy", 0.1), ("light", 0.01)]
    assert _ask_while_held(slots, cameras) == ["heavy", "light"]  # equals: first come, first served
    assert _ask_while_held(slots, cameras) == ["light", "heavy"]  # then the one that used less


def test_a_newcomer_starts_level_with_the_cameras_asking():
    slots = AnalysisSlots(capacity=1)
    with slots.turn("busy"):
        time.sleep(0.2)
    with slots.turn("new"):
        pass
    assert slots.used_s("new") >= 0.2  # no credit for the time it was not asking
