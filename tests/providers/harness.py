"""What the conformance suite needs from each provider's fake or mock.

Adding a provider = its module in `providers/` + one `harness_<name>.py` here
implementing `Harness`, listed in `HARNESSES` (tests/providers/conftest.py).
"""

from __future__ import annotations

from typing import Any, Protocol

import respx

from core.contract import JobStatus, Provider, TaskRef

CDN = "https://cdn.test"


class Clock:
    """A clock a test moves by hand (providers take `clock=`)."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def result_url(task: TaskRef) -> str:
    return f"{CDN}/{task.task_id}.png"


class Harness(Protocol):
    #: The provider's registry name and a text-to-image model of it.
    name: str
    text_model: str
    #: Whether the provider signs webhooks (the suite then checks forged ones fail).
    signs: bool

    def settings(self) -> dict[str, Any]:
        """Settings fields that enable the provider against the mock."""
        ...

    def install(self, router: respx.MockRouter, provider: Provider) -> None:
        """Mock the provider's API: submit succeeds; status answers what `report` set."""
        ...

    def report(self, task: TaskRef, status: JobStatus) -> None:
        """Make the provider say `status` about `task` from now on."""
        ...

    def webhook(self, task: TaskRef, status: JobStatus, *, forged: bool = False) -> tuple[dict[str, str], bytes]:
        """A callback as the provider would send it (`forged`: signed with the wrong key)."""
        ...

    def cancelled(self, task: TaskRef) -> bool:
        """Whether the provider's API was asked to stop `task` (never, where it has no cancel)."""
        ...

    def make_next_job_fail(self) -> tuple[str, str]:
        """Arrange for the next job to fail; returns (prompt to use, expected words in the error)."""
        ...
