"""The SSRF guard: which addresses are refused, and fetches/posts against real servers on loopback.

Nothing here sends traffic to a private network: refused addresses are
literal IPs or names resolved by a test resolver, refused before connecting.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from certificates import self_signed
from loopback_http import LoopbackServer, Reply, endless

from watchkeeper.errors import ConfigError, MediaFetchError, MediaTooLargeError, UnsafeTargetError
from watchkeeper.netguard import Resolver, UrlPolicy, fetch_url, post_json

LOOPBACK = ["127.0.0.0/8"]


def fixed_resolver(table: dict[str, list[str]]) -> Resolver:
    """A resolver that answers from ``table`` instead of DNS."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize(("host", "reason"), [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("198.18.0.1", "private"),
    ("192.0.2.1", "private"),
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[fe80::1]", "link-local"),
    ("[fc00::1]", "private"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64 of 169.254.169.254
    ("[2002:7f00:1::1]", "loopback"),  # 6to4 of 127.0.0.1
])
def test_non_public_addresses_are_refused(host: str, reason: str) -> None:
    with pytest.raises(UnsafeTargetError, match=reason):
        UrlPolicy().check(f"http://{host}/latest/meta-data/")


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]"])
def test_public_addresses_pass(host: str) -> None:
    UrlPolicy().check(f"https://{host}/x.jpg")


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1", "127.1"])
def test_names_and_odd_spellings_of_loopback_are_refused(host: str) -> None:
    # The system resolver turns these into 127.0.0.1 (or ::1) without asking a DNS server.
    with pytest.raises(UnsafeTargetError, match="loopback"):
        UrlPolicy().check(f"http://{host}:8080/")


def test_allow_list() -> None:
    policy = UrlPolicy(LOOPBACK)
    policy.check("http://127.0.0.1:5000/hook")
    policy.check("http://[::ffff:127.0.0.1]/hook")  # the mapped IPv4 address is what is allow-listed
    with pytest.raises(UnsafeTargetError, match="private"):
        policy.check("http://10.0.0.1/")
    with pytest.raises(UnsafeTargetError, match="loopback"):
        policy.check("http://[::1]/")
    UrlPolicy(["10.0.0.0/8", "fd00::/8"]).check("http://[fd00::5]/")
    with pytest.raises(ConfigError, match="allowed_private_networks"):
        UrlPolicy(["10.0.0.0/33"])


def test_a_name_must_resolve_only_to_public_addresses(caplog: pytest.LogCaptureFixture) -> None:
    policy = UrlPolicy(resolve=fixed_resolver({"mixed.test": ["93.184.216.34", "10.0.0.1"],
                                               "metadata.test": ["169.254.169.254"],
                                               "public.test": ["93.184.216.34", "2606:2800:220:1::1"]}))
    policy.check("https://public.test/a.jpg")
    with pytest.raises(UnsafeTargetError, match=r"mixed\.test resolves to a private address") as refused:
        policy.check("https://mixed.test/a.jpg")
    # The address a name resolves to is for the server's log only: a client could map internal names with it.
    assert "10.0.0.1" not in str(refused.value)
    assert any(getattr(r, "address", None) == "10.0.0.1" and r.host == "mixed.test" for r in caplog.records)
    with pytest.raises(UnsafeTargetError, match="metadata.test resolves to a link-local address"):
        policy.check("http://metadata.test/latest/meta-data/")
    with pytest.raises(MediaFetchError, match="cannot resolve nowhere.test"):
        policy.check("http://nowhere.test/")


@pytest.mark.parametrize(("url", "error", "message"), [
    ("file:///etc/passwd", UnsafeTargetError, "only http and https"),
    ("ftp://8.8.8.8/x.jpg", UnsafeTargetError, "only http and https"),
    ("gopher://8.8.8.8:70/_", UnsafeTargetError, "only http and https"),
    ("http://user:secret@8.8.8.8/", UnsafeTargetError, "credentials"),
    ("http:///x.jpg", MediaFetchError, "no host"),
    ("http://8.8.8.8:99999/", MediaFetchError, "not a valid URL"),
    ("http://[::1/", MediaFetchError, "not a valid URL"),
    ("not a url", UnsafeTargetError, "only http and https"),
])
def test_malformed_and_foreign_urls(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        UrlPolicy().check(url)


# ---------------------------------------------------------------- fetching


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        srv.replies.update({
            "/photo.jpg": Reply(body=b"\xff\xd8\xff" + bytes(1000), headers={"Content-Type": "image/jpeg"}),
            "/hop1": Reply(302, headers={"Location": "/hop2"}),
            "/hop2": Reply(301, headers={"Location": "photo.jpg?from=hop2"}),
            "/loop": Reply(302, headers={"Location": "/loop"}),
            "/to-metadata": Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}),
            "/to-file": Reply(302, headers={"Location": "file:///etc/passwd"}),
            "/announces-big": Reply(body=b"x", headers={"Content-Length": "50000000"}),
            "/endless": Reply(body=endless()),
            "/slow": Reply(body=b"late", delay_s=3),
            # A byte every 0.1 s: each read is quick, the whole answer is not.
            "/drip": Reply(body=(time.sleep(0.1) or b"." for _ in range(100))),
            "/hook": Reply(204),
            "/moved-hook": Reply(307, headers={"Location": "/hook"}),
        })
        yield srv


