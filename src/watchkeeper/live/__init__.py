"""Live monitoring: cameras, their capture loops, tiered analysis, the alert gate and evidence recording."""

from .events import IncidentEvent
from .monitor import Monitor

__all__ = ["IncidentEvent", "Monitor"]
