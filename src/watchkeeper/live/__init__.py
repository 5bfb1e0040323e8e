"""Live monitoring: cameras, their capture loops, tiered analysis, the alert gate and evidence recording."""
