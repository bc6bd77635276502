// The room store (rxapp/realtime/room_store.js) on its own: a fake socket.io Socket class
// stands in for Reflex's, `refs` for Reflex's global refs, and the test plays the server.
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { evaluate, manualClock, source } from "./browser.mjs";

const slot = (name, field) => ({ value: `${name}_value`, setter: `${name}_setter`, ...(field ? { field } : {}) });
const EVENTS = {
  snapshotEvent: "canvas.snapshot",
  changeEvent: "canvas.change",
  accessEvent: "canvas.access",
  membersEvent: "canvas.members",
  presenceEvent: "canvas.presence",
  projectsEvent: "canvas.projects",
  progressEvent: "canvas.progress",
  olderJobsEvent: "canvas.older_jobs",
};
const GENERATE = "state.project_room.generate";
const ON_NODE = "state.project_room.on_node";

/** A page: the store loaded over a fresh Socket class; what it published and sent is recorded. */
function page({ queueLimit = 50, historyLimit = 3 } = {}) {
  const calls = { resync: 0, refreshProjects: 0 };
  const config = {
    project: slot("project"),
    jobs: slot("jobs"),
    moreJobs: slot("moreJobs"),
    nodes: slot("nodes"),
    access: slot("access"),
    members: slot("members", "members"),
    presence: slot("presence", "people"),
    overwritten: slot("overwritten"),
    pending: slot("pending"),
    progress: slot("progress"),
    ended: ["completed", "failed", "cancelled"],
    ...EVENTS,
    queueLimit,
    historyLimit,
    rowDefaults: { jobs: { error: "", image_url: "" }, nodes: { error: "", image_url: "", latest_result: "" } },
    cardImage: { copies: [[".w256.webp", 256], [".w512.webp", 512], [".w768.webp", 768]], sizes: "316px" },
  };
  class Socket {
    constructor() {
      this.sent = [];
      this.passedOn = [];
    }
    onevent(packet) {
      this.passedOn.push(packet);
    }
    onconnect() {
      return "connected";
    }
    emit(name, event) {
      this.sent.push([name, event]);
      return this;
    }
  }
  const clock = manualClock();
  const timers = [];
  const window = { setInterval: (fn) => timers.push(fn) };
  // Image objects the store made (a preload): what they were told to fetch.
  const images = [];
  class Image {
    constructor() {
      images.push(this);
    }
  }
  const globals = { window, refs: {}, Socket, Image, Date: { now: clock.now } };
  // The config's two event chains are functions in the page; here they count their calls.
  const literal = JSON.stringify(config).slice(0, -1);
  const code = source("room_store.js", {
    __ROOM_CONFIG__: `${literal}, "resync": () => calls.resync++, "refreshProjects": () => calls.refreshProjects++}`,
  });
  evaluate(code, { ...globals, calls }, "room_store.js");
  const socket = new Socket();
  socket.connected = true;
  // A second passes: the clock moves and the store's timers run.
  const second = () => {
    clock.advance(1000);
    timers.forEach((fn) => fn());
  };
  // A copy in this realm: arrays made inside the script's context have another Array prototype.
  const value = (name) => {
    const held = globals.refs[`${name}_value`];
    return held === undefined ? held : JSON.parse(JSON.stringify(held));
  };
  const receive = (event, message) => Socket.prototype.onevent.call(socket, { data: [event, message] });
  return { store: window.__roomStore, socket, Socket, calls, clock, value, receive, second, refs: globals.refs, images };
}

const job = (id, version, extra = {}) => ({ id, version, created_at: `2026-12-01T00:00:0${id.at(-1)}`, ...extra });
const node = (id, version, extra = {}) => ({ id, version, position: id, prompt: "", image_url: "", ...extra });
const snapshot = (seq, jobs = [], nodes = [], project = 1) => ({ project: { id: project }, seq, jobs, nodes });
const change = (base, seq, rows, project = 1) => ({ project_id: project, base, seq, ...rows });
const ids = (rows) => rows.map((row) => `${row.id}@${row.version}`);

