"""Safety at the door, against a real server: paths, URLs, uploads, roles, keys, rate limits, CSRF."""

from __future__ import annotations

import io
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from apiserver import ADMIN_PASSWORD, CONSOLE_ORIGIN, assert_problem, base_settings, upload
from loopback_http import LoopbackServer, Reply
from PIL import Image

from watchkeeper.auth import links
from watchkeeper.config import Settings
from watchkeeper.store import open_database

# -- paths -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../settings.yaml", "uploads/../../settings.yaml", "/etc/passwd",
                                  "uploads/%2e%2e/settings.yaml", "http://example.com/x.jpg"])
def test_paths_outside_the_media_roots_are_refused(operator, path):
    response = operator.post("/analyze/image/path", json={"image_path": path})
    assert response.status_code in (403, 422), response.text
    assert response.json()["code"] in ("unsafe_path", "media_fetch_failed")


def test_traversal_is_refused_with_403(operator):
    assert_problem(operator.post("/analyze/image/path", json={"image_path": "../../etc/passwd"}), 403, "unsafe_path")
    assert_problem(operator.post("/analyze/audio", json={"audio_path": "/etc/passwd"}), 403, "unsafe_path")


def test_a_symlink_escaping_the_roots_is_refused(operator, api_server, media_root, tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes((media_root / "room.jpg").read_bytes())
    link = api_server.data_dir / "uploads" / "escape.jpg"
    os.symlink(outside, link)
    assert_problem(operator.post("/analyze/image/path", json={"image_path": "uploads/escape.jpg"}), 403,
                   "unsafe_path")
    served = operator.get("/uploads/escape.jpg")
    assert served.status_code in (403, 404) and served.content != outside.read_bytes()


# A bare ".." would be resolved away by the client itself (it asks for "/"): sent encoded, the server sees it.
@pytest.mark.parametrize("name", ["..%2Fsettings.yaml", "%2e%2e%2fsettings.yaml", ".hidden", "%2e%2e", "a%00.jpg"])
def test_downloads_cannot_leave_the_uploads_folder(operator, name):
    response = operator.get(f"/uploads/{name}")
    assert response.status_code in (403, 404), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_signed_links_open_one_file_without_signing_in_until_they_expire(api_server, viewer, operator, media_root):
    made = upload(operator, media_root / "room.jpg")
    other = upload(operator, media_root / "noise.png")
    media_id = next(m["id"] for m in viewer.get("/api/v1/media").json()["items"] if m["filename"] == made["filename"])
    link = viewer.get(f"/api/v1/media/{media_id}/link", params={"ttl_s": 600}).json()
    assert link["url"].startswith(f"/{made['file_path']}?")
    with httpx.Client(base_url=api_server.url) as anonymous:
        served = anonymous.get(link["url"])
        assert served.status_code == 200 and served.content == (media_root / "room.jpg").read_bytes()
        query = link["url"].split("?", 1)[1]
        assert_problem(anonymous.get(f"/{other['file_path']}?{query}"), 401)  # another file
        expires = int(query.split("expires=")[1].split("&")[0])
        assert_problem(anonymous.get(link["url"].replace(f"expires={expires}", f"expires={expires + 3600}")), 401)
        assert_problem(anonymous.get(link["url"][:-3] + "AAA"), 401)
        # The issuer's id is part of what is signed: another id with the same MAC does not match.
        issuer_id = viewer.get("/api/v1/auth/me").json()["user"]["id"]
        assert_problem(anonymous.get(link["url"].replace(f"signature={issuer_id}.", f"signature={issuer_id + 1}.")),
                       401)
        # Correctly signed with the server's secret, but past its time.
        with open_database(Settings(data_dir=api_server.data_dir)) as db:
            secret = links.shared_secret(db, api_server.data_dir)
        old_expires, old_signature = links.sign(secret, f"/{made['file_path']}", -10, issuer_id)
        expired = anonymous.get(f"/{made['file_path']}", params={"expires": old_expires, "signature": old_signature})
        assert "expired" in assert_problem(expired, 401)["detail"]


def test_a_signed_link_stops_working_when_its_issuer_is_disabled(api_server, admin, operator, media_root):
    made = upload(operator, media_root / "room.jpg")
    with api_server.client(api_server.new_user_key("ines", "viewer")) as ines:
        ines_id = ines.get("/api/v1/auth/me").json()["user"]["id"]
        media_id = next(m["id"] for m in ines.get("/api/v1/media").json()["items"]
                        if m["filename"] == made["filename"])
        url = ines.get(f"/api/v1/media/{media_id}/link").json()["url"]
    with httpx.Client(base_url=api_server.url) as anonymous:
        assert anonymous.get(url).status_code == 200
        assert admin.post(f"/api/v1/users/{ines_id}/disable").status_code == 200
        assert "issuer" in assert_problem(anonymous.get(url), 401)["detail"]


# -- URLs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "[::1]", "[::ffff:127.0.0.1]",
                                  "0.0.0.0", "localhost"])
