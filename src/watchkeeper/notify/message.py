"""The alert every channel formats in its own way: one JSON document, stored as a delivery's payload.

A delivery of an alert has ``channel`` (email, sms, resend, apprise, webhook, mqtt, hook), ``target`` (an
address, a phone number, an Apprise URL, a webhook URL, a topic, a hook name) and this message as its
``payload``. Channels read nothing else, so an alert in the outbox is complete on its own and can be sent
after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from ..delivery.dispatcher import Sender, SendOutcome
    from ..store.models import Delivery

CHANNELS = ("email", "sms", "resend", "apprise", "webhook", "mqtt", "hook")
AlertKind = Literal["incident", "escalation", "manual", "test"]


class AlertMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AlertKind
    event: Literal["opened", "updated", "closed"] | None = None
    incident_id: str | None = None
    title: str = Field(description="One line: what, where, how bad. The e-mail subject, the SMS's first line.")
    category: str | None = None
    category_name: str | None = None
    severity: int = Field(ge=1, le=5)
    severity_label: str
    severity_color: str
    severity_word: Literal["low", "medium", "high"] = Field(description="Seed 000's potential_severity.")
    confidence: float = Field(ge=0.0, le=1.0)
    camera: str | None = None
    location: str | None = None
    zone: str | None = None
    summary: str
    occurred_at: datetime
    requires_immediate_action: bool = False
    immediate_actions: list[str] = Field(default_factory=list, description="The report's first steps.")
    links: dict[str, str] = Field(
        default_factory=dict, description="incident, report, snapshot, clip, acknowledge: absolute with public_url.")
    snapshot_path: str | None = Field(None, description="The snapshot on this server's disk, for inline images.")
    route: str | None = None
    group: str | None = None


def facts(message: AlertMessage) -> list[tuple[str, str]]:
    """The alert's facts worth a line each, in the order every channel shows them."""
    found = [("Severity", f"{message.severity} {message.severity_label}"),
             ("Confidence", f"{message.confidence:.0%}"), ("Camera", message.camera), ("Location", message.location),
             ("Zone", message.zone), ("Time", message.occurred_at.isoformat(timespec="seconds"))]
    return [(name, value) for name, value in found if value]


def plain_text(message: AlertMessage) -> str:
    """The alert as plain text: an e-mail's text part, a chat message."""
    lines = [message.title, "", message.summary, ""]
    lines += [f"{name}: {value}" for name, value in facts(message)]
    if message.immediate_actions:
        lines += ["", "Immediate actions:", *(f"{n}. {step}" for n, step in enumerate(message.immediate_actions, 1))]
    if message.links:
        lines += ["", *(f"{name.capitalize()}: {url}" for name, url in message.links.items())]
    return "\n".join(lines).strip() + "\n"


def short_text(message: AlertMessage, limit: int = 306) -> str:
    """The alert in two SMS segments at most (306 GSM-7 characters): the links whole, the title shortened to
    fit them (with "...", which stays GSM-7 where an ellipsis character would not)."""
    links = [message.links["incident"]] if message.links.get("incident") else []
    if message.links.get("acknowledge"):
        links.append(f"Ack: {message.links['acknowledge']}")
    room = limit - sum(len(link) + 1 for link in links)
    title = message.title if len(message.title) <= room else message.title[: max(0, room - 3)] + "..."
    return "\n".join([title, *links])


def alert_sender(send: Callable[[Delivery, AlertMessage], SendOutcome]) -> Sender:
    """A channel's sender from a function of the delivery and its alert: a payload that is no alert fails for
    good, its errors counted rather than quoted (the payload's values, its links, stay out of the logs)."""
    from ..delivery.dispatcher import SendOutcome

    def sender(delivery: Delivery) -> SendOutcome:
        try:
            message = AlertMessage.model_validate(delivery.payload)
        except ValidationError as exc:
            return SendOutcome(ok=False, error=f"payload is not an alert message ({exc.error_count()} errors)",
                               retry=False)
        return send(delivery, message)

    return sender
