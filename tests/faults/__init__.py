"""Real faults under a running hub: a stopped PostgreSQL, a full disk."""
