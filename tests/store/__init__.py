"""Tests of hub.store: the database layer and its SQLite writer."""
