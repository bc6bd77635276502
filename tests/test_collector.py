"""A serving process settles the cyclic collector once it is built (`rxapp.runtime.settle_collector`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rxapp.runtime import COLLECTOR_THRESHOLDS, settle_collector


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, afterwards."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_what_exists_when_the_app_is_built_is_frozen_and_later_objects_are_collected_less_often(
    collector: None,
) -> None:
    settle_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == COLLECTOR_THRESHOLDS
    assert COLLECTOR_THRESHOLDS[0] > 700  # CPython's default, which cost ~16 s at 1,000 tabs


def test_cycles_made_after_settling_are_still_collected_on_their_own(collector: None) -> None:
    settle_collector()
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collections.append(info["collected"])

    gc.callbacks.append(seen)
    try:
        for _ in range(2 * COLLECTOR_THRESHOLDS[0]):
            cycle: list[object] = []
            cycle.append(cycle)
            del cycle
    finally:
        gc.callbacks.remove(seen)
    assert collections, "no collection ran by itself"
    assert sum(collections) > 0