describe("merging rows by version", () => {
  let p;
  beforeEach(() => {
    p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(10, [job("j1", 2), job("j2", 1)], [node(1, 4)]));
  });

  test("a snapshot replaces the rows and sets the sequence", () => {
    assert.deepEqual(ids(p.value("jobs")), ["j1@2", "j2@1"]);
    assert.equal(p.store.seq, 10);
    assert.deepEqual(p.value("project"), { id: 1 });
  });

  test("a newer version replaces the held row, an older one is dropped", () => {
    p.receive(EVENTS.changeEvent, change(10, 11, { jobs: [job("j1", 3, { status: "running" }), job("j2", 0)] }));
    assert.deepEqual(ids(p.value("jobs")), ["j1@3", "j2@1"]);
    assert.equal(p.value("jobs")[0].status, "running");
    assert.equal(p.store.seq, 11);
  });

  test("rows overlapping what the tab holds (a message older than its snapshot) change nothing", () => {
    p.receive(EVENTS.changeEvent, change(8, 9, { jobs: [job("j1", 1)] }));
    assert.deepEqual(ids(p.value("jobs")), ["j1@2", "j2@1"]);
    assert.equal(p.store.seq, 10); // the sequence never goes back
  });

  test("a new job goes in newest first and the queue keeps its limit", () => {
    p = page({ queueLimit: 2 });
    p.receive(EVENTS.snapshotEvent, snapshot(10, [job("j2", 1), job("j1", 1)]));
    p.receive(EVENTS.changeEvent, change(10, 11, { jobs: [job("j3", 1)] }));
    assert.deepEqual(ids(p.value("jobs")), ["j3@1", "j2@1"]);
  });

  test("Older jobs: a page goes under the held rows, stays held as jobs arrive, and says when more exist", () => {
    p = page({ queueLimit: 2 });
    p.receive(EVENTS.snapshotEvent, { ...snapshot(10, [job("j4", 1), job("j3", 1)]), more_jobs: true });
    assert.equal(p.value("moreJobs"), true);
    p.receive(EVENTS.olderJobsEvent, { project_id: 1, jobs: [job("j2", 1), job("j1", 1)], more: false });
    assert.deepEqual(ids(p.value("jobs")), ["j4@1", "j3@1", "j2@1", "j1@1"]);
    assert.equal(p.value("moreJobs"), false);
    p.receive(EVENTS.changeEvent, change(10, 11, { jobs: [job("j1", 2, { status: "failed" })] }));
    assert.equal(p.value("jobs")[3].status, "failed"); // an older row stays live
    p.receive(EVENTS.changeEvent, change(11, 12, { jobs: [job("j5", 1)] }));
    assert.deepEqual(ids(p.value("jobs")), ["j5@1", "j4@1", "j3@1", "j2@1"]); // held: 4, the oldest went
    assert.equal(p.value("moreJobs"), true); // and is now older than what the tab holds
    p.receive(EVENTS.olderJobsEvent, { project_id: 2, jobs: [job("j9", 1)], more: false });
    assert.equal(p.value("jobs").length, 4); // another project's page is not this one's
  });

  const urls = (history) => history.map((entry) => entry.url);

  test("a batch's result that is not current joins the history too, once, with its ThumbHash", () => {
    p = page({ historyLimit: 5 });
    const a = { url: "a", thumbhash: "ha" };
    p.receive(EVENTS.snapshotEvent, snapshot(1, [], [node(1, 1, { image_url: "a", history: [a] })]));
    const b = { image_url: "b", image_hash: "hb" };
    p.receive(EVENTS.changeEvent, change(1, 2, { nodes: [node(1, 2, { ...b, latest_result: "b", latest_result_hash: "hb" })] }));
    p.receive(EVENTS.changeEvent, change(2, 3, { nodes: [node(1, 3, { ...b, latest_result: "c", latest_result_hash: "hc" })] }));
    p.receive(EVENTS.changeEvent, change(3, 4, { nodes: [node(1, 4, { ...b, latest_result: "c", latest_result_hash: "hc" })] }));
    assert.deepEqual(p.value("nodes")[0].history, [
      { url: "c", thumbhash: "hc" },
      { url: "b", thumbhash: "hb" },
      a,
    ]);
  });

  test("a node's new result goes on top of its history; deleted nodes leave", () => {
    p = page({ historyLimit: 2 });
    const a = { url: "a", thumbhash: "" };
    p.receive(EVENTS.snapshotEvent, snapshot(1, [], [node(1, 1, { image_url: "a", history: [a] }), node(2, 1)]));
    p.receive(EVENTS.changeEvent, change(1, 2, { nodes: [node(1, 2, { image_url: "b" })] }));
    p.receive(EVENTS.changeEvent, change(2, 3, { nodes: [node(1, 3, { image_url: "c" })] }));
    assert.deepEqual(urls(p.value("nodes")[0].history), ["c", "b"]);
    p.receive(EVENTS.changeEvent, change(3, 4, { deleted_nodes: [2] }));
    assert.deepEqual(ids(p.value("nodes")), ["1@3"]);
  });

  test("a node's new result is fetched as its change arrives, the copy its card will pick; a result held is not", () => {
    const held = (id, extra = {}) => node(id, 1, { history: [], ...extra });
    p.receive(EVENTS.snapshotEvent, snapshot(1, [], [held(1, { image_url: "/media/a.png" }), held(2)]));
    p.receive(EVENTS.changeEvent, change(1, 2, { nodes: [node(1, 2, { image_url: "/media/b.png", prompt: "x" })] }));
    p.receive(EVENTS.changeEvent, change(2, 3, { nodes: [node(1, 3, { image_url: "/media/b.png", prompt: "y" })] }));
    p.receive(EVENTS.changeEvent, change(3, 4, { nodes: [node(2, 2, { prompt: "no result yet" })] }));
    assert.deepEqual(
      p.images.map((image) => [image.srcset, image.sizes, image.src]),
      [["/media/b.png.w256.webp 256w, /media/b.png.w512.webp 512w, /media/b.png.w768.webp 768w", "316px", undefined]],
    ); // never `src`: that would be the original
  });

  test("a change row's fields left out at their default are filled back in, not kept from the old row", () => {
    p.receive(EVENTS.snapshotEvent, snapshot(1, [job("j1", 1, { error: "boom" })], [node(1, 1, { error: "bad" })]));
    p.receive(EVENTS.changeEvent, change(1, 2, { jobs: [{ id: "j1", version: 2, created_at: "2026" }] }));
    p.receive(EVENTS.changeEvent, change(2, 3, { nodes: [{ id: 1, version: 2, position: 1 }] }));
    assert.equal(p.value("jobs")[0].error, "");
    assert.equal(p.value("nodes")[0].error, "");
    assert.equal(p.value("nodes")[0].image_url, "");
  });

  test("a row that comes with its history replaces the one held (a node changed twice in one read)", () => {
    p = page({ historyLimit: 5 });
    p.receive(EVENTS.snapshotEvent, snapshot(1, [], [node(1, 1, { image_url: "a", history: [{ url: "a" }] })]));
    const history = [{ url: "c" }, { url: "b" }, { url: "a" }];
    p.receive(EVENTS.changeEvent, change(1, 3, { nodes: [node(1, 3, { image_url: "b", latest_result: "c", history })] }));
    assert.deepEqual(urls(p.value("nodes")[0].history), ["c", "b", "a"]);
  });

  test("another project's messages, and other events, do not touch the rows", () => {
    p.receive(EVENTS.changeEvent, change(10, 11, { jobs: [job("j9", 1)] }, 2));
    assert.deepEqual(ids(p.value("jobs")), ["j1@2", "j2@1"]);
    p.receive("state.update", { delta: {} });
    assert.deepEqual(p.socket.passedOn, [{ data: ["state.update", { delta: {} }] }]);
  });
});

