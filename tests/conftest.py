"""Shared fixtures. Lab fixtures live in tests/lab/conftest.py, VM ones in tests/vm/conftest.py."""
