"""Tests of hub.ledger."""