describe("a hole asks for a snapshot", () => {
  test("a message starting after what the tab holds asks once, applies nothing, until the snapshot", () => {
    const p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(10, [job("j1", 1)]));
    p.receive(EVENTS.changeEvent, change(12, 13, { jobs: [job("j1", 5)] }));
    p.receive(EVENTS.changeEvent, change(13, 14, { jobs: [job("j1", 6)] }));
    assert.equal(p.calls.resync, 1);
    assert.deepEqual(ids(p.value("jobs")), ["j1@1"]);
    assert.equal(p.store.seq, 10);
    p.receive(EVENTS.snapshotEvent, snapshot(14, [job("j1", 6)]));
    assert.equal(p.store.resyncing, false);
    p.receive(EVENTS.changeEvent, change(16, 17, {}));
    assert.equal(p.calls.resync, 2); // a later hole asks again
  });

  test("a message that starts where the tab is asks for nothing", () => {
    const p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(10));
    p.receive(EVENTS.changeEvent, change(10, 11, { jobs: [job("j1", 1)] }));
    assert.equal(p.calls.resync, 0);
  });
});

describe("resending unanswered Generates after a reconnect", () => {
  const generate = (requestId) => ({ name: GENERATE, payload: { node_id: 1, client_request_id: requestId } });
  const resent = (p) => p.socket.sent.filter(([, event]) => event.name === GENERATE).length;

  test("a Generate the server has not confirmed is sent again on each reconnect", () => {
    const p = page();
    p.socket.emit("event", generate("r1"));
    assert.equal(p.Socket.prototype.onconnect.call(p.socket), "connected"); // the original still runs
    p.Socket.prototype.onconnect.call(p.socket);
    assert.equal(resent(p), 3);
  });

  test("the server's answer confirms it", () => {
    const p = page();
    p.socket.emit("event", generate("r1"));
    p.store.received("r1");
    p.Socket.prototype.onconnect.call(p.socket);
    assert.equal(resent(p), 1);
  });

  test("a job row with its request id confirms it, in a snapshot or a change", () => {
    const p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(1));
    p.socket.emit("event", generate("r1"));
    p.socket.emit("event", generate("r2"));
    p.receive(EVENTS.changeEvent, change(1, 2, { jobs: [job("j1", 1, { client_request_id: "r1" })] }));
    p.receive(EVENTS.snapshotEvent, snapshot(3, [job("j2", 1, { client_request_id: "r2" })]));
    p.Socket.prototype.onconnect.call(p.socket);
    assert.equal(resent(p), 2);
  });

  test("after five minutes it is given up; other events are never resent", () => {
    const p = page();
    p.socket.emit("event", generate("r1"));
    p.socket.emit("event", { name: ON_NODE, payload: { node_id: 1, action: "prompt", value: "x" } });
    p.clock.advance(5 * 60 * 1000 + 1);
    p.Socket.prototype.onconnect.call(p.socket);
    assert.equal(p.socket.sent.length, 2);
  });

  test("unanswered on a live socket, it is sent again after 5 s, then 10 s more (no reconnect)", () => {
    const p = page();
    p.Socket.prototype.onconnect.call(p.socket);
    p.socket.emit("event", generate("r1"));
    const sentAt = [];
    for (let s = 1; s <= 16; s++) {
      const before = resent(p);
      p.second();
      if (resent(p) > before) sentAt.push(s);
    }
    assert.deepEqual(sentAt, [5, 15]);
    p.store.received("r1");
    for (let s = 0; s < 30; s++) p.second();
    assert.equal(resent(p), 3);
  });

  test("the same request sent twice keeps its first time", () => {
    const p = page();
    p.socket.emit("event", generate("r1"));
    p.clock.advance(4 * 60 * 1000);
    p.socket.emit("event", generate("r1"));
    p.clock.advance(60 * 1000 + 1);
    p.Socket.prototype.onconnect.call(p.socket);
    assert.equal(resent(p), 2);
  });
});

