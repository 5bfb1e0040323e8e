#!/usr/bin/env python3
"""Container health checks: ``watchkeeper-healthcheck api|worker|camera-worker`` exits 0 when healthy.

api            GET /health on this container's port answers 200 (it does while the database answers).
worker         this container's Celery worker answers a ping through the broker (queue: celery).
camera-worker  this container's camera-worker has beaten its heartbeat in the database within a lease.

The settings come from the same environment (and ``$WATCHKEEPER_CONFIG``) as the service's own. The
image installs this file as ``/opt/watchkeeper/bin/watchkeeper-healthcheck``.
"""

from __future__ import annotations

import socket
import ssl
import sys
import urllib.error
import urllib.request
from datetime import timedelta

from watchkeeper.config import Settings, load_settings

TIMEOUT_S = 5.0


def api(settings: Settings) -> str | None:
    server = settings.server
    scheme = "https" if server.ssl_certfile else "http"
    # Loopback to this container's own server: its certificate names the public host, not 127.0.0.1.
    context = ssl._create_unverified_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{server.port}/health", timeout=TIMEOUT_S,
                                    context=context) as response:
            return None if response.status == 200 else f"/health answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"/health answered {exc.code}"
    except OSError as exc:
        return f"/health: {exc}"


def worker(settings: Settings) -> str | None:
    from watchkeeper.jobs.celery_app import configure

    # `watchkeeper worker` names its Celery node celery@<host name>, Celery's default.
    node = f"celery@{socket.gethostname()}"
    replies = configure(settings).control.ping(destination=[node], timeout=TIMEOUT_S)
    return None if replies else f"{node} did not answer a ping through the broker"


def camera_worker(settings: Settings) -> str | None:
    from sqlalchemy import func, select

    from watchkeeper.store.db import Database, resolve_database_url
    from watchkeeper.store.models import CameraWorker

    # A worker's host is "<host name>:<pid>"; its heartbeat is written by the database's clock.
    fresh = CameraWorker.heartbeat_at > func.now() - timedelta(seconds=settings.live.leases.lease_s)
    database = Database(resolve_database_url(settings))
    try:
        with database.session(write=False) as session:
            beating = session.scalar(select(func.count()).select_from(CameraWorker).where(
                CameraWorker.host.startswith(f"{socket.gethostname()}:", autoescape=True), fresh))
    finally:
        database.close()
    return None if beating else f"no camera-worker heartbeat from {socket.gethostname()} within a lease"


CHECKS = {"api": api, "worker": worker, "camera-worker": camera_worker}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: watchkeeper-healthcheck {{{'|'.join(CHECKS)}}}", file=sys.stderr)
        return 2
    try:
        problem = CHECKS[argv[0]](load_settings())
    except Exception as exc:  # any failure is an unhealthy answer, with its reason in `docker inspect`
        problem = f"{type(exc).__name__}: {exc}"
    print(problem or "healthy")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
