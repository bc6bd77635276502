"""The realtime layer's core side: how a committed change reaches other processes and tabs.

- `pg_listen`: LISTEN on PostgreSQL, so every worker hears every commit;
- `progress_relay`: progress rows between workers, as NOTIFY payloads with no row behind them;
- `delivery`: the ledger of what each browser confirmed it showed;
- `presence`: who is in a project, with expiring entries;
- `selftest`: `Check realtime`, the whole chain tried end to end.

The change feed itself (`core/changes.py`) is plumbing every room writes through. The Reflex
side (the room bridge and the browser's store) is in `rxapp/`.
"""
