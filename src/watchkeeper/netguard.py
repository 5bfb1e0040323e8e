"""Outbound HTTP that cannot be turned against the server's own network (an SSRF guard).

Every URL the service fetches for a client (``image_url``) or posts to
(``callback_url``) goes through a ``UrlPolicy``: http(s) only, and the host
must resolve only to public addresses unless its network is allow-listed
(``server.allowed_private_networks``). The connection then goes to the very
address that was checked, so a DNS answer that changes between the check and
the connect (DNS rebinding) cannot slip a private address in; the Host header
and TLS (SNI and the certificate check) still use the URL's name. Redirects
are followed by hand and every hop is checked again; the size and the total
time of an exchange are bounded.

The standard library's ``http.client`` is used rather than httpx: it lets a
connection subclass open its socket to a given address while keeping the
name for Host and TLS, and it ignores proxy environment variables (a proxy
would resolve names itself and undo the check).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import quote, urljoin, urlsplit

from .errors import ConfigError, MediaFetchError, MediaTooLargeError, UnsafeTargetError

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Sequence[str]]  # (host, port) -> IP addresses as text
IPAddress = IPv4Address | IPv6Address

USER_AGENT = "watchkeeper/1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHARED_ADDRESS_SPACE = ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_NAT64 = ip_network("64:ff9b::/96")
# Why an address is not public, most specific first (169.254.169.254 is link-local before it is private).
_NOT_PUBLIC: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("shared (carrier-grade NAT)", lambda ip: ip in _SHARED_ADDRESS_SPACE),
    ("reserved", lambda ip: ip.is_reserved),
    ("private", lambda ip: ip.is_private),
    ("non-global", lambda ip: not ip.is_global),
)
# Characters left as they are when a URL's path or query is percent-encoded for the request line.
_URL_SAFE = "/%:@!$&'()*+,;=-._~?"


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A URL that passed the policy, with the addresses a connection may use."""

    url: str
    scheme: str
    host: str
    port: int
    request_path: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]


class UrlPolicy:
    """Which URLs the server may fetch or post to.

    ``resolve`` is the name resolver (the system's by default); tests give
    their own to point names at addresses without real DNS.
    """

    def __init__(self, allowed_networks: Sequence[str] = (), *, resolve: Resolver = system_resolve) -> None:
        try:
            self.allowed_networks = tuple(ip_network(n, strict=False) for n in allowed_networks)
        except ValueError as exc:
            raise ConfigError(f"server.allowed_private_networks: {exc}") from None
        self._resolve = resolve

    def check(self, url: str) -> None:
        """Raise ``UnsafeTargetError`` (or ``MediaFetchError`` for a malformed URL) unless ``url`` may be used."""
        self.target(url)

    def target(self, url: str) -> Target:
        """Check ``url`` and resolve its host; the result names the addresses to connect to."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise MediaFetchError(f"{url}: not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise UnsafeTargetError(f"{url}: only http and https URLs are fetched")
        if parts.username is not None or parts.password is not None:
            raise UnsafeTargetError(f"{url}: URLs with credentials in them are refused")
        host = parts.hostname
        if not host:
            raise MediaFetchError(f"{url}: the URL names no host")
        port = port or _DEFAULT_PORTS[scheme]
        literal = _literal_address(host)
        addresses = [literal] if literal is not None else self._resolve_name(url, host, port)
        for address in addresses:
            reason = self._refusal(ip_address(address))
            if reason is None:
                continue
            if literal is None:
                # The address stays in the server's log: told to clients, it would map the internal DNS.
                log.warning("refused a URL", extra={"host": host, "address": address, "reason": reason})
                shown = f"{host} resolves to"
            else:
                shown = f"{host} is"
            raise UnsafeTargetError(
                f"{url}: {shown} a {reason} address; only public addresses are reached unless their "
                "network is in server.allowed_private_networks"
            )
        request_path = quote(parts.path or "/", safe=_URL_SAFE)
        if parts.query:
            request_path += "?" + quote(parts.query, safe=_URL_SAFE)
        return Target(url=url, scheme=scheme, host=host, port=port, request_path=request_path,
                      addresses=tuple(addresses))

    def _resolve_name(self, url: str, host: str, port: int) -> list[str]:
        try:
            addresses = [str(ip_address(a)) for a in self._resolve(host, port)]
        except (OSError, UnicodeError) as exc:
            raise MediaFetchError(f"{url}: cannot resolve {host} ({exc})") from None
        if not addresses:
            raise MediaFetchError(f"{url}: {host} resolves to no address")
        return addresses

    def _refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be reached, or None when it may."""
        if any(ip in network for network in self.allowed_networks):
            return None
        embedded = _embedded_ipv4(ip)
        if embedded is not None:  # the IPv4 address this IPv6 one reaches decides
            return self._refusal(embedded)
        return next((reason for reason, applies in _NOT_PUBLIC if applies(ip)), None)