def test_private_loopback_and_link_local_urls_are_refused(strict_server, host):
    with strict_server.client(strict_server.admin_key) as client:
        response = client.post("/analyze/image/url", json={"image_url": f"http://{host}/latest/meta-data.jpg"})
    assert_problem(response, 403, "unsafe_target")


def test_the_server_never_connects_to_a_refused_address(strict_server):
    with LoopbackServer() as site, strict_server.client(strict_server.admin_key) as client:
        site.replies["/x.jpg"] = Reply(200, b"\xff\xd8\xff")
        assert_problem(client.post("/analyze/image/url", json={"image_url": f"{site.url}/x.jpg"}), 403)
        assert_problem(client.post("/api/v1/analyses", json={"source": f"{site.url}/x.jpg"}), 403)
        assert site.received == []


def test_callback_urls_to_private_addresses_are_refused_at_submission(strict_server, media_root):
    with strict_server.client(strict_server.admin_key) as client:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/hook", "http://10.0.0.1/hook", "ftp://x/y"):
            response = client.post("/analyze/image/path", json={
                "image_path": str(media_root / "room.jpg"), "async": True, "callback_url": url})
            assert_problem(response, 403, "unsafe_target")


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.jpg",
                                    "http://127.0.0.2/x.jpg"])
def test_a_redirect_to_a_refused_address_is_refused(operator, target):
    # The first hop is allowed (this server allow-lists 127.0.0.1 only); the redirect is checked again.
    with LoopbackServer() as site:
        site.replies["/go.jpg"] = Reply(302, headers={"Location": target})
        response = operator.post("/analyze/image/url", json={"image_url": f"{site.url}/go.jpg"})
    assert_problem(response, 403, "unsafe_target")


def test_file_urls_are_refused_on_the_url_endpoint(operator):
    assert_problem(operator.post("/analyze/image/url", json={"image_url": "file:///etc/passwd"}), 403,
                   "unsafe_target")


# -- uploads -----------------------------------------------------------------------------------------------


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_upload_over_the_limit_is_413_before_it_is_read(operator):
    response = operator.post("/upload", files={"file": ("big.jpg", b"\xff\xd8\xff" + bytes(1_500_000))})
    assert_problem(response, 413, "media_too_large")


def test_an_upload_just_over_the_limit_is_413_from_the_store(operator):
    # Within the multipart allowance, so the store's exact byte count catches it.
    response = operator.post("/upload", files={"file": ("big.jpg", b"\xff\xd8\xff" + bytes(1_000_000))})
    assert_problem(response, 413, "media_too_large")


