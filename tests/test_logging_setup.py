"""The JSON log format: one object per record, its extra fields included, whatever their values."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchkeeper.logging_setup import JsonFormatter


def _records(log: Callable[[logging.Logger], None]) -> list[dict[str, Any]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("watchkeeper.test_json")
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.DEBUG
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_object_with_its_extra_fields():
    [record] = _records(lambda log: log.warning("camera %s lost", "gate", extra={
        "camera": "gate", "reconnects": 3, "path": Path("/data/x.mp4"), "level": "shadowed"}))
    assert record["message"] == "camera gate lost" and record["level"] == "WARNING"  # not the extra's "level"
    assert record["logger"] == "watchkeeper.test_json" and record["time"].endswith("+00:00")
    assert record["camera"] == "gate" and record["reconnects"] == 3
    assert record["path"] == "/data/x.mp4"  # not JSON: written as its str


def test_a_traceback_stays_inside_the_object():
    def log(logger: logging.Logger) -> None:
        try:
            raise ValueError("bad frame\nsecond line")
        except ValueError:
            logger.exception("analysis crashed", extra={"job_id": "j1"})

    [record] = _records(log)
    assert record["job_id"] == "j1" and record["level"] == "ERROR"
    assert record["exception"].startswith("Traceback") and "ValueError: bad frame" in record["exception"]
