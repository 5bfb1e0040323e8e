"""Cameras take turns at the analysis in the order they asked, never more at once than the capacity."""

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


def test_a_slow_camera_does_not_starve_the_others():
    slots = AnalysisSlots(capacity=1)
    done = {"slow": 0, "quick": 0}
    stop = threading.Event()

    def camera(name: str, seconds: float) -> None:
        while not stop.is_set():
            with slots.turn():
                time.sleep(seconds)
                done[name] += 1

    threads = [threading.Thread(target=camera, args=("slow", 0.05)),
               threading.Thread(target=camera, args=("quick", 0.005))]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(5)
    # Turns alternate: the quick camera gets about one turn per slow turn, not all of them.
    assert done["slow"] >= 5 and abs(done["quick"] - done["slow"]) <= 2
