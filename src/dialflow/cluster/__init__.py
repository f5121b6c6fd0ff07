"""Several dialflow servers as one: what they share through Redis (``DIALFLOW_REDIS_URL``).

- :mod:`.limits` — per-organization concurrency and calls-per-second across every node;
- :mod:`.bus` — commands between nodes (hang up a call another node runs), catalog
  changes (a revoked key is refused by every node at once) and cross-node locks.

See docs/scale-out.md.
"""
