"""Tests of the README and docs/: links that resolve, examples that run."""
