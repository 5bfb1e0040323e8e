"""A real `watchkeeper serve` subprocess on loopback, and helpers for talking to it.

Each server has its own data folder and settings file and is set up the way
an operator would: the first admin and their key from the command line, the
other users and keys through the API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from polling import free_port, wait_until

EXE = str(Path(sys.executable).with_name("watchkeeper"))
WEBHOOK_SECRET = "test-webhook-secret"
ADMIN_PASSWORD = "admin-password-1"
# The one browser origin besides the server's own that the shared server lets call it.
CONSOLE_ORIGIN = "https://console.example"
START_TIMEOUT_S = 120


class ApiServer:
    """One `watchkeeper serve` subprocess; `start()` again after `kill()` restarts it on the same data."""

    def __init__(self, root: Path, settings: dict[str, Any], *, env: dict[str, str] | None = None,
                 serve_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.config = root / "settings.yaml"
        self.config.write_text(yaml.safe_dump(settings))
        # The caller's own WATCHKEEPER_* or database variables must not leak into the test server.
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith("WATCHKEEPER_") and k not in ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI")}
        self.env = {**inherited, **(env or {})}
        self.port = free_port()
        self.scheme = "https" if "--ssl-certfile" in serve_args else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.serve_args = serve_args
        self.log = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.admin_key = ""

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, "--config", str(self.config), *args], cwd=self.root, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=120)

    def bootstrap_admin(self) -> str:
        """The first admin and their key, from the command line (before the server runs)."""
        done = self.cli("users", "create", "admin", "--role", "admin", "--password-stdin",
                        "--data-dir", str(self.data_dir), stdin=ADMIN_PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        done = self.cli("apikey", "create", "--name", "tests", "--role", "admin", "--data-dir", str(self.data_dir))
        assert done.returncode == 0, done.stderr
        self.admin_key = done.stdout.strip()
        return self.admin_key

    def start(self) -> ApiServer:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [EXE, "--config", str(self.config), "serve", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), *self.serve_args],
                cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(self._ready, f"the server on port {self.port} (log: {self.log})", START_TIMEOUT_S)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2, verify=False).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, verify=False, **kwargs)

    def new_user_key(self, name: str, role: str) -> str:
        """A user made through the API by the admin, and an API key for them."""
        with self.client(self.admin_key) as admin:
            user = admin.post("/api/v1/users", json={"name": name, "password": f"{name}-password", "role": role})
            assert user.status_code == 201, user.text
            key = admin.post("/api/v1/keys", json={"name": f"{name} key", "user_id": user.json()["id"]})
            assert key.status_code == 201, key.text
            return key.json()["key"]


def base_settings(media_root: Path, **server: Any) -> dict[str, Any]:
    return {
        "server": {
            "media_roots": [str(media_root)],
            "webhook_secret": WEBHOOK_SECRET,
            "delivery_backoff_s": 0.2,
            "delivery_backoff_max_s": 1.0,
            "job_lease_s": 5,
            **server,
        },
    }


def upload(client: httpx.Client, path: Path, *, name: str | None = None) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = client.post("/upload", files={"file": (name or path.name, handle)})
    assert response.status_code == 200, response.text
    return response.json()


def finished_job(client: httpx.Client, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
    """Poll seed 000's GET /jobs/{id} until it is no longer pending."""

    def done() -> dict[str, Any] | None:
        body = client.get(f"/jobs/{job_id}").json()
        return body if body["status"] != "pending" else None

    return wait_until(done, f"job {job_id}", timeout_s, every_s=0.2)


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["type"].startswith("urn:watchkeeper:problem:")
    assert body["title"] and body["detail"] and body["instance"]
    if code is not None:
        assert body["code"] == code, body
    return body


def gunshot_gate_settings(media_root: Path, folder: Path, fps: int = 15) -> dict[str, Any]:
    """Settings of a server watching a gate where two recorded pistol shots ring out 3 s into every 14 s."""
    from mediagen import doom_sound, noise, still_room, write_video

    shot = doom_sound("DSPISTOL")
    audio = np.concatenate([noise(3.0), shot, noise(0.4), shot, noise(14.0 - 3.4 - 2 * len(shot) / 16000)])
    video = write_video(folder / "gate.mp4", (still_room(seed=i % 3) for i in range(14 * fps)), fps=fps, audio=audio)
    settings = base_settings(media_root, rate_limit_per_minute=6000, rate_limit_burst=1000)
    settings["live"] = {"cameras": [{"name": "gate", "source": str(video), "location": "North gate", "loop": True}],
                        "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0}, "gate": {"cooldown_s": 3.0}}
    return settings

