"""The browser half of delivery confirmation, reading the room store (room_store.js).

The store holds the project this tab shows and the highest sequence number it has
merged into its rows, with the moment it did (`window.__roomStore`). At most once a
second (every 5 s when nothing moved, as a heartbeat) the tab posts that sequence and
moment, and how often its websocket reconnected (Reflex's `__reflex_otel.onSocketConnect`
hook), to `/api/feed/seen`; on `pagehide` it says it is closing. When the answer says
this tab fell behind, it clicks the hidden resync button, which asks the room bridge
for a fresh snapshot.
"""

from __future__ import annotations

import reflex as rx

from rxapp.states.room import ProjectRoom

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
    const store = window.__roomStore;
    if (!store || !store.project) return;  // before the first snapshot
    if (store.project !== r.project) {
      beacon();  // this tab left that project
      Object.assign(r, {project: store.project, seq: -1, sentSeq: -1});
    }
    if (store.seq > r.seq) Object.assign(r, {seq: store.seq, appliedAt: store.appliedAt || Date.now()});
  };
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
    return rx.el.button(
        id="delivery-resync",
        on_click=ProjectRoom.resync,
        hidden=True,
        tab_index=-1,
        on_mount=rx.call_script(REPORTER_JS),
    )
