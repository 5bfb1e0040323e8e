"""The incident taxonomy (``../shared/TAXONOMY.md``) and its scale mappings.

Category ids are public and stable: they appear in JSON, the API, the
database and MQTT topics. Users add categories through ``Settings.categories``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    description: str
    default_severity: int


# Descriptions are full sentences: the text-semantics analyzer embeds them, and
# sentences rank far better than bare labels.
BUILTIN_CATEGORIES: tuple[Category, ...] = (
    Category("assault", "Violence / aggression",
             "People fighting, punching, kicking or physically attacking someone.", 4),
    Category("robbery", "Robbery",
             "Someone demands money or property by force or threat, a mugging or a hold-up.", 4),
    Category("theft", "Theft / burglary",
             "Someone steals things, shoplifts, or breaks into a building or a car.", 3),
    Category("vandalism", "Vandalism / property damage",
             "Someone smashes windows, sprays graffiti or deliberately damages property.", 2),
    Category("weapon", "Weapon / security threat",
             "A person has a gun or a knife, or a suspicious package is left unattended.", 4),
    Category("shooting", "Gunfire",
             "Gunshots are fired; someone is shooting a gun.", 5),
    Category("explosion", "Explosion",
             "A bomb or something else explodes with a loud blast.", 5),
    Category("fire", "Fire / smoke hazard",
             "Flames or smoke: something is on fire and burning.", 4),
    Category("medical", "Medical emergency",
             "A person has collapsed, fallen, is injured, unconscious or needs an ambulance.", 4),
    Category("distress", "Distress call",
             "Someone screams or cries for help, asking others to call the police.", 3),
    Category("intrusion", "Unauthorized access",
             "Someone trespasses, climbs a fence or enters a restricted area without permission.", 3),
    Category("suspicious", "Suspicious activity",
             "Someone loiters, watches a place, hides their face or behaves suspiciously.", 2),
    Category("crowd", "Crowd control",
             "The area is overcrowded, with too many people pushing at a bottleneck.", 3),
    Category("stampede", "Stampede risk",
             "A crowd panics and people run away in every direction at once.", 5),
    Category("vehicle", "Vehicle incident",
             "A car crash, a collision, or a vehicle driving where people walk or blocking an exit.", 3),
    Category("structural", "Structural damage",
             "A wall, barrier, ceiling or structure is damaged, collapsing or unsafe.", 3),
    Category("equipment", "Equipment failure",
             "Stage, sound, power or machinery equipment fails or breaks down.", 2),
    Category("weather", "Weather emergency",
             "Severe weather: a storm, lightning, flooding or strong wind endangers people.", 3),
    Category("alarm", "Alarm or siren",
             "A fire alarm, smoke alarm, car alarm or siren is sounding.", 2),
    Category("evacuation", "Evacuation needed",
             "People must leave the area immediately because staying is dangerous.", 5),
)

BUILTIN_IDS: tuple[str, ...] = tuple(c.id for c in BUILTIN_CATEGORIES)

SEVERITY_LABELS = {1: "LOW", 2: "MODERATE", 3: "HIGH", 4: "CRITICAL", 5: "EMERGENCY"}
SEVERITY_COLORS = {1: "#28a745", 2: "#ffc107", 3: "#fd7e14", 4: "#dc3545", 5: "#6f42c1"}

INCIDENT_STATUSES = ("open", "acknowledged", "confirmed", "false_alarm", "resolved")


def severity_word(severity: int) -> str:
    """Seed 000's ``potential_severity``: 1-2 low, 3 medium, 4-5 high."""
    if severity <= 2:
        return "low"
    return "medium" if severity == 3 else "high"


def confidence_word(confidence: float) -> str:
    """Seed 000's ``confidence``: < 0.5 low, 0.5-0.8 medium, >= 0.8 high."""
    if confidence < 0.5:
        return "low"
    return "medium" if confidence < 0.8 else "high"


def threat_severity_index(severity: int, confidence: float) -> float:
    """Seed 001's 0..1 index, computed locally."""
    return round((severity - 1) / 4 * confidence, 4)
