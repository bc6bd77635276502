// The delivery reporter (rxapp/realtime/delivery_reporter.js) on its own: the test holds the
// clock and the interval, plays the room store (`window.__roomStore`) and answers its posts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { evaluate, manualClock, source } from "./browser.mjs";

const REPORT_EVERY_MS = 1000;
const HEARTBEAT_MS = 5000;

/** A page with the reporter mounted; `tick()` is one firing of its interval. */
function page({ hooks } = {}) {
  const clock = manualClock();
  const posts = [];
  const beacons = [];
  const clicks = [];
  const listeners = {};
  const intervals = [];
  const answer = { ok: true, resync: [] };
  const window = {
    setInterval: (fn, ms) => {
      assert.equal(ms, REPORT_EVERY_MS);
      intervals.push(fn);
    },
    addEventListener: (name, fn) => (listeners[name] = fn),
    ...(hooks ? { __reflex_otel: hooks } : {}),
  };
  const pending = [];
  const globals = {
    window,
    Date: { now: clock.now },
    Math,
    JSON,
    Blob: class {
      constructor(parts) {
        this.text = parts.join("");
      }
    },
    navigator: { sendBeacon: (url, blob) => beacons.push([url, JSON.parse(blob.text)]) },
    document: { getElementById: (id) => ({ click: () => clicks.push(id) }) },
    // Each post waits until the test answers it (`answerAll`), as the network would.
    fetch: (url, init) => {
      posts.push([url, JSON.parse(init.body)]);
      return new Promise((resolve, reject) => pending.push({ resolve, reject }));
    },
  };
  const code = source("delivery_reporter.js", {
    REPORT_EVERY_MS: String(REPORT_EVERY_MS),
    HEARTBEAT_MS: String(HEARTBEAT_MS),
  });
  const context = evaluate(code, globals, "delivery_reporter.js");
  const mountAgain = () => evaluate(code, context, "delivery_reporter.js");
  const tick = async () => {
    clock.advance(REPORT_EVERY_MS);
    await Promise.all(intervals.map((flush) => flush()));
  };
  // `body` "offline": the post fails as fetch does without a network.
  const answerAll = async (body = answer) => {
    for (const { resolve, reject } of pending.splice(0)) {
      if (body === "offline") reject(new TypeError("Failed to fetch"));
      else resolve({ ok: body.ok, json: async () => ({ resync: body.resync }) });
    }
    await new Promise((resolve) => setImmediate(resolve)); // let the reporter read the answers
  };
  // `tick` awaits the post, which waits for its answer: tick without awaiting, then answer.
  const tickAndAnswer = async (body) => {
    const done = tick();
    await answerAll(body);
    await done;
  };
  const reports = () => posts.map(([, body]) => body.reports[0]);
  return { window, posts, beacons, clicks, listeners, tick, tickAndAnswer, reports, answerAll, mountAgain };
}

describe("the delivery reports' batching", () => {
  test("nothing is sent before the tab's first snapshot", async () => {
    const p = page();
    await p.tickAndAnswer();
    p.window.__roomStore = { project: 0, seq: 0 };
    await p.tickAndAnswer();
    assert.equal(p.posts.length, 0);
  });

  test("one report per interval with the newest sequence, however often it moved", async () => {
    const p = page();
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 111 };
    await p.tickAndAnswer();
    p.window.__roomStore.seq = 4;
    p.window.__roomStore.seq = 5;
    p.window.__roomStore.appliedAt = 222;
    await p.tickAndAnswer();
    assert.deepEqual(
      p.reports().map((r) => [r.project_id, r.seq, r.applied_at, r.closed]),
      [
        [7, 3, 111, false],
        [7, 5, 222, false],
      ],
    );
    assert.deepEqual(
      p.posts.map(([url]) => url),
      ["/api/feed/seen", "/api/feed/seen"],
    );
    assert.equal(new Set(p.reports().map((r) => r.tab_id)).size, 1); // one tab id per page
  });

  test("when nothing moved, a heartbeat every five seconds", async () => {
    const p = page();
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 1 };
    await p.tickAndAnswer();
    for (let tick = 0; tick < (2 * HEARTBEAT_MS) / REPORT_EVERY_MS; tick++) await p.tickAndAnswer();
    assert.deepEqual(
      p.reports().map((r) => r.sent_at - p.reports()[0].sent_at),
      [0, HEARTBEAT_MS, 2 * HEARTBEAT_MS],
    );
  });

  test("no second post while one is unanswered", async () => {
    const p = page();
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 1 };
    const first = p.tick();
    p.window.__roomStore.seq = 4;
    const second = p.tick();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(p.posts.length, 1);
    await p.answerAll();
    await Promise.all([first, second]);
    await p.tickAndAnswer(); // the news waited for the answer
    assert.deepEqual(
      p.reports().map((r) => r.seq),
      [3, 4],
    );
  });

  test("a failed post is said again by the next heartbeat", async () => {
    const p = page();
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 1 };
    await p.tickAndAnswer("offline");
    for (let second = 1; second < HEARTBEAT_MS / REPORT_EVERY_MS; second++) await p.tickAndAnswer();
    assert.equal(p.posts.length, 1);
    await p.tickAndAnswer();
    assert.deepEqual(
      p.reports().map((r) => r.seq),
      [3, 3],
    );
  });

  test("an answer naming this tab makes it ask for a snapshot", async () => {
    const p = page();
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 1 };
    await p.tickAndAnswer({ ok: true, resync: ["someone-else"] });
    assert.deepEqual(p.clicks, []);
    p.window.__roomStore.seq = 4;
    const tab = p.reports()[0].tab_id;
    await p.tickAndAnswer({ ok: true, resync: [tab] });
    assert.deepEqual(p.clicks, ["delivery-resync"]);
  });

  test("a reconnect is news: reported at the next interval; a hook installed before still runs", async () => {
    const earlier = [];
    const p = page({ hooks: { onSocketConnect: (...args) => earlier.push(args) } });
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 1 };
    await p.tickAndAnswer();
    p.window.__reflex_otel.onSocketConnect("socket");
    await p.tickAndAnswer();
    assert.deepEqual(
      p.reports().map((r) => r.reconnects),
      [0, 1],
    );
    assert.deepEqual(earlier, [["socket"]]);
  });

  test("leaving a project, and closing the page, send a closing beacon for it", async () => {
    const p = page();
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 1 };
    await p.tickAndAnswer();
    p.window.__roomStore = { project: 8, seq: 1, appliedAt: 2 };
    await p.tickAndAnswer();
    p.listeners.pagehide();
    assert.deepEqual(
      p.beacons.map(([url, body]) => [url, body.reports[0].project_id, body.reports[0].seq, body.reports[0].closed]),
      [
        ["/api/feed/seen", 7, 3, true],
        ["/api/feed/seen", 8, 1, true],
      ],
    );
    assert.deepEqual(
      p.reports().map((r) => [r.project_id, r.seq]),
      [
        [7, 3],
        [8, 1],
      ],
    );
  });

  test("mounted twice on one page, it reports once", async () => {
    const p = page();
    p.mountAgain();
    p.window.__roomStore = { project: 7, seq: 3, appliedAt: 1 };
    await p.tickAndAnswer();
    assert.equal(p.posts.length, 1);
  });
});