describe("optimistic queue rows", () => {
  const optimistic = (...ids) => ids.map((id) => ({ client_id: id, node_id: 1, model: "local/sketch" }));

  test("a confirmed click's row leaves, whether or not its job is among the rows held", () => {
    const p = page({ queueLimit: 1 });
    p.receive(EVENTS.snapshotEvent, snapshot(1));
    p.refs.pending_value = optimistic("r1", "r2", "r3");
    const jobs = [job("j1", 1, { client_request_id: "r1" }), job("j2", 1, { client_request_id: "r2" })];
    p.receive(EVENTS.changeEvent, change(1, 2, { jobs }));
    assert.deepEqual(p.value("jobs").map((row) => row.id), ["j2"]); // j1 fell out of the queue's window
    assert.deepEqual(p.value("pending"), optimistic("r3"));
    p.store.received("r3"); // the server's answer, before its row
    assert.deepEqual(p.value("pending"), []);
  });
});

describe('the "text changed under you" notice', () => {
  const typed = (p, nodeId, value) =>
    p.socket.emit("event", { name: ON_NODE, payload: { node_id: nodeId, action: "prompt", value } });
  let p;
  beforeEach(() => {
    p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(1, [], [node(1, 1, { prompt: "a fox" }), node(2, 1, { prompt: "" })]));
  });

  test("a newer prompt this tab never sent, in a node it typed in, is noticed", () => {
    typed(p, 1, "a red fox");
    p.receive(EVENTS.changeEvent, change(1, 2, { nodes: [node(1, 2, { prompt: "a red fox" })] })); // its own
    assert.equal(p.value("overwritten"), undefined);
    p.receive(EVENTS.changeEvent, change(2, 3, { nodes: [node(1, 3, { prompt: "a wolf" })] }));
    assert.deepEqual(p.value("overwritten"), [1]);
  });

  test("nodes this tab did not type in, and rows without a newer version, are not", () => {
    typed(p, 1, "a red fox");
    p.receive(EVENTS.changeEvent, change(1, 2, { nodes: [node(2, 2, { prompt: "a wolf" })] }));
    p.receive(EVENTS.changeEvent, change(2, 3, { nodes: [node(1, 1, { prompt: "a wolf" })] }));
    assert.equal(p.value("overwritten"), undefined);
  });

  test("typing in the node again clears its notice", () => {
    typed(p, 1, "a red fox");
    p.receive(EVENTS.changeEvent, change(1, 2, { nodes: [node(1, 2, { prompt: "a wolf" })] }));
    typed(p, 1, "a red wolf");
    assert.deepEqual(p.value("overwritten"), []);
  });
});

