"""The realtime layer's Reflex side: one push per change to every tab of a project.

- `bridge`: committed changes -> one `canvas.change` per project room (socket.io), snapshots,
  sharing and presence messages;
- `room_store` (.py + .js): the browser's copy of the project's rows, merged by id and version;
- `delivery_reporter` (.py + .js) and `confirmations`: browsers report what they showed;
- `ghosts`: socket records of dead workers, and tabs whose state Redis lost;
- `connection` (.py + .js): the socket's state on the page (`Reconnecting...`, `Back online`).

Its core side (LISTEN, the delivery ledger, presence, the self-test) is `core/realtime/`.
"""
