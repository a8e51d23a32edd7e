"""Tests of the patient verify page, in a real browser against a real server."""
