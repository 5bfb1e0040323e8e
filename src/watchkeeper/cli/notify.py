"""``watchkeeper notify test CHANNEL``: send one test alert through one channel, now, and say what happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..config import Settings
from ..notify.message import CHANNELS, AlertMessage

EXIT_FAILED = 2
MQTT_CONNECT_S = 5.0


def test_message() -> AlertMessage:
    return AlertMessage(kind="test", title="[Watchkeeper] Test alert: this channel works", severity=1,
                        severity_label="LOW", severity_color="#28a745", severity_word="low", confidence=1.0,
                        summary="A test sent with 'watchkeeper notify test'. No incident has happened.",
                        occurred_at=datetime.now(timezone.utc))


def register(app: typer.Typer, load_settings: Callable[[], Settings]) -> None:
    notify_app = typer.Typer(help="Alert channels.", no_args_is_help=True)
    app.add_typer(notify_app, name="notify")

    @notify_app.command("test")
    def send_test(
        channel: Annotated[str, typer.Argument(help=f"One of: {', '.join(CHANNELS)}.")],
        to: Annotated[Optional[str], typer.Option(
            "--to", help="Address, number, URL, topic or hook; default: the first the alert groups name.")] = None,
    ) -> None:
        """Send a test alert through CHANNEL directly (not through the outbox). Exit code 2 if it failed."""
        from ..notify.router import channel_targets
        from ..notify.service import AlertService
        from ..store.db import open_database
        from ..store.models import Delivery

        if channel not in CHANNELS:
            raise typer.BadParameter(f"unknown channel '{channel}'; choose from {', '.join(CHANNELS)}")
        settings = load_settings()
        with open_database(settings) as db:
            service = AlertService(settings, db, link_secret=b"")
            senders = service.senders()
            if channel == "webhook":
                from ..delivery.webhook import webhook_sender
                from ..netguard import UrlPolicy

                server = settings.server
                senders["webhook"] = webhook_sender(server.webhook_secret, UrlPolicy(server.allowed_private_networks),
                                                    server.webhook_timeout_s)
            if channel not in senders:
                raise typer.BadParameter(f"the {channel} channel is not configured")
            targets = [t for group in service.router.alerts.groups.values() for c, t in channel_targets(group)
                       if c == channel]
            targets += {"mqtt": ["events"], "hook": service.router.alerts.hooks}.get(channel, [])
            target = to or next(iter(targets), None)
            if target is None:
                raise typer.BadParameter(f"no {channel} target in the alert groups: give one with --to")
            if service.mqtt is not None and channel == "mqtt":
                service.mqtt.start()
                deadline = time.monotonic() + MQTT_CONNECT_S  # it connects in the background
                while not service.mqtt.connected and time.monotonic() < deadline:
                    time.sleep(0.05)
            try:
                outcome = senders[channel](Delivery(id=0, channel=channel, target=target, event="alert.test",
                                                    payload=test_message().model_dump(mode="json")))
            finally:
                service.stop()
        shown = target if channel in ("email", "sms", "resend", "mqtt", "hook") else f"{channel} target"
        if outcome.ok:
            Console().print(f"sent a test alert through {channel} to {escape(shown)}", highlight=False)
            return
        Console(stderr=True).print(f"{channel} failed ({'will retry' if outcome.retry else 'permanent'}): "
                                   f"{escape(outcome.error or 'no reason given')}", highlight=False)
        raise typer.Exit(EXIT_FAILED)
