"""Tests of the GraphQL layer, through the real app."""
