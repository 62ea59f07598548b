"""Ingest runs and provider cache TTLs."""
