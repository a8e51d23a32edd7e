"""Benchmarks (scripts, not tests): `bench/run.py` times the hub's ledger against its peers."""
