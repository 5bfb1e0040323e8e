"""Checks on the offline report templates (src/watchkeeper/data/report_templates.yaml)."""

from __future__ import annotations

import re
import string
from importlib import resources

import pytest
import yaml

from watchkeeper.taxonomy import BUILTIN_IDS

KEYS = {
    "hazard_analysis": str,
    "immediate_actions": list,
    "escalation_actions": list,
    "equipment_required": list,
    "de_escalation_strategy": str,
    "resolution_method": str,
}
LIST_SIZES = {
    "immediate_actions": (4, 6),
    "escalation_actions": (1, 3),
    "equipment_required": (3, 6),
}
PROSE_KEYS = ("hazard_analysis", "de_escalation_strategy", "resolution_method")
ALLOWED_FIELDS = {"location", "category_name"}
SAMPLE = {"location": "the Main hall (camera hall)", "category_name": "Test category"}


@pytest.fixture(scope="module")
def templates() -> dict:
    text = resources.files("watchkeeper").joinpath("data/report_templates.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _strings(entry: dict):
    for key in KEYS:
        value = entry[key]
        if isinstance(value, str):
            yield key, value
        else:
            for item in value:
                yield key, item


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"[.!?](?:\s+|$)", text.strip()) if s.strip()])


def test_every_builtin_category_has_a_template(templates):
    assert set(templates) == set(BUILTIN_IDS)


@pytest.mark.parametrize("cat_id", BUILTIN_IDS)
def test_template_shape(templates, cat_id):
    entry = templates[cat_id]
    assert set(entry) == set(KEYS), cat_id
    for key, typ in KEYS.items():
        assert isinstance(entry[key], typ), (cat_id, key)
    for key, (lo, hi) in LIST_SIZES.items():
        items = entry[key]
        assert lo <= len(items) <= hi, (cat_id, key, len(items))
        assert all(isinstance(i, str) and i.strip() for i in items), (cat_id, key)
        assert len(set(items)) == len(items), (cat_id, key, "duplicate item")
    for key in PROSE_KEYS:
        assert 2 <= _sentences(entry[key]) <= 3, (cat_id, key)
    assert "{location}" in entry["immediate_actions"][0], cat_id


@pytest.mark.parametrize("cat_id", BUILTIN_IDS)
def test_placeholders_format(templates, cat_id):
    for key, text in _strings(templates[cat_id]):
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        assert fields <= ALLOWED_FIELDS, (cat_id, key, fields)
        out = text.format(**SAMPLE)
        assert "{" not in out and "}" not in out, (cat_id, key)


def test_immediate_actions_are_distinct(templates):
    seen: dict[tuple[str, ...], str] = {}
    for cat_id, entry in templates.items():
        key = tuple(entry["immediate_actions"])
        assert key not in seen, f"{cat_id} repeats the immediate actions of {seen[key]}"
        seen[key] = cat_id
