"""Weapon detection: handguns, long guns and knives in frames, from windows of YOLOv3-tiny features."""
