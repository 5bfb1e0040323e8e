"""The service's commands as an operator runs them: users, API keys, purge, and HTTPS serving."""

from __future__ import annotations

import ssl
import subprocess
from datetime import date, timedelta

import httpx
import pytest
from apiserver import EXE, ApiServer, base_settings


@pytest.fixture
def fresh(tmp_path) -> ApiServer:
    """A data folder with nothing in it and no server running (for the commands alone)."""
    return ApiServer(tmp_path, {})


def _data(server: ApiServer) -> tuple[str, str]:
    return "--data-dir", str(server.data_dir)


def test_users_and_keys_from_the_command_line(fresh):
    no_admin = fresh.cli("apikey", "create", "--name", "ci", "--role", "viewer", *_data(fresh))
    assert no_admin.returncode != 0 and "no admin yet" in no_admin.stderr
    made = fresh.cli("users", "create", "root", "--role", "admin", "--password-stdin", "--email", "r@example.com",
                     *_data(fresh), stdin="root-password\n")
    assert made.returncode == 0 and "created admin 'root'" in made.stderr, made.stderr
    # Without --password-stdin it prompts; without a terminal the prompt reads the password and its confirmation.
    prompted = fresh.cli("users", "create", "olga", "--role", "operator", *_data(fresh),
                         stdin="olga-password\nolga-password\n")
    assert prompted.returncode == 0, prompted.stderr + prompted.stdout
    again = fresh.cli("users", "create", "ROOT", "--role", "viewer", "--password-stdin", *_data(fresh),
                      stdin="another-password\n")
    assert again.returncode != 0 and "already exists" in again.stderr
    listed = fresh.cli("users", "list", *_data(fresh)).stdout
    assert "root" in listed and "olga" in listed and "operator" in listed

    key = fresh.cli("apikey", "create", "--name", "ingest", "--role", "operator", "--user", "olga", *_data(fresh))
    assert key.returncode == 0 and key.stdout.strip().startswith("wk_") and "owner olga" in key.stderr
    above = fresh.cli("apikey", "create", "--name", "x", "--role", "admin", "--user", "olga", *_data(fresh))
    assert above.returncode != 0 and "cannot have the role" in above.stderr
    only_admin = fresh.cli("apikey", "create", "--name", "ops", "--role", "admin", *_data(fresh))
    assert only_admin.returncode == 0 and "owner root" in only_admin.stderr


@pytest.mark.parametrize("args, stdin, message", [
    (("users", "create", "carl", "--role", "king", "--password-stdin"), "carl-password\n", "give admin, operator"),
    (("users", "create", "carl", "--role", "viewer", "--password-stdin"), "short\n", "8 to 1024 characters"),
])
def test_bad_input_is_a_clear_message(fresh, args, stdin, message):
    done = fresh.cli(*args, *_data(fresh), stdin=stdin)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_purge_deletes_old_rows_and_keeps_users_unless_told(fresh):
    fresh.cli("users", "create", "root", "--role", "admin", "--password-stdin", *_data(fresh), stdin="root-password\n")
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    kept = fresh.cli("purge", "--before", tomorrow, "--keep-users", *_data(fresh))
    assert kept.returncode == 0, kept.stderr
    assert "audit_log" in kept.stdout
    assert "root" in fresh.cli("users", "list", *_data(fresh)).stdout
    dropped = fresh.cli("purge", "--before", tomorrow, "--drop-users", *_data(fresh))
    assert dropped.returncode == 0, dropped.stderr
    assert "root" not in fresh.cli("users", "list", *_data(fresh)).stdout
    bad = fresh.cli("purge", "--before", "last tuesday", *_data(fresh))
    assert bad.returncode != 0 and "2024-01-31" in bad.stderr


def test_serve_needs_both_tls_files(fresh, tmp_path):
    done = fresh.cli("serve", "--ssl-certfile", str(tmp_path / "cert.pem"), *_data(fresh))
    assert done.returncode != 0 and "--ssl-keyfile" in done.stderr


def test_serve_defaults_are_loopback_port_5000():
    done = subprocess.run([EXE, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "0.0.0.0" in done.stdout and "5000" in done.stdout


def test_serve_https_with_a_certificate_and_secure_cookies(start_server, media_root, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = start_server("tls", base_settings(media_root),
                          serve_args=("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)))
    assert server.url.startswith("https://")
    with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=str(cert))) as client:
        assert client.get("/health").json()["status"] == "healthy"
        login = client.post("/api/v1/auth/login", json={"name": "admin", "password": "admin-password-1"})
        assert login.status_code == 200
        session_cookie = next(c for c in login.cookies.jar if c.name == "wk_session")
        assert session_cookie.secure and session_cookie.has_nonstandard_attr("HttpOnly")
        assert client.get("/api/v1/auth/me").json()["via"] == "session"
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url.replace("https://", "http://") + "/health", timeout=5)