describe("access, members and presence", () => {
  test("a tab whose access ended drops the rows and ignores the project's messages", () => {
    const p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(1, [job("j1", 1)]));
    p.receive(EVENTS.accessEvent, { project_id: 1, role: "" });
    assert.deepEqual(p.value("jobs"), []);
    p.receive(EVENTS.changeEvent, change(1, 2, { jobs: [job("j2", 1)] }));
    p.receive(EVENTS.snapshotEvent, snapshot(3, [job("j2", 1)]));
    p.receive(EVENTS.presenceEvent, { project_id: 1, people: ["x"] });
    assert.deepEqual(p.value("jobs"), []);
    assert.equal(p.value("presence"), undefined);
  });

  test("members and presence of the tab's project are published; the project list is refreshed", () => {
    const p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(1));
    p.receive(EVENTS.membersEvent, { project_id: 1, members: ["ann"] });
    p.receive(EVENTS.presenceEvent, { project_id: 2, people: ["bob"] });
    p.receive(EVENTS.projectsEvent, {});
    assert.deepEqual(p.value("members"), ["ann"]);
    assert.equal(p.value("presence"), undefined);
    assert.equal(p.calls.refreshProjects, 1);
  });
});

describe("live progress rows", () => {
  const tick = (id, version, extra = {}) => ({ id, version, node_id: 1, phase: "running", percent: null, ...extra });
  const progress = (rows, project = 1) => ({ project_id: project, rows });

  test("rows merge by job and version; a snapshot brings those of a job already running", () => {
    const p = page();
    p.receive(EVENTS.snapshotEvent, { ...snapshot(1, [job("j1", 1, { status: "running" })]), progress: [tick("j1", 5)] });
    assert.deepEqual(ids(p.value("progress")), ["j1@5"]);
    p.receive(EVENTS.progressEvent, progress([tick("j1", 7, { percent: 40 })]));
    p.receive(EVENTS.progressEvent, progress([tick("j1", 6, { percent: 20 })])); // late: an older tick
    assert.deepEqual(ids(p.value("progress")), ["j1@5"]); // not painted yet: at most one paint per interval
    p.second();
    assert.deepEqual(ids(p.value("progress")), ["j1@7"]);
    assert.equal(p.value("progress")[0].percent, 40);
    p.receive(EVENTS.progressEvent, progress([tick("j1", 9)], 2)); // another project's
    p.second();
    assert.deepEqual(ids(p.value("progress")), ["j1@7"]);
  });

  test("a row of a job that ended, or that the tab does not hold, is dropped", () => {
    const p = page();
    p.receive(EVENTS.snapshotEvent, snapshot(1, [job("j1", 1, { status: "running" }), job("j2", 1, { status: "running" })]));
    p.receive(EVENTS.progressEvent, progress([tick("j1", 1), tick("j2", 1), tick("j9", 1)]));
    p.second();
    assert.deepEqual(ids(p.value("progress")), ["j1@1", "j2@1"]);
    p.receive(EVENTS.changeEvent, change(1, 2, { jobs: [job("j1", 2, { status: "completed" })] }));
    p.receive(EVENTS.progressEvent, progress([tick("j2", 2)]));
    p.second();
    assert.deepEqual(ids(p.value("progress")), ["j2@2"]);
  });
});