def _literal_address(host: str) -> str | None:
    """``host`` as an IP address, or None when it is a name."""
    try:
        return str(ip_address(host))
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address behind an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if not isinstance(ip, IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


class _Deadline:
    """The total time an exchange may take, redirects included."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._end = time.monotonic() + timeout_s

    def remaining(self, url: str) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise self.expired(url)
        return left

    def expired(self, url: str) -> MediaFetchError:
        return MediaFetchError(f"{url}: no complete answer within {self.timeout_s:g} s")


class _PinnedConnection(http.client.HTTPConnection):
    """Opens its socket to an address the policy checked; Host and TLS use the URL's name."""

    def __init__(self, target: Target, deadline: _Deadline) -> None:
        super().__init__(target.host, target.port, timeout=deadline.remaining(target.url))
        self.default_port = _DEFAULT_PORTS[target.scheme]  # Host omits the scheme's own port
        self._target = target
        self._deadline = deadline

    def connect(self) -> None:
        sock = self._connect_any()
        if self._target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._target.host)
        self.sock = sock

    def _connect_any(self) -> socket.socket:
        failure: OSError | None = None
        for address in self._target.addresses:
            try:
                timeout = self._deadline.remaining(self._target.url)
                return socket.create_connection((address, self.port), timeout=timeout)
            except TimeoutError:
                raise
            except OSError as exc:
                failure = exc  # try the host's next address
        assert failure is not None  # a Target always has an address
        raise failure


@contextmanager
def _exchange(method: str, target: Target, deadline: _Deadline, *, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> Iterator[tuple[http.client.HTTPResponse, socket.socket]]:
    """Send one request; yields the response and its socket (for per-read timeouts).

    Network trouble raises ``MediaFetchError``.
    """
    url = target.url
    connection = _PinnedConnection(target, deadline)
    try:
        connection.request(method, target.request_path, body=body,
                           headers={"User-Agent": USER_AGENT, "Connection": "close", **(headers or {})})
        sock = connection.sock
        assert sock is not None  # request() connected
        sock.settimeout(deadline.remaining(url))
        response = connection.getresponse()
        yield response, sock
    except TimeoutError:
        raise deadline.expired(url) from None
    except ssl.SSLError as exc:
        raise MediaFetchError(f"{url}: TLS failed ({exc.reason or exc})") from None
    except (http.client.HTTPException, OSError) as exc:
        raise MediaFetchError(f"{url}: cannot reach the server or the exchange broke off ({exc})") from None
    finally:
        connection.close()


def _read_body(response: http.client.HTTPResponse, sock: socket.socket, deadline: _Deadline, url: str,
               max_bytes: int) -> bytes:
    declared = response.getheader("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:  # refused before reading a byte
        raise MediaTooLargeError(f"{url}: the server announces {declared} bytes, over the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    while True:
        sock.settimeout(deadline.remaining(url))  # one read at a time, so a slow drip cannot outlast the deadline
        chunk = response.read1(_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise MediaTooLargeError(f"{url}: the download passed the limit of {max_bytes} bytes; stopped reading")
        chunks.append(chunk)


def fetch_url(url: str, policy: UrlPolicy, *, max_bytes: int, timeout_s: float,
              max_redirects: int = 5) -> tuple[bytes, str | None]:
    """GET ``url`` under ``policy``: ``(body, Content-Type)``.

    Redirects are followed by hand (each hop checked again); the body is
    bounded by ``max_bytes`` (``MediaTooLargeError``) and the whole exchange
    by ``timeout_s``; other failures raise ``MediaFetchError``, refusals
    ``UnsafeTargetError``.
    """
    deadline = _Deadline(timeout_s)
    for _ in range(max_redirects + 1):
        target = policy.target(url)
        with _exchange("GET", target, deadline) as (response, sock):
            if response.status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise MediaFetchError(f"{url}: HTTP {response.status} redirect without a Location")
                url = urljoin(url, location)
                continue
            if not 200 <= response.status < 300:
                raise MediaFetchError(f"{url}: the server answered HTTP {response.status} {response.reason}")
            return _read_body(response, sock, deadline, url, max_bytes), response.getheader("Content-Type")
    raise MediaFetchError(f"{url}: more than {max_redirects} redirects")


def post_json(url: str, body: bytes, headers: dict[str, str], policy: UrlPolicy, *, timeout_s: float) -> int:
    """POST a JSON ``body`` under ``policy``; returns the status code. Redirects are not followed."""
    deadline = _Deadline(timeout_s)
    target = policy.target(url)
    with _exchange("POST", target, deadline, body=body,
                   headers={"Content-Type": "application/json", **headers}) as (response, _sock):
        return response.status
