"""`scimsvc loadtest`: drive an IdP-like SCIM request mix at a base URL; report throughput, latency, 429s.

One module per concept, pure ones first:

- `target`: which base URLs a load test may hit (loopback unless --allow-remote).
- `mixes`: which actions an IdP sends and how often; the next action of a worker.
- `payloads`: the request bodies as Okta and Entra shape them, and what the server charges for each.
- `samples`: one measured request, and the response headers it records (Retry-After, RateLimit-Limit).
- `stats`: the percentile (nearest rank) and latency summaries; bench/harness.py uses it too.
- `admissions`: the rate limit seen from outside: admissions before a Retry-After, credits against budget.
- `report`: the report as one JSON-ready dict, and as text for a terminal.
- `driver`: the workers that send, pace and record requests, honouring Retry-After or not (I/O).
- `progress`: the live progress line (rich on a terminal, plain lines in logs).
- `command`: the `scimsvc loadtest` arguments, registered by scimsvc/cli.py.
"""
