"""The browser half of delivery confirmation, for today's push (the project's shared state).

Mounted once per page. A hidden element renders the project id and the sequence
number the tab has applied (`ProjectFeed.seq`, which arrives in the same delta as the
rows), so a MutationObserver sees the moment the change reached the screen. At most
once a second (every 5 s when nothing moved, as a heartbeat) the tab posts its highest
sequence and that moment, and how often its websocket reconnected (Reflex's
`__reflex_otel.onSocketConnect` hook), to `/api/feed/seen`; on `pagehide` it says it is closing.
When the answer says this tab fell behind, it clicks the hidden resync button, which
re-runs `open_project` (a fresh snapshot). Rewiring to another push mechanism means
changing only the two hidden elements' bindings.
"""

from __future__ import annotations

import reflex as rx

from rxapp.states.feed import ProjectFeed

REPORT_EVERY_MS = 1000
HEARTBEAT_MS = 5000

REPORTER_JS = """
(() => {
  if (window.__deliveryReporter) return;
  const r = (window.__deliveryReporter = {
    tab: (Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2)).slice(0, 12),
    project: 0, seq: -1, appliedAt: 0, sentSeq: -1, sentAt: 0, busy: false, reconnects: 0, sentReconnects: 0,
  });
  // Reflex calls these hooks on every websocket (re)connect; chain any already installed.
  const hooks = (window.__reflex_otel ??= {});
  const connected = hooks.onSocketConnect;
  hooks.onSocketConnect = (...args) => {
    r.reconnects += 1;  // mounted after the first connect: every call here is a reconnect
    connected?.(...args);
  };
  const report = (closed) => ({
    project_id: r.project, tab_id: r.tab, seq: r.seq, applied_at: r.appliedAt, sent_at: Date.now(), closed,
    reconnects: r.reconnects,
  });
  const beacon = () => {
    if (r.project && r.seq >= 0) {
      const body = JSON.stringify({reports: [report(true)]});
      navigator.sendBeacon("/api/feed/seen", new Blob([body], {type: "application/json"}));
    }
  };
  const read = () => {
    const el = document.getElementById("delivery-seq");
    if (!el) return;
    const project = parseInt(el.dataset.feedProject || "0", 10);
    const seq = parseInt(el.dataset.feedSeq || "-1", 10);
    if (!project) return;  // a reconnect rehydrating the page: it shows no project for a moment
    if (project !== r.project) {
      beacon();  // this tab left that project's feed
      Object.assign(r, {project, seq: -1, sentSeq: -1});
    }
    if (seq > r.seq) Object.assign(r, {seq, appliedAt: Date.now()});
  };
  new MutationObserver(read).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-feed-seq", "data-feed-project"],
  });
  const flush = async () => {
    read();
    const now = Date.now();
    const news = r.seq !== r.sentSeq || r.reconnects !== r.sentReconnects;
    if (!r.project || r.seq < 0 || r.busy || (!news && now - r.sentAt < HEARTBEAT_MS)) return;
    Object.assign(r, {busy: true, sentSeq: r.seq, sentAt: now, sentReconnects: r.reconnects});
    try {
      const answer = await fetch("/api/feed/seen", {
        method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
        body: JSON.stringify({reports: [report(false)]}),
      });
      if (answer.ok && (await answer.json()).resync.includes(r.tab)) {
        document.getElementById("delivery-resync")?.click();
      }
    } catch (error) {
      // offline: the next report says the same, and the server counts this tab as behind meanwhile
    } finally {
      r.busy = false;
    }
  };
  window.setInterval(flush, REPORT_EVERY_MS);
  window.addEventListener("pagehide", beacon);
})();
""".replace("REPORT_EVERY_MS", str(REPORT_EVERY_MS)).replace("HEARTBEAT_MS", str(HEARTBEAT_MS))


def delivery_reporter() -> rx.Component:
    return rx.fragment(
        rx.el.div(
            id="delivery-seq",
            data_feed_project=ProjectFeed.project_id,
            data_feed_seq=ProjectFeed.seq,
            hidden=True,
            on_mount=rx.call_script(REPORTER_JS),
        ),
        rx.el.button(id="delivery-resync", on_click=ProjectFeed.open_project, hidden=True, tab_index=-1),
    )
