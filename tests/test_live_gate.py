"""The alert gate: one incident per episode, opened after consecutive support, closed after the cooldown."""

from __future__ import annotations

from watchkeeper.domain import Incident
from watchkeeper.config import AlertGateSettings
from watchkeeper.live.gate import AlertGate


def incident(category: str, confidence: float, t: float, severity: int = 3) -> Incident:
    return Incident(
        category=category, category_name=category.title(), severity=severity, severity_label="High",
        confidence=confidence, threshold=0.5, t_start_s=t, t_end_s=t + 1.0, modalities=["visual"],
        modality_agreement=1, evidence=[], summary=f"{category} seen", requires_immediate_action=False,
        threat_severity_index=0.5,
    )


def run(gate: AlertGate, windows: dict[float, list[Incident]], until: float) -> list[tuple[float, str, str]]:
    """Feed one window per second from 0 to ``until``; returns (t, event, category)."""
    events = []
    for step in range(int(until) + 1):
        t = float(step)
        events += [(e.t, e.kind, e.category) for e in gate.observe(t, windows.get(t, []))]
    return events


def test_a_sixty_second_fight_is_one_incident():
    gate = AlertGate(AlertGateSettings(consecutive=2, cooldown_s=8, update_every_s=20))
    fight = {float(t): [incident("assault", 0.9, t)] for t in range(10, 70)}
    events = run(gate, fight, until=90)
    assert events == [(11.0, "opened", "assault"), (31.0, "updated", "assault"), (51.0, "updated", "assault"),
                      (77.0, "closed", "assault")]


def test_weak_or_isolated_windows_open_nothing():
    gate = AlertGate(AlertGateSettings(min_confidence=0.75, consecutive=2))
    windows = {1.0: [incident("fire", 0.9, 1)], 3.0: [incident("fire", 0.95, 3)],  # never two in a row
               5.0: [incident("fire", 0.6, 5)], 6.0: [incident("fire", 0.7, 6)]}  # in a row, but weak
    assert run(gate, windows, until=20) == []


def test_the_incident_spans_its_episode_and_keeps_its_strongest_window():
    gate = AlertGate(AlertGateSettings(consecutive=2, cooldown_s=3, update_every_s=100))
    windows = {2.0: [incident("shooting", 0.8, 2)], 3.0: [incident("shooting", 0.97, 3, severity=5)],
               4.0: [incident("shooting", 0.85, 4)]}
    events = []
    for t in range(12):
        events += gate.observe(float(t), windows.get(float(t), []))
    opened, closed = events
    assert (opened.kind, closed.kind) == ("opened", "closed") and opened.incident_id == closed.incident_id
    assert closed.incident.confidence == 0.97 and closed.incident.severity == 5
    assert (closed.incident.t_start_s, closed.incident.t_end_s) == (2.0, 5.0)


def test_a_rising_severity_updates_at_once():
    gate = AlertGate(AlertGateSettings(consecutive=1, update_every_s=100))
    windows = {0.0: [incident("assault", 0.8, 0, severity=3)], 1.0: [incident("assault", 0.8, 1, severity=3)],
               2.0: [incident("assault", 0.9, 2, severity=5)]}
    assert run(gate, windows, until=2) == [(0.0, "opened", "assault"), (2.0, "updated", "assault")]


def test_categories_are_gated_apart_and_close_when_the_monitor_stops():
    gate = AlertGate(AlertGateSettings(consecutive=2, cooldown_s=8))
    windows = {float(t): [incident("assault", 0.9, t), *([incident("weapon", 0.8, t)] if t >= 2 else [])]
               for t in range(5)}
    events = run(gate, windows, until=4)
    assert [(t, kind, c) for t, kind, c in events] == [(1.0, "opened", "assault"), (3.0, "opened", "weapon")]
    assert gate.open_categories == ["assault", "weapon"]
    closed = gate.close_all(5.0)
    assert [(e.kind, e.category) for e in closed] == [("closed", "assault"), ("closed", "weapon")]
    assert gate.open_categories == []


def test_after_closing_a_new_episode_needs_a_fresh_run_of_support():
    gate = AlertGate(AlertGateSettings(consecutive=2, cooldown_s=2, update_every_s=100))
    windows = {0.0: [incident("fire", 0.9, 0)], 1.0: [incident("fire", 0.9, 1)],
               4.0: [incident("fire", 0.9, 4)], 6.0: [incident("fire", 0.9, 6)], 7.0: [incident("fire", 0.9, 7)]}
    events = run(gate, windows, until=8)
    assert events == [(1.0, "opened", "fire"), (3.0, "closed", "fire"), (7.0, "opened", "fire")]
