"""What keeps parallel test workers (pytest-xdist, `make test`) apart on one machine.

Each worker runs its tests one at a time, so a test owns whatever its worker owns while it
runs: a Redis database (`redis_url`), a range of ports (`free_port`), its temporary
directories (pytest gives each worker its own) and fresh PostgreSQL databases (random names,
`tests/postgres.py`).
"""

from __future__ import annotations

import os
import random
import socket

#: Redis' default `databases`; database 0 is left to `make run` and `make run-scaled`.
REDIS_DATABASES = 16
#: Each worker's ports: below the kernel's ephemeral range (32768 and up), so no outgoing
#: connection takes one between `free_port` and the server's bind, and apart from the others'.
FIRST_PORT = 20_000
PORTS_PER_WORKER = 500


def worker_number() -> int:
    """0 without xdist; N in xdist's worker `gwN`."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))


def redis_db() -> int:
    """This worker's Redis database. Tests using it flush it first or use keys of their own."""
    db = 1 + worker_number()
    if db >= REDIS_DATABASES:
        raise RuntimeError(f"Redis has {REDIS_DATABASES} databases: run at most {REDIS_DATABASES - 1} workers")
    return db


def redis_url() -> str:
    return f"redis://127.0.0.1:6379/{redis_db()}"


# A random start, so two suites on one machine (another checkout's) rarely try the same ports.
_next = random.randrange(PORTS_PER_WORKER)


def free_port() -> int:
    """A loopback port nobody listens on, from this worker's own range."""
    global _next
    first = FIRST_PORT + worker_number() * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = first + _next % PORTS_PER_WORKER
        _next += 1
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")
