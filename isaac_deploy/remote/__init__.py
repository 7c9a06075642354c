"""Standalone scripts that run on the target (stdlib only, Python >= 3.8); importable for tests."""
