"""Witnesses: cosignatures, policies, the witness server, the hub side and the monitor."""
