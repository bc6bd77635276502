// The browser side of the room bridge (rxapp/realtime/bridge.py): holds the project's rows and merges
// each row-sized `canvas.change` into them by id and version. Evaluated once per page load as
// module code of the canvas page; room_store.py fills in its config.
const roomStore = (() => {
  if (typeof window === "undefined") return null; // prerendering: no socket, no store
  if (window.__roomStore) return window.__roomStore;
  const config = __ROOM_CONFIG__;
  // `appliedAt`: when `seq` last moved, read by the delivery reporter (delivery_reporter.py).
  const store = { project: 0, seq: 0, appliedAt: 0, jobs: [], nodes: [], progress: [], resyncing: false, ended: false };
  // How many jobs the tab holds (the newest first): the server's first page, plus the older
  // pages it asked for (`Older jobs`); and whether the project has jobs past those.
  store.jobLimit = config.queueLimit;
  store.moreJobs = false;
  const publishMore = (more) => {
    if (more !== store.moreJobs) publish(config.moreJobs, (store.moreJobs = more));
  };
  // Prompts this tab sent, per node: a node row whose prompt is none of them was written by
  // someone else; if this tab typed in that node, its field shows that (last write wins).
  const sentPrompts = new Map();
  let overwritten = [];
  // Generate events the server has not confirmed, by request id. One sent into a socket whose
  // worker had just died is lost without an error, so each reconnect sends them again. One
  // lost while the socket stays up (nothing says so), or whose handler failed, is sent again
  // when unanswered for RESEND_MS, then twice that, and so on: a server merely slow is not
  // sent ever more copies. The server makes one job per request id. Confirmed by the
  // server's answer (`store.received`) or by a job row with that id.
  const emit = Socket.prototype.emit; // the original, wrapped below
  const unconfirmed = new Map();
  const GIVE_UP_MS = 5 * 60 * 1000;
  const RESEND_MS = 5 * 1000;
  let socket = null; // the last one connected, for the timer's resends
  // A confirmed click's optimistic queue row leaves the list here, not when its job row is
  // among the rows held: those are only the newest `queueLimit`, so after more quick clicks
  // than that the oldest optimistic rows never met theirs and stayed `queued` for good.
  const settle = (requestIds) => {
    requestIds.forEach((requestId) => unconfirmed.delete(requestId));
    const pending = refs[config.pending.value] || [];
    const left = pending.filter((row) => !requestIds.includes(row.client_id));
    if (left.length !== pending.length) publish(config.pending, left);
  };
  const confirm = (rows) => settle(rows.map((row) => row.client_request_id).filter(Boolean));
  store.received = (requestId) => settle([requestId]);

  // Publish a list through its ClientStateVar: the setter re-renders every reader; before
  // the first reader mounts, the value waits in `refs` where the ClientStateVar starts from.
  const publish = (slot, value) => {
    const setter = refs[slot.setter];
    if (setter) setter(value);
    else refs[slot.value] = value;
  };

  const newestFirst = (a, b) =>
    a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? -1 : 1;

  // Replace held rows by newer versions (older ones are dropped); `extend` shapes a merged row.
  const merge = (held, rows, extend) => {
    const at = new Map(held.map((row, i) => [row.id, i]));
    const next = held.slice();
    let added = false;
    for (const row of rows) {
      const i = at.get(row.id);
      if (i === undefined) {
        at.set(row.id, next.length);
        next.push(extend(undefined, row));
        added = true;
      } else if (row.version >= next[i].version) {
        next[i] = extend(next[i], row);
      }
    }
    return { next, added };
  };

  // A change message leaves a node's history out: a new result goes on top of the one held,
  // whether it became current or not (a batch's others: `latest_result`), with its ThumbHash.
  const withHistory = (old, row) => {
    if (row.history !== undefined) return row;
    let history = old ? old.history : [];
    for (const [url, thumbhash] of [
      [row.image_url, row.image_hash],
      [row.latest_result, row.latest_result_hash],
    ]) {
      if (url && !history.some((entry) => entry.url === url))
        history = [{ url, thumbhash: thumbhash || "" }, ...history].slice(0, config.historyLimit);
    }
    return { ...row, history };
  };

  // Every unconfirmed Generate (a reconnect), or (`backOff`) those whose wait ran out.
  const sendUnconfirmed = (backOff = false) => {
    const now = Date.now();
    for (const [requestId, held] of unconfirmed) {
      if (now - held.at > GIVE_UP_MS) unconfirmed.delete(requestId);
      else if (!backOff || now - held.sentAt >= RESEND_MS * 2 ** held.resent) {
        Object.assign(held, { sentAt: now, resent: held.resent + 1 });
        emit.call(socket, "event", held.event);
      }
    }
  };
  window.setInterval(() => socket?.connected && sendUnconfirmed(true), 1000);

  const onSnapshot = (message) => {
    if (store.ended && message.project.id === store.project) return;
    confirm(message.jobs);
    store.project = message.project.id;
    store.seq = message.seq;
    store.appliedAt = Date.now();
    store.resyncing = false;
    store.jobs = message.jobs;
    store.nodes = message.nodes;
    store.jobLimit = config.queueLimit;
    publishMore(!!message.more_jobs);
    publish(config.project, message.project);
    publish(config.jobs, store.jobs);
    publish(config.nodes, store.nodes);
    onProgress({ project_id: store.project, rows: message.progress || [] }, true);
    window.__connection?.synced(); // after a reconnect, the page is exact again (connection.js)
  };

  // Live progress rows (one per unfinished job, by job id and version); a row whose job ended
  // or left the list is dropped here, so the list holds only what is running.
  const onProgress = (message, now = false) => {
    if (message.project_id !== store.project || store.ended) return;
    const running = new Set(store.jobs.filter((job) => !config.ended.includes(job.status)).map((job) => job.id));
    store.progress = merge(store.progress, message.rows, (old, row) => row).next.filter((row) => running.has(row.id));
    paintProgress(now);
  };
  // Progress is painted at most every PROGRESS_PAINT_MS, the latest rows each time: every row
  // read from this list (each queue row's bar) re-renders on a paint, so a paint per tick of
  // every running job kept a busy tab's main thread full and its clicks waited behind it.
  const PROGRESS_PAINT_MS = 500;
  let progressPaintedAt = -Infinity;
  let progressDirty = false;
  const paintProgress = (now = false) => {
    if (!now && Date.now() - progressPaintedAt < PROGRESS_PAINT_MS) {
      progressDirty = true;
      return;
    }
    progressDirty = false;
    progressPaintedAt = Date.now();
    publish(config.progress, store.progress);
  };
  window.setInterval(() => progressDirty && paintProgress(true), PROGRESS_PAINT_MS);

  const onChange = (message) => {
    if (message.project_id !== store.project) return; // a message of a project this tab left
    if (store.ended) return;
    if (message.base > store.seq) {
      // A hole: something between what this tab holds and this message never arrived.
      if (!store.resyncing) config.resync();
      store.resyncing = true;
      return;
    }
    if (message.seq > store.seq) Object.assign(store, { seq: message.seq, appliedAt: Date.now() });
    if (message.project) publish(config.project, message.project);
    // A change row leaves out its fields at their default (bridge.py: ROW_DEFAULTS).
    for (const list of ["jobs", "nodes"]) {
      if (message[list]) message[list] = message[list].map((row) => ({ ...config.rowDefaults[list], ...row }));
    }
    if (message.jobs) {
      confirm(message.jobs);
      const { next, added } = merge(store.jobs, message.jobs, (old, row) => row);
      if (added && next.length > store.jobLimit) publishMore(true); // the oldest held one goes
      store.jobs = added ? next.sort(newestFirst).slice(0, store.jobLimit) : next;
      publish(config.jobs, store.jobs);
    }
    if (message.nodes) {
      const held = new Map(store.nodes.map((node) => [node.id, node]));
      preloadResults(message.nodes, held);
      noticeOverwrites(message.nodes, held);
    }
    if (message.nodes || message.deleted_nodes) {
      let nodes = merge(store.nodes, message.nodes || [], withHistory).next;
      if (message.deleted_nodes) nodes = nodes.filter((n) => !message.deleted_nodes.includes(n.id));
      store.nodes = nodes.sort((a, b) => a.position - b.position || a.id - b.id);
      publish(config.nodes, store.nodes);
    }
  };

  // A page of older jobs this tab asked for: below those it holds, kept as they change.
  const onOlderJobs = (message) => {
    if (message.project_id !== store.project || store.ended) return;
    confirm(message.jobs);
    store.jobLimit += message.jobs.length;
    store.jobs = merge(store.jobs, message.jobs, (old, row) => row).next.sort(newestFirst).slice(0, store.jobLimit);
    publish(config.jobs, store.jobs);
    publishMore(!!message.more);
  };

  // A node's new result: its card's copy is fetched now, as the change arrives, while React
  // renders the card (an image object with the card's own srcset and sizes picks the copy the
  // card will, and the card's <img> then finds it loaded or on its way). With 10 tabs on 2
  // cores the render took ~80 ms before the card's own request went out.
  // `held`: the nodes the tab holds, by id.
  const preloadResults = (rows, held) => {
    for (const row of rows) {
      if (!row.image_url || held.get(row.id)?.image_url === row.image_url) continue;
      const image = new Image();
      image.sizes = config.cardImage.sizes;
      image.srcset = config.cardImage.copies.map(([suffix, side]) => `${row.image_url}${suffix} ${side}w`).join(", ");
    }
  };

  const noticeOverwrites = (rows, held) => {
    const hit = rows.filter((row) => {
      const sent = sentPrompts.get(row.id);
      const old = held.get(row.id);
      return sent && old && row.version > old.version && row.prompt !== old.prompt && !sent.includes(row.prompt);
    });
    if (!hit.length) return;
    overwritten = [...new Set([...overwritten, ...hit.map((row) => row.id)])];
    publish(config.overwritten, overwritten);
  };

  const onAccess = (message) => {
    if (message.project_id !== store.project) return;
    // Access ended: the server took this tab out of the project's room; stop asking for snapshots.
    store.ended = !message.role;
    publish(config.access, message);
    if (store.ended) {
      store.jobs = [];
      store.nodes = [];
      publish(config.jobs, store.jobs);
      publish(config.nodes, store.nodes);
    }
  };

  const forProject = (slot) => (message) => {
    if (message.project_id === store.project && !store.ended) publish(slot, message[slot.field]);
  };
  const onMembers = forProject(config.members);
  const onPresence = forProject(config.presence);

  // Listen on Reflex's own socket: every incoming event packet passes through `onevent`.
  const onevent = Socket.prototype.onevent;
  Socket.prototype.onevent = function (packet) {
    const [name, message] = packet.data || [];
    if (name === config.snapshotEvent) return onSnapshot(message);
    if (name === config.changeEvent) return onChange(message);
    if (name === config.accessEvent) return onAccess(message);
    if (name === config.olderJobsEvent) return onOlderJobs(message);
    if (name === config.membersEvent) return onMembers(message);
    if (name === config.presenceEvent) return onPresence(message);
    if (name === config.projectsEvent) return config.refreshProjects();
    if (name === config.progressEvent) return onProgress(message);
    return onevent.call(this, packet);
  };
  // Every (re)connect of the socket sends the unconfirmed Generate events again.
  const onconnect = Socket.prototype.onconnect;
  Socket.prototype.onconnect = function (...args) {
    const connected = onconnect.apply(this, args);
    socket = this;
    sendUnconfirmed();
    return connected;
  };
  // Remember the prompts this tab sends (a typed prompt clears that node's notice), and its
  // Generate events until the server confirms them.
  Socket.prototype.emit = function (name, event, ...rest) {
    const payload = name === "event" && event && event.payload;
    if (payload && payload.client_request_id && String(event.name).endsWith(".generate")) {
      const held = unconfirmed.get(payload.client_request_id);
      unconfirmed.set(payload.client_request_id, { event, at: held?.at ?? Date.now(), sentAt: Date.now(), resent: 0 });
    }
    if (payload && payload.action === "prompt" && String(event.name).endsWith(".on_node")) {
      const sent = sentPrompts.get(payload.node_id) || [];
      sentPrompts.set(payload.node_id, [...sent.slice(-49), payload.value]);
      if (overwritten.includes(payload.node_id)) {
        overwritten = overwritten.filter((id) => id !== payload.node_id);
        publish(config.overwritten, overwritten);
      }
    }
    return emit.call(this, name, event, ...rest);
  };
  // What a test reads when a click seems lost: the Generates this tab still waits on.
  store.unconfirmed = () => [...unconfirmed.keys()];
  window.__roomStore = store;
  return store;
})();
