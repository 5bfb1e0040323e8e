"""Reports over the API: the formats a report route offers, and the pieces every such route needs.

Shared by the routes that write a report (an analysis's, an incident's) so they offer the same formats, media
types and file names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Response

from ..domain import AnalysisResult
from ..reasoning.render import render
from ..reasoning.report_model import Picture, Report
from ..reasoning.reports import ReportWriter, analysed_file_pictures
from .services import Services

ReportFormat = Literal["pdf", "html", "markdown", "json"]
ReportFormatQuery = Annotated[ReportFormat, Query(alias="format")]
DownloadQuery = Annotated[bool, Query(description="false: shown in the browser, not saved")]

REPORT_MEDIA = {"pdf": "application/pdf", "html": "text/html; charset=utf-8",
                "markdown": "text/markdown; charset=utf-8", "json": "application/json"}
REPORT_SUFFIX = {"pdf": "pdf", "html": "html", "markdown": "md", "json": "json"}
# For the OpenAPI document: a report route answers in any of the formats.
REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {media: {} for media in REPORT_MEDIA.values()}}}


def report_writer(services: Services) -> ReportWriter:
    pipeline = services.pipeline()
    return ReportWriter(services.settings, pipeline.fusion.rules.categories, pipeline.reasoner)


def media_pictures(services: Services, media_path: str | None, result: AnalysisResult) -> dict[int, list[Picture]]:
    """Each incident's frame with its boxes (by incident position): an upload's, or a file's in a media root."""
    return analysed_file_pictures(services.uploads.artefacts, media_path, result, services.settings.media,
                                  resolve=services.media_roots.resolve)


def report_response(report: Report, report_format: ReportFormat, name: str, *, download: bool = True) -> Response:
    """The rendered report, named ``name`` plus the format's suffix: saved, or shown in the browser."""
    filename = f"{name}.{REPORT_SUFFIX[report_format]}"
    headers = {"Content-Disposition": f'{"attachment" if download else "inline"}; filename="{filename}"'}
    if not download:  # shown from our own origin: the report may carry no script, only its inline styles and pictures
        headers["Content-Security-Policy"] = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return Response(render(report, report_format), media_type=REPORT_MEDIA[report_format], headers=headers)
