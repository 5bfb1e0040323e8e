"""Alerts: routing incidents to people and systems through every channel, by way of the delivery outbox."""
