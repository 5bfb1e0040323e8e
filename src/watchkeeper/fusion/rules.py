"""Fusion rules: the packaged YAML merged with the operator's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import yaml

from ..config import Settings
from ..errors import ConfigError
from ..taxonomy import BUILTIN_CATEGORIES, Category


@dataclass(frozen=True)
class Combination:
    category: str
    weight: float
    groups: tuple[tuple[str, ...], ...]


@dataclass
class FusionRules:
    categories: dict[str, Category]
    evidence: dict[str, dict[str, float]]
    category_prefixes: dict[str, float]
    combinations: list[Combination]
    thresholds: dict[str, float]
    raise_at_confidence: float
    raise_at_agreement: int
    phrases: dict[str, str] = field(default_factory=dict)
    # Label -> the first label of its group of alternatives (one detector's rival readings of one thing).
    alternatives: dict[str, str] = field(default_factory=dict)

    def evidence_key(self, label: str) -> str:
        """Labels that are alternatives of one another count once, by their strongest detection."""
        return self.alternatives.get(label, label)

    def weights_for(self, label: str) -> dict[str, float]:
        """Category weights one evidence label carries."""
        weights = dict(self.evidence.get(label, {}))
        for prefix, weight in self.category_prefixes.items():
            if label.startswith(prefix):
                category = label[len(prefix):]
                if category in self.categories:
                    weights[category] = max(weights.get(category, 0.0), weight)
        return weights

    def phrase(self, label: str, text: str | None = None) -> str:
        template = self.phrases.get(label)
        if template is None:
            for prefix in self.category_prefixes:
                if label.startswith(prefix) and label[len(prefix):] in self.categories:
                    name = self.categories[label[len(prefix):]].name.lower()
                    if prefix in self.phrases:
                        return self.phrases[prefix].format(category=name, text=text or "")
                    return f"words about {name}" + (f" (\"{text}\")" if text else "")
            return label.replace("_", " ").replace(":", " ")
        return template.format(text=text or "")


def _packaged_rules() -> dict:
    return yaml.safe_load(resources.files("watchkeeper.data").joinpath("fusion_rules.yaml").read_text())


def _categories(settings: Settings) -> dict[str, Category]:
    categories = {c.id: c for c in BUILTIN_CATEGORIES}
    for user in settings.categories:
        categories[user.id] = Category(user.id, user.name, user.description, user.default_severity)
    return categories


def base_thresholds(settings: Settings, *, raw: dict | None = None) -> dict[str, float]:
    """Each category's decision threshold before the security-level scale: the settings' value, else the rules'.

    Learned heads keep their own model-card thresholds by mapping their
    probabilities onto this scale (``analyzers.heads.on_category_scale``), so
    every kind of evidence for a category is judged against one threshold.
    """
    raw = raw or _packaged_rules()
    default = raw["thresholds"]["default"]
    return {cid: settings.fusion.thresholds.get(cid, raw["thresholds"].get(cid, default)) for cid in _categories(settings)}


def build_rules(settings: Settings) -> FusionRules:
    raw = _packaged_rules()
    categories = _categories(settings)

    evidence = {label: dict(w) for label, w in raw["evidence"].items()}
    for label, weights in settings.fusion.weights.items():
        evidence.setdefault(label, {}).update(weights)

    scale = raw["security_level_threshold_scale"][settings.event.security_level]
    thresholds = {
        cid: min(0.99, base * scale) for cid, base in base_thresholds(settings, raw=raw).items()
    }

    combinations = []
    for entry in raw.get("combinations", []):
        if entry["category"] not in categories:
            raise ConfigError(f"fusion rule names unknown category '{entry['category']}'")
        combinations.append(
            Combination(entry["category"], float(entry["weight"]), tuple(tuple(g) for g in entry["when"]))
        )
    return FusionRules(
        categories=categories,
        evidence=evidence,
        category_prefixes={k: float(v) for k, v in raw["category_prefixes"].items()},
        combinations=combinations,
        thresholds=thresholds,
        raise_at_confidence=float(raw["severity"]["raise_at_confidence"]),
        raise_at_agreement=int(raw["severity"]["raise_at_agreement"]),
        phrases=raw.get("phrases", {}),
        alternatives={label: group[0] for group in raw.get("alternatives", []) for label in group},
    )
