"""The Redis adapter: the key layout, per-user state, single flight and the limits."""
