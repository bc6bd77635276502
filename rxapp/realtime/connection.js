// Whether this tab's websocket is up, for the connection banner (connection.py says what and why).
// Module code of the app's root, evaluated once per page load; connection.py fills in its config.
// Unit tests: tests/js/connection.test.mjs (`node --test`).
const connectionWatch = (() => {
  if (typeof window === "undefined") return null; // prerendering: no socket
  if (window.__connection) return window.__connection;
  const config = __CONNECTION_CONFIG__;
  // phase: "online"; "down" (lost, not said yet: a blip under `quietMs` shows nothing);
  // "reconnecting" (said); "syncing" (the socket is back, its snapshot not merged yet: the
  // page is not exact, so the banner still says Reconnecting...); "back" (said for `backMs`).
  const watch = { phase: "online", since: 0, queued: 0 };
  const shown = () => ({ phase: watch.phase, queued: watch.queued });
  let published = "";

  const publish = () => {
    const value = shown();
    const key = JSON.stringify(value);
    if (key === published) return;
    published = key;
    const setter = refs[config.slot.setter];
    if (setter) setter(value);
    else refs[config.slot.value] = value;
  };
  const enter = (phase) => {
    Object.assign(watch, { phase, since: Date.now() });
    if (phase === "online" || phase === "back") watch.queued = 0;
    publish();
  };

  // Reflex calls these hooks on every websocket connect and unexpected disconnect; chain any
  // already installed (the delivery reporter's).
  const hooks = (window.__reflex_otel ??= {});
  const connected = hooks.onSocketConnect;
  const disconnected = hooks.onSocketDisconnect;
  watch.lost = (reason) => {
    // Closed by the page itself (navigation, pagehide) or by the server on purpose: not an outage.
    if (reason === "io client disconnect" || reason === "io server disconnect") return;
    if (watch.phase === "online" || watch.phase === "back") enter("down");
  };
  watch.connected = () => {
    if (watch.phase === "down") enter("online"); // a blip nobody was told of
    else if (watch.phase === "reconnecting") enter("syncing");
  };
  // The room store merged a snapshot: after a reconnect, the page is exact again.
  watch.synced = () => {
    if (watch.phase === "syncing") enter("back");
  };
  // A click made while the socket is down: Reflex holds its event and sends it on reconnect.
  watch.clicked = () => {
    if (watch.phase === "online" || watch.phase === "back") return;
    watch.queued += 1;
    publish();
  };
  watch.tick = () => {
    const held = Date.now() - watch.since;
    if (watch.phase === "down" && held >= config.quietMs) enter("reconnecting");
    else if (watch.phase === "back" && held >= config.backMs) enter("online");
  };
  hooks.onSocketConnect = (...args) => {
    watch.connected();
    connected?.(...args);
  };
  hooks.onSocketDisconnect = (...args) => {
    watch.lost(...args);
    disconnected?.(...args);
  };
  window.setInterval(watch.tick, config.tickMs);
  window.addEventListener(
    "click",
    (event) => event.target?.closest?.("button, [role=button], [role=menuitem]") && watch.clicked(),
    true,
  );
  window.__connection = watch;
  return watch;
})();
