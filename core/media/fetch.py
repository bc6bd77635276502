"""Safe downloads of provider results: the one way the app fetches a URL it was given.

A result URL comes from outside (a webhook body), so it must not make the app
read its own network: only http(s); hosts that resolve to loopback, private,
link-local, multicast or reserved addresses are refused unless allow-listed
(`IMAGE_FETCH_ALLOW_HOSTS`) or the app's own origin; the address actually
connected to is checked again (DNS rebinding); the size cap holds while
streaming; and the bytes must decode as an image before anything is stored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from core.media.store import ImageRejected, image_extension
from core.retries import RetryPolicy


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    #: Whole-download deadline, so a slow-drip server cannot hold a worker.
    timeout_s: float = 60.0
    allow_hosts: tuple[str, ...] = ()
    #: Origins (scheme://host:port) trusted as-is: the app itself.
    trusted_origins: tuple[str, ...] = ()

    def _origin(self, url: str) -> str:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"

    def is_trusted(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        return host in self.allow_hosts or self._origin(url) in {self._origin(o) for o in self.trusted_origins}


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


async def _check_host(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageRejected(f"Refusing to fetch a non-HTTP URL ({parts.scheme or 'no scheme'})")
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ImageRejected(f"Cannot resolve the result host {parts.hostname}") from exc
    for info in infos:
        if not is_public_address(str(info[4][0])):
            raise ImageRejected(f"Refusing to fetch from an internal address ({parts.hostname})")


def _check_peer(response: httpx.Response, url: str) -> None:
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not is_public_address(str(peer[0])):
        raise ImageRejected(f"Refusing to fetch from an internal address ({urlsplit(url).hostname})")


#: A download that broke is tried again at once a few times, within the policy's deadline.
DOWNLOAD_RETRY = RetryPolicy(attempts=3, base_s=0.25, cap_s=1.0)


def _broke(exc: Exception) -> bool:
    return isinstance(exc, ImageRejected) and exc.retryable


async def fetch_image(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> bytes:
    """Download a result image under `policy`, or raise `ImageRejected` with a readable reason."""
    try:
        async with asyncio.timeout(policy.timeout_s):
            async for attempt in DOWNLOAD_RETRY.attempts_on(_broke):
                with attempt:
                    data = await _fetch(client, url, policy)
    except TimeoutError as exc:
        # Not retried: a server that drips its answer would hold a worker again and again.
        raise ImageRejected(f"Result download took longer than {policy.timeout_s:.0f} s") from exc
    image_extension(data)
    return data


async def _fetch(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> bytes:
    trusted = policy.is_trusted(url)
    if not trusted:
        await _check_host(url)
    try:
        async with client.stream("GET", url, follow_redirects=False) as response:
            if not trusted:
                _check_peer(response, url)
            if response.status_code != 200:
                # A server's trouble (5xx) or a limit (408, 429) may pass; another 4xx will not.
                retryable = response.status_code >= 500 or response.status_code in (408, 429)
                raise ImageRejected(f"Result download failed: HTTP {response.status_code}", retryable=retryable)
            declared = int(response.headers.get("content-length") or 0)
            if declared > policy.max_bytes:
                raise ImageRejected(f"Result image is too large ({declared} bytes, limit {policy.max_bytes})")
            chunks, total = [], 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > policy.max_bytes:
                    raise ImageRejected(f"Result image is larger than the limit of {policy.max_bytes} bytes")
                chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise ImageRejected("Result download timed out", retryable=True) from exc
    except httpx.TransportError as exc:  # the connection broke: refused, reset, closed mid-answer
        raise ImageRejected(f"Result download failed: {type(exc).__name__}", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise ImageRejected(f"Result download failed: {type(exc).__name__}") from exc
    return b"".join(chunks)
