"""Batch results as table, JSON, JSON Lines or Markdown."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ..batch import BatchItem


def summary_record(item: BatchItem) -> dict[str, Any]:
    """The per-input record of ``--format jsonl``."""
    result = item.result
    if result is None:
        return {"path": item.source, "media_type": None, "scores": {}, "incidents": [], "crime_detected": False,
                "crime_type": None, "confidence": None, "evidence_description": None, "transcript": None,
                "cache_hit": False, "timings_ms": {}, "error": item.error}
    return {
        "path": item.source,
        "media_type": result.media.media_type,
        "scores": result.scores,
        "incidents": [i.model_dump(mode="json") for i in result.incidents],
        "crime_detected": result.crime_detected,
        "crime_type": result.crime_type,
        "confidence": result.confidence,
        "evidence_description": result.evidence_description,
        "transcript": result.transcript_text or None,
        "cache_hit": result.cache_hit,
        "timings_ms": result.timings_ms,
        "analyzer_errors": result.analyzer_errors,
        "error": None,
    }


def full_record(item: BatchItem) -> dict[str, Any]:
    if item.result is None:
        return {"path": item.source, "error": item.error}
    return {"path": item.source, **item.result.model_dump(mode="json"), "error": None}


def jsonl_line(item: BatchItem) -> str:
    return json.dumps(summary_record(item), ensure_ascii=False)


def to_json(items: list[BatchItem]) -> str:
    return json.dumps([full_record(i) for i in items], ensure_ascii=False, indent=2)


def _incident_cells(item: BatchItem) -> tuple[str, str, str]:
    if item.result is None:
        err = item.error or {}
        return "error", f"{err.get('type')}: {err.get('message')}", ""
    result = item.result
    if not result.incidents:
        top = max(result.scores.items(), key=lambda kv: kv[1])
        return "none", "", f"{top[0]} {top[1]:.2f}" if top[1] > 0 else "-"
    incidents = ", ".join(
        f"{i.category} (sev {i.severity}, {i.confidence:.2f}, {i.t_start_s:.1f}-{i.t_end_s:.1f} s)"
        for i in result.incidents
    )
    return result.crime_type or "", incidents, f"{result.incidents[0].category} {result.incidents[0].confidence:.2f}"


def table(items: list[BatchItem]) -> Table:
    out = Table(title="Watchkeeper analysis", show_lines=False)
    out.add_column("file", overflow="fold", min_width=24)
    for name in ("type", "crime", "incidents", "top score", "ms"):
        out.add_column(name, overflow="fold")
    for item in items:
        crime, incidents, top = _incident_cells(item)
        media_type = item.result.media.media_type if item.result else "-"
        ms = ""
        if item.result is not None:
            ms = "cached" if item.result.cache_hit else f"{item.result.timings_ms.get('total', 0):.0f}"
        style = "red" if item.error else ("bold yellow" if item.result and item.result.crime_detected else None)
        out.add_row(item.source, media_type, crime, incidents, top, ms, style=style)
    return out


def table_text(items: list[BatchItem], width: int = 160) -> str:
    console = Console(width=width, file=io.StringIO())
    console.print(table(items))
    return console.file.getvalue()


def markdown(items: list[BatchItem]) -> str:
    lines = ["| file | type | crime | incidents | top score |", "|---|---|---|---|---|"]
    for item in items:
        crime, incidents, top = _incident_cells(item)
        media_type = item.result.media.media_type if item.result else "-"
        cells = [item.source, media_type, crime, incidents, top]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
