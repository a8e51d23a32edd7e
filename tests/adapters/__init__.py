"""Tests of the hospital-side adapters."""
