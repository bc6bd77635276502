"""A small TCP load balancer for running several backend workers on one machine.

Each new connection goes to the next live upstream (round-robin, skipping any
that refuse), and its bytes are piped both ways, so pages, API calls and
websockets all pass. Websockets (`/_event`) take turns on their own, so tabs
spread evenly over the workers whatever number of page requests came between.

Reflex's websocket needs no sticky sessions (websocket transport only), so this
is enough on one machine; across machines use a real load balancer (nginx,
HAProxy, a cloud LB) with the same rule.

Run: `python -m deploy.balancer --listen 3000 --upstream 3001,3002,3003`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging

log = logging.getLogger("balancer")


class Balancer:
    def __init__(self, upstreams: list[tuple[str, int]]) -> None:
        self.upstreams = upstreams
        self._turns = {"socket": itertools.count(), "http": itertools.count()}

    async def _connect(self, kind: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int] | None:
        start = next(self._turns[kind])
        for offset in range(len(self.upstreams)):
            host, port = self.upstreams[(start + offset) % len(self.upstreams)]
            try:
                reader, writer = await asyncio.open_connection(host, port)
                return reader, writer, port
            except OSError:
                continue  # that worker is down: try the next one
        return None

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await client_reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_writer.close()
            return
        kind = "socket" if b" /_event" in request_line else "http"
        upstream = await self._connect(kind)
        if upstream is None:
            log.warning("no upstream is up")
            client_writer.close()
            return
        reader, writer, port = upstream
        log.debug("%s connection -> %s", kind, port)
        writer.write(request_line)
        await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        sink.close()


async def serve(listen_host: str, listen_port: int, upstreams: list[tuple[str, int]]) -> None:
    server = await asyncio.start_server(Balancer(upstreams).handle, listen_host, listen_port)
    log.info("balancing %s:%s over %s", listen_host, listen_port, [port for _, port in upstreams])
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="public port")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--upstream", required=True, help="comma-separated worker ports on 127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s balancer %(message)s")
    upstreams = [("127.0.0.1", int(port)) for port in args.upstream.split(",")]
    asyncio.run(serve(args.host, args.listen, upstreams))


if __name__ == "__main__":
    main()