def test_a_chunked_upload_over_the_limit_is_413(api_server, operator_key):
    boundary = "wkboundary"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
               "Content-Type: image/jpeg\r\n\r\n").encode() + b"\xff\xd8\xff"
        for _ in range(40):
            yield bytes(64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    with api_server.client(operator_key) as client:
        response = client.post("/upload", content=body(),
                               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_problem(response, 413, "media_too_large")


@pytest.mark.parametrize("name, content, code", [
    ("photo.jpg", _png_bytes(), "unsupported_media"),  # extension and magic bytes disagree
    ("clip.mp4", b"just some text, not a video", "unsupported_media"),
    ("tool.exe", b"MZ\x90\x00" + bytes(100), "unsupported_media"),
    ("empty.jpg", b"", "empty_media"),
])
def test_mismatched_or_non_media_uploads_are_refused(operator, name, content, code):
    response = operator.post("/upload", files={"file": (name, content)})
    assert response.status_code in (415, 422) and response.json()["code"] == code, response.text


def test_stored_names_are_safe(operator):
    body = operator.post("/upload", files={"file": ("../../evil name.png", _png_bytes())}).json()
    assert "/" not in body["filename"] and ".." not in body["filename"] and " " not in body["filename"]
    assert body["file_path"] == f"uploads/{body['filename']}"


# -- roles and keys ----------------------------------------------------------------------------------------

# Changes a viewer may make to their own sign-in, nothing else.
VIEWER_MAY = {("post", "/api/v1/auth/login"), ("post", "/api/v1/auth/logout"), ("post", "/api/v1/auth/register"),
              ("delete", "/api/v1/auth/sessions/{session_id}"),
              ("post", "/ack/{incident_id}"),  # an alert's signed link is its own credential, whoever holds it
              ("put", "/api/v1/auth/me/preferences"),  # every user keeps their own dashboard settings
              ("patch", "/api/v1/auth/me/preferences")}


def _unsafe_operations(client: httpx.Client) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [(method, path) for path, operations in paths.items() for method in operations
            if method in ("post", "put", "patch", "delete") and (method, path) not in VIEWER_MAY]


def test_a_viewer_cannot_change_anything(viewer):
    operations = _unsafe_operations(viewer)
    assert len(operations) >= 15
    for method, path in operations:
        url = path.replace("{", "").replace("}", "")  # placeholders become literal (and missing) ids
        url = url.replace("user_id", "1").replace("key_id", "1").replace("incident_id", "1")
        response = viewer.request(method.upper(), url, json={})
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden"


def test_a_viewer_can_read(viewer):
    for path in ("/providers", "/api/v1/analyses", "/api/v1/incidents", "/api/v1/jobs", "/api/v1/stats",
                 "/api/v1/media", "/api/v1/auth/me"):
        assert viewer.get(path).status_code == 200, path
    assert_problem(viewer.get("/api/v1/audit"), 403, "forbidden")
    assert_problem(viewer.get("/api/v1/users"), 403, "forbidden")


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wk_not-a-real-key"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic YWRtaW46eA=="}, {"Cookie": "wk_session=forged"}])
def test_missing_and_wrong_credentials_are_401(api_server, headers):
    response = httpx.get(f"{api_server.url}/providers", headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_both_key_headers_work(api_server, viewer_key):
    for headers in ({"X-API-Key": viewer_key}, {"Authorization": f"Bearer {viewer_key}"}):
        assert httpx.get(f"{api_server.url}/providers", headers=headers).status_code == 200


def test_a_revoked_key_and_a_disabled_users_key_stop_working(api_server, admin):
    key = api_server.new_user_key("dora", "operator")
    with api_server.client(key) as dora:
        assert dora.get("/providers").status_code == 200
        me = dora.get("/api/v1/auth/me").json()
        assert admin.post(f"/api/v1/users/{me['user']['id']}/disable").status_code == 200
        assert_problem(dora.get("/providers"), 401)
        assert admin.post(f"/api/v1/users/{me['user']['id']}/approve").status_code == 200
        assert dora.get("/providers").status_code == 200
        assert admin.delete(f"/api/v1/keys/{me['key_id']}").status_code == 204
        assert_problem(dora.get("/providers"), 401)


def test_a_key_cannot_outrank_its_user(api_server, admin, operator):
    assert_problem(operator.post("/api/v1/keys", json={"name": "up", "role": "admin"}), 403, "forbidden")
    oscar_id = operator.get("/api/v1/auth/me").json()["user"]["id"]
    assert_problem(admin.post("/api/v1/keys", json={"name": "up", "role": "admin", "user_id": oscar_id}), 400,
                   "bad_request")
    created = operator.post("/api/v1/keys", json={"name": "down", "role": "viewer"})
    assert created.status_code == 201
    with api_server.client(created.json()["key"]) as weaker:
        assert weaker.get("/api/v1/auth/me").json()["role"] == "viewer"
        assert_problem(weaker.post("/upload", files={"file": ("x.png", _png_bytes())}), 403, "forbidden")


def test_a_scoped_key_cannot_mint_or_grant_a_stronger_role(api_server, admin):
    scoped = admin.post("/api/v1/keys", json={"name": "scoped", "role": "operator"}).json()
    with api_server.client(scoped["key"]) as client:
        assert_problem(client.get("/api/v1/users"), 403, "forbidden")
        assert_problem(client.post("/api/v1/keys", json={"name": "up", "role": "admin"}), 403, "forbidden")
        minted = client.post("/api/v1/keys", json={"name": "default"})
        assert minted.status_code == 201 and minted.json()["role"] == "operator"
        assert_problem(client.post("/api/v1/users", json={"name": "sneaky", "password": "sneaky-password",
                                                          "role": "admin"}), 403, "forbidden")
        assert_problem(client.patch(f"/api/v1/users/{scoped['user_id']}", json={"role": "admin"}), 403, "forbidden")
    with api_server.client(minted.json()["key"]) as minted_client:
        assert minted_client.get("/api/v1/auth/me").json()["role"] == "operator"
        assert_problem(minted_client.get("/api/v1/users"), 403, "forbidden")


# -- rate limits -------------------------------------------------------------------------------------------


def test_the_per_key_rate_limit_answers_429_with_retry_after(api_server):
    key = api_server.new_user_key("rita", "viewer")
    with api_server.client(key) as rita:
        for _ in range(2000):  # the bucket holds 100 and refills 10 per second
            response = rita.get("/providers")
            if response.status_code != 200:
                break
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1


def test_failed_logins_are_rate_limited_per_address_and_name(api_server, admin):
    name = f"lena{secrets.token_hex(3)}"
    admin.post("/api/v1/users", json={"name": name, "password": "right-password", "role": "viewer"})
    with api_server.client() as anonymous:
        for _ in range(3):
            assert_problem(anonymous.post("/api/v1/auth/login", json={"name": name, "password": "wrong"}), 401)
        limited = anonymous.post("/api/v1/auth/login", json={"name": name, "password": "right-password"})
        assert_problem(limited, 429, "rate_limited")
        assert "retry-after" in limited.headers


def test_parallel_wrong_passwords_get_no_more_failures_than_the_limit(api_server, admin):
    name = f"pia{secrets.token_hex(3)}"
    admin.post("/api/v1/users", json={"name": name, "password": "right-password", "role": "viewer"})
    for _ in range(5):  # successes give their token back: only failures count
        assert httpx.post(f"{api_server.url}/api/v1/auth/login",
                          json={"name": name, "password": "right-password"}).status_code == 200

    def wrong(_: int) -> int:
        return httpx.post(f"{api_server.url}/api/v1/auth/login", json={"name": name, "password": "wrong"},
                          timeout=120).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = sorted(pool.map(wrong, range(16)))
    assert statuses == [401] * 3 + [429] * 13  # the shared server allows 3 failures a minute


def test_failed_logins_across_many_names_are_limited_per_address(start_server, media_root):
    server = start_server("logins", base_settings(media_root, login_attempts_per_minute=1))
    with server.client() as anonymous:
        for i in range(10):  # one failure per name, ten per address
            assert_problem(anonymous.post("/api/v1/auth/login", json={"name": f"n{i}", "password": "wrong"}), 401)
        assert_problem(anonymous.post("/api/v1/auth/login", json={"name": "n10", "password": "wrong"}), 429)
        limited = anonymous.post("/api/v1/auth/login", json={"name": "admin", "password": ADMIN_PASSWORD})
        assert_problem(limited, 429, "rate_limited")


# -- sessions and CSRF -------------------------------------------------------------------------------------


def _login(client: httpx.Client, name: str, password: str) -> str:
    """Sign ``client`` in; returns the session's CSRF token."""
    response = client.post("/api/v1/auth/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


def test_session_cookies_are_httponly_samesite_and_changes_need_the_csrf_header(api_server, operator):
    with api_server.client() as client:
        csrf = _login(client, "oscar", "oscar-password")
        cookie = next(c for c in client.cookies.jar if c.name == "wk_session")
        assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "lax"
        assert client.get("/api/v1/auth/me").json()["via"] == "session"
        assert_problem(client.post("/api/v1/keys", json={"name": "from the browser"}), 403, "csrf_failed")
        assert_problem(client.post("/api/v1/keys", json={"name": "x"}, headers={"X-CSRF-Token": "forged"}), 403,
                       "csrf_failed")
        made = client.post("/api/v1/keys", json={"name": "from the browser"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        # A key in the same request wins over the cookie, and needs no CSRF token (it is not ambient).
        assert client.post("/api/v1/keys", json={"name": "k"}, headers={"X-API-Key": made.json()["key"]}) \
            .status_code == 201


def test_sessions_are_listed_and_revocable_and_logout_ends_them(api_server):
    with api_server.client() as first, api_server.client() as second:
        csrf_first = _login(first, "admin", ADMIN_PASSWORD)
        _login(second, "admin", ADMIN_PASSWORD)
        mine = first.get("/api/v1/auth/sessions").json()["items"]
        current = [s for s in mine if s["current"]]
        assert len(current) == 1 and len(mine) >= 2
        other_id = second.get("/api/v1/auth/me").json()["session_id"]
        assert first.delete(f"/api/v1/auth/sessions/{other_id}", headers={"X-CSRF-Token": csrf_first}) \
            .status_code == 204
        assert_problem(second.get("/api/v1/auth/me"), 401)
        assert first.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf_first}).status_code == 204
        assert_problem(first.get("/api/v1/auth/me"), 401)


def test_cross_origin_calls_only_from_the_configured_origins(api_server):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-API-Key"}
    allowed = httpx.options(f"{api_server.url}/api/v1/incidents", headers={"Origin": CONSOLE_ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    other = httpx.options(f"{api_server.url}/api/v1/incidents", headers={"Origin": "https://evil.example",
                                                                           **preflight})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    headers = {"X-API-Key": api_server.admin_key}
    read = httpx.get(f"{api_server.url}/health", headers={"Origin": CONSOLE_ORIGIN, **headers})
    assert read.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
    foreign = httpx.get(f"{api_server.url}/health", headers={"Origin": "https://evil.example", **headers})
    assert "access-control-allow-origin" not in foreign.headers
