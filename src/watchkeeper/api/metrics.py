"""GET /metrics: the server's Prometheus metrics.

The instruments of ``watchkeeper.metrics`` (job latency, analyzer time,
alerts sent and failed) and the client's process metrics, plus what is read
from the server's own state at each scrape: jobs by state from the queue,
and each started camera's frame rate, lag and connection from its health.
Who may read them: ``deps.metrics_reader``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from ..auth import Principal
from ..jobs.queue import JobQueue
from ..live.service import LiveService
from .deps import ServicesDep, metrics_reader
from .problems import PROBLEM_RESPONSES
from .v1.cameras import get_live

router = APIRouter(tags=["operations"], responses=PROBLEM_RESPONSES)


class ServerCollector:
    """The default registry's metrics, then the server's state as it is now: nothing to keep in step with it."""

    def __init__(self, queue: JobQueue, live: LiveService) -> None:
        self.queue = queue
        self.live = live

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        jobs = GaugeMetricFamily("watchkeeper_jobs", "Jobs by state; pending and running are the queue's depth.",
                                 labels=["state"])
        for state, count in self.queue.counts().items():
            jobs.add_metric([state], count)
        yield jobs
        fps = GaugeMetricFamily("watchkeeper_camera_fps", "Frames per second a started camera delivers.",
                                labels=["camera"])
        lag = GaugeMetricFamily("watchkeeper_camera_lag_seconds", "Age of a started camera's newest frame.",
                                labels=["camera"])
        connected = GaugeMetricFamily("watchkeeper_camera_connected", "1 while a started camera's source is open.",
                                      labels=["camera"])
        for name, monitor in sorted(self.live.monitors.items()):
            health = monitor.health
            fps.add_metric([name], health.fps)
            if health.last_frame_age_s is not None:  # no frame yet
                lag.add_metric([name], health.last_frame_age_s)
            connected.add_metric([name], float(health.state == "connected"))
        yield from (fps, lag, connected)


@router.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "The metrics."}})
def metrics(request: Request, services: ServicesDep,
            _: Annotated[Principal | None, Depends(metrics_reader)]) -> Response:
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(ServerCollector(services.queue, get_live(request))), media_type=content_type)
