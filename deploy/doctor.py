"""Check a running app's realtime chain from outside: `python -m deploy.doctor http://localhost:3000`.

What `make doctor` runs, for operators and CI: the readiness checks (database, Redis,
the change feed and its LISTEN connection, the delivery sweep, the configuration),
then the realtime self-test (a synthetic job through the real chain, webhook included).
Prints one line per check and exits 1 when any fails, with what to check.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

#: The self-test waits for the local provider and, when the webhook fails, for polling.
CHECK_TIMEOUT_S = 120.0


def diagnose(url: str) -> list[str]:
    """Problems found (empty when everything passed); prints each check as it goes."""
    url = url.rstrip("/")
    problems: list[str] = []
    try:
        ready = httpx.get(f"{url}/readyz", timeout=10)
    except httpx.HTTPError as exc:
        return [f"nothing answers at {url} ({type(exc).__name__}): is the app running there?"]
    try:
        checks = ready.json()["checks"]
    except (ValueError, KeyError):
        return [f"{url}/readyz answered {ready.status_code} without checks: is this the canvas app?"]
    for name, verdict in checks.items():
        print(f"{'ok' if verdict == 'ok' else 'FAILED':7} readiness: {name}: {verdict}")
        if verdict != "ok":
            problems.append(f"readiness: {name}: {verdict}")
    if problems:
        return problems  # the self-test cannot pass on an unready app; say why instead of timing out
    try:
        answer = httpx.post(f"{url}/api/check/realtime", timeout=CHECK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return [f"the realtime self-test did not answer ({type(exc).__name__})"]
    if answer.status_code != 200:
        return [f"the realtime self-test was refused: HTTP {answer.status_code} {answer.text[:200]}"]
    for hop in answer.json()["hops"]:
        print(f"{hop['verdict'] if hop['verdict'] != 'failed' else 'FAILED':7} {hop['name']} ({hop['at_ms']} ms)")
        if hop["detail"]:
            print(f"{'':8}{hop['detail']}")
        if hop["verdict"] == "failed":
            problems.append(f"{hop['name']}: {hop['detail']}; check: {hop['fix']}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description="Check a running canvas app's realtime chain")
    parser.add_argument("url", nargs="?", default=f"http://localhost:{os.environ.get('PORT', '3000')}")
    problems = diagnose(parser.parse_args().url)
    for problem in problems:
        print(f"doctor: {problem}", file=sys.stderr)
    print("doctor: every check passed" if not problems else f"doctor: {len(problems)} check(s) failed")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
