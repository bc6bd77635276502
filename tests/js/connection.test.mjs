// The connection watch (rxapp/realtime/connection.js) on its own: the test plays Reflex's
// socket hooks, the room store's snapshot and the clock.
import assert from "node:assert/strict";
import { test } from "node:test";

import { evaluate, manualClock, source } from "./browser.mjs";

function page() {
  const clock = manualClock();
  const timers = [];
  const listeners = [];
  const window = {
    setInterval: (fn) => timers.push(fn),
    addEventListener: (name, fn) => listeners.push([name, fn]),
  };
  const refs = {};
  const config = { slot: { value: "conn_value", setter: "conn_setter" }, quietMs: 1000, backMs: 4000, tickMs: 200 };
  evaluate(
    source("connection.js", { __CONNECTION_CONFIG__: JSON.stringify(config) }),
    { window, refs, Date: { now: clock.now } },
    "connection.js",
  );
  const pass = (ms) => {
    clock.advance(ms);
    timers.forEach((fn) => fn());
  };
  const shown = () => JSON.parse(JSON.stringify(refs.conn_value ?? { phase: "online", queued: 0 }));
  const click = (selector = "button") =>
    listeners
      .filter(([name]) => name === "click")
      .forEach(([, fn]) => fn({ target: { closest: (s) => (s.includes(selector) ? {} : null) } }));
  return { hooks: window.__reflex_otel, watch: window.__connection, pass, shown, click };
}

test("a drop shorter than a second shows nothing", () => {
  const { hooks, pass, shown } = page();
  hooks.onSocketDisconnect("transport close");
  pass(800);
  hooks.onSocketConnect();
  pass(1000);
  assert.deepEqual(shown(), { phase: "online", queued: 0 });
});

test("past a second it says Reconnecting..., counts clicks, and says Back online once the snapshot merged", () => {
  const { hooks, watch, pass, shown, click } = page();
  hooks.onSocketDisconnect("transport close");
  pass(1000);
  assert.equal(shown().phase, "reconnecting");
  click();
  click();
  assert.deepEqual(shown(), { phase: "reconnecting", queued: 2 });
  hooks.onSocketConnect();
  assert.equal(shown().phase, "syncing"); // back, but the page is not exact yet
  watch.synced();
  assert.deepEqual(shown(), { phase: "back", queued: 0 });
  pass(3800);
  assert.equal(shown().phase, "back");
  pass(200);
  assert.equal(shown().phase, "online");
});

test("a click while online counts nothing, nor does a close the page asked for", () => {
  const { hooks, pass, shown, click } = page();
  click();
  hooks.onSocketDisconnect("io client disconnect");
  pass(5000);
  assert.deepEqual(shown(), { phase: "online", queued: 0 });
});

test("it chains hooks already installed (the delivery reporter's)", () => {
  const clock = manualClock();
  const seen = [];
  const window = {
    setInterval: () => {},
    addEventListener: () => {},
    __reflex_otel: { onSocketConnect: () => seen.push("connect"), onSocketDisconnect: (r) => seen.push(r) },
  };
  evaluate(
    source("connection.js", {
      __CONNECTION_CONFIG__: JSON.stringify({ slot: { value: "v", setter: "s" }, quietMs: 1, backMs: 1, tickMs: 1 }),
    }),
    { window, refs: {}, Date: { now: clock.now } },
    "connection.js",
  );
  window.__reflex_otel.onSocketDisconnect("ping timeout");
  window.__reflex_otel.onSocketConnect();
  assert.deepEqual(seen, ["ping timeout", "connect"]);
});
