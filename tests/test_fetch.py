"""Safe result downloads: internal addresses, sizes, types and slow servers are refused."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from core.media import fetch as fetch_module
from core.media.fetch import FetchPolicy, fetch_image, is_public_address
from core.media.store import ImageRejected
from core.retries import RetryPolicy
from providers.local_render import render_text_to_image

PNG = render_text_to_image("x", "1:1")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://localhost:3000/media/x.png",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/x.png",
        "http://192.168.1.4/x.png",
        "http://[::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "gopher://127.0.0.1/",
    ],
)
async def test_internal_or_non_http_urls_are_refused_before_any_request(url: str) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route().respond(200, content=PNG)
        async with httpx.AsyncClient() as http:
            with pytest.raises(ImageRejected):
                await fetch_image(http, url, FetchPolicy(max_bytes=10_000_000))
        assert not route.called


def test_address_classification() -> None:
    assert is_public_address("93.184.215.14")
    for internal in (
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
    ):
        assert not is_public_address(internal), internal


@respx.mock
async def test_allow_listed_host_is_fetched_and_checked() -> None:
    respx.get("http://cdn.test/ok.png").respond(200, content=PNG)
    respx.get("http://cdn.test/page.html").respond(200, content=b"<html></html>")
    respx.get("http://cdn.test/big.png").respond(200, content=PNG + b"0" * 5000)
    respx.get("http://cdn.test/missing.png").respond(404)
    policy = FetchPolicy(max_bytes=len(PNG) + 10, allow_hosts=("cdn.test",))
    async with httpx.AsyncClient() as http:
        assert await fetch_image(http, "http://cdn.test/ok.png", policy) == PNG
        with pytest.raises(ImageRejected, match="not a valid image"):
            await fetch_image(http, "http://cdn.test/page.html", policy)
        with pytest.raises(ImageRejected, match=r"larger than the limit|too large"):
            await fetch_image(http, "http://cdn.test/big.png", policy)
        with pytest.raises(ImageRejected, match="HTTP 404"):
            await fetch_image(http, "http://cdn.test/missing.png", policy)


async def test_slow_drip_server_hits_the_deadline() -> None:
    async def drip():
        for _ in range(100):
            await asyncio.sleep(0.05)
            yield b"x"

    with respx.mock:
        respx.get("http://cdn.test/slow.png").mock(return_value=httpx.Response(200, content=drip()))
        async with httpx.AsyncClient() as http:
            with pytest.raises(ImageRejected, match="longer than"):
                await fetch_image(
                    http,
                    "http://cdn.test/slow.png",
                    FetchPolicy(max_bytes=10_000, timeout_s=0.3, allow_hosts=("cdn.test",)),
                )


CDN = FetchPolicy(max_bytes=10_000_000, allow_hosts=("cdn.test",))


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "DOWNLOAD_RETRY", RetryPolicy(attempts=3, base_s=0.01, cap_s=0.01))


@respx.mock
async def test_a_download_that_broke_is_tried_again(quick_retries: None) -> None:
    """Measured in the scaled suite: HAProxy cut a busy worker's connections, and a result
    download that broke with them failed its job for good."""
    route = respx.get("http://cdn.test/ok.png").mock(
        side_effect=[
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            httpx.Response(503),
            httpx.Response(200, content=PNG),
        ]
    )
    async with httpx.AsyncClient() as http:
        data = await fetch_image(
            http, "http://cdn.test/ok.png", FetchPolicy(max_bytes=10_000_000, allow_hosts=("cdn.test",))
        )
    assert data == PNG and route.call_count == 3


@respx.mock
async def test_a_refused_download_is_not_tried_again(quick_retries: None) -> None:
    route = respx.get("http://cdn.test/gone.png").respond(404)
    async with httpx.AsyncClient() as http:
        with pytest.raises(ImageRejected) as refused:
            await fetch_image(
                http, "http://cdn.test/gone.png", FetchPolicy(max_bytes=10_000_000, allow_hosts=("cdn.test",))
            )
    assert not refused.value.retryable and route.call_count == 1
