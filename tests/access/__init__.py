"""Tests of hub.access."""
