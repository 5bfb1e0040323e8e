"""Fixtures: shared `watchkeeper serve` processes, their users' keys, and small media to analyse.

Servers are shared per session; tests that kill or reconfigure a server start their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from apiserver import CONSOLE_ORIGIN, ApiServer, base_settings
from PIL import Image

from browser import browser  # noqa: F401  (the headless Chromium fixture, for the dashboard's tests)
from mediagen import noise, still_room, write_audio, write_video
from watchkeeper.samples import siren


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small media outside the uploads folder, in a configured media root."""
    root = tmp_path_factory.mktemp("media-root")
    rng = np.random.default_rng(0)
    Image.fromarray(still_room(96, 72)).save(root / "room.jpg", quality=90)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "noise.png")
    write_audio(root / "siren.wav", siren(3.0) + noise(3.0, amplitude=0.01))
    write_video(root / "room.mp4", [still_room(160, 120, seed=i) for i in range(30)], fps=10)
    return root


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ApiServer]]:
    """Start a bootstrapped server (admin key ready); every server started is stopped at the end."""
    started: list[ApiServer] = []

    def start(name: str, settings: dict[str, Any], **kwargs: Any) -> ApiServer:
        server = ApiServer(tmp_path_factory.mktemp(name), settings, **kwargs)
        started.append(server)
        server.bootstrap_admin()
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def api_server(start_server: Callable[..., ApiServer], media_root: Path) -> ApiServer:
    """The shared server: loopback (127.0.0.1) allowed for webhooks and URL fetches, modest rate limits."""
    settings = base_settings(media_root, allowed_private_networks=["127.0.0.1/32"], upload_max_bytes=1_000_000,
                             rate_limit_per_minute=600, rate_limit_burst=100, login_attempts_per_minute=3,
                             self_registration=True, cors_origins=[CONSOLE_ORIGIN])
    return start_server("api", settings)


@pytest.fixture(scope="session")
def strict_server(start_server: Callable[..., ApiServer], media_root: Path) -> ApiServer:
    """Default network policy (only public addresses), generous rate limits, no notifier, no job workers
    (its jobs stay pending, so they can be cancelled and fuzzing starts no analyses)."""
    settings = base_settings(media_root, rate_limit_per_minute=60_000, rate_limit_burst=10_000, job_workers=0)
    return start_server("strict", settings)


@pytest.fixture(scope="session")
def admin(api_server: ApiServer) -> Iterator[httpx.Client]:
    with api_server.client(api_server.admin_key) as client:
        yield client


@pytest.fixture(scope="session")
def operator_key(api_server: ApiServer) -> str:
    return api_server.new_user_key("oscar", "operator")


@pytest.fixture(scope="session")
def viewer_key(api_server: ApiServer) -> str:
    return api_server.new_user_key("vera", "viewer")


@pytest.fixture(scope="session")
def operator(api_server: ApiServer, operator_key: str) -> Iterator[httpx.Client]:
    with api_server.client(operator_key) as client:
        yield client


@pytest.fixture(scope="session")
def viewer(api_server: ApiServer, viewer_key: str) -> Iterator[httpx.Client]:
    with api_server.client(viewer_key) as client:
        yield client


