"""The test suite: pytest, mirroring the packages (tests/conftest.py has the fixtures)."""
