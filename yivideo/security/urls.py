"""Fetch inputs by URL without reaching the server's own network.

:func:`check_public_url` accepts only ``http``/``https`` URLs whose host resolves to
public addresses: loopback, private, link-local (cloud metadata at 169.254.169.254),
shared, multicast, reserved and unspecified addresses are refused, and so are IPv6 forms
that embed such an IPv4 address (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64). An
``allowlist`` of host names (``media.example`` or ``.example`` for subdomains) and IPs or
CIDRs lets operators open specific internal sources.

:func:`fetch` connects to the very address that was checked (the host name is kept for
``Host`` and TLS), follows redirects itself and checks every hop, and bounds the size
and the time of the download. It ignores proxy environment variables. Other outgoing
requests (callbacks) do the same with :func:`check_and_pin` and :func:`pinned_request`,
so that a second DNS answer (rebinding) can never send them to a private address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from yivideo.errors import ConfigError

__all__ = ["PinnedTarget", "check_and_pin", "check_public_url", "fetch", "pinned_request"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
MAX_URL_CHARS = 8192
READ_TIMEOUT_S = 10.0  # one socket read; the whole download is bounded by ``timeout``
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


@dataclass(frozen=True)
class PinnedTarget:
    """A checked URL and the address it was checked at: connect there, nowhere else."""

    url: str
    scheme: str
    host: str  # lower-case, no trailing dot, no brackets
    port: int
    ip: str  # the checked address to connect to


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not public, or None."""
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("shared (CGNAT)", ip in _SHARED if ip.version == 4 else False),
        ("non-global", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _normal(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        return _embedded_v4(ip) or ip
    return ip


def _split_allowlist(allowlist: Iterable[str]) -> tuple[list[str], list[Network]]:
    names: list[str] = []
    nets: list[Network] = []
    for raw in allowlist:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.append(entry.rstrip("."))
    return names, nets


def _name_allowed(host: str, names: list[str]) -> bool:
    return any(host == n or (n.startswith(".") and host.endswith(n)) for n in names)


def _resolve(host: str, port: int, loc: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise ConfigError.at(loc, f"cannot resolve host '{host}' ({e})") from None
    ips = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not ips:
        raise ConfigError.at(loc, f"host '{host}' has no address")
    return ips


def _check(url: str, allowlist: Iterable[str], loc: str) -> PinnedTarget:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError.at(loc, "empty URL")
    if len(url) > MAX_URL_CHARS or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ConfigError.at(loc, "URL is too long or contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError.at(loc, f"malformed URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError.at(loc, f"scheme '{scheme or '(none)'}' is not allowed; use http/https")
    if parts.username is not None or parts.password is not None:
        raise ConfigError.at(loc, "credentials in URLs are not accepted")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ConfigError.at(loc, "URL has no host")
    port = port or (443 if scheme == "https" else 80)
    names, nets = _split_allowlist(allowlist)
    ips = _resolve(host, port, loc)
    if _name_allowed(host, names):
        return PinnedTarget(url, scheme, host, port, ips[0])
    for raw in ips:
        ip = _normal(ipaddress.ip_address(raw))
        if any(ip.version == n.version and ip in n for n in nets):
            continue
        why = _reason(ip)
        if why is not None:
            raise ConfigError.at(
                loc, f"host '{host}' resolves to {why} address {raw}; only public hosts are fetched"
            )
    return PinnedTarget(url, scheme, host, port, ips[0])


def check_public_url(url: str, allowlist: Iterable[str] = (), loc: str = "url") -> str:
    """``url`` if it is http(s) and its host resolves only to public (or allowlisted) IPs."""
    return _check(url, tuple(allowlist), loc).url


def check_and_pin(url: str, allowlist: Iterable[str] = (), loc: str = "url") -> PinnedTarget:
    """Check ``url`` like :func:`check_public_url`; the result names the address to use."""
    return _check(url, tuple(allowlist), loc)


def pinned_request(
    client: httpx.Client | httpx.AsyncClient,
    t: PinnedTarget,
    timeout: float,
    method: str = "GET",
    content: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Request:
    """A request to the checked address of ``t``, its host name kept for ``Host`` and TLS."""
    url = httpx.URL(t.url)
    default = 443 if t.scheme == "https" else 80
    host_header = t.host if ":" not in t.host else f"[{t.host}]"
    if t.port != default:
        host_header = f"{host_header}:{t.port}"
    ext = {"sni_hostname": t.host} if t.scheme == "https" else {}
    return client.build_request(
        method,
        url.copy_with(host=t.ip, port=t.port if t.port != default else None),
        headers={**(headers or {}), "Host": host_header, "Accept-Encoding": "identity"},
        content=content,
        timeout=httpx.Timeout(timeout, read=min(timeout, READ_TIMEOUT_S)),
        extensions=ext,
    )


def fetch(
    url: str,
    dest: str | Path,
    max_bytes: int,
    timeout: float,
    allowlist: Iterable[str] = (),
    max_redirects: int = 5,
    loc: str = "url",
    verify: bool | str | ssl.SSLContext = True,
) -> Path:
    """Download ``url`` to ``dest`` (via ``dest.part``); ConfigError on any refusal.

    Each redirect hop is checked like the first URL. ``max_bytes`` bounds the body (the
    declared ``Content-Length`` and the bytes actually read); ``timeout`` bounds the whole
    download, give or take one socket read of at most ``READ_TIMEOUT_S``. ``verify`` is
    httpx's TLS setting (a CA bundle path or an ``SSLContext`` for internal sources).
    """
    allow = tuple(allowlist)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    deadline = time.monotonic() + timeout
    current = url
    try:
        with httpx.Client(trust_env=False, follow_redirects=False, verify=verify) as client:
            for hop in range(max_redirects + 1):
                target = _check_hop(current, allow, loc, hop)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConfigError.at(loc, f"download timed out after {timeout:g}s")
                resp = client.send(pinned_request(client, target, left), stream=True)
                try:
                    if resp.is_redirect:
                        current = urljoin(current, resp.headers["location"])
                        continue
                    _save(resp, part, max_bytes, deadline, timeout, loc)
                finally:
                    resp.close()
                os.replace(part, dest)
                return dest
    except httpx.TimeoutException:
        raise ConfigError.at(loc, f"download timed out after {timeout:g}s") from None
    except httpx.HTTPError as e:
        raise ConfigError.at(loc, f"download failed ({type(e).__name__}: {e})") from None
    finally:
        part.unlink(missing_ok=True)
    raise ConfigError.at(loc, f"too many redirects (more than {max_redirects})")


def _check_hop(url: str, allowlist: tuple[str, ...], loc: str, hop: int) -> PinnedTarget:
    try:
        return _check(url, allowlist, loc)
    except ConfigError as e:
        if hop == 0:
            raise
        msg = e.details[0]["msg"] if e.details else e.message
        raise ConfigError.at(loc, f"redirect {hop} to {url} refused: {msg}") from None


def _save(
    resp: httpx.Response, part: Path, max_bytes: int, deadline: float, timeout: float, loc: str
) -> None:
    if resp.status_code != 200:
        raise ConfigError.at(loc, f"download failed: HTTP {resp.status_code}")
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ConfigError.at(loc, f"server sent '{encoding}' encoded content; expected identity")
    declared = resp.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ConfigError.at(loc, f"file is {int(declared)} bytes, over the limit of {max_bytes}")
    size = 0
    with open(part, "wb") as f:
        for chunk in resp.iter_raw():
            size += len(chunk)
            if size > max_bytes:
                raise ConfigError.at(loc, f"file is over the limit of {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise ConfigError.at(loc, f"download timed out after {timeout:g}s")
            f.write(chunk)
