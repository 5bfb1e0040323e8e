"""Feedback: incidents people judged (``confirmed`` or ``false_alarm``) as a data set for ``watchkeeper train``.

The export is folder-per-label, ready for ``watchkeeper train OUT --positive
confirmed``: ``OUT/confirmed/`` and ``OUT/false_alarm/`` hold the media of
each judged incident (the image, or the incident's span of the audio or video
with some context either side), and ``OUT/groups.csv`` puts every clip of one
source file in one group, so cross-validation never trains on one part of a
recording and tests on another.
"""

from __future__ import annotations

import csv
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from ..artefacts import ArtefactStore, local_media
from ..errors import ConfigError, WatchkeeperError
from ..media.clips import cut_clip
from ..store.db import Database
from ..store.models import Analysis, IncidentRecord

log = logging.getLogger(__name__)

JUDGED = ("confirmed", "false_alarm")
GROUP_FILE = "groups.csv"


@dataclass
class FeedbackExport:
    folder: Path
    written: dict[str, list[Path]] = field(default_factory=lambda: {label: [] for label in JUDGED})
    # (incident id, why it has no file in the export)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def export_feedback(
    db: Database,
    folder: Path,
    category: str,
    *,
    artefacts: ArtefactStore,
    camera: str | None = None,
    since: datetime | None = None,
    context_s: float = 1.0,
) -> FeedbackExport:
    """Write the judged incidents of ``category`` (optionally one camera's, from ``since`` on) under ``folder``;
    uploads' media come from ``artefacts``."""
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty; export into a new folder")
    query = (
        select(IncidentRecord, Analysis)
        .join(Analysis, IncidentRecord.analysis_id == Analysis.id)
        .where(IncidentRecord.category == category, IncidentRecord.status.in_(JUDGED))
        .order_by(IncidentRecord.id)
    )
    if camera is not None:
        query = query.where(IncidentRecord.camera == camera)
    if since is not None:
        query = query.where(IncidentRecord.created_at >= since)
    with db.session(write=False) as session:
        rows = [(incident.id, incident.status, incident.t_start_s, incident.t_end_s, analysis.source,
                 analysis.media_path, analysis.media_type, analysis.media_sha256)
                for incident, analysis in session.execute(query)]

    export = FeedbackExport(folder)
    groups: list[tuple[str, str]] = []
    for incident_id, status, t_start_s, t_end_s, source, media_path, media_type, sha256 in rows:
        if media_path is None:
            export.skipped.append((incident_id, f"its media {source} was fetched from a URL and not kept"))
            continue
        try:
            with local_media(artefacts, media_path) as local:
                path = Path(local)
                if not path.is_file():
                    export.skipped.append((incident_id, f"its media {media_path} is no longer on this machine"))
                    continue
                target = folder / status / f"incident-{incident_id}{path.suffix.lower()}"
                target.parent.mkdir(parents=True, exist_ok=True)
                if media_type == "image":
                    shutil.copyfile(path, target)
                else:
                    cut_clip(path, target, max(0.0, t_start_s - context_s), t_end_s + context_s)
        except WatchkeeperError as exc:  # an upload no longer in the artefact store, too
            export.skipped.append((incident_id, str(exc)))
            continue
        export.written[status].append(target)
        groups.append((target.relative_to(folder).as_posix(), sha256 or source))
    if groups:
        with (folder / GROUP_FILE).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "group"])
            writer.writerows(groups)
    log.info("feedback exported", extra={"category": category, "files": len(groups), "skipped": len(export.skipped)})
    return export
