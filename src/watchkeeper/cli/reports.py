"""``watchkeeper report``: a stored analysis, or a media file analysed first, as a report."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..config import Settings
from ..errors import NotFoundError

SUFFIXES = {"pdf": ".pdf", "html": ".html", "markdown": ".md", "json": ".json"}


class ReportFormat(str, Enum):
    pdf = "pdf"
    html = "html"
    markdown = "markdown"
    json = "json"


def register(app: typer.Typer, load_settings: Callable[[], Settings]) -> None:
    @app.command()
    def report(
        subject: Annotated[str, typer.Argument(help="An analysis id from the database, or a media file to analyse.")],
        output_format: Annotated[ReportFormat, typer.Option("--format", "-f", help="Report format.")] = ReportFormat.pdf,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Where to write it; default: <subject>.<format> here (markdown and json: stdout).")] = None,
        provider: Annotated[Optional[str], typer.Option(
            "--provider", help="A configured provider to judge and write with; 'local' for none.")] = None,
    ) -> None:
        """Write the incident report of an analysis: seven sections per incident, evidence, timeline, charts."""
        from ..pipeline import Pipeline
        from ..reasoning.render import render
        from ..artefacts import open_artefact_store
        from ..reasoning.reports import ReportWriter, analysed_file_pictures

        settings = load_settings()
        pipeline = Pipeline(settings)
        path = Path(subject)
        if path.is_file():
            result = pipeline.analyze(path, provider=provider)
            media: str | None = str(path)
            subject_fields = {}
        else:
            result, media, subject_fields = _stored(settings, subject)
        pictures = analysed_file_pictures(open_artefact_store(settings), media, result, settings.media)
        writer = ReportWriter(settings, pipeline.fusion.rules.categories, pipeline.reasoner)
        body = render(writer.for_analysis(result, subject=subject_fields, pictures=pictures), output_format.value)
        if out is None and output_format in (ReportFormat.markdown, ReportFormat.json):
            typer.echo(body.decode())
            return
        target = out or Path(f"{path.stem if path.is_file() else subject}{SUFFIXES[output_format.value]}")
        target.write_bytes(body)
        Console(stderr=True).print(f"wrote {escape(str(target))}", highlight=False)


def _stored(settings: Settings, analysis_id: str):
    from ..domain import AnalysisResult
    from ..store.db import open_database
    from ..store.models import Analysis

    with open_database(settings) as db, db.session() as session:
        row = session.get(Analysis, analysis_id)
        if row is None:
            raise NotFoundError(f"'{analysis_id}' is neither a media file nor a stored analysis id")
        result = AnalysisResult.model_validate(row.result)
        return result, row.media_path, {"analysis_id": row.id, **({"camera": row.camera} if row.camera else {})}


