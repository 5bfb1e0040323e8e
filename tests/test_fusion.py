from datetime import datetime

import pytest

from watchkeeper.config import Settings, Zone
from watchkeeper.domain import Detection
from watchkeeper.fusion import FusionEngine, build_rules
from watchkeeper.taxonomy import BUILTIN_IDS


def det(label, score, t0=0.0, t1=None, modality="visual", **kw):
    return Detection(analyzer="test", modality=modality, label=label, score=score, t_start_s=t0,
                     t_end_s=t0 if t1 is None else t1, **kw)


def engine(**settings):
    s = Settings.model_validate(settings)
    return FusionEngine(s, build_rules(s))


def test_every_category_is_scored_and_silence_is_quiet():
    out = engine().fuse([], 10.0)
    assert set(out.scores) == set(BUILTIN_IDS)
    assert all(v == 0 for v in out.scores.values())
    assert out.incidents == []


def test_scream_and_help_make_one_multimodal_distress_incident():
    out = engine().fuse([
        det("audio:scream", 0.7, 11.4, 12.0, modality="audio"),
        det("speech:distress", 0.9, 11.0, 12.5, modality="speech", attributes={"text": "help me", "keyword": "help"}),
        det("posture:lying", 0.85, 12.0, frame_index=360, box_xywh_norm=(0.2, 0.6, 0.5, 0.2)),
        det("pose:fall", 0.8, 11.0, 12.0),
    ], 20.0)
    cats = {i.category: i for i in out.incidents}
    assert "distress" in cats and "medical" in cats
    distress = cats["distress"]
    assert distress.modality_agreement == 2 and distress.modalities == ["audio", "speech"]
    assert "help me" in distress.summary and "a scream" in distress.summary
    assert distress.severity == 4  # raised from 3 by strong agreement
    medical = cats["medical"]
    assert "a person lying on the ground" in medical.summary.lower() and "a fast fall" in medical.summary.lower()
    assert medical.boxes and medical.boxes[0]["frame_index"] == 360
    assert medical.requires_immediate_action


def test_adjacent_windows_merge_and_distant_ones_do_not():
    shots = [det("audio:gunshot", 0.9, t, t + 0.5, modality="audio") for t in (1.0, 3.0, 5.0, 30.0)]
    out = engine().fuse(shots, 40.0)
    spans = [(i.t_start_s, i.t_end_s) for i in out.incidents if i.category == "shooting"]
    assert spans == [(1.0, 5.5), (30.0, 30.5)]


def test_many_detections_of_one_label_do_not_compound():
    weak = [det("knife", 0.3, frame_index=i) for i in range(50)]
    out = engine().fuse(weak, 0.0)
    assert out.scores["weapon"] == pytest.approx(0.75 * 0.3, abs=1e-3)
    assert not out.incidents


def test_threshold_settings_and_security_level():
    d = [det("audio:siren", 0.6, 1, 2, modality="audio")]
    assert [i.category for i in engine().fuse(d, 5).incidents] == ["alarm"]
    assert engine(fusion={"thresholds": {"alarm": 0.8}}).fuse(d, 5).incidents == []
    low = engine(event={"security_level": "low"}, fusion={"thresholds": {"alarm": 0.5}})
    assert low.rules.thresholds["alarm"] == pytest.approx(0.575)


def test_min_confidence_drops_weak_incidents():
    d = [det("audio:siren", 0.6, 1, 2, modality="audio")]
    assert engine(fusion={"min_confidence": 0.7}).fuse(d, 5).incidents == []


def test_combination_robbery_from_knife_and_threatening_words():
    out = engine().fuse([det("knife", 0.7), det("person", 0.9), det("text:robbery", 0.8, modality="speech")], 0.0)
    robbery = next(i for i in out.incidents if i.category == "robbery")
    assert robbery.modality_agreement == 2


def test_zone_factor_applies_inside_polygon_only():
    zone = {"name": "vault", "polygon": [(0, 0), (0.5, 0), (0.5, 1), (0, 1)], "categories": ["weapon"], "factor": 2}
    e = engine(fusion={"zones": [zone]})
    inside = e.fuse([det("knife", 0.5, box_xywh_norm=(0.1, 0.2, 0.1, 0.2))], 0.0)
    outside = e.fuse([det("knife", 0.5, box_xywh_norm=(0.7, 0.2, 0.1, 0.2))], 0.0)
    assert inside.scores["weapon"] == pytest.approx(2 * outside.scores["weapon"], abs=1e-3)
    assert inside.incidents[0].zone == "vault"


def test_time_of_day_factor_wraps_midnight():
    rule = {"start": "22:00", "end": "06:00", "categories": ["alarm"], "factor": 1.5}
    e = engine(fusion={"time_factors": [rule]})
    d = [det("audio:alarm", 0.5, 0, 1, modality="audio")]
    night = e.fuse(d, 2, when=datetime(2026, 1, 1, 2, 30)).scores["alarm"]
    day = e.fuse(d, 2, when=datetime(2026, 1, 1, 14, 0)).scores["alarm"]
    assert night == pytest.approx(day * 1.5, abs=1e-3)


def test_user_category_through_text_semantics():
    e = engine(categories=[{"id": "drone", "name": "Drone", "description": "A drone flies over the crowd."}])
    out = e.fuse([det("text:drone", 0.9, 1, 2, modality="speech", attributes={"text": "a drone!"})], 3)
    assert out.incidents[0].category == "drone" and out.incidents[0].severity == 3


def test_user_weights_extend_packaged_rules():
    e = engine(fusion={"weights": {"umbrella": {"suspicious": 0.9}}})
    assert e.fuse([det("umbrella", 0.8)], 0).incidents[0].category == "suspicious"


def test_a_live_window_late_in_a_stream_is_fused_over_its_own_span_only():
    shot = det("audio:gunshot", 0.9, 86_400.3, 86_400.8, modality="audio")
    out = engine().fuse([shot], 86_402.0, t_start_s=86_400.0)
    assert all(86_400.0 <= w.t_start_s < 86_402.0 for w in out.windows["shooting"])
    assert len(out.windows["shooting"]) <= 3  # not a day's worth of empty windows
    [incident] = [i for i in out.incidents if i.category == "shooting"]
    assert (incident.t_start_s, incident.t_end_s) == (86_400.3, 86_400.8)


def test_a_person_in_a_restricted_zone_is_an_intrusion_there_and_nowhere_else():
    yard = {"name": "yard", "polygon": [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)], "restricted": True}
    fusion = engine()
    inside = det("person", 0.6, 5.0, box_xywh_norm=(0.4, 0.3, 0.1, 0.4))  # feet at y = 0.7
    outside = det("person", 0.9, 5.0, box_xywh_norm=(0.4, 0.0, 0.1, 0.3))  # feet at y = 0.3
    zones = [Zone.model_validate(yard)]
    [intrusion] = [i for i in fusion.fuse([inside], 10.0, zones=zones).incidents if i.category == "intrusion"]
    assert intrusion.zone == "yard" and "a person in a restricted zone" in intrusion.summary.lower()
    assert not [i for i in fusion.fuse([outside], 10.0, zones=zones).incidents if i.category == "intrusion"]
    assert not fusion.fuse([inside], 10.0).incidents  # the zones are the camera's: none given, none apply
    # A camera's own threshold: stricter than the evidence, no incident.
    strict = fusion.fuse([inside], 10.0, zones=zones, thresholds={"intrusion": 0.95})
    assert not [i for i in strict.incidents if i.category == "intrusion"]
