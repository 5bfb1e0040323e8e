"""``watchkeeper monitor``: one camera in the foreground, incidents printed as they happen; ``watchkeeper
camera-worker``: a share of the site's cameras, leased in the database (``live.leases``)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..config import Settings
from ..errors import ConfigError, MediaFetchError
from ..logging_setup import configure as configure_logging
from .stopping import StopSignals

log = logging.getLogger(__name__)

KIND_STYLE = {"opened": "bold red", "updated": "yellow", "closed": "green"}


def register(app: typer.Typer, load_settings: Callable[[], Settings]) -> None:
    """Add the live commands to the ``watchkeeper`` app."""

    @app.command()
    def monitor(
        source: Annotated[str, typer.Argument(help="Video file, webcam index or device, or stream URL.")],
        name: Annotated[Optional[str], typer.Option(help="Camera name (default: from the source).")] = None,
        fps: Annotated[Optional[float], typer.Option(min=0.01, help="Analysed windows per second.")] = None,
        duration: Annotated[Optional[float], typer.Option(min=0.1, help="Stop after this many seconds.")] = None,
        events_jsonl: Annotated[Optional[Path], typer.Option(
            help="Append one JSON object per incident event (opened, updated, closed) to this file.")] = None,
        loop: Annotated[bool, typer.Option(help="Files: start again at the end.")] = False,
        realtime: Annotated[bool, typer.Option(
            help="Files: play at their own pace (--no-realtime: as fast as the analysis goes).")] = True,
    ) -> None:
        """Watch one camera until Ctrl-C, --duration or the end of a file; incidents print as they happen."""
        from ..live.capture import camera_from_source
        from ..live import IncidentEvent, Monitor

        settings = load_settings()
        camera = camera_from_source(source, name, loop=loop, realtime=realtime)
        watcher = Monitor(camera, settings=settings, fps=fps)
        out = Console()
        lock = threading.Lock()
        sink = events_jsonl.open("a", encoding="utf-8") if events_jsonl is not None else None

        @watcher.on_incident
        def show(event: IncidentEvent) -> None:
            incident = event.incident
            with lock:
                out.print(f"[{KIND_STYLE[event.kind]}]{event.kind:>7}[/] {event.at:%H:%M:%S} "
                          f"{escape(event.camera)} {incident.category} severity {incident.severity} "
                          f"confidence {incident.confidence:.2f} t={event.t:.1f}s  {escape(incident.summary)}")
                if sink is not None:
                    sink.write(json.dumps(event.to_json()) + "\n")
                    sink.flush()

        watcher.start()
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while watcher.running and (deadline is None or time.monotonic() < deadline):
                watcher.wait(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop()
            if sink is not None:
                sink.close()
        stats = watcher.statistics()
        health = watcher.health
        if health.frames == 0 and health.last_error:
            raise MediaFetchError(f"{source}: {health.last_error}")  # nothing was watched: say why, exit 2
        if watcher.report_path is not None:
            out.print(f"session report: {escape(str(watcher.report_path))}", highlight=False)
        out.print(f"{stats['total_incidents']} incident(s) {stats['by_category']}; "
                  f"{stats['windows_analysed']} window(s) analysed, {stats['windows_skipped']} skipped; "
                  f"{health.frames} frame(s), {health.reconnects} reconnect(s)"
                  + (f"; last error: {escape(health.last_error)}" if health.last_error else ""), highlight=False)

    @app.command("camera-worker")
    def camera_worker(
        data_dir: Annotated[Optional[Path], typer.Option(
            "--data-dir", help="Data folder for evidence and recordings (default: settings' data_dir).")] = None,
    ) -> None:
        """Watch a fair share of the cameras, leased in the PostgreSQL database (live.leases), until Ctrl-C or
        SIGTERM; run any number of them on any hosts."""
        from ..auth.links import shared_secret
        from ..live.leases import LeasedCameras, LeaseStore
        from ..live.monitor import tier_pipelines
        from ..live.service import LiveService
        from ..notify.service import AlertService
        from ..store.db import open_database

        settings = load_settings()
        settings.data_dir = (data_dir or settings.data_dir).resolve()
        if not settings.live.leases.enabled:
            raise ConfigError("camera-worker needs live.leases.enabled (and a PostgreSQL database_url)")
        configure_logging(logging.INFO, settings.logging.format)
        stop = StopSignals()
        pipelines = tier_pipelines(settings)  # before any lease: a claimed camera then starts at once
        with open_database(settings) as db:
            alerts = AlertService(settings, db, shared_secret(db, settings.data_dir))
            # The server's own code path: incidents stored and routed, events on the bus to the API replicas.
            live = LiveService(settings, db, alerts=alerts, pipelines=lambda: pipelines)
            leases = LeasedCameras(live, LeaseStore(db, settings.live.leases))
            alerts.start()
            live.start()
            leases.start()
            try:
                log.info("shutdown: %s received", stop.wait())
            finally:
                try:
                    leases.stop()
                finally:  # whatever went wrong there, the rest still stops
                    try:
                        live.stop()
                    finally:
                        alerts.stop()
        log.info("shutdown: done")

    cameras_app = typer.Typer(help="Cameras.", no_args_is_help=True)
    app.add_typer(cameras_app, name="cameras")

    @cameras_app.command("probe")
    def cameras_probe() -> None:
        """List this machine's webcams and microphones, with the source names a camera takes."""
        from rich.table import Table

        from ..live.devices import microphones, video_devices

        found = [*video_devices(), *microphones()]
        if not found:
            Console().print("no webcams (/dev/video*) or capture sound devices (ALSA) found")
            return
        table = Table("kind", "source", "name", "detail")
        for device in found:
            table.add_row(device.kind, device.source, escape(device.name), escape(device.detail))
        Console().print(table)

