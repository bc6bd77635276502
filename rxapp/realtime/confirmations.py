"""The tabs' delivery confirmations (`POST /api/feed/seen`, rxapp/api.py), read into the core's reports.

Plain HTTP rather than the websocket, on purpose: a tab whose socket silently died
can still say what it last showed, and is then told to resync. The body is a small
batch, `{"reports": [{project_id, tab_id, seq, applied_at, sent_at, closed, reconnects}]}`,
times in the browser's milliseconds; `applied_at` is moved onto the server's clock by
the difference between `sent_at` and the arrival, so delays do not depend on the
browser's clock being right.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import cast

from core.realtime.delivery import TabReport, browser_name

MAX_REPORTS = 20
MAX_BODY_BYTES = 8 * 1024
TAB_ID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")


class BadReport(ValueError):
    pass


def parse_reports(body: bytes, user_agent: str, now: datetime) -> list[TabReport]:
    try:
        raw = json.loads(body)["reports"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadReport('expected {"reports": [...]}') from exc
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_REPORTS:
        raise BadReport(f"between 1 and {MAX_REPORTS} reports")
    browser = browser_name(user_agent)
    reports = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadReport("each report is an object")
        tab_id, numbers = item.get("tab_id"), [item.get(k) for k in ("project_id", "seq", "applied_at", "sent_at")]
        if not isinstance(tab_id, str) or not TAB_ID.match(tab_id):
            raise BadReport("tab_id: 4 to 64 letters, digits, - or _")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise BadReport("project_id, seq, applied_at and sent_at are non-negative integers")
        project_id, seq, applied_ms, sent_ms = cast(list[int], numbers)
        # The browser's clock, moved onto ours; a report cannot have been shown after it arrived.
        applied_at = min(now, now - timedelta(milliseconds=sent_ms - applied_ms))
        reconnects = item.get("reconnects", 0)
        if not isinstance(reconnects, int) or isinstance(reconnects, bool) or reconnects < 0:
            raise BadReport("reconnects is a non-negative integer")
        closed = item.get("closed") is True
        reports.append(TabReport(project_id, tab_id, seq, applied_at, browser, closed=closed, reconnects=reconnects))
    return reports
