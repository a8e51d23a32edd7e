"""Tests of hub.documents."""
