"""The job's life, in one room: from Generate to a stored result or a failure.

- `transitions`: the one rule (`decide`), on plain values;
- `book`: the one writer of jobs and their timeline steps (`JobBook._advance`, every
  forward move in one transaction with its change event); `async_book`: the same from the
  event loop, the one thread boundary;
- `pipeline`: the async side (submit with retries, apply a provider's word, store the result);
- `webhooks` and `polling`: the two ways a provider's word comes in;
- `plan`: run plans (Run all stale, Autorun) that queue jobs in dependency order;
- `progress`: each unfinished job's live progress (phase, place, percent, preview), in memory;
- `throttle`: a provider's documented submit rate.
"""
