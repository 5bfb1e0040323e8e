"""Live monitoring: cameras, their capture loops, tiered analysis, the alert gate and evidence recording."""

from .monitor import IncidentEvent, Monitor

__all__ = ["IncidentEvent", "Monitor"]
