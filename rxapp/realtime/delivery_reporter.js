// The browser half of delivery confirmation (delivery_reporter.py says what and why). Runs once
// per page, on the resync button's mount; delivery_reporter.py fills in the two intervals.
// Unit tests: tests/js/delivery_reporter.test.mjs (`node --test`).
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