def fetch(url: str, policy: UrlPolicy | None = None, **kw: object) -> tuple[bytes, str | None]:
    options = {"max_bytes": 100_000, "timeout_s": 10.0, **kw}
    return fetch_url(url, policy or UrlPolicy(LOOPBACK), **options)  # type: ignore[arg-type]


def test_fetch(server: LoopbackServer) -> None:
    body, content_type = fetch(f"{server.url}/photo.jpg")
    assert body.startswith(b"\xff\xd8\xff") and len(body) == 1003 and content_type == "image/jpeg"
    request = server.received[-1]
    assert request.headers["host"] == f"127.0.0.1:{server.port}" and request.headers["user-agent"]


def test_loopback_is_refused_by_default_before_connecting(server: LoopbackServer) -> None:
    before = len(server.received)
    with pytest.raises(UnsafeTargetError, match="loopback"):
        fetch(f"{server.url}/photo.jpg", UrlPolicy())
    assert len(server.received) == before


def test_redirects_are_followed_and_rechecked(server: LoopbackServer) -> None:
    body, _ = fetch(f"{server.url}/hop1")
    assert len(body) == 1003 and server.received[-1].path == "/photo.jpg?from=hop2"
    with pytest.raises(MediaFetchError, match="more than 5 redirects"):
        fetch(f"{server.url}/loop")
    with pytest.raises(MediaFetchError, match="more than 1 redirects"):
        fetch(f"{server.url}/hop1", max_redirects=1)
    # An allowed server cannot bounce the fetch to the metadata service or a local file.
    with pytest.raises(UnsafeTargetError, match=r"169\.254\.169\.254 is a link-local"):
        fetch(f"{server.url}/to-metadata")
    with pytest.raises(UnsafeTargetError, match="only http and https"):
        fetch(f"{server.url}/to-file")


def test_size_and_time_limits(server: LoopbackServer) -> None:
    with pytest.raises(MediaTooLargeError, match="announces 50000000 bytes"):
        fetch(f"{server.url}/announces-big")
    with pytest.raises(MediaTooLargeError, match="stopped reading"):
        fetch(f"{server.url}/endless", max_bytes=300_000)
    with pytest.raises(MediaFetchError, match="no complete answer within 0.5 s"):
        fetch(f"{server.url}/slow", timeout_s=0.5)
    with pytest.raises(MediaFetchError, match="no complete answer within 1 s"):
        fetch(f"{server.url}/drip", timeout_s=1)
    with pytest.raises(MediaFetchError, match="HTTP 404"):
        fetch(f"{server.url}/missing.jpg")
    with pytest.raises(MediaFetchError, match="cannot reach"):
        fetch("http://127.0.0.1:1/nothing.jpg")


def test_connects_to_the_address_it_checked(server: LoopbackServer) -> None:
    # A rebinding name: checked as 127.0.0.1, then it would answer 127.0.0.2 (where nothing listens).
    answers = iter([["127.0.0.1"], ["127.0.0.2"]])
    looked_up: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return next(answers)

    body, _ = fetch(f"http://rebind.test:{server.port}/photo.jpg", UrlPolicy(LOOPBACK, resolve=rebinding))
    assert len(body) == 1003 and looked_up == ["rebind.test"]
    assert server.received[-1].headers["host"] == f"rebind.test:{server.port}"


def test_post_json(server: LoopbackServer) -> None:
    status = post_json(f"{server.url}/hook", json.dumps({"a": 1}).encode(), {"X-Test": "yes"},
                       UrlPolicy(LOOPBACK), timeout_s=5)
    request = server.received[-1]
    assert status == 204 and request.method == "POST" and json.loads(request.body) == {"a": 1}
    assert request.headers["content-type"] == "application/json" and request.headers["x-test"] == "yes"
    # Redirects are answered, not followed.
    assert post_json(f"{server.url}/moved-hook", b"{}", {}, UrlPolicy(LOOPBACK), timeout_s=5) == 307
    assert server.received[-1].path == "/moved-hook"
    with pytest.raises(UnsafeTargetError):
        post_json(f"{server.url}/hook", b"{}", {}, UrlPolicy(), timeout_s=5)


# ---------------------------------------------------------------- https: the name stays on Host, SNI and certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"), "camera.test")


def test_https_keeps_the_name_for_sni_host_and_certificate(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test certificate only
    names = fixed_resolver({"camera.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with LoopbackServer(tls=context) as server:
        server.replies["/still.jpg"] = Reply(body=b"\xff\xd8\xffimage")
        body, _ = fetch_url(f"https://camera.test:{server.port}/still.jpg", UrlPolicy(LOOPBACK, resolve=names),
                            max_bytes=1000, timeout_s=10)
        assert body == b"\xff\xd8\xffimage"
        assert server_names == ["camera.test"]
        assert server.received[-1].headers["host"] == f"camera.test:{server.port}"
        # The certificate names camera.test, not other.test, though both point at the same address.
        with pytest.raises(MediaFetchError, match="TLS failed"):
            fetch_url(f"https://other.test:{server.port}/still.jpg", UrlPolicy(LOOPBACK, resolve=names),
                      max_bytes=1000, timeout_s=10)
