"""A signed callback's timestamp: the one check every HMAC/ED25519 provider shares."""

from __future__ import annotations

import pytest

from core.contract import WEBHOOK_MAX_SKEW_S, WebhookRejected, require_fresh_timestamp

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "timestamp",
    [
        "",
        "abc",
        "-5",
        "1.5",
        "²",
        "\uff11\uff18" + "\uff10" * 8,
        str(int(NOW) - WEBHOOK_MAX_SKEW_S - 1),
        str(int(NOW) + 10_000),
    ],
    ids=["empty", "letters", "negative", "decimal", "superscript digit", "full-width digits", "stale", "future"],
)
def test_a_malformed_or_stale_timestamp_is_a_clear_401(timestamp: str) -> None:
    with pytest.raises(WebhookRejected) as refused:
        require_fresh_timestamp(timestamp, NOW, "Some provider")
    assert refused.value.status_code == 401 and "Some provider" in refused.value.reason


def test_a_fresh_timestamp_passes() -> None:
    require_fresh_timestamp(str(int(NOW) - WEBHOOK_MAX_SKEW_S + 1), NOW, "Some provider")
