// The browser side of the room bridge (rxapp/bridge.py): holds the project's rows and merges
// each row-sized `canvas.change` into them by id and version. Evaluated once per page load as
// module code of the canvas page; room_store.py fills in its config.
const roomStore = (() => {
  if (typeof window === "undefined") return null; // prerendering: no socket, no store
  if (window.__roomStore) return window.__roomStore;
  const config = __ROOM_CONFIG__;
  // `appliedAt`: when `seq` last moved, read by the delivery reporter (delivery_reporter.py).
  const store = { project: 0, seq: 0, appliedAt: 0, jobs: [], nodes: [], resyncing: false, ended: false };
  // Prompts this tab sent, per node: a node row whose prompt is none of them was written by
  // someone else; if this tab typed in that node, its field shows that (last write wins).
  const sentPrompts = new Map();
  let overwritten = [];
  // Generate events the server has not confirmed, by request id. One sent into a socket whose
  // worker had just died is lost without an error, so each reconnect sends them again; the
  // server makes one job per request id. Confirmed by the server's answer (`store.received`)
  // or by a job row with that id.
  const emit = Socket.prototype.emit; // the original, wrapped below
  const unconfirmed = new Map();
  const GIVE_UP_MS = 5 * 60 * 1000;
  const confirm = (rows) => rows.forEach((row) => row.client_request_id && unconfirmed.delete(row.client_request_id));
  store.received = (requestId) => unconfirmed.delete(requestId);

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

  // A change message leaves a node's history out: a new result goes on top of the one held.
  const withHistory = (old, row) => {
    if (row.history !== undefined) return row;
    const history = old ? old.history : [];
    if (!row.image_url || history[0] === row.image_url) return { ...row, history };
    return { ...row, history: [row.image_url, ...history].slice(0, config.historyLimit) };
  };

  const sendUnconfirmed = (socket) => {
    for (const [requestId, { event, at }] of unconfirmed) {
      if (Date.now() - at > GIVE_UP_MS) unconfirmed.delete(requestId);
      else emit.call(socket, "event", event);
    }
  };

  const onSnapshot = (message) => {
    if (store.ended && message.project.id === store.project) return;
    confirm(message.jobs);
    store.project = message.project.id;
    store.seq = message.seq;
    store.appliedAt = Date.now();
    store.resyncing = false;
    store.jobs = message.jobs;
    store.nodes = message.nodes;
    publish(config.project, message.project);
    publish(config.jobs, store.jobs);
    publish(config.nodes, store.nodes);
  };

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
    if (message.jobs) {
      confirm(message.jobs);
      const { next, added } = merge(store.jobs, message.jobs, (old, row) => row);
      store.jobs = added ? next.sort(newestFirst).slice(0, config.queueLimit) : next;
      publish(config.jobs, store.jobs);
    }
    if (message.nodes) noticeOverwrites(message.nodes);
    if (message.nodes || message.deleted_nodes) {
      let nodes = merge(store.nodes, message.nodes || [], withHistory).next;
      if (message.deleted_nodes) nodes = nodes.filter((n) => !message.deleted_nodes.includes(n.id));
      store.nodes = nodes.sort((a, b) => a.position - b.position || a.id - b.id);
      publish(config.nodes, store.nodes);
    }
  };

  const noticeOverwrites = (rows) => {
    const held = new Map(store.nodes.map((node) => [node.id, node]));
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
    if (name === config.membersEvent) return onMembers(message);
    if (name === config.presenceEvent) return onPresence(message);
    if (name === config.projectsEvent) return config.refreshProjects();
    return onevent.call(this, packet);
  };
  // Every (re)connect of the socket sends the unconfirmed Generate events again.
  const onconnect = Socket.prototype.onconnect;
  Socket.prototype.onconnect = function (...args) {
    const connected = onconnect.apply(this, args);
    sendUnconfirmed(this);
    return connected;
  };
  // Remember the prompts this tab sends (a typed prompt clears that node's notice), and its
  // Generate events until the server confirms them.
  Socket.prototype.emit = function (name, event, ...rest) {
    const payload = name === "event" && event && event.payload;
    if (payload && payload.client_request_id && String(event.name).endsWith(".generate")) {
      const held = unconfirmed.get(payload.client_request_id);
      unconfirmed.set(payload.client_request_id, { event, at: held ? held.at : Date.now() });
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
  window.__roomStore = store;
  return store;
})();
